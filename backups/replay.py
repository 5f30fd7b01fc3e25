"""Replaying one generation: its newest usable snapshot, then its segments in order, each
decrypted and checked (digest, predecessor link, contiguous sequences) before its changes
are applied.

The journal rebuilds its index this way on start, compaction builds the next snapshot,
and a restore builds the state at a time T. A gap or an unreadable segment stops the
replay with an error naming it, unless the caller allows gaps: then it is skipped and
reported, never silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from backups.catalog import Gap, GenerationCatalog, SegmentEntry, SnapshotEntry
from backups.errors import ChainBroken, JournalGap, ObjectUnreadable, SignatureRefused
from backups.keks import KekRing
from backups.objects import Checked, read_segment, read_snapshot
from backups.state import ReplayTarget
from storage.store import BlobStore


@dataclass
class ReplayResult:
    """Where a replay ended and what it passed over."""

    generation: str
    snapshot: SnapshotEntry | None = None
    sequence: int = 0
    at: float = 0.0
    # Digest of the last object read: the `prev` of the generation's next segment.
    digest: str = ""
    segments_read: int = 0
    gaps: list[Gap] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    # The replay stopped at a change after `until` (later changes exist).
    stopped_early: bool = False
    # Unreadable segments that the listing places after `until` (not needed, reported).
    unreadable_after: list[str] = field(default_factory=list)
    # The last object read (what a signed head links to), and whether any object read
    # was unsigned (let through by the signer ring: written before signing).
    last: Checked | None = None
    unsigned: bool = False

    def read(self, checked: Checked) -> None:
        self.last = checked
        self.unsigned = self.unsigned or not checked.signed


async def replay(
    store: BlobStore,
    keks: KekRing,
    gen: GenerationCatalog,
    target: ReplayTarget,
    *,
    until: float | None = None,
    until_sequence: int | None = None,
    allow_gap: bool = False,
    base: SnapshotEntry | None = None,
    use_snapshot: bool = True,
) -> ReplayResult:
    """Replay `gen` into `target` up to time `until` / sequence `until_sequence`.

    `base` picks the snapshot to start from; by default the newest one at or before
    `until` (and `until_sequence`); `use_snapshot=False` replays from sequence 1.
    """
    if use_snapshot and base is None:
        base = choose_base(gen, until, until_sequence)
    result = ReplayResult(generation=gen.generation, snapshot=base if use_snapshot else None)
    prev: str | None = ""
    previous: SegmentEntry | SnapshotEntry | None = None
    if result.snapshot is not None:
        header, _, checked = await read_snapshot(store, keks, result.snapshot.name, target)
        result.read(checked)
        if until is not None and header.at > until:
            raise ChainBroken(
                f"snapshot {result.snapshot.blob} holds changes up to {header.at}, after the "
                f"requested time {until}: its listing metadata is wrong",
                blob=result.snapshot.blob,
            )
        result.sequence, result.at = header.sequence, header.at
        result.digest = header.prev
        prev = header.prev
        previous = result.snapshot
    for seg in gen.segments:
        if seg.name.last <= result.sequence:
            continue
        if until_sequence is not None and seg.name.first > until_sequence:
            break
        if seg.name.first <= result.sequence:
            raise ChainBroken(
                f"segment {seg.blob} overlaps sequences already read (up to "
                f"{result.sequence}{', from ' + previous.blob if previous else ''}): "
                "two writers, or a copied object",
                blob=seg.blob,
            )
        if seg.name.first > result.sequence + 1:
            gap = Gap(gen.generation, result.sequence + 1, seg.name.first - 1, previous, seg)
            if not allow_gap:
                raise JournalGap(
                    f"journal gap: {gap.describe()}",
                    generation=gen.generation,
                    first=gap.first,
                    last=gap.last,
                    blob=seg.blob,
                )
            result.gaps.append(gap)
            prev = None  # the link across a gap cannot be checked
        try:
            segment = await read_segment(store, keks, seg.name)
        except ObjectUnreadable as exc:
            if isinstance(exc, SignatureRefused) and result.last is None:
                # Nothing of this generation checked out yet: it is not known to be the
                # pair's at all (a forged generation), so no gap may be skipped into it.
                raise
            if until is not None and seg.first_at is not None and seg.first_at > until:
                # Its listing says it begins after `until` (times never go back within a
                # generation): damage there does not change the state at `until`.
                result.unreadable_after.append(seg.blob)
                result.stopped_early = True
                break
            if not allow_gap:
                raise
            result.unreadable.append(seg.blob)
            result.gaps.append(Gap(gen.generation, seg.name.first, seg.name.last, previous, seg))
            result.sequence = seg.name.last
            prev, previous = None, seg
            continue
        if prev is not None and segment.header.prev != prev:
            after = f" after {previous.blob}" if previous is not None else " at the start"
            raise ChainBroken(
                f"segment {seg.blob} does not follow{after}: its predecessor digest "
                "differs (an object was altered, replaced or reordered)",
                blob=seg.blob,
            )
        result.segments_read += 1
        result.read(segment.checked)
        for change in segment.changes:
            at = change.observed_at.timestamp()
            if (until is not None and at > until) or (
                until_sequence is not None and change.sequence > until_sequence
            ):
                result.stopped_early = True
                break
            target.apply(change)
            result.sequence, result.at = change.sequence, max(result.at, at)
        if result.stopped_early:
            break
        result.digest = segment.digest
        prev, previous = segment.digest, seg
    return result


def choose_base(
    gen: GenerationCatalog, until: float | None, until_sequence: int | None
) -> SnapshotEntry | None:
    chosen = None
    for snap in gen.snapshots:
        if until is not None and (snap.at is None or snap.at > until):
            continue
        if until_sequence is not None and snap.sequence > until_sequence:
            continue
        chosen = snap
    return chosen
