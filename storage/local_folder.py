"""`BlobStore` over a folder of files: offline copies of a container, and tests.

This module holds what the operations mean (conditions, ETags, leases, errors); where
the files live, the lock and the crash-safe write steps are `storage._folder_layout`.
Reads check size and SHA-256 against the sidecar (`CorruptBlob`); a crashed write found
by a reader is rolled forward or back before the read.
"""

from __future__ import annotations

import asyncio
import builtins
import errno
import hashlib
import json
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self, TypeVar

from storage._folder_layout import SIDECAR_FORMAT, FolderLayout
from storage._names import check_blob_name, check_lease, check_metadata, check_prefix
from storage.errors import (
    BlobExists,
    BlobNotFound,
    CorruptBlob,
    LeaseHeld,
    LeaseLost,
    PreconditionFailed,
    StorageError,
)
from storage.settings import LocalFolderSettings
from storage.store import Blob, BlobInfo, StoreLifecycle

T = TypeVar("T")


class LocalFolderStore(StoreLifecycle):
    """A folder of blobs; use as `async with LocalFolderStore(settings)`.

    `clock` (wall-clock seconds, `time.time` by default) is what leases expire by; a
    test passes its own to let a lease period pass without waiting for it.
    """

    def __init__(
        self, settings: LocalFolderSettings, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._files = FolderLayout(Path(settings.path).expanduser().absolute())
        self._clock = clock

    @property
    def description(self) -> str:
        return f"local-folder {self._files.root}"

    # --- lifecycle ------------------------------------------------------------------

    async def open(self) -> Self:
        await asyncio.to_thread(self._files.prepare)
        return self

    async def close(self) -> None:
        return None

    async def _run(self, exclusive: bool, name: str, work: Callable[[], T]) -> T:
        """Run `work` in a thread under the lock; `name` ("" for none) is what it touches."""
        files = self._files

        def locked_work() -> T:
            with files.locked(exclusive):
                # Under a shared lock no writer is active, so a pending sidecar is a
                # crashed writer's: reading must not see half of it.
                if exclusive or not files.crash_leftovers(name):
                    return work()
            with files.locked(True):
                for leftover in files.crash_leftovers(name):
                    files.recover(leftover)
                return work()

        try:
            return await asyncio.to_thread(locked_work)
        except StorageError:
            raise
        except OSError as exc:
            raise _os_error(exc, name) from exc

    def _lease_holder(self, name: str) -> dict[str, Any] | None:
        """The active lease on `name` (not expired), or None."""
        lease = self._files.read_lease(name)
        if lease is None or lease["expires_at"] <= self._clock():
            return None
        return lease

    # --- writes ---------------------------------------------------------------------

    def _write_sync(
        self,
        name: str,
        data: bytes,
        metadata: dict[str, str],
        *,
        if_absent: bool,
        if_match: str | None,
    ) -> BlobInfo:
        files = self._files
        files.recover(name)
        current = files.read_meta(name)
        if if_absent and current is not None:
            raise BlobExists(f"put_if_absent {name!r}: the name is taken", blob=name)
        if if_match is not None and (current is None or current["etag"] != if_match):
            raise PreconditionFailed(f"put {name!r}: the ETag no longer matches", blob=name)
        if current is not None and self._lease_holder(name) is not None:
            # As on Azure: a leased blob is written only by naming the lease, which this
            # seam never does; leases live on blobs of their own.
            raise LeaseHeld(f"put {name!r}: the blob is leased", blob=name)
        files.check_no_clash(name)

        tmp = files.temp_file(data)
        stat = os.stat(tmp)
        digest = hashlib.sha256(data).hexdigest()
        # ETag = content (bytes and metadata) + the write's mtime in ns: a new ETag for
        # every write that changes anything.
        state_hash = hashlib.sha256(
            digest.encode() + json.dumps(metadata, sort_keys=True).encode()
        ).hexdigest()
        meta = {
            "format": SIDECAR_FORMAT,
            "etag": f'"{state_hash[:16]}-{stat.st_mtime_ns:x}"',
            "size": len(data),
            "sha256": digest,
            "metadata": metadata,
            "mtime_ns": stat.st_mtime_ns,
            "inode": stat.st_ino,
        }
        files.commit(name, tmp, meta)
        return _info(name, meta)

    async def put_if_absent(
        self, name: str, data: bytes, metadata: dict[str, str] | None = None
    ) -> BlobInfo:
        return await self._write(name, data, metadata, if_absent=True, if_match=None)

    async def put(
        self,
        name: str,
        data: bytes,
        *,
        if_match: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> BlobInfo:
        return await self._write(name, data, metadata, if_absent=False, if_match=if_match)

    async def _write(
        self,
        name: str,
        data: bytes,
        metadata: dict[str, str] | None,
        *,
        if_absent: bool,
        if_match: str | None,
    ) -> BlobInfo:
        check_blob_name(name)
        meta = check_metadata(metadata)
        data = bytes(data)
        return await self._run(
            True,
            name,
            lambda: self._write_sync(name, data, meta, if_absent=if_absent, if_match=if_match),
        )

    async def delete(self, name: str, *, if_match: str | None = None) -> None:
        """Delete `name`; `BlobNotFound` when absent, `PreconditionFailed` on a stale ETag."""
        check_blob_name(name)
        await self._run(True, name, lambda: self._delete_sync(name, if_match))

    def _delete_sync(self, name: str, if_match: str | None) -> None:
        self._files.recover(name)
        current = self._files.read_meta(name)
        if current is None:
            raise BlobNotFound(f"delete {name!r}: no such blob", blob=name)
        if if_match is not None and current["etag"] != if_match:
            raise PreconditionFailed(f"delete {name!r}: the ETag no longer matches", blob=name)
        if self._lease_holder(name) is not None:
            raise LeaseHeld(f"delete {name!r}: the blob is leased", blob=name)
        self._files.remove(name)

    # --- reads ----------------------------------------------------------------------

    async def get(self, name: str) -> Blob:
        check_blob_name(name)
        return await self._run(False, name, lambda: self._get_sync(name))

    async def get_if_changed(self, name: str, etag: str) -> Blob | None:
        """`name` unless its ETag is still `etag` (then None, only the sidecar read)."""
        check_blob_name(name)
        return await self._run(False, name, lambda: self._get_changed_sync(name, etag))

    def _get_changed_sync(self, name: str, etag: str) -> Blob | None:
        meta = self._files.read_meta(name)
        if meta is not None and meta["etag"] == etag:
            return None
        return self._get_sync(name)

    def _get_sync(self, name: str) -> Blob:
        meta = self._files.read_meta(name)
        if meta is None:
            raise BlobNotFound(f"get {name!r}: no such blob", blob=name)
        try:
            data = self._files.data_path(name).read_bytes()
        except FileNotFoundError as exc:
            raise CorruptBlob(f"get {name!r}: the data file is missing", blob=name) from exc
        if len(data) != meta["size"]:
            raise CorruptBlob(
                f"get {name!r}: read {len(data)} bytes, the sidecar says {meta['size']}",
                blob=name,
            )
        if hashlib.sha256(data).hexdigest() != meta["sha256"]:
            raise CorruptBlob(f"get {name!r}: SHA-256 does not match the bytes read", blob=name)
        return Blob(info=_info(name, meta), data=data)

    async def list(self, prefix: str = "") -> list[BlobInfo]:
        check_prefix(prefix)
        return await self._run(False, "", lambda: self._list_sync(prefix))

    def _list_sync(self, prefix: str) -> builtins.list[BlobInfo]:
        meta_root = self._files.meta_root
        found: builtins.list[BlobInfo] = []
        for folder, _dirs, files in os.walk(meta_root):
            relative = Path(folder).relative_to(meta_root)
            for file in files:
                name = (relative / file).as_posix()
                if not name.startswith(prefix):
                    continue
                meta = self._files.read_meta(name)
                if meta is not None:
                    found.append(_info(name, meta))
        return sorted(found, key=lambda info: info.name)

    # --- leases ---------------------------------------------------------------------

    async def acquire_lease(self, name: str, lease_id: str, seconds: int) -> None:
        check_blob_name(name)
        check_lease(lease_id, seconds)
        await self._run(True, name, lambda: self._acquire_sync(name, lease_id, seconds))

    def _acquire_sync(self, name: str, lease_id: str, seconds: int) -> None:
        self._files.recover(name)
        holder = self._lease_holder(name)
        if holder is not None and holder["lease_id"] != lease_id:
            raise LeaseHeld(f"acquire_lease {name!r}: another holder has the lease", blob=name)
        if self._files.read_meta(name) is None:
            self._write_sync(name, b"", {}, if_absent=True, if_match=None)
        self._write_lease(name, lease_id, seconds)

    def _write_lease(self, name: str, lease_id: str, seconds: int) -> None:
        doc = {"lease_id": lease_id, "seconds": seconds, "expires_at": self._clock() + seconds}
        self._files.write_lease(name, doc)

    async def renew_lease(self, name: str, lease_id: str) -> None:
        check_blob_name(name)
        check_lease(lease_id)
        await self._run(True, name, lambda: self._renew_sync(name, lease_id))

    def _renew_sync(self, name: str, lease_id: str) -> None:
        lease = self._files.read_lease(name)
        # As on Azure, an expired lease can still be renewed while nobody else took it.
        if lease is None or lease["lease_id"] != lease_id or self._files.read_meta(name) is None:
            raise LeaseLost(f"renew_lease {name!r}: the lease is no longer ours", blob=name)
        self._write_lease(name, lease_id, int(lease["seconds"]))

    async def release_lease(self, name: str, lease_id: str) -> None:
        """Give the lease up; `LeaseLost` when another holder has it by now."""
        check_blob_name(name)
        check_lease(lease_id)
        await self._run(True, name, lambda: self._release_sync(name, lease_id))

    def _release_sync(self, name: str, lease_id: str) -> None:
        lease = self._files.read_lease(name)
        if lease is None or lease["lease_id"] != lease_id:
            raise LeaseLost(f"release_lease {name!r}: the lease is no longer ours", blob=name)
        self._files.drop_lease(name)


def _info(name: str, meta: dict[str, Any]) -> BlobInfo:
    return BlobInfo(
        name=name,
        size=int(meta["size"]),
        etag=str(meta["etag"]),
        last_modified=datetime.fromtimestamp(meta["mtime_ns"] / 1e9, UTC),
        metadata=dict(meta["metadata"]),
    )


def _os_error(exc: OSError, name: str) -> StorageError:
    where = f"blob {name!r}" if name else "local storage"
    if exc.errno in (errno.ENOTDIR, errno.EISDIR, errno.EEXIST):
        return StorageError(
            f"{where}: clashes with another blob's file or folder ({exc.strerror})", blob=name
        )
    if exc.errno == errno.ENOSPC:
        return StorageError(f"{where}: the disk is full", blob=name)
    return StorageError(f"{where}: {exc.strerror or exc}", blob=name)
