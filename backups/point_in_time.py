"""The state of a pair at a point in time, from its backups: the newest snapshot at or
before T plus the journal up to T, every object checked (signatures included).

Refusals (`RestoreRefused`, each saying what to do): a time before the earliest
restorable second or in the future, a journal gap (or an unreadable object) before T
without `allow_gap`, a time between two generations without `allow_gap`, a journal head
that is missing or not signed by a pinned signer without `allow_gap` (trailing segments
may have been cut), and an object not signed by a pinned signer.

A generation whose first object is not signed by a pinned signer (forged, or written
before signing without `--allow-unsigned`) is not the pair's: it is skipped, listed with
why, and the next older generation that covers T is used.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog

from backups.catalog import Gap, GenerationCatalog, PairCatalog, load_catalog
from backups.errors import (
    ChainBroken,
    JournalGap,
    ObjectUnreadable,
    RestoreRefused,
    SignatureRefused,
)
from backups.head import HeadRead, load_head
from backups.keks import KekRing
from backups.replay import choose_base, replay
from backups.state import PairState
from storage.store import BlobStore

log = structlog.get_logger("kvdr.backups")


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat() if ts is not None else None


@dataclass
class PointInTime:
    """The state of a pair at `at`, and how it was reconstructed."""

    pair: str
    at: datetime
    state: PairState
    generation: str
    snapshot: str | None
    segments_read: int
    gaps: list[Gap] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    unreadable_after: list[str] = field(default_factory=list)
    earliest: float | None = None
    latest: float | None = None
    # Generations passed over because they are not the pair's (generation, reason).
    skipped_generations: list[dict[str, str]] = field(default_factory=list)
    # Objects read without a signature (written before signing; --allow-unsigned).
    unsigned: bool = False
    # Why the journal head could not be trusted (restored anyway with --allow-gap).
    head_problem: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "pair": self.pair,
            "at": self.at.isoformat(),
            "generation": self.generation,
            "sequence": self.state.sequence,
            "last_change_at": _iso(self.state.at or None),
            "snapshot": self.snapshot,
            "segments_read": self.segments_read,
            "gaps_skipped": [g.describe() for g in self.gaps],
            "unreadable_skipped": self.unreadable,
            "unreadable_after_time": self.unreadable_after,
            "earliest_restorable": _iso(self.earliest),
            "latest_recorded": _iso(self.latest),
            "generations_skipped": self.skipped_generations,
            "unsigned": self.unsigned,
            "head_problem": self.head_problem,
        }


async def state_at(
    store: BlobStore,
    keks: KekRing,
    pair: str,
    at: datetime,
    *,
    now: datetime,
    allow_gap: bool = False,
) -> PointInTime:
    """Reconstruct the state of `pair` at `at`: the newest snapshot at or before it, plus
    the journal up to it, every object checked (signatures included)."""
    catalog = await load_catalog(store, pair)
    earliest, latest = catalog.earliest_restorable(), catalog.latest_restorable()
    if earliest is None:
        raise RestoreRefused(f"pair {pair!r} has no backups in {store.description}")
    when = at.timestamp()
    if at > now:
        raise RestoreRefused(f"TIME {at.isoformat()} is in the future (now is {now.isoformat()})")
    if when < earliest:
        raise RestoreRefused(
            f"TIME {at.isoformat()} is outside the retention window: the earliest restorable "
            f"second of pair {pair!r} is {_iso(earliest)}"
        )
    head = await load_head(store, keks.signers, pair)
    skipped: list[dict[str, str]] = []
    for gen in reversed(catalog.ordered()):
        first = gen.earliest_restorable()
        if first is None or first > when:
            continue
        point = await _state_in_generation(store, keks, catalog, gen, head, at, skipped, allow_gap)
        if point is None:
            continue
        point.earliest, point.latest = earliest, latest
        return point
    raise RestoreRefused(
        f"no generation of pair {pair!r} that covers TIME {at.isoformat()} is signed by a "
        "pinned signer: "
        + "; ".join(f"generation {s['generation']}: {s['reason']}" for s in skipped)
    )


async def _state_in_generation(
    store: BlobStore,
    keks: KekRing,
    catalog: PairCatalog,
    gen: GenerationCatalog,
    head: HeadRead,
    at: datetime,
    skipped: list[dict[str, str]],
    allow_gap: bool,
) -> PointInTime | None:
    """The state at `at` from `gen`; None (and `gen` added to `skipped`) when its first
    object is not signed by a pinned signer. A refused snapshot is passed over (named in
    `unreadable`) and the replay starts from the one before it, so a forged snapshot
    dropped into a real generation does not make the generation unusable."""
    pair, when = catalog.pair, at.timestamp()
    refused: list[str] = []
    view = gen
    while True:
        try:
            point = await _state_in(store, keks, catalog, view, head, at, skipped, allow_gap)
        except SignatureRefused as exc:
            base = choose_base(view, when, None)
            if base is not None and exc.blob == base.blob:
                log.warning("backups.snapshot_refused", pair=pair, blob=base.blob, reason=str(exc))
                refused.append(base.blob)
                kept = [snap for snap in view.snapshots if snap.blob != base.blob]
                view = dataclasses.replace(view, snapshots=kept)
                continue
            if exc.blob != _first_object(view, when):
                raise RestoreRefused(f"cannot restore pair {pair!r}: {exc}") from exc
            skipped.append({"generation": gen.generation, "reason": str(exc)})
            log.warning(
                "backups.generation_skipped", pair=pair, generation=gen.generation, reason=str(exc)
            )
            return None
        point.unreadable = refused + point.unreadable
        return point


def _first_object(gen: GenerationCatalog, when: float) -> str | None:
    """The blob a replay of `gen` up to `when` reads first."""
    base = choose_base(gen, when, None)
    if base is not None:
        return base.blob
    return gen.segments[0].blob if gen.segments else None


def _skipped_text(skipped: list[dict[str, str]]) -> str:
    return "".join(f"; skipped generation {s['generation']}: {s['reason']}" for s in skipped)


async def _state_in(
    store: BlobStore,
    keks: KekRing,
    catalog: PairCatalog,
    gen: GenerationCatalog,
    head: HeadRead,
    at: datetime,
    skipped: list[dict[str, str]],
    allow_gap: bool,
) -> PointInTime:
    pair, when = catalog.pair, at.timestamp()
    # Replayed first: a generation that is not the pair's fails on its first object,
    # and is skipped before anything else is said about it.
    state = PairState(pair, gen.generation)
    try:
        result = await replay(store, keks, gen, state, until=when, allow_gap=allow_gap)
    except JournalGap as exc:
        raise RestoreRefused(
            f"{exc} (before TIME {at.isoformat()}); pass --allow-gap to restore across it"
        ) from exc
    except SignatureRefused:
        raise
    except (ChainBroken, ObjectUnreadable) as exc:
        raise RestoreRefused(f"cannot restore pair {pair!r}: {exc}") from exc
    gaps: list[Gap] = []
    passed = {s["generation"] for s in skipped}
    later = [
        g for g in catalog.ordered() if g.generation > gen.generation and g.generation not in passed
    ]
    gen_latest = gen.latest_restorable()
    if later and gen_latest is not None and when > gen_latest:
        between = Gap(gen.generation, gen.last_sequence + 1, gen.last_sequence + 1)
        message = (
            f"TIME {at.isoformat()} falls between generation {gen.generation} (its last "
            f"change at {_iso(gen_latest)}) and generation {later[0].generation} (started "
            f"{later[0].started.isoformat()}): the journal has no record of that interval"
        )
        if not allow_gap:
            raise RestoreRefused(message + "; pass --allow-gap to restore its last state")
        gaps.append(between)
    head_problem = None
    if head.head is None:
        head_problem = (
            f"the journal head {head.blob} cannot be trusted: {head.problem}"
            if head.problem
            else f"the journal head {head.blob} is missing"
        )
        if not allow_gap:
            raise RestoreRefused(
                f"{head_problem}, so trailing segments may have been cut unnoticed; pass "
                f"--allow-gap to restore from what is there{_skipped_text(skipped)}"
            )
    elif head.head.generation == gen.generation and head.head.sequence > gen.last_sequence:
        tail = Gap(gen.generation, gen.last_sequence + 1, head.head.sequence)
        if not allow_gap:
            raise RestoreRefused(
                f"journal gap before TIME: {tail.describe()} (the journal head says they "
                "were written, no segment holds them); pass --allow-gap to restore across it"
            )
        gaps.append(tail)
    elif head.head.generation not in catalog.generations and head.head.sequence > 0:
        cut = Gap(head.head.generation, 1, head.head.sequence)
        if not allow_gap:
            raise RestoreRefused(
                f"journal gap: the journal head says generation {head.head.generation} holds "
                f"sequences up to {head.head.sequence}, and none of its objects are there; "
                "pass --allow-gap to restore from the older generations"
            )
        gaps.append(cut)
    return PointInTime(
        pair=pair,
        at=at,
        state=state,
        generation=gen.generation,
        snapshot=result.snapshot.blob if result.snapshot else None,
        segments_read=result.segments_read,
        gaps=gaps + result.gaps,
        unreadable=result.unreadable,
        unreadable_after=result.unreadable_after,
        skipped_generations=list(skipped),
        unsigned=result.unsigned or (head.head is not None and not head.head.signed),
        head_problem=head_problem,
    )
