"""Snapshots: compaction of the previous snapshot plus the journal that follows it into
the state of a pair at one sequence number.

The vault is never read: a generation's journal begins with everything the replicator
recorded at its start (the index is empty, so every item is recorded in full), so the
journal alone holds the whole state. Segments are read one at a time, and the new
snapshot is written item by item into the compressor, so memory holds one state plus one
segment, never the whole journal.

A snapshot always ends on a segment boundary: its `prev` is the digest of the segment
ending at its sequence, which is also the `prev` of the segment after it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from backups import metrics
from backups.catalog import load_catalog
from backups.keks import KekRing
from backups.objects import seal_snapshot
from backups.replay import replay
from backups.state import PairState
from backups.stores import BackupStores, ObjectConflict

log = structlog.get_logger("kvdr.backups")


@dataclass(frozen=True)
class SnapshotMade:
    """A snapshot that exists now (written by this call, or found already written)."""

    pair: str
    generation: str
    sequence: int
    blob: str
    size: int
    items: int
    at: float
    written: bool
    segments_read: int
    seconds: float


async def create_snapshot(
    stores: BackupStores,
    keks: KekRing,
    pair: str,
    *,
    generation: str | None = None,
    until_sequence: int | None = None,
    clock: Callable[[], float] = time.time,
) -> SnapshotMade | None:
    """Snapshot `pair` (its newest generation unless `generation`) at the newest segment
    boundary at or before `until_sequence`; None when there is nothing to snapshot.

    Raises `ChainBroken` / `ObjectUnreadable` when the journal does not check out: a
    snapshot is never built over a gap.
    """
    started = time.monotonic()
    catalog = await load_catalog(stores.primary, pair)
    gen = catalog.generations.get(generation) if generation else catalog.latest
    if gen is None:
        return None
    boundaries = [s.name.last for s in gen.segments]
    if until_sequence is not None:
        boundaries = [b for b in boundaries if b <= until_sequence]
    if not boundaries:
        return None
    target = max(boundaries)
    base = gen.base_snapshot()
    if base is not None and base.sequence >= target:
        return None
    state = PairState(pair, gen.generation)
    result = await replay(stores.primary, keks, gen, state, until_sequence=target)
    sealed = await seal_snapshot(state, result.digest, keks, created_at=clock())
    written = True
    try:
        info = await stores.put_object(sealed.name, sealed.data, sealed.metadata)
        size = info.size
    except ObjectConflict:
        # Another process snapshotted the same sequence meanwhile: same state, other key.
        written = False
        size = len(sealed.data)
    made = SnapshotMade(
        pair=pair,
        generation=gen.generation,
        sequence=state.sequence,
        blob=sealed.name,
        size=size,
        items=len(state.items),
        at=state.at,
        written=written,
        segments_read=result.segments_read,
        seconds=time.monotonic() - started,
    )
    metrics.SNAPSHOT_LAST_SUCCESS.labels(pair).set(clock())
    log.info(
        "backups.snapshot_written",
        pair=pair,
        generation=gen.generation,
        sequence=made.sequence,
        items=made.items,
        size=made.size,
        segments_read=made.segments_read,
        base=result.snapshot.blob if result.snapshot else None,
        seconds=round(made.seconds, 3),
    )
    return made
