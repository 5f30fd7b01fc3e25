"""What a pair's backups hold, from one blob listing (pure once listed).

A `PairCatalog` groups a pair's blobs by generation; each `GenerationCatalog` knows its
segments and snapshots in sequence order, their time ranges (from blob metadata), and the
gaps in its sequence numbers. Nothing here opens an object: listings guide the choice of
objects, and the decrypted contents are checked when they are read. The signer an
object's metadata claims is shown by listings (`snapshot list`: "unsigned" for objects
written before signing); only reading the object checks its signature.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from backups import paths
from backups.paths import HeadName, SegmentName, SnapshotName
from storage.store import BlobInfo, BlobStore


@dataclass(frozen=True)
class SegmentEntry:
    name: SegmentName
    size: int
    first_at: float | None
    last_at: float | None
    signer: str | None = None

    @property
    def blob(self) -> str:
        return self.name.blob


@dataclass(frozen=True)
class SnapshotEntry:
    name: SnapshotName
    size: int
    at: float | None
    signer: str | None = None

    @property
    def blob(self) -> str:
        return self.name.blob

    @property
    def sequence(self) -> int:
        return self.name.sequence


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat() if ts is not None else None


@dataclass(frozen=True)
class Gap:
    """Sequences `first`..`last` of a generation that no segment holds."""

    generation: str
    first: int
    last: int
    after: SegmentEntry | SnapshotEntry | None = None
    before: SegmentEntry | None = None

    def describe(self) -> str:
        """For messages: the range, the neighbouring blobs and their times."""
        text = f"sequences {self.first}-{self.last} of generation {self.generation}"
        after_at = (
            self.after.at
            if isinstance(self.after, SnapshotEntry)
            else (self.after.last_at if self.after else None)
        )
        before_at = self.before.first_at if self.before else None
        if after_at is not None or before_at is not None:
            text += f" (between {_iso(after_at) or 'the start'} and {_iso(before_at) or 'now'})"
        if self.after is not None:
            text += f", after {self.after.blob}"
        if self.before is not None:
            text += f", before {self.before.blob}"
        return text


@dataclass
class GenerationCatalog:
    pair: str
    generation: str
    segments: list[SegmentEntry] = field(default_factory=list)
    snapshots: list[SnapshotEntry] = field(default_factory=list)

    @property
    def started(self) -> datetime:
        return paths.generation_started(self.generation)

    @property
    def last_sequence(self) -> int:
        ends = [s.name.last for s in self.segments] + [s.sequence for s in self.snapshots]
        return max(ends, default=0)

    @property
    def size(self) -> int:
        return sum(s.size for s in self.segments) + sum(s.size for s in self.snapshots)

    def signers(self) -> dict[str, int]:
        """Objects per signer id their metadata claims ("unsigned" for none)."""
        counts: dict[str, int] = {}
        entries: list[SegmentEntry | SnapshotEntry] = [*self.segments, *self.snapshots]
        for entry in entries:
            key = entry.signer or "unsigned"
            counts[key] = counts.get(key, 0) + 1
        return counts

    def overlaps(self) -> list[tuple[SegmentEntry, SegmentEntry]]:
        """Neighbouring segments whose ranges overlap (two writers, or a bad copy)."""
        return [
            (a, b)
            for a, b in zip(self.segments, self.segments[1:], strict=False)
            if b.name.first <= a.name.last
        ]

    def gaps(self, since: int = 0, until: int | None = None) -> list[Gap]:
        """Missing sequences after `since` (a snapshot's sequence, or 0) up to `until`
        (default: the newest segment's end)."""
        base = next((s for s in self.snapshots if s.sequence == since), None)
        found: list[Gap] = []
        expected = since + 1
        previous: SegmentEntry | SnapshotEntry | None = base
        for seg in self.segments:
            if seg.name.last < expected:
                continue
            if until is not None and seg.name.first > until:
                break
            if seg.name.first > expected:
                found.append(Gap(self.generation, expected, seg.name.first - 1, previous, seg))
            expected = seg.name.last + 1
            previous = seg
        if until is not None and expected <= until:
            found.append(Gap(self.generation, expected, until, previous, None))
        return found

    def base_snapshot(self, at: float | None = None) -> SnapshotEntry | None:
        """The newest snapshot taken at or before `at` (any, without `at`)."""
        chosen = None
        for snap in self.snapshots:
            if at is None or (snap.at is not None and snap.at <= at):
                chosen = snap
        return chosen

    def chain_start(self) -> int:
        """The sequence the kept segments continue from: 0 when they reach back to 1,
        else the newest snapshot below the first segment (retention deletes the segments
        a snapshot covers; anything between that snapshot and them is a gap)."""
        if not self.segments or self.starts_complete():
            return 0
        first = self.segments[0].name.first
        below = [s.sequence for s in self.snapshots if s.sequence < first]
        return max(below, default=0)

    def starts_complete(self) -> bool:
        """True when segments reach back to sequence 1 without a gap."""
        return bool(self.segments) and self.segments[0].name.first == 1

    def earliest_restorable(self) -> float | None:
        """The first second a restore can reach in this generation."""
        candidates: list[float] = []
        if self.starts_complete() and self.segments[0].first_at is not None:
            candidates.append(self.segments[0].first_at)
        candidates += [s.at for s in self.snapshots if s.at is not None]
        return min(candidates, default=None)

    def latest_restorable(self) -> float | None:
        """The last second the objects of this generation record."""
        ends = [s.last_at for s in self.segments if s.last_at is not None]
        ends += [s.at for s in self.snapshots if s.at is not None]
        return max(ends, default=None)


@dataclass
class PairCatalog:
    pair: str
    generations: dict[str, GenerationCatalog] = field(default_factory=dict)
    head: BlobInfo | None = None
    strays: list[str] = field(default_factory=list)

    def ordered(self) -> list[GenerationCatalog]:
        """Generations oldest first (ids sort by start time)."""
        return [self.generations[g] for g in sorted(self.generations)]

    @property
    def latest(self) -> GenerationCatalog | None:
        ordered = self.ordered()
        return ordered[-1] if ordered else None

    def earliest_restorable(self) -> float | None:
        return min(
            (t for g in self.ordered() if (t := g.earliest_restorable()) is not None),
            default=None,
        )

    def latest_restorable(self) -> float | None:
        return max(
            (t for g in self.ordered() if (t := g.latest_restorable()) is not None),
            default=None,
        )

    def generation_for(self, at: float) -> GenerationCatalog | None:
        """The newest generation that can restore second `at`."""
        chosen = None
        for gen in self.ordered():
            earliest = gen.earliest_restorable()
            if earliest is not None and earliest <= at:
                chosen = gen
        return chosen

    @property
    def size(self) -> int:
        return sum(g.size for g in self.generations.values())

    def summary(self) -> dict[str, Any]:
        """What `kvdr snapshot list` shows: generations, snapshots, coverage, sizes, gaps."""
        generations = []
        for gen in self.ordered():
            since = gen.chain_start()
            generations.append(
                {
                    "generation": gen.generation,
                    "started": gen.started.isoformat(),
                    "last_sequence": gen.last_sequence,
                    "segments": len(gen.segments),
                    "snapshots": [
                        {
                            "sequence": s.sequence,
                            "at": _iso(s.at),
                            "size": s.size,
                            "blob": s.blob,
                        }
                        for s in gen.snapshots
                    ],
                    "earliest_restorable": _iso(gen.earliest_restorable()),
                    "latest_restorable": _iso(gen.latest_restorable()),
                    "size": gen.size,
                    "gaps": [g.describe() for g in gen.gaps(since)],
                    "signers": gen.signers(),
                    "unsigned": gen.signers().get("unsigned", 0),
                }
            )
        return {
            "pair": self.pair,
            "earliest_restorable": _iso(self.earliest_restorable()),
            "latest_restorable": _iso(self.latest_restorable()),
            "size": self.size,
            "generations": generations,
        }


def build_catalog(pair: str, infos: Sequence[BlobInfo]) -> PairCatalog:
    """Group a listing of `backups/<pair>/` into generations (pure)."""
    catalog = PairCatalog(pair=pair)
    for info in infos:
        try:
            parsed = paths.parse_blob(info.name)
        except ValueError:
            catalog.strays.append(info.name)
            continue
        if isinstance(parsed, HeadName):
            if parsed.pair == pair:
                catalog.head = info
            continue
        if parsed.pair != pair:
            continue
        gen = catalog.generations.setdefault(
            parsed.generation, GenerationCatalog(pair, parsed.generation)
        )
        times = paths.parse_metadata(info.metadata)
        signer = paths.parse_signer(info.metadata)
        if isinstance(parsed, SegmentName):
            gen.segments.append(
                SegmentEntry(
                    parsed,
                    info.size,
                    times[0] if times else None,
                    times[1] if times else None,
                    signer,
                )
            )
        else:
            gen.snapshots.append(
                SnapshotEntry(parsed, info.size, times[1] if times else None, signer)
            )
    for gen in catalog.generations.values():
        gen.segments.sort(key=lambda s: (s.name.first, s.name.last))
        gen.snapshots.sort(key=lambda s: s.sequence)
    return catalog


async def load_catalog(store: BlobStore, pair: str) -> PairCatalog:
    return build_catalog(pair, await store.list(paths.pair_prefix(pair)))


async def list_backup_pairs(store: BlobStore) -> list[str]:
    """Every pair that has blobs under `backups/`."""
    pairs = {
        pair
        for info in await store.list(f"{paths.ROOT}/")
        if (pair := paths.parse_pair_from_prefix(info.name)) is not None
    }
    return sorted(pairs)
