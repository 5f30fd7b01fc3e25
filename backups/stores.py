"""Where backup objects go: the primary store, plus optional replica stores.

Every object is written once (`put_if_absent`) to the primary store; that write decides
success. Replica stores (a second account in another region) receive the same bytes; a
replica that cannot take an object now keeps it queued and is retried on the next write,
so a replica outage never stops the journal. Reads use the primary store, whose Azure
backend itself falls back to the account's secondary (RA-GZRS) endpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import structlog

from storage.errors import BlobExists, StorageError
from storage.store import BlobInfo, BlobStore

log = structlog.get_logger("kvdr.backups")

# Objects kept in memory per replica while it is unreachable. Beyond this the oldest are
# dropped (logged): memory must not grow without bound in a long outage; the replica is
# caught up from the primary by copying the pair's prefix (`kvdr snapshot export`).
MAX_PENDING_PER_REPLICA = 2000


class ObjectConflict(StorageError):
    """A write-once name already holds other bytes: someone else wrote it."""


@dataclass
class _Pending:
    name: str
    data: bytes = field(repr=False)
    metadata: dict[str, str]


async def put_once(
    store: BlobStore, name: str, data: bytes, metadata: dict[str, str] | None = None
) -> BlobInfo:
    """Write `name` once. A retry after a lost answer finds the same bytes there and
    counts as success; different bytes raise `ObjectConflict`."""
    try:
        return await store.put_if_absent(name, data, metadata)
    except BlobExists:
        existing = await store.get(name)
        if existing.data != data:
            raise ObjectConflict(
                f"{name!r} exists with other content: another writer", blob=name
            ) from None
        return existing.info


class BackupStores:
    """The primary store and the replicas every object is copied to."""

    def __init__(self, primary: BlobStore, replicas: Sequence[BlobStore] = ()) -> None:
        self.primary = primary
        self.replicas = tuple(replicas)
        self._pending: dict[int, list[_Pending]] = {i: [] for i in range(len(self.replicas))}

    @property
    def pending_replica_copies(self) -> int:
        return sum(len(queue) for queue in self._pending.values())

    async def put_object(
        self, name: str, data: bytes, metadata: dict[str, str] | None = None
    ) -> BlobInfo:
        """Write to the primary (errors raise), then copy to every replica (queued on error)."""
        info = await put_once(self.primary, name, data, metadata)
        for index, replica in enumerate(self.replicas):
            queue = self._pending[index]
            queue.append(_Pending(name, data, dict(metadata or {})))
            if len(queue) > MAX_PENDING_PER_REPLICA:
                dropped = queue.pop(0)
                log.error(
                    "backups.replica_copy_dropped",
                    replica=replica.description,
                    blob=dropped.name,
                    reason=f"more than {MAX_PENDING_PER_REPLICA} objects queued",
                )
        await self.copy_pending()
        return info

    async def copy_pending(self) -> None:
        """Copy queued objects to their replicas, oldest first; stop a replica at its
        first failure (it is probably down) and keep the rest queued."""
        for index, replica in enumerate(self.replicas):
            queue = self._pending[index]
            while queue:
                item = queue[0]
                try:
                    await put_once(replica, item.name, item.data, item.metadata)
                except StorageError as exc:
                    log.warning(
                        "backups.replica_copy_failed",
                        replica=replica.description,
                        blob=item.name,
                        queued=len(queue),
                        error=str(exc),
                    )
                    break
                queue.pop(0)
