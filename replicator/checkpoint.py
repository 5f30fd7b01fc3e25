"""Checkpoints: what has been applied, per pair and per target, kept in blob storage.

One JSON blob per (pair, target) under `checkpoints/`, written only with an ETag
condition, so two daemons can never silently overwrite each other's progress and a
restarted daemon resumes where the last write left it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog

# Re-exported: the checkpoint's callers catch its conflict where they use the store.
from replicator.errors import CheckpointConflict as CheckpointConflict
from replicator.state_documents import FORMAT_VERSION, CheckpointDocument, read_document
from replicator.state_seal import StateSealer, read_state_document, write_state_document
from storage import BlobNotFound, BlobStore, compare_and_swap

log = structlog.get_logger("kvdr.checkpoint")

# Under a stream of changes a target's checkpoint is written at most this often: one
# blob write per event batch would be the daemon's busiest storage traffic. A crash
# re-checks at most this much work, and re-checking copies nothing twice (kvdr's tag on
# each copy names its source version).
WRITE_INTERVAL_SECONDS = 1.0


def checkpoint_blob_name(pair: str, target_region: str) -> str:
    """Blob path of one checkpoint (pure; `parse_checkpoint_blob_name` is its inverse)."""
    return f"checkpoints/{pair}/{target_region}.json"


def parse_checkpoint_blob_name(name: str) -> tuple[str, str]:
    parts = name.split("/")
    if len(parts) != 3 or parts[0] != "checkpoints" or not parts[2].endswith(".json"):
        raise ValueError(f"not a checkpoint blob name: {name!r}")
    return parts[1], parts[2].removesuffix(".json")


@dataclass
class ItemCheckpoint:
    """What kvdr last applied for one item on one target."""

    fingerprint: str
    source_version: str
    target_version: str | None
    applied_at: float
    # Set when the deletion sweep soft-deleted the item on this target (epoch seconds).
    # The entry is kept, not dropped, so a recovery on the primary is recognised.
    deleted_at: float | None = None
    # `plan.versions_digest` of the source versions last applied in full (every version
    # and its attributes): a full pass trusts the target's listing only while it holds.
    history: str | None = None

    @property
    def changed_at(self) -> float:
        """When kvdr last changed this entry (applied or deleted)."""
        return max(self.applied_at, self.deleted_at or 0.0)


@dataclass
class Checkpoint:
    """Applied state of one target of one pair."""

    pair: str
    target: str
    items: dict[str, ItemCheckpoint] = field(default_factory=dict)
    updated_at: float = 0.0
    etag: str | None = None
    # The source region and control-record epoch it was written under. A checkpoint is
    # a record of one direction only: after a failover the pair starts anew.
    source: str | None = None
    epoch: int = 0

    def to_json(self) -> bytes:
        doc: dict[str, Any] = {
            "format": FORMAT_VERSION,
            "pair": self.pair,
            "target": self.target,
            "updated_at": self.updated_at,
            **({"source": self.source} if self.source is not None else {}),
            **({"epoch": self.epoch} if self.epoch else {}),
            "items": {key: _item_entry(c) for key, c in sorted(self.items.items())},
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes, etag: str | None, blob: str = "checkpoint") -> Checkpoint:
        """Read a checkpoint document; `StateDocumentUnreadable` naming `blob` when it is
        not one."""
        doc = read_document(CheckpointDocument, blob, data, "checkpoint")
        items = {
            key: ItemCheckpoint(
                fingerprint=v[0],
                source_version=v[1],
                target_version=v[2],
                applied_at=v[3],
                deleted_at=v[4],
                history=v[5],
            )
            for key, v in doc.items.items()
        }
        return cls(
            pair=doc.pair,
            target=doc.target,
            items=items,
            updated_at=doc.updated_at,
            etag=etag,
            source=doc.source,
            epoch=doc.epoch,
        )

    def written_under(self, source: str, epoch: int) -> bool:
        """True when this checkpoint records the direction `source` -> this target at
        `epoch` (one written before failover existed counts as the configured one)."""
        return self.epoch == epoch and self.source in (None, source)

    @property
    def last_applied(self) -> datetime | None:
        return datetime.fromtimestamp(self.updated_at, UTC) if self.updated_at else None


def _item_entry(c: ItemCheckpoint) -> list[Any]:
    """One item as a JSON list. Optional fields only when set, and appended, so a reader
    that knows fewer of them still reads the ones it knows (a fifth element is the
    deletion time, a sixth the history)."""
    entry: list[Any] = [c.fingerprint, c.source_version, c.target_version, c.applied_at]
    if c.deleted_at is not None or c.history is not None:
        entry.append(c.deleted_at)
    if c.history is not None:
        entry.append(c.history)
    return entry


class CheckpointStore:
    """Loads and saves checkpoints over a `BlobStore` with ETag compare-and-swap; with a
    `sealer`, the documents are encrypted (they name every item: replicator/state_seal.py)."""

    def __init__(self, blobs: BlobStore, sealer: StateSealer | None = None) -> None:
        self._blobs = blobs
        self.sealer = sealer

    @property
    def blobs(self) -> BlobStore:
        """The store the checkpoints live in (the deletion guard keeps its state there too)."""
        return self._blobs

    async def load(self, pair: str, target: str) -> Checkpoint:
        name = checkpoint_blob_name(pair, target)
        try:
            blob = await self._blobs.get(name)
        except BlobNotFound:
            return Checkpoint(pair=pair, target=target)
        return Checkpoint.from_json(
            read_state_document(name, blob.data, self.sealer), blob.info.etag, name
        )

    async def save(self, checkpoint: Checkpoint) -> None:
        """Write `checkpoint` over the version it was read from.

        Raises `CheckpointConflict` when someone else wrote in between: the caller no
        longer owns the pair and must stop, not retry blindly.
        """
        name = checkpoint_blob_name(checkpoint.pair, checkpoint.target)
        info = await compare_and_swap(
            self._blobs,
            name,
            write_state_document(name, checkpoint.to_json(), self.sealer),
            checkpoint.etag,
            conflict=CheckpointConflict,
        )
        checkpoint.etag = info.etag

    async def list_pairs(self) -> list[tuple[str, str]]:
        """Every (pair, target) that has a checkpoint."""
        found = []
        for info in await self._blobs.list("checkpoints/"):
            try:
                found.append(parse_checkpoint_blob_name(info.name))
            except ValueError:
                continue
        return found


class DirtyCheckpoint(Protocol):
    """What the writer needs of a target's state (replicator.accounting.TargetState)."""

    region: str
    checkpoint: Checkpoint
    dirty: bool


