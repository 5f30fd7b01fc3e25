"""One pair's journal state in memory (`PairLog`), and the check every change passes
before the journal accepts it (`check_change`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from backups import paths
from backups.index import JournalIndex
from backups.objects import SealedObject
from vault.models import Change, ChangeOp, ItemKind


@dataclass
class PairLog:
    """One pair's journal state in memory."""

    pair: str
    generation: str
    index: JournalIndex
    sequence: int = 0
    durable: int = 0
    prev: str = ""
    # (blob, SHA-256 of its sealed bytes) of the newest durable object: the head's link.
    last_object: tuple[str, str] | None = None
    last_at: float = 0.0
    buffer: list[Change] = field(default_factory=list)
    sealed: tuple[SealedObject, int] | None = None
    head_etag: str | None = None
    fenced: bool = False
    last_flush: float | None = None
    last_error: str | None = None
    snapshot_sequence: int = 0
    last_snapshot: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def status(self) -> dict[str, Any]:
        return {
            "pair": self.pair,
            "generation": self.generation,
            "last_sequence": self.sequence,
            "durable_sequence": self.durable,
            "buffered": len(self.buffer),
            "items": len(self.index),
            "last_flush": _iso(self.last_flush),
            "last_snapshot_sequence": self.snapshot_sequence,
            "fenced": self.fenced,
            "last_error": self.last_error,
        }


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat() if ts else None


def check_change(change: Change) -> None:
    """A change the journal can record; programming errors of the caller raise here."""
    if not isinstance(change, Change):
        raise TypeError(f"record() takes Change objects, got {type(change).__name__}")
    paths.check_pair(change.pair)
    if change.observed_at.tzinfo is None:
        raise ValueError(f"{change!r}: observed_at must be timezone-aware")
    if change.op in (ChangeOp.NEW_VERSION, ChangeOp.UPDATE):
        if change.properties is None:
            raise ValueError(f"{change!r}: a {change.op.value} change needs properties")
        if change.properties.ref != change.item:
            raise ValueError(f"{change!r}: its properties belong to another item")
    payload = change.payload
    if change.op is ChangeOp.NEW_VERSION and payload is not None:
        wanted: type = str if change.item.kind is ItemKind.SECRET else bytes
        if not isinstance(payload, wanted):
            raise ValueError(
                f"{change!r}: the payload of a {change.item.kind.value} must be {wanted.__name__}"
            )
