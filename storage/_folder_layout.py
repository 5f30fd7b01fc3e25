"""The files behind `LocalFolderStore`: where each blob's parts live, the lock, and the
crash-safe steps that change them.

Layout under the root folder::

    <name>                       the blob's bytes; "/" in a name makes subfolders
    .kvdr-store/lock             flock target: shared for reads, exclusive for writes
    .kvdr-store/meta/<name>      sidecar JSON: etag, size, sha256, metadata (the commit)
    .kvdr-store/pending/<name>   sidecar of a write in progress (crash recovery)
    .kvdr-store/leases/<name>    lease holder and expiry (wall clock, shared by processes)
    .kvdr-store/tmp/             temporary files, renamed into place

A write (`commit`) is: bytes to a temp file (fsync), its sidecar to `pending/`, rename
the bytes into place, rename the sidecar into `meta/`, each rename followed by an fsync
of the folder. A crash between the two renames leaves a pending sidecar whose recorded
inode says whether the new bytes landed; `recover` rolls it forward or drops it, so a
blob is never left with bytes of one write and the metadata of another.

The lock is `fcntl.flock` on one file: it serializes writers across threads and
processes on one machine; it does not protect a folder shared over NFS.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from storage._names import RESERVED_FIRST_SEGMENT
from storage.errors import CorruptBlob, StorageError

SIDECAR_FORMAT = 1
_SUBFOLDERS = ("meta", "pending", "leases", "tmp")
# Temp files older than this are a crashed writer's; younger ones may be in use.
_STALE_TEMP_SECONDS = 3600


class FolderLayout:
    """The files of one local store; every method but `prepare` runs under `locked`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._state = root / RESERVED_FIRST_SEGMENT

    def prepare(self) -> None:
        """Create the state folders and lock file; drop crashed writers' temp files."""
        if self.root.exists() and not self.root.is_dir():
            raise StorageError(f"local storage path {str(self.root)!r} is not a folder")
        try:
            for sub in _SUBFOLDERS:
                (self._state / sub).mkdir(parents=True, exist_ok=True)
            (self._state / "lock").touch(exist_ok=True)
            with self.locked(True):
                self._drop_stale_temp_files()
        except OSError as exc:
            raise StorageError(
                f"cannot use local storage folder {str(self.root)!r}: {exc.strerror}"
            ) from exc

    def _drop_stale_temp_files(self) -> None:
        # Only old ones: another process may be writing one right now (its lock covers
        # the rename, not our open).
        cutoff = time.time() - _STALE_TEMP_SECONDS
        for tmp in (self._state / "tmp").iterdir():
            with contextlib.suppress(FileNotFoundError):
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()

    # --- paths and locking ------------------------------------------------------------

    def data_path(self, name: str) -> Path:
        return self.root.joinpath(*name.split("/"))

    def sidecar(self, kind: str, name: str) -> Path:
        return self._state.joinpath(kind, *name.split("/"))

    @property
    def meta_root(self) -> Path:
        return self._state / "meta"

    @contextlib.contextmanager
    def locked(self, exclusive: bool) -> Iterator[None]:
        # One open() per operation: flock locks belong to the open file description, so
        # two threads of this process exclude each other as two processes do.
        fd = os.open(self._state / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    # --- sidecars ---------------------------------------------------------------------

    def read_meta(self, name: str) -> dict[str, Any] | None:
        """The committed sidecar of `name`, or None when there is no such blob."""
        try:
            raw = self.sidecar("meta", name).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        try:
            meta: dict[str, Any] = json.loads(raw)
            if meta.get("format") != SIDECAR_FORMAT:
                raise ValueError(f"format {meta.get('format')!r}")
        except ValueError as exc:
            raise CorruptBlob(f"blob {name!r}: unreadable sidecar ({exc})", blob=name) from exc
        return meta

    def crash_leftovers(self, name: str) -> list[str]:
        """Names with a pending sidecar: `name`'s, or every one when `name` is ""."""
        if name:
            return [name] if self.sidecar("pending", name).exists() else []
        pending_root = self._state / "pending"
        return [
            (Path(folder).relative_to(pending_root) / file).as_posix()
            for folder, _dirs, files in os.walk(pending_root)
            for file in files
        ]

    def recover(self, name: str) -> None:
        """Roll a crashed write of `name` forward or back (under the exclusive lock)."""
        pending = self.sidecar("pending", name)
        try:
            meta = json.loads(pending.read_bytes())
        except (FileNotFoundError, NotADirectoryError):
            return
        except ValueError:
            pending.unlink()  # torn before its own rename: the write never began
            return
        try:
            landed = os.stat(self.data_path(name)).st_ino == meta.get("inode")
        except FileNotFoundError:
            landed = False
        if landed:
            meta_path = self.sidecar("meta", name)
            # A first write of a name in a subfolder may have been killed before its
            # sidecar's folder was made: without it the roll-forward fails, and so would
            # every read of the blob after it.
            meta_path.parent.mkdir(parents=True, exist_ok=True)
            replace_durably(pending, meta_path)
        else:
            pending.unlink()

    def read_lease(self, name: str) -> dict[str, Any] | None:
        """The lease file of `name` (expired or not), or None."""
        try:
            lease: dict[str, Any] = json.loads(self.sidecar("leases", name).read_bytes())
        except (FileNotFoundError, NotADirectoryError):
            return None
        except ValueError:
            return None  # a torn lease file holds nothing: it cannot have been granted
        return lease

    def write_lease(self, name: str, doc: dict[str, Any]) -> None:
        path = self.sidecar("leases", name)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._write_json(path, doc)

    def drop_lease(self, name: str) -> None:
        path = self.sidecar("leases", name)
        path.unlink()
        fsync_dir(path.parent)

    def _write_json(self, path: Path, doc: dict[str, Any]) -> None:
        tmp = self.temp_file(json.dumps(doc, sort_keys=True).encode())
        replace_durably(tmp, path)

    # --- writing and removing blobs ---------------------------------------------------

    def temp_file(self, data: bytes) -> Path:
        """`data` in a new temp file, fsynced: the first step of a write."""
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

    def commit(self, name: str, tmp: Path, meta: dict[str, Any]) -> None:
        """Put the bytes in `tmp` in place as blob `name` with sidecar `meta`: pending
        sidecar, bytes, committed sidecar, in that order (see the module docstring)."""
        pending = self.sidecar("pending", name)
        pending.parent.mkdir(parents=True, exist_ok=True)
        self._write_json(pending, meta)
        data_path = self.data_path(name)
        data_path.parent.mkdir(parents=True, exist_ok=True)
        replace_durably(tmp, data_path)
        meta_path = self.sidecar("meta", name)
        meta_path.parent.mkdir(parents=True, exist_ok=True)
        replace_durably(pending, meta_path)

    def check_no_clash(self, name: str) -> None:
        """A file cannot be both blob `a` and the folder of blob `a/b`."""
        data_path = self.data_path(name)
        if data_path.is_dir():
            raise StorageError(
                f"blob {name!r}: a folder of that name holds other blobs ({name}/...)", blob=name
            )
        for parent in data_path.relative_to(self.root).parents:
            if parent != Path(".") and (self.root / parent).is_file():
                raise StorageError(
                    f"blob {name!r}: blob {parent.as_posix()!r} is a file, so {name!r} cannot "
                    "be stored under it in a folder",
                    blob=name,
                )

    def remove(self, name: str) -> None:
        """Remove blob `name` with its lease; folders it leaves empty go too."""
        # The sidecar is the commit: remove it first, so a crash leaves at worst an
        # orphan data file that is not a blob.
        for path in (
            self.sidecar("meta", name),
            self.sidecar("leases", name),
            self.data_path(name),
        ):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            fsync_dir(path.parent)
            self._prune_empty(path.parent)

    def _prune_empty(self, folder: Path) -> None:
        stops = {self.root, *(self._state / sub for sub in ("meta", "pending", "leases"))}
        while folder not in stops and self.root in folder.parents:
            try:
                folder.rmdir()
            except OSError:
                return
            folder = folder.parent


def fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_durably(source: Path, target: Path) -> None:
    """Atomic rename, made durable: without the folder's fsync a crash can undo it."""
    os.replace(source, target)
    fsync_dir(target.parent)