class CheckpointWriter:
    """Writes one pair's changed checkpoints: all of them now (`flush`), or each at most
    once per interval (`flush_due`, the event path's)."""

    def __init__(
        self,
        store: CheckpointStore,
        clock: Callable[[], float] = time.time,
        interval_seconds: float = WRITE_INTERVAL_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._clock = clock
        self._interval = interval_seconds
        self._monotonic = monotonic
        # Per target: when its checkpoint was last written (monotonic seconds).
        self._written: dict[str, float] = {}

    async def flush(self, states: Iterable[DirtyCheckpoint]) -> None:
        """Write every checkpoint that changed (ETag-conditional)."""
        for state in states:
            if state.dirty:
                await self._write(state)

    async def flush_due(self, states: Iterable[DirtyCheckpoint]) -> None:
        """Write the changed checkpoints whose last write is at least an interval old."""
        now = self._monotonic()
        for state in states:
            if state.dirty and now - self._written.get(state.region, -self._interval) >= (
                self._interval
            ):
                await self._write(state)

    def next_due(self, states: Iterable[DirtyCheckpoint]) -> float | None:
        """Seconds until the first changed checkpoint is due (None: none changed)."""
        now = self._monotonic()
        due = [
            self._written.get(s.region, -self._interval) + self._interval - now
            for s in states
            if s.dirty
        ]
        return max(0.0, min(due)) if due else None

    async def _write(self, state: DirtyCheckpoint) -> None:
        state.checkpoint.updated_at = self._clock()
        await self._store.save(state.checkpoint)
        state.dirty = False
        self._written[state.region] = self._monotonic()
