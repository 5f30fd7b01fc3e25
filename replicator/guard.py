"""The deletion guard: a mass deletion on a primary must not wipe its secondaries.

When one deletion sweep finds more than `max(min_items, fraction * items)` of a pair's
items deleted on the primary, the guard trips: the pair propagates no deletion at all
until an operator confirms (`kvdr sync --once --pair P --confirm-deletions`) or the
configuration raises the threshold above what was found. Everything else keeps
replicating meanwhile.

The guard's state is one JSON blob per pair, `guards/<pair>.json`, next to the
checkpoints and written only with an ETag condition, so it survives a daemon restart,
is seen by a separate `kvdr sync` process, and two writers (the daemon's sweep and an
operator's confirmation) cannot silently overwrite each other.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

# Re-exported: the guard's callers catch its conflict where they use the store.
from replicator.errors import GuardConflict as GuardConflict
from replicator.settings import PairSettings, ReplicatorSettings
from replicator.state_documents import FORMAT_VERSION, GuardDocument, read_document
from replicator.state_seal import StateSealer, read_state_document, write_state_document
from storage import BlobNotFound, BlobStore, compare_and_swap

# Status lists at most this many withheld names (the count is always complete).
STATUS_NAMES = 100


def guard_blob_name(pair: str) -> str:
    """Blob path of one pair's guard state (pure; `parse_guard_blob_name` inverts it)."""
    return f"guards/{pair}.json"


def parse_guard_blob_name(name: str) -> str:
    parts = name.split("/")
    if len(parts) != 2 or parts[0] != "guards" or not parts[1].endswith(".json"):
        raise ValueError(f"not a deletion guard blob name: {name!r}")
    pair = parts[1].removesuffix(".json")
    if not pair:
        raise ValueError(f"not a deletion guard blob name: {name!r}")
    return pair


def hidden_name(name: str) -> str:
    """What status shows instead of an item name when a pair hides names:
    `sha256:` and the first 12 hex digits of the SHA-256 of the UTF-8 name.

    It keeps names out of screens and scrapes; it is not secret: anyone who guesses a
    name can hash it and confirm the guess.
    """
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()[:12]


def shown_key(key: str, hide: bool) -> str:
    """An item key `kind/name` as status shows it (the name hashed when hidden)."""
    if not hide:
        return key
    kind, _, name = key.partition("/")
    return f"{kind}/{hidden_name(name)}"


@dataclass(frozen=True)
class GuardLimits:
    """When the guard trips: more than `max(min_items, fraction * items)` deletions."""

    min_items: int = 10
    fraction: float = 0.25

    def __post_init__(self) -> None:
        if self.min_items < 0:
            raise ValueError(f"deletion guard min_items must be >= 0, got {self.min_items}")
        if not 0.0 < self.fraction <= 1.0:
            raise ValueError(f"deletion guard fraction must be in (0, 1], got {self.fraction}")

    def threshold(self, items: int) -> float:
        """Deletions one sweep may find before the guard trips (more than this trips)."""
        return max(float(self.min_items), self.fraction * items)

    def trips(self, deleted: int, items: int) -> bool:
        return deleted > self.threshold(items)


def guard_limits(pair: PairSettings, settings: ReplicatorSettings) -> GuardLimits:
    """The pair's limits: its own keys, else those of [replication]."""
    return GuardLimits(
        min_items=settings.deletion_guard_min_items
        if pair.deletion_guard_min_items is None
        else pair.deletion_guard_min_items,
        fraction=settings.deletion_guard_fraction
        if pair.deletion_guard_fraction is None
        else pair.deletion_guard_fraction,
    )


