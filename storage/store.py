"""The blob seam: what kvdr asks of blob storage.

Small on purpose (as Litestream's replica client): anything smarter is a free function
over `BlobStore` so no backend reimplements it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from storage.errors import BlobExists, PreconditionFailed, WriteConflict


@dataclass(frozen=True)
class BlobInfo:
    name: str
    size: int
    etag: str
    last_modified: datetime | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Blob:
    info: BlobInfo
    data: bytes = field(repr=False)


class BlobStore(Protocol):
    """One container (or folder) of blobs."""

    @property
    def description(self) -> str:
        """Where this store points, for logs and status (no credentials)."""
        ...

    async def put_if_absent(
        self, name: str, data: bytes, metadata: dict[str, str] | None = None
    ) -> BlobInfo:
        """Write once (If-None-Match: *); raises `BlobExists` when the name is taken."""
        ...

    async def put(
        self,
        name: str,
        data: bytes,
        *,
        if_match: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> BlobInfo:
        """Write; with `if_match`, only over that ETag (else `PreconditionFailed`)."""
        ...

    async def get(self, name: str) -> Blob: ...

    async def list(self, prefix: str = "") -> list[BlobInfo]:
        """Blobs whose name starts with `prefix`, sorted by name."""
        ...

    async def delete(self, name: str, *, if_match: str | None = None) -> None:
        """Raises `BlobNotFound` when absent, `PreconditionFailed` on a stale `if_match`."""
        ...

    async def acquire_lease(self, name: str, lease_id: str, seconds: int) -> None:
        """Take the lease on blob `name` (created empty when absent) for 15-60 s.

        Raises `LeaseHeld` when another holder has it. Re-acquiring with our own
        `lease_id` renews it.
        """
        ...

    async def renew_lease(self, name: str, lease_id: str) -> None:
        """Raises `LeaseLost` when the lease is no longer ours."""
        ...

    async def release_lease(self, name: str, lease_id: str) -> None:
        """Raises `LeaseLost` when the lease is not ours (released, or taken by another)."""
        ...

    async def close(self) -> None: ...


async def compare_and_swap(
    store: BlobStore,
    name: str,
    data: bytes,
    etag: str | None,
    *,
    conflict: type[WriteConflict] = WriteConflict,
) -> BlobInfo:
    """Write `data` to `name` only over the version read with `etag`; returns the new info.

    `etag` None means the blob was absent when read: it is created only if it still is
    (put-if-absent). When another writer got there first, the blob is left as they wrote
    it and `conflict` (a `WriteConflict`) is raised: re-read, or stop, never overwrite.
    """
    try:
        if etag is None:
            return await store.put_if_absent(name, data)
        return await store.put(name, data, if_match=etag)
    except (PreconditionFailed, BlobExists) as exc:
        raise conflict(f"{conflict.what} {name} was changed by another writer", blob=name) from exc


@runtime_checkable
class ConditionalReader(Protocol):
    """A backend that can read a blob only when it changed (HTTP If-None-Match)."""

    async def get_if_changed(self, name: str, etag: str) -> Blob | None:
        """The blob, or None when its ETag is still `etag`; `BlobNotFound` when absent."""
        ...


async def get_if_changed(store: BlobStore, name: str, etag: str | None) -> Blob | None:
    """The blob `name`, or None when it still has `etag` (the version read before).

    Where the backend supports it (Azure Blob: If-None-Match, answered 304 with no body)
    an unchanged blob costs no transfer; any other store is read whole and its ETag
    compared, so wrappers of the seam (tests' fault gates) keep working. `etag` None:
    an ordinary `get`. Raises `BlobNotFound` when the blob is absent.
    """
    if etag is None:
        return await store.get(name)
    if isinstance(store, ConditionalReader):
        return await store.get_if_changed(name, etag)
    blob = await store.get(name)
    return None if blob.info.etag == etag else blob


class StoreLifecycle(ABC):
    """What every backend does for `async with`: open on entry, close on exit."""

    @abstractmethod
    async def open(self) -> Self: ...

    @abstractmethod
    async def close(self) -> None: ...

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
