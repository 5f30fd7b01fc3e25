"""`BlobStore` over a folder of files: offline copies of a container, and tests.

Layout under the root folder::

    <name>                       the blob's bytes; "/" in a name makes subfolders
    .kvdr-store/lock             flock target: shared for reads, exclusive for writes
    .kvdr-store/meta/<name>      sidecar JSON: etag, size, sha256, metadata (the commit)
    .kvdr-store/pending/<name>   sidecar of a write in progress (crash recovery)
    .kvdr-store/leases/<name>    lease holder and expiry (wall clock, shared by processes)
    .kvdr-store/tmp/             temporary files, renamed into place

A write is: bytes to a temp file (fsync), its sidecar to `pending/`, rename the bytes
into place, rename the sidecar into `meta/`, each rename followed by an fsync of the
folder. A crash between the two renames leaves a pending sidecar whose recorded inode
says whether the new bytes landed; the next writer (or a reader that finds it) rolls it
forward or drops it, so a blob is never left with bytes of one write and the metadata of
another. Reads check size and SHA-256 against the sidecar (`CorruptBlob`).

The lock is `fcntl.flock` on one file: it serializes writers across threads and
processes on one machine; it does not protect a folder shared over NFS.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import errno
import fcntl
import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self, TypeVar

from storage._names import (
    RESERVED_FIRST_SEGMENT,
    check_blob_name,
    check_lease,
    check_metadata,
    check_prefix,
)
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
_SIDECAR_FORMAT = 1


class LocalFolderStore(StoreLifecycle):
    """A folder of blobs; use as `async with LocalFolderStore(settings)`."""

    def __init__(self, settings: LocalFolderSettings) -> None:
        self._root = Path(settings.path).expanduser().absolute()
        self._state = self._root / RESERVED_FIRST_SEGMENT

    @property
    def description(self) -> str:
        return f"local-folder {self._root}"

    # --- lifecycle ------------------------------------------------------------------

    async def open(self) -> Self:
        await asyncio.to_thread(self._open_sync)
        return self

    def _open_sync(self) -> None:
        if self._root.exists() and not self._root.is_dir():
            raise StorageError(f"local storage path {str(self._root)!r} is not a folder")
        try:
            for sub in ("meta", "pending", "leases", "tmp"):
                (self._state / sub).mkdir(parents=True, exist_ok=True)
            (self._state / "lock").touch(exist_ok=True)
            with self._locked(True):
                self._drop_stale_temp_files()
        except OSError as exc:
            raise StorageError(
                f"cannot use local storage folder {str(self._root)!r}: {exc.strerror}"
            ) from exc

    def _drop_stale_temp_files(self) -> None:
        # Leftovers of crashed writers. Only old ones: another process may be writing
        # one right now (its lock covers the rename, not our open).
        cutoff = time.time() - 3600
        for tmp in (self._state / "tmp").iterdir():
            with contextlib.suppress(FileNotFoundError):
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()

    async def close(self) -> None:
        return None

    # --- paths and locking ------------------------------------------------------------

    def _data_path(self, name: str) -> Path:
        return self._root.joinpath(*name.split("/"))

    def _sidecar(self, kind: str, name: str) -> Path:
        return self._state.joinpath(kind, *name.split("/"))

    @contextlib.contextmanager
    def _locked(self, exclusive: bool) -> Iterator[None]:
        # One open() per operation: flock locks belong to the open file description, so
        # two threads of this process exclude each other as two processes do.
        fd = os.open(self._state / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    async def _run(self, exclusive: bool, name: str, work: Callable[[], T]) -> T:
        """Run `work` in a thread under the lock; `name` ("" for none) is what it touches."""

        def locked_work() -> T:
            with self._locked(exclusive):
                # Under a shared lock no writer is active, so a pending sidecar is a
                # crashed writer's: reading must not see half of it.
                if exclusive or not self._crash_leftovers(name):
                    return work()
            with self._locked(True):
                for leftover in self._crash_leftovers(name):
                    self._recover(leftover)
                return work()

        try:
            return await asyncio.to_thread(locked_work)
        except StorageError:
            raise
        except OSError as exc:
            raise _os_error(exc, name) from exc

    # --- sidecars ---------------------------------------------------------------------

    def _read_meta(self, name: str) -> dict[str, Any] | None:
        try:
            raw = self._sidecar("meta", name).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        try:
            meta: dict[str, Any] = json.loads(raw)
            if meta.get("format") != _SIDECAR_FORMAT:
                raise ValueError(f"format {meta.get('format')!r}")
        except ValueError as exc:
            raise CorruptBlob(f"blob {name!r}: unreadable sidecar ({exc})", blob=name) from exc
        return meta

    def _crash_leftovers(self, name: str) -> builtins.list[str]:
        """Names with a pending sidecar: `name`'s, or every one when `name` is ""."""
        if name:
            return [name] if self._sidecar("pending", name).exists() else []
        pending_root = self._state / "pending"
        return [
            (Path(folder).relative_to(pending_root) / file).as_posix()
            for folder, _dirs, files in os.walk(pending_root)
            for file in files
        ]

    def _recover(self, name: str) -> None:
        """Roll a crashed write of `name` forward or back (under the exclusive lock)."""
        pending = self._sidecar("pending", name)
        try:
            meta = json.loads(pending.read_bytes())
        except (FileNotFoundError, NotADirectoryError):
            return
        except ValueError:
            pending.unlink()  # torn before its own rename: the write never began
            return
        try:
            landed = os.stat(self._data_path(name)).st_ino == meta.get("inode")
        except FileNotFoundError:
            landed = False
        if landed:
            _replace(pending, self._sidecar("meta", name))
        else:
            pending.unlink()

    def _lease_holder(self, name: str) -> dict[str, Any] | None:
        """The active lease on `name` (not expired), or None."""
        lease = self._read_lease(name)
        if lease is None or lease["expires_at"] <= time.time():
            return None
        return lease

    def _read_lease(self, name: str) -> dict[str, Any] | None:
        try:
            lease: dict[str, Any] = json.loads(self._sidecar("leases", name).read_bytes())
        except (FileNotFoundError, NotADirectoryError):
            return None
        except ValueError:
            return None  # a torn lease file holds nothing: it cannot have been granted
        return lease

    def _write_json(self, path: Path, doc: dict[str, Any]) -> None:
        tmp = self._temp_file(json.dumps(doc, sort_keys=True).encode())
        _replace(tmp, path)

    def _temp_file(self, data: bytes) -> Path:
        tmp = self._state / "tmp" / uuid.uuid4().hex
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        return tmp

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
        self._recover(name)
        current = self._read_meta(name)
        if if_absent and current is not None:
            raise BlobExists(f"put_if_absent {name!r}: the name is taken", blob=name)
        if if_match is not None and (current is None or current["etag"] != if_match):
            raise PreconditionFailed(f"put {name!r}: the ETag no longer matches", blob=name)
        if current is not None and self._lease_holder(name) is not None:
            # As on Azure: a leased blob is written only by naming the lease, which this
            # seam never does; leases live on blobs of their own.
            raise LeaseHeld(f"put {name!r}: the blob is leased", blob=name)
        self._check_no_clash(name)

        tmp = self._temp_file(data)
        stat = os.stat(tmp)
        digest = hashlib.sha256(data).hexdigest()
        # ETag = content (bytes and metadata) + the write's mtime in ns: a new ETag for
        # every write that changes anything.
        state_hash = hashlib.sha256(
            digest.encode() + json.dumps(metadata, sort_keys=True).encode()
        ).hexdigest()
        meta = {
            "format": _SIDECAR_FORMAT,
            "etag": f'"{state_hash[:16]}-{stat.st_mtime_ns:x}"',
            "size": len(data),
            "sha256": digest,
            "metadata": metadata,
            "mtime_ns": stat.st_mtime_ns,
            "inode": stat.st_ino,
        }
        pending = self._sidecar("pending", name)
        pending.parent.mkdir(parents=True, exist_ok=True)
        self._write_json(pending, meta)
        data_path = self._data_path(name)
        data_path.parent.mkdir(parents=True, exist_ok=True)
        _replace(tmp, data_path)
        meta_path = self._sidecar("meta", name)
        meta_path.parent.mkdir(parents=True, exist_ok=True)
        _replace(pending, meta_path)
        return _info(name, meta)

    def _check_no_clash(self, name: str) -> None:
        """A file cannot be both blob `a` and the folder of blob `a/b`."""
        data_path = self._data_path(name)
        if data_path.is_dir():
            raise StorageError(
                f"blob {name!r}: a folder of that name holds other blobs ({name}/...)", blob=name
            )
        for parent in data_path.relative_to(self._root).parents:
            if parent != Path(".") and (self._root / parent).is_file():
                raise StorageError(
                    f"blob {name!r}: blob {parent.as_posix()!r} is a file, so {name!r} cannot "
                    "be stored under it in a folder",
                    blob=name,
                )

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
        self._recover(name)
        current = self._read_meta(name)
        if current is None:
            raise BlobNotFound(f"delete {name!r}: no such blob", blob=name)
        if if_match is not None and current["etag"] != if_match:
            raise PreconditionFailed(f"delete {name!r}: the ETag no longer matches", blob=name)
        if self._lease_holder(name) is not None:
            raise LeaseHeld(f"delete {name!r}: the blob is leased", blob=name)
        # The sidecar is the commit: remove it first, so a crash leaves at worst an
        # orphan data file that is not a blob.
        for path in (
            self._sidecar("meta", name),
            self._sidecar("leases", name),
            self._data_path(name),
        ):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            _fsync_dir(path.parent)
            self._prune_empty(path.parent)

    def _prune_empty(self, folder: Path) -> None:
        stops = {self._root, *(self._state / sub for sub in ("meta", "pending", "leases"))}
        while folder not in stops and self._root in folder.parents:
            try:
                folder.rmdir()
            except OSError:
                return
            folder = folder.parent

    # --- reads ----------------------------------------------------------------------

    async def get(self, name: str) -> Blob:
        check_blob_name(name)
        return await self._run(False, name, lambda: self._get_sync(name))

    def _get_sync(self, name: str) -> Blob:
        meta = self._read_meta(name)
        if meta is None:
            raise BlobNotFound(f"get {name!r}: no such blob", blob=name)
        try:
            data = self._data_path(name).read_bytes()
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
        meta_root = self._state / "meta"
        found: builtins.list[BlobInfo] = []
        for folder, _dirs, files in os.walk(meta_root):
            relative = Path(folder).relative_to(meta_root)
            for file in files:
                name = (relative / file).as_posix()
                if not name.startswith(prefix):
                    continue
                meta = self._read_meta(name)
                if meta is not None:
                    found.append(_info(name, meta))
        return sorted(found, key=lambda info: info.name)

    # --- leases ---------------------------------------------------------------------

    async def acquire_lease(self, name: str, lease_id: str, seconds: int) -> None:
        check_blob_name(name)
        check_lease(lease_id, seconds)
        await self._run(True, name, lambda: self._acquire_sync(name, lease_id, seconds))

    def _acquire_sync(self, name: str, lease_id: str, seconds: int) -> None:
        self._recover(name)
        holder = self._lease_holder(name)
        if holder is not None and holder["lease_id"] != lease_id:
            raise LeaseHeld(f"acquire_lease {name!r}: another holder has the lease", blob=name)
        if self._read_meta(name) is None:
            self._write_sync(name, b"", {}, if_absent=True, if_match=None)
        self._write_lease(name, lease_id, seconds)

    def _write_lease(self, name: str, lease_id: str, seconds: int) -> None:
        path = self._sidecar("leases", name)
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = {"lease_id": lease_id, "seconds": seconds, "expires_at": time.time() + seconds}
        self._write_json(path, doc)

    async def renew_lease(self, name: str, lease_id: str) -> None:
        check_blob_name(name)
        check_lease(lease_id)
        await self._run(True, name, lambda: self._renew_sync(name, lease_id))

    def _renew_sync(self, name: str, lease_id: str) -> None:
        lease = self._read_lease(name)
        # As on Azure, an expired lease can still be renewed while nobody else took it.
        if lease is None or lease["lease_id"] != lease_id or self._read_meta(name) is None:
            raise LeaseLost(f"renew_lease {name!r}: the lease is no longer ours", blob=name)
        self._write_lease(name, lease_id, int(lease["seconds"]))

    async def release_lease(self, name: str, lease_id: str) -> None:
        """Give the lease up; `LeaseLost` when another holder has it by now."""
        check_blob_name(name)
        check_lease(lease_id)
        await self._run(True, name, lambda: self._release_sync(name, lease_id))

    def _release_sync(self, name: str, lease_id: str) -> None:
        lease = self._read_lease(name)
        if lease is None or lease["lease_id"] != lease_id:
            raise LeaseLost(f"release_lease {name!r}: the lease is no longer ours", blob=name)
        path = self._sidecar("leases", name)
        path.unlink()
        _fsync_dir(path.parent)


def _info(name: str, meta: dict[str, Any]) -> BlobInfo:
    return BlobInfo(
        name=name,
        size=int(meta["size"]),
        etag=str(meta["etag"]),
        last_modified=datetime.fromtimestamp(meta["mtime_ns"] / 1e9, UTC),
        metadata=dict(meta["metadata"]),
    )


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _replace(source: Path, target: Path) -> None:
    """Atomic rename, made durable: without the folder's fsync a crash can undo it."""
    os.replace(source, target)
    _fsync_dir(target.parent)


def _os_error(exc: OSError, name: str) -> StorageError:
    where = f"blob {name!r}" if name else "local storage"
    if exc.errno in (errno.ENOTDIR, errno.EISDIR, errno.EEXIST):
        return StorageError(
            f"{where}: clashes with another blob's file or folder ({exc.strerror})", blob=name
        )
    if exc.errno == errno.ENOSPC:
        return StorageError(f"{where}: the disk is full", blob=name)
    return StorageError(f"{where}: {exc.strerror or exc}", blob=name)