@dataclass(frozen=True)
class GuardState:
    """One pair's deletion guard, as stored in `guards/<pair>.json`."""

    pair: str
    tripped: bool = False
    # When it tripped (epoch seconds); kept while it stays tripped.
    since: float | None = None
    # Deletions found on the primary and not applied, and the pair's items, when last
    # counted; the limits in force then (a change of them may release the guard).
    deleted: int = 0
    items: int = 0
    limits: GuardLimits | None = None
    # Item keys (`kind/name`) whose deletion is withheld.
    withheld: tuple[str, ...] = ()
    released_at: float | None = None
    released_by: str | None = None
    etag: str | None = field(default=None, compare=False)

    def trip(
        self, now: float, deleted: tuple[str, ...], items: int, limits: GuardLimits
    ) -> GuardState:
        return replace(
            self,
            tripped=True,
            since=self.since if self.tripped else now,
            deleted=len(deleted),
            items=items,
            limits=limits,
            withheld=deleted,
            released_at=None,
            released_by=None,
        )

    def release(self, now: float, by: str) -> GuardState:
        """Released: the last trip's counts stay for the record, nothing is withheld."""
        return replace(self, tripped=False, withheld=(), released_at=now, released_by=by)

    def to_json(self) -> bytes:
        doc: dict[str, Any] = {
            "format": FORMAT_VERSION,
            "pair": self.pair,
            "tripped": self.tripped,
            "since": self.since,
            "deleted": self.deleted,
            "items": self.items,
            "limits": (
                {"min_items": self.limits.min_items, "fraction": self.limits.fraction}
                if self.limits
                else None
            ),
            "withheld": list(self.withheld),
            "released_at": self.released_at,
            "released_by": self.released_by,
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes, etag: str | None, blob: str = "deletion guard") -> GuardState:
        """Read a guard document; `StateDocumentUnreadable` naming `blob` when it is not
        one."""
        doc = read_document(GuardDocument, blob, data, "deletion guard")
        limits = doc.limits
        return cls(
            pair=doc.pair,
            tripped=doc.tripped,
            since=doc.since,
            deleted=doc.deleted,
            items=doc.items,
            limits=GuardLimits(limits.min_items, limits.fraction) if limits else None,
            withheld=doc.withheld,
            released_at=doc.released_at,
            released_by=doc.released_by,
            etag=etag,
        )

    def view(self, hide_names: bool = False) -> dict[str, Any]:
        """The `deletion_guard` field of a pair's status (JSON-ready)."""

        def iso(ts: float | None) -> str | None:
            return datetime.fromtimestamp(ts, UTC).isoformat() if ts else None

        limits = self.limits
        return {
            "tripped": self.tripped,
            "since": iso(self.since) if self.tripped else None,
            "deleted": self.deleted,
            "items": self.items,
            "threshold": limits.threshold(self.items) if limits else None,
            "min_items": limits.min_items if limits else None,
            "fraction": limits.fraction if limits else None,
            "withheld_count": len(self.withheld),
            "withheld": [shown_key(k, hide_names) for k in self.withheld[:STATUS_NAMES]],
            "released_at": iso(self.released_at),
            "released_by": self.released_by,
            "release_with": (
                f"kvdr sync --once --pair {self.pair} --confirm-deletions" if self.tripped else None
            ),
        }


class DeletionGuardStore:
    """Loads and saves guard states over a `BlobStore` with ETag compare-and-swap; with a
    `sealer`, the documents are encrypted (they name the withheld items)."""

    def __init__(self, blobs: BlobStore, sealer: StateSealer | None = None) -> None:
        self._blobs = blobs
        self._sealer = sealer

    async def load(self, pair: str) -> GuardState:
        name = guard_blob_name(pair)
        try:
            blob = await self._blobs.get(name)
        except BlobNotFound:
            return GuardState(pair=pair)
        return GuardState.from_json(
            read_state_document(name, blob.data, self._sealer), blob.info.etag, name
        )

    async def save(self, state: GuardState) -> GuardState:
        """Write `state` over the version it was read from; returns it with the new ETag.

        Raises `GuardConflict` when someone else wrote in between: the caller re-reads.
        """
        name = guard_blob_name(state.pair)
        info = await compare_and_swap(
            self._blobs,
            name,
            write_state_document(name, state.to_json(), self._sealer),
            state.etag,
            conflict=GuardConflict,
        )
        return replace(state, etag=info.etag)

    async def update(
        self, pair: str, change: Callable[[GuardState], GuardState], attempts: int = 5
    ) -> GuardState:
        """Read, change and write, again on a conflict (for writers that must succeed,
        such as an operator's confirmation)."""
        for attempt in range(attempts):
            current = await self.load(pair)
            try:
                return await self.save(change(current))
            except GuardConflict:
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")
