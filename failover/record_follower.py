"""Following a pair's control record as a reader: conditional reads, never a write.

`RecordFollower.refresh()` reads the record from each control store with an
ETag-conditional read (`storage.get_if_changed`: an unchanged record costs a 304 on
Azure Blob, no body), keeps each store's last view, and takes the committed record by
the same majority rule the writers use (`failover.control_stores.decide`). Unlike
`ControlStores.read` it never repairs a lagging store: an application holds read access
only. A refresh that cannot tell the committed record (stores unreachable, no majority)
keeps the record it had, and says why.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from failover.control_record import ControlRecord, MalformedControlRecord, control_blob_name
from failover.control_stores import NoMajority, StoreView, decide
from storage.errors import BlobNotFound, StorageError
from storage.store import BlobStore, get_if_changed

log = structlog.get_logger("kvdr.failover.client")


@dataclass
class FollowerStats:
    """Per refresh and per store: reads that fetched a body, reads answered 'not
    modified', reads that failed."""

    refreshes: int = 0
    fetched: int = 0
    not_modified: int = 0
    failed: int = 0


@dataclass(frozen=True)
class Followed:
    """The outcome of one refresh: the record now followed (None: none was ever
    written, or none could be read yet) and, when the refresh could not tell, why."""

    record: ControlRecord | None
    problem: str = ""
    changed: bool = False


class RecordFollower:
    def __init__(self, stores: Sequence[BlobStore], pair: str, timeout_seconds: float) -> None:
        if len(stores) not in (1, 3):
            raise ValueError(f"control stores must be one or three, got {len(stores)}")
        self._stores = tuple(stores)
        self._blob = control_blob_name(pair)
        self._timeout = timeout_seconds
        self._views: list[StoreView | None] = [None] * len(stores)
        self.record: ControlRecord | None = None
        # True once a refresh told the committed record (or that none was written).
        self.known = False
        self.stats = FollowerStats()

    @property
    def majority(self) -> int:
        return len(self._stores) // 2 + 1

    def _name(self, index: int) -> str:
        return f"{index}:{self._stores[index].description}"

    async def _view(self, index: int) -> StoreView:
        name = self._name(index)
        last = self._views[index]
        etag = last.etag if last is not None and last.error is None else None
        try:
            async with asyncio.timeout(self._timeout):
                blob = await get_if_changed(self._stores[index], self._blob, etag)
        except BlobNotFound:
            self.stats.fetched += 1
            return StoreView(name)
        except (StorageError, TimeoutError) as exc:
            self.stats.failed += 1
            why = "no answer in time" if isinstance(exc, TimeoutError) else str(exc)
            return StoreView(name, error=why)
        if blob is None:
            assert last is not None  # only a conditional read answers "not modified"
            self.stats.not_modified += 1
            return last
        self.stats.fetched += 1
        try:
            record = ControlRecord.from_json(blob.data, f"{name}/{self._blob}")
        except MalformedControlRecord as exc:
            return StoreView(name, etag=blob.info.etag, error=str(exc), malformed=True)
        return StoreView(name, etag=blob.info.etag, record=record)

    async def refresh(self) -> Followed:
        """Read every store once; the committed record, or the last one with a reason."""
        self.stats.refreshes += 1
        views = await asyncio.gather(*(self._view(i) for i in range(len(self._stores))))
        self._views = list(views)
        try:
            committed, _, undecided = decide(views, self.majority)
        except NoMajority as exc:
            return self._keep(str(exc))
        if undecided:
            return self._keep("the stores that answered do not agree on a committed record")
        changed = _key(committed) != _key(self.record) or not self.known
        self.record = committed
        self.known = True
        return Followed(committed, changed=changed)

    def _keep(self, why: str) -> Followed:
        log.warning(
            "client.record_unreadable",
            blob=self._blob,
            kept_epoch=self.record.epoch if self.record else None,
            why=why,
        )
        return Followed(self.record, problem=why)


def _key(record: ControlRecord | None) -> tuple[int, str, int] | None:
    return record.key if record is not None else None
