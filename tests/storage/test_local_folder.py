"""Local folder backend: files on disk, crash recovery, corruption, several processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import storage._folder_layout as folder_layout
from storage import (
    BlobNotFound,
    CorruptBlob,
    LocalFolderSettings,
    LocalFolderStore,
    StorageError,
    open_store,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def folder_store(tmp_path: Path) -> AsyncIterator[LocalFolderStore]:
    async with LocalFolderStore(LocalFolderSettings(str(tmp_path / "copy"))) as store:
        yield store


class TestFiles:
    async def test_names_with_slashes_are_subfolders(
        self, folder_store: LocalFolderStore, tmp_path: Path
    ) -> None:
        """A blob 'a/b/c.json' is the plain file copy/a/b/c.json, readable without kvdr."""
        await folder_store.put_if_absent("snapshots/pair-1/000042.json", b'{"seq":42}')
        assert (tmp_path / "copy/snapshots/pair-1/000042.json").read_bytes() == b'{"seq":42}'

    async def test_delete_prunes_empty_folders(
        self, folder_store: LocalFolderStore, tmp_path: Path
    ) -> None:
        """Deleting the last blob of a folder removes the now empty folders too."""
        await folder_store.put_if_absent("x/y/z", b"1")
        await folder_store.delete("x/y/z")
        assert not (tmp_path / "copy/x").exists()

    async def test_file_and_folder_of_same_name_clash(self, folder_store: LocalFolderStore) -> None:
        """'a' and 'a/b' cannot both exist in a folder: a clear error names both."""
        await folder_store.put_if_absent("a", b"file")
        with pytest.raises(StorageError, match=r"'a/b'.*'a'|'a'.*'a/b'"):
            await folder_store.put_if_absent("a/b", b"under")
        await folder_store.put_if_absent("d/e", b"under")
        with pytest.raises(StorageError, match="'d'"):
            await folder_store.put_if_absent("d", b"file")
        assert [info.name for info in await folder_store.list()] == ["a", "d/e"]

    async def test_reserved_folder_is_refused(self, folder_store: LocalFolderStore) -> None:
        """The store's bookkeeping folder cannot be addressed as a blob."""
        with pytest.raises(ValueError, match="reserved"):
            await folder_store.put_if_absent(".kvdr-store/meta/x", b"x")

    async def test_path_that_is_a_file_is_refused(self, tmp_path: Path) -> None:
        """Opening a store on a path that is a regular file fails naming the path."""
        target = tmp_path / "not-a-folder"
        target.write_bytes(b"")
        with pytest.raises(StorageError, match="not-a-folder"):
            async with open_store(LocalFolderSettings(str(target))):
                pass

    async def test_open_store_picks_the_backend(self, tmp_path: Path) -> None:
        """open_store with folder settings gives a working local folder store."""
        async with open_store(LocalFolderSettings(str(tmp_path / "s"))) as store:
            await store.put_if_absent("k", b"v")
            assert store.description == f"local-folder {tmp_path / 's'}"
        assert (tmp_path / "s/k").read_bytes() == b"v"


class TestIntegrity:
    async def test_flipped_byte_is_corrupt_blob(
        self, folder_store: LocalFolderStore, tmp_path: Path
    ) -> None:
        """A byte changed in a blob's file is caught on read (SHA-256), naming the blob."""
        await folder_store.put_if_absent("segments/1", b"journal bytes")
        path = tmp_path / "copy/segments/1"
        path.write_bytes(b"journal bytez")
        with pytest.raises(CorruptBlob) as caught:
            await folder_store.get("segments/1")
        assert caught.value.blob == "segments/1"

    async def test_truncated_and_missing_files_are_corrupt(
        self, folder_store: LocalFolderStore, tmp_path: Path
    ) -> None:
        """A shortened file and a vanished file are CorruptBlob, not a quiet short read."""
        await folder_store.put_if_absent("s/1", b"0123456789")
        await folder_store.put_if_absent("s/2", b"0123456789")
        (tmp_path / "copy/s/1").write_bytes(b"01234")
        (tmp_path / "copy/s/2").unlink()
        with pytest.raises(CorruptBlob, match="5 bytes"):
            await folder_store.get("s/1")
        with pytest.raises(CorruptBlob, match="missing"):
            await folder_store.get("s/2")


def crash_when_renaming(monkeypatch: pytest.MonkeyPatch, into: str) -> None:
    """Make the rename whose target lies under `into` fail, as a crash there would."""
    real = folder_layout.replace_durably

    def failing(source: Path, target: Path) -> None:
        if into in target.as_posix():
            raise OSError(5, "simulated crash")
        real(source, target)

    monkeypatch.setattr(folder_layout, "replace_durably", failing)


