"""Checkpoints: what has been applied, per pair and per target, kept in blob storage.

One JSON blob per (pair, target) under `checkpoints/`, written only with an ETag
condition, so two daemons can never silently overwrite each other's progress and a
restarted daemon resumes where the last write left it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog

from storage import BlobExists, BlobNotFound, BlobStore, PreconditionFailed

FORMAT_VERSION = 1
log = structlog.get_logger("kvdr.checkpoint")


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

    def to_json(self) -> bytes:
        doc: dict[str, Any] = {
            "format": FORMAT_VERSION,
            "pair": self.pair,
            "target": self.target,
            "updated_at": self.updated_at,
            "items": {key: _item_entry(c) for key, c in sorted(self.items.items())},
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes, etag: str | None) -> Checkpoint:
        doc = json.loads(data)
        if doc.get("format") != FORMAT_VERSION:
            raise ValueError(f"unsupported checkpoint format {doc.get('format')!r}")
        items = {
            key: ItemCheckpoint(
                fingerprint=v[0],
                source_version=v[1],
                target_version=v[2],
                applied_at=v[3],
                deleted_at=v[4] if len(v) > 4 else None,
                history=v[5] if len(v) > 5 else None,
            )
            for key, v in doc["items"].items()
        }
        return cls(
            pair=doc["pair"],
            target=doc["target"],
            items=items,
            updated_at=doc.get("updated_at", 0.0),
            etag=etag,
        )

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


class CheckpointConflict(Exception):
    """Another writer changed the checkpoint since we read it."""


class CheckpointStore:
    """Loads and saves checkpoints over a `BlobStore` with ETag compare-and-swap."""

    def __init__(self, blobs: BlobStore) -> None:
        self._blobs = blobs

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
        return Checkpoint.from_json(blob.data, blob.info.etag)

    async def save(self, checkpoint: Checkpoint) -> None:
        """Write `checkpoint` over the version it was read from.

        Raises `CheckpointConflict` when someone else wrote in between: the caller no
        longer owns the pair and must stop, not retry blindly.
        """
        name = checkpoint_blob_name(checkpoint.pair, checkpoint.target)
        data = checkpoint.to_json()
        try:
            if checkpoint.etag is None:
                info = await self._blobs.put_if_absent(name, data)
            else:
                info = await self._blobs.put(name, data, if_match=checkpoint.etag)
        except (PreconditionFailed, BlobExists) as exc:
            raise CheckpointConflict(f"checkpoint {name} was changed by another writer") from exc
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
