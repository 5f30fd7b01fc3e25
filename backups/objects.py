"""Segments and snapshots as sealed objects: their plaintext, how they are sealed and
how they are read back and checked.

Both start with a header line; every object carries the SHA-256 of its plaintext (inside
the envelope) and the digest of its predecessor in its header line:
- a segment's `prev` is the digest of the previous segment of its generation ("" for the
  first);
- a snapshot's `prev` is the digest of the segment that ends at its sequence, so the
  segment after the snapshot links to the snapshot too.

Every object is signed (see `backups.signers`) over its envelope header, its digest and
that `prev`; reading one checks the signature right after its header line, before any
change or item is handed on.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from backups import paths, records
from backups.envelope import Binding, Opened, open_sealed, read_header, seal
from backups.errors import ObjectUnreadable
from backups.keks import KekRing
from backups.paths import SegmentName, SnapshotName
from backups.records import RecordError
from backups.state import PairState, ReplayTarget
from storage.store import BlobStore
from vault.models import Change

FORMAT = 1
SEGMENT = "segment"
SNAPSHOT = "snapshot"


@dataclass(frozen=True)
class SealedObject:
    """An object ready to write once: name, bytes, plaintext digest (hex), metadata."""

    name: str
    digest: str
    metadata: dict[str, str]
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class SegmentHeader:
    pair: str
    generation: str
    first: int
    last: int
    prev: str
    first_at: float
    last_at: float


@dataclass(frozen=True)
class SnapshotHeader:
    pair: str
    generation: str
    sequence: int
    at: float
    prev: str
    items: int
    created_at: float


@dataclass(frozen=True)
class Checked:
    """How an object read checked out: signed (False: unsigned, let through), and the
    SHA-256 of its sealed bytes (what the signed journal head links to)."""

    blob: str
    signed: bool
    sha256: str


@dataclass(frozen=True)
class Segment:
    header: SegmentHeader
    digest: str
    changes: tuple[Change, ...]
    checked: Checked


def _signer_of(data: bytes, blob: str) -> str:
    header = read_header(data, blob)
    return header.signer or ""


def _check(opened: Opened, keks: KekRing, prev: str, data: bytes) -> Checked:
    signed = opened.check_signature(keks.signers, prev)
    return Checked(opened.blob, signed, hashlib.sha256(data).hexdigest())


# -- segments ---------------------------------------------------------------------------


async def seal_segment(
    pair: str, generation: str, changes: Sequence[Change], prev: str, keks: KekRing
) -> SealedObject:
    """Seal changes `first`..`last` (sequences assigned, contiguous) into one segment."""
    if not changes:
        raise ValueError("a segment needs at least one change")
    first, last = changes[0].sequence, changes[-1].sequence
    if [c.sequence for c in changes] != list(range(first, last + 1)):
        raise ValueError(f"segment {first}-{last}: sequences are not contiguous")
    times = [c.observed_at.timestamp() for c in changes]
    name = paths.segment_blob(pair, generation, first, last)
    head = {
        "type": SEGMENT,
        "format": FORMAT,
        "pair": pair,
        "generation": generation,
        "first": first,
        "last": last,
        "prev": prev,
        "first_at": min(times),
        "last_at": max(times),
    }

    def lines() -> Iterator[bytes]:
        yield records.dumps(head) + b"\n"
        for change, at in zip(changes, times, strict=True):
            yield records.change_to_line(change, at) + b"\n"

    binding = Binding(pair, generation, SEGMENT, first, last, name)
    data, digest = await seal(lines(), binding, keks, prev=prev)
    return SealedObject(
        name=name,
        digest=digest.hex(),
        metadata=paths.object_metadata(min(times), max(times), _signer_of(data, name)),
        data=data,
    )


def _header(line: bytes | None, kind: str, blob: str) -> dict[str, Any]:
    if line is None:
        raise ObjectUnreadable(blob, "it is empty")
    try:
        doc = json.loads(line)
    except (ValueError, RecursionError):
        raise ObjectUnreadable(blob, "its header line is not JSON") from None
    if not isinstance(doc, dict) or doc.get("type") != kind:
        raise ObjectUnreadable(blob, f"it is not a {kind}")
    if doc.get("format") != FORMAT:
        raise ObjectUnreadable(blob, f"{kind} format {doc.get('format')!r} is not {FORMAT}")
    return doc


async def read_segment(store: BlobStore, keks: KekRing, name: SegmentName) -> Segment:
    """Read, decrypt and check one segment (digest, binding, header, sequences)."""
    blob = await store.get(name.blob)
    binding = Binding(name.pair, name.generation, SEGMENT, name.first, name.last, name.blob)
    opened = await open_sealed(blob.data, binding, keks)
    lines = opened.lines()
    doc = _header(next(lines, None), SEGMENT, name.blob)
    checked = _check(opened, keks, str(doc.get("prev", "")), blob.data)
    changes: list[Change] = []
    try:
        for line in lines:
            changes.append(records.change_from_line(name.pair, line))
    except RecordError as exc:
        raise ObjectUnreadable(name.blob, f"change {len(changes) + 1}: {exc}") from None
    expected = list(range(name.first, name.last + 1))
    if [c.sequence for c in changes] != expected:
        raise ObjectUnreadable(
            name.blob, f"its changes are not exactly sequences {name.first}-{name.last}"
        )
    try:
        header = SegmentHeader(
            pair=str(doc["pair"]),
            generation=str(doc["generation"]),
            first=int(doc["first"]),
            last=int(doc["last"]),
            prev=str(doc["prev"]),
            first_at=float(doc["first_at"]),
            last_at=float(doc["last_at"]),
        )
    except (KeyError, TypeError, ValueError):
        raise ObjectUnreadable(name.blob, "its header line lacks a field") from None
    if (header.pair, header.generation, header.first, header.last) != (
        name.pair,
        name.generation,
        name.first,
        name.last,
    ):
        raise ObjectUnreadable(name.blob, "its header does not match its name")
    return Segment(
        header=header, digest=opened.digest.hex(), changes=tuple(changes), checked=checked
    )


# -- snapshots --------------------------------------------------------------------------


async def seal_snapshot(
    state: PairState, prev: str, keks: KekRing, created_at: float
) -> SealedObject:
    """Seal `state` (at `state.sequence`) as a snapshot, item by item."""
    name = paths.snapshot_blob(state.pair, state.generation, state.sequence)
    head = {
        "type": SNAPSHOT,
        "format": FORMAT,
        "pair": state.pair,
        "generation": state.generation,
        "sequence": state.sequence,
        "at": state.at,
        "prev": prev,
        "items": len(state.items),
        "created_at": created_at,
    }

    def lines() -> Iterator[bytes]:
        yield records.dumps(head) + b"\n"
        for ref in sorted(state.items, key=lambda r: (r.kind.value, r.name)):
            item = state.items[ref]
            versions = [(v.props, v.recorded_at, v.payload) for v in item.versions.values()]
            yield records.item_to_line(ref, item.deleted, item.changed_at, versions) + b"\n"

    binding = Binding(state.pair, state.generation, SNAPSHOT, state.sequence, state.sequence, name)
    data, digest = await seal(lines(), binding, keks, prev=prev)
    return SealedObject(
        name=name,
        digest=digest.hex(),
        # A snapshot is one point in time: the last change it holds.
        metadata=paths.object_metadata(state.at, state.at, _signer_of(data, name)),
        data=data,
    )


async def read_snapshot(
    store: BlobStore, keks: KekRing, name: SnapshotName, target: ReplayTarget
) -> tuple[SnapshotHeader, str, Checked]:
    """Read, decrypt and check one snapshot, loading its items into `target` as they are
    read. Returns its header, digest and signature check; raises before returning if
    anything is off (the target then holds a partial state and must be thrown away)."""
    blob = await store.get(name.blob)
    binding = Binding(name.pair, name.generation, SNAPSHOT, name.sequence, name.sequence, name.blob)
    opened = await open_sealed(blob.data, binding, keks)
    lines = opened.lines()
    doc = _header(next(lines, None), SNAPSHOT, name.blob)
    checked = _check(opened, keks, str(doc.get("prev", "")), blob.data)
    del blob
    try:
        header = SnapshotHeader(
            pair=str(doc["pair"]),
            generation=str(doc["generation"]),
            sequence=int(doc["sequence"]),
            at=float(doc["at"]),
            prev=str(doc["prev"]),
            items=int(doc["items"]),
            created_at=float(doc.get("created_at", 0.0)),
        )
    except (KeyError, TypeError, ValueError):
        raise ObjectUnreadable(name.blob, "its header line lacks a field") from None
    if (header.pair, header.generation, header.sequence) != (
        name.pair,
        name.generation,
        name.sequence,
    ):
        raise ObjectUnreadable(name.blob, "its header does not match its name")
    count = 0
    try:
        for line in lines:
            target.load_item(*records.item_from_line(line))
            count += 1
    except RecordError as exc:
        raise ObjectUnreadable(name.blob, f"item {count + 1}: {exc}") from None
    if count != header.items:
        raise ObjectUnreadable(name.blob, f"it holds {count} items, its header says {header.items}")
    target.reached(header.sequence, header.at)
    return header, opened.digest.hex(), checked