class TestCrashRecovery:
    async def test_crash_after_data_landed_rolls_forward(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A write that crashed after its bytes landed is completed on the next read."""
        settings = LocalFolderSettings(str(tmp_path / "copy"))
        async with LocalFolderStore(settings) as store:
            old = await store.put_if_absent("control", b"epoch=1", {"epoch": "1"})
            crash_when_renaming(monkeypatch, "/.kvdr-store/meta/")
            with pytest.raises(StorageError):
                await store.put("control", b"epoch=2", if_match=old.etag, metadata={"epoch": "2"})
            monkeypatch.undo()
        async with LocalFolderStore(settings) as store:
            blob = await store.get("control")
            assert (blob.data, blob.info.metadata) == (b"epoch=2", {"epoch": "2"})
            assert blob.info.etag != old.etag
            assert [info.size for info in await store.list()] == [7]

    async def test_crash_before_data_landed_rolls_back(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A write that crashed before its bytes landed leaves the previous blob intact."""
        settings = LocalFolderSettings(str(tmp_path / "copy"))
        async with LocalFolderStore(settings) as store:
            old = await store.put_if_absent("control", b"epoch=1")
            crash_when_renaming(monkeypatch, "/copy/control")
            with pytest.raises(StorageError):
                await store.put("control", b"epoch=2", if_match=old.etag)
            monkeypatch.undo()
        async with LocalFolderStore(settings) as store:
            listed = await store.list()
            blob = await store.get("control")
            assert (blob.data, blob.info.etag) == (b"epoch=1", old.etag)
            assert [info.etag for info in listed] == [old.etag]

    async def test_crashed_first_write_in_a_folder_rolls_forward(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A first write into a subfolder, killed after its bytes landed and before its
        sidecar's folder was made (as a SIGKILLed `kvdr failover promote` left a control
        store), is completed on the next read instead of failing every read after."""
        settings = LocalFolderSettings(str(tmp_path / "copy"))
        name = "failover/app/control.json"
        async with LocalFolderStore(settings) as store:
            crash_when_renaming(monkeypatch, "/.kvdr-store/meta/")
            with pytest.raises(StorageError):
                await store.put_if_absent(name, b"epoch=1")
            monkeypatch.undo()
        # The kill came before the sidecar's folders existed.
        meta = tmp_path / "copy" / ".kvdr-store" / "meta"
        (meta / "failover" / "app").rmdir()
        (meta / "failover").rmdir()
        async with LocalFolderStore(settings) as store:
            assert (await store.get(name)).data == b"epoch=1"
            assert [info.name for info in await store.list()] == [name]

    async def test_crashed_first_write_is_not_a_blob(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A first write that crashed before its bytes landed leaves no blob behind."""
        settings = LocalFolderSettings(str(tmp_path / "copy"))
        async with LocalFolderStore(settings) as store:
            crash_when_renaming(monkeypatch, "/copy/new")
            with pytest.raises(StorageError):
                await store.put_if_absent("new", b"x")
            monkeypatch.undo()
            with pytest.raises(BlobNotFound):
                await store.get("new")
            await store.put_if_absent("new", b"y")
            assert (await store.get("new")).data == b"y"


COUNTER_WORKER = textwrap.dedent(
    """
    import asyncio, sys
    from storage import LocalFolderSettings, LocalFolderStore, PreconditionFailed

    async def main(path: str, times: int) -> None:
        async with LocalFolderStore(LocalFolderSettings(path)) as store:
            done = 0
            while done < times:
                blob = await store.get("counter")
                value = int(blob.data) + 1
                try:
                    await store.put("counter", str(value).encode(), if_match=blob.info.etag)
                except PreconditionFailed:
                    continue
                done += 1

    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
    """
)


class TestSeveralProcesses:
    async def test_compare_and_swap_across_processes(
        self, folder_store: LocalFolderStore, tmp_path: Path
    ) -> None:
        """4 processes doing 25 ETag-guarded increments each lose no update: counter = 100."""
        await folder_store.put_if_absent("counter", b"0")
        workers = [
            subprocess.Popen(
                [sys.executable, "-c", COUNTER_WORKER, str(tmp_path / "copy"), "25"], cwd=REPO
            )
            for _ in range(4)
        ]
        assert [worker.wait(timeout=120) for worker in workers] == [0, 0, 0, 0]
        assert (await folder_store.get("counter")).data == b"100"
