"""One conformance suite for every `BlobStore` backend: Azurite (Azure Blob) and a folder.

Whatever kvdr builds on the seam (checkpoints, leases, the control record, journal
segments) must behave the same on either backend; each test here runs on both.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from storage import (
    Blob,
    BlobExists,
    BlobNotFound,
    BlobStore,
    LeaseHeld,
    LeaseLost,
    LocalFolderSettings,
    LocalFolderStore,
    PreconditionFailed,
    StorageError,
    WriteConflict,
    compare_and_swap,
    get_if_changed,
)
from tests.fixtures.azurite import fresh_container
from tests.fixtures.waiting import wait_for

WRITERS = 20


class ShiftedClock:
    """Wall-clock time plus an offset the test moves: the folder backend's lease clock."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def folder_clock() -> ShiftedClock:
    return ShiftedClock()


@pytest.fixture(params=["azurite", "local-folder"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, folder_clock: ShiftedClock
) -> AsyncIterator[BlobStore]:
    if request.param == "azurite":
        async with fresh_container(request.getfixturevalue("azurite")) as azure_store:
            yield azure_store
    else:
        settings = LocalFolderSettings(str(tmp_path / "blobs"))
        async with LocalFolderStore(settings, clock=folder_clock) as local:
            yield local


def new_lease() -> str:
    return str(uuid.uuid4())


class TestWriteOnce:
    async def test_put_if_absent_then_get(self, store: BlobStore) -> None:
        """A blob written once reads back with its bytes, metadata, size and ETag."""
        info = await store.put_if_absent("segments/0001", b"\x00\x01payload", {"kind": "journal"})
        blob = await store.get("segments/0001")
        assert blob.data == b"\x00\x01payload"
        assert blob.info.size == info.size == 9
        assert blob.info.etag == info.etag
        assert blob.info.metadata == {"kind": "journal"}

    async def test_second_put_if_absent_is_refused(self, store: BlobStore) -> None:
        """Writing a taken name again raises BlobExists naming it and keeps the first bytes."""
        await store.put_if_absent("once", b"first")
        with pytest.raises(BlobExists) as caught:
            await store.put_if_absent("once", b"second")
        assert caught.value.blob == "once"
        assert "once" in str(caught.value)
        assert (await store.get("once")).data == b"first"

    async def test_concurrent_put_if_absent_has_one_winner(self, store: BlobStore) -> None:
        """Of 20 concurrent first writers exactly one succeeds, and its bytes are stored."""

        async def writer(i: int) -> int | None:
            try:
                await store.put_if_absent("race", f"writer-{i}".encode())
            except BlobExists:
                return None
            return i

        results = await asyncio.gather(*(writer(i) for i in range(WRITERS)))
        winners = [i for i in results if i is not None]
        assert len(winners) == 1
        assert (await store.get("race")).data == f"writer-{winners[0]}".encode()

    async def test_empty_and_large_blobs_round_trip(self, store: BlobStore) -> None:
        """Zero bytes and 3 MiB of binary data read back identically."""
        large = bytes(range(256)) * (3 * 4096)
        await store.put_if_absent("empty", b"")
        await store.put_if_absent("large", large)
        assert (await store.get("empty")).data == b""
        assert (await store.get("large")).data == large

    async def test_unicode_and_spaces_in_names(self, store: BlobStore) -> None:
        """Names with spaces and non-ASCII letters are stored, listed and read as given."""
        name = "dir/naïve name (1).json"
        await store.put_if_absent(name, b"{}")
        assert [info.name for info in await store.list("dir/")] == [name]
        assert (await store.get(name)).data == b"{}"


class TestConditionalWrite:
    async def test_current_etag_wins_stale_etag_loses(self, store: BlobStore) -> None:
        """A put over the read ETag wins once; a second put with that ETag fails."""
        first = await store.put_if_absent("control", b"epoch=1")
        second = await store.put("control", b"epoch=2", if_match=first.etag)
        assert second.etag != first.etag
        with pytest.raises(PreconditionFailed) as caught:
            await store.put("control", b"epoch=2-other", if_match=first.etag)
        assert caught.value.blob == "control"
        blob = await store.get("control")
        assert blob.data == b"epoch=2"
        assert blob.info.etag == second.etag

    async def test_if_match_on_missing_blob_fails(self, store: BlobStore) -> None:
        """A conditional put on a name that does not exist raises PreconditionFailed."""
        first = await store.put_if_absent("gone", b"x")
        await store.delete("gone")
        with pytest.raises(PreconditionFailed):
            await store.put("gone", b"y", if_match=first.etag)

    async def test_unconditional_put_overwrites(self, store: BlobStore) -> None:
        """A put without if_match creates or replaces, metadata included."""
        await store.put("plain", b"one", metadata={"v": "1"})
        await store.put("plain", b"two", metadata={"v": "2"})
        blob = await store.get("plain")
        assert (blob.data, blob.info.metadata) == (b"two", {"v": "2"})

    async def test_concurrent_conditional_writers_one_winner_per_round(
        self, store: BlobStore
    ) -> None:
        """In each of 5 rounds, 20 writers race on the same ETag and exactly one wins."""
        etag = (await store.put_if_absent("cas", b"round-start")).etag

        async def writer(round_no: int, i: int, expected: str) -> tuple[int, str] | None:
            try:
                info = await store.put("cas", f"{round_no}:{i}".encode(), if_match=expected)
            except PreconditionFailed:
                return None
            return i, info.etag

        for round_no in range(5):
            results = await asyncio.gather(*(writer(round_no, i, etag) for i in range(WRITERS)))
            winners = [r for r in results if r is not None]
            assert len(winners) == 1, f"round {round_no}: {len(winners)} winners"
            winner, etag = winners[0]
            blob = await store.get("cas")
            assert blob.data == f"{round_no}:{winner}".encode()
            assert blob.info.etag == etag


class NamedConflict(WriteConflict):
    """A caller's own conflict, as the replicator's CheckpointConflict and GuardConflict."""

    what = "control record"


class TestCompareAndSwap:
    async def test_absent_blob_is_created_when_etag_is_none(self, store: BlobStore) -> None:
        """With no ETag (the blob was absent when read) the write creates it."""
        info = await compare_and_swap(store, "state/a.json", b'{"n":1}', None)
        blob = await store.get("state/a.json")
        assert (blob.data, blob.info.etag) == (b'{"n":1}', info.etag)

    async def test_created_meanwhile_is_a_conflict_when_etag_is_none(
        self, store: BlobStore
    ) -> None:
        """With no ETag, a blob another writer created meanwhile is left as it is and the
        write raises the conflict naming it."""
        await store.put_if_absent("state/a.json", b"theirs")
        with pytest.raises(WriteConflict) as c:
            await compare_and_swap(store, "state/a.json", b"mine", None)
        assert str(c.value) == "blob state/a.json was changed by another writer"
        assert c.value.blob == "state/a.json"
        assert isinstance(c.value.__cause__, BlobExists)
        assert (await store.get("state/a.json")).data == b"theirs"

    async def test_current_etag_replaces(self, store: BlobStore) -> None:
        """Over the ETag read, the write replaces the blob and returns the new ETag."""
        read = await store.put_if_absent("state/a.json", b"v1")
        info = await compare_and_swap(store, "state/a.json", b"v2", read.etag)
        blob = await store.get("state/a.json")
        assert (blob.data, blob.info.etag) == (b"v2", info.etag)
        assert info.etag != read.etag

    async def test_stale_etag_raises_the_callers_conflict(self, store: BlobStore) -> None:
        """Over an ETag that is no longer current, the other writer's bytes stay and the
        caller's own conflict is raised: catchable as it or as WriteConflict, never as
        a StorageError (storage answered; the state is someone else's)."""
        read = await store.put_if_absent("state/a.json", b"v1")
        await store.put("state/a.json", b"theirs", if_match=read.etag)
        with pytest.raises(NamedConflict) as c:
            await compare_and_swap(
                store, "state/a.json", b"mine", read.etag, conflict=NamedConflict
            )
        assert str(c.value) == "control record state/a.json was changed by another writer"
        assert isinstance(c.value, WriteConflict)
        assert not isinstance(c.value, StorageError)
        assert isinstance(c.value.__cause__, PreconditionFailed)
        assert (await store.get("state/a.json")).data == b"theirs"

    async def test_deleted_since_read_is_a_conflict(self, store: BlobStore) -> None:
        """A blob deleted after it was read is not written back by a stale ETag."""
        read = await store.put_if_absent("state/a.json", b"v1")
        await store.delete("state/a.json")
        with pytest.raises(WriteConflict):
            await compare_and_swap(store, "state/a.json", b"mine", read.etag)
        assert await store.list("state/") == []

    async def test_concurrent_writers_on_one_etag_have_one_winner(self, store: BlobStore) -> None:
        """Of 20 writers swapping from the same ETag (or from absent) exactly one wins."""
        for etag in (None, "read"):
            name = f"race-{etag}"
            if etag is not None:
                etag = (await store.put_if_absent(name, b"start")).etag

            async def writer(i: int, name: str = name, etag: str | None = etag) -> int | None:
                try:
                    await compare_and_swap(store, name, f"writer-{i}".encode(), etag)
                except WriteConflict:
                    return None
                return i

            results = await asyncio.gather(*map(writer, range(WRITERS)))
            winners = [i for i in results if i is not None]
            assert len(winners) == 1
            assert (await store.get(name)).data == f"writer-{winners[0]}".encode()


class TestRead:
    async def test_get_missing_raises_blob_not_found(self, store: BlobStore) -> None:
        """Reading a name never written raises BlobNotFound that names the blob."""
        with pytest.raises(BlobNotFound) as caught:
            await store.get("checkpoints/none.json")
        assert caught.value.blob == "checkpoints/none.json"
        assert "checkpoints/none.json" in str(caught.value)

    async def test_list_by_prefix_sorted(self, store: BlobStore) -> None:
        """list(prefix) returns only matching names, sorted, with sizes and ETags."""
        etags = {}
        for name in ["j/b/2", "j/a", "j/b/1", "jx", "other/j/a"]:
            etags[name] = (await store.put_if_absent(name, name.encode())).etag
        listed = await store.list("j/")
        assert [info.name for info in listed] == ["j/a", "j/b/1", "j/b/2"]
        assert all(info.size == len(info.name) for info in listed)
        assert all(info.etag == etags[info.name] for info in listed)
        assert [info.name for info in await store.list("j")] == ["j/a", "j/b/1", "j/b/2", "jx"]
        assert len(await store.list()) == 5
        assert await store.list("nothing/") == []

    async def test_list_carries_metadata(self, store: BlobStore) -> None:
        """Listed blobs carry the metadata they were written with."""
        await store.put_if_absent("m/1", b"x", {"generation": "7", "Seq_Range": "1-9"})
        [info] = await store.list("m/")
        assert info.metadata == {"generation": "7", "Seq_Range": "1-9"}
        assert info.last_modified is not None


class TestConditionalRead:
    async def test_unchanged_is_none_changed_is_the_new_blob(self, store: BlobStore) -> None:
        """get_if_changed: None while the ETag is the one read, the new bytes after a
        write, BlobNotFound once deleted; without an ETag an ordinary get."""
        first = await store.put_if_absent("c/record", b"one")
        assert await get_if_changed(store, "c/record", first.etag) is None
        second = await store.put("c/record", b"two", if_match=first.etag)
        changed = await get_if_changed(store, "c/record", first.etag)
        assert changed is not None and changed.data == b"two"
        assert changed.info.etag == second.etag
        plain = await get_if_changed(store, "c/record", None)
        assert plain is not None and plain.data == b"two"
        await store.delete("c/record")
        with pytest.raises(BlobNotFound):
            await get_if_changed(store, "c/record", second.etag)

    async def test_a_store_without_conditional_reads_compares_etags(self, store: BlobStore) -> None:
        """A wrapper of the seam that only has `get` still gets the same answers."""

        class OnlyGet:
            description = "only-get"

            async def get(self, name: str) -> Blob:
                return await store.get(name)

        info = await store.put_if_absent("c/other", b"x")
        wrapper: Any = OnlyGet()
        assert await get_if_changed(wrapper, "c/other", info.etag) is None
        got = await get_if_changed(wrapper, "c/other", '"stale"')
        assert got is not None and got.data == b"x"


class TestDelete:
    async def test_delete_removes_from_get_and_list(self, store: BlobStore) -> None:
        """A deleted blob is gone from get and list, and its name can be written again."""
        await store.put_if_absent("d/1", b"x")
        await store.put_if_absent("d/2", b"y")
        await store.delete("d/1")
        with pytest.raises(BlobNotFound):
            await store.get("d/1")
        assert [info.name for info in await store.list("d/")] == ["d/2"]
        await store.put_if_absent("d/1", b"again")
        assert (await store.get("d/1")).data == b"again"

    async def test_delete_missing_raises_blob_not_found(self, store: BlobStore) -> None:
        """Deleting a name that does not exist raises BlobNotFound naming it."""
        with pytest.raises(BlobNotFound) as caught:
            await store.delete("never")
        assert caught.value.blob == "never"

    async def test_conditional_delete(self, store: BlobStore) -> None:
        """Delete with a stale ETag fails and keeps the blob; with the current one it works."""
        old = await store.put_if_absent("cd", b"1")
        new = await store.put("cd", b"2", if_match=old.etag)
        with pytest.raises(PreconditionFailed):
            await store.delete("cd", if_match=old.etag)
        assert (await store.get("cd")).data == b"2"
        await store.delete("cd", if_match=new.etag)
        assert await store.list("cd") == []


class TestLeases:
    async def test_acquire_creates_missing_blob_empty(self, store: BlobStore) -> None:
        """Acquiring a lease on a missing name creates it as an empty blob."""
        await store.acquire_lease("leases/pair-a", new_lease(), 15)
        [info] = await store.list("leases/")
        assert (info.name, info.size) == ("leases/pair-a", 0)

    async def test_acquire_keeps_existing_content(self, store: BlobStore) -> None:
        """Leasing an existing blob leaves its bytes alone."""
        await store.put_if_absent("leases/kept", b"holder-info")
        await store.acquire_lease("leases/kept", new_lease(), 20)
        assert (await store.get("leases/kept")).data == b"holder-info"

    async def test_second_holder_is_refused(self, store: BlobStore) -> None:
        """While one holder has the lease, another's acquire raises LeaseHeld naming it."""
        await store.acquire_lease("leases/p", new_lease(), 60)
        with pytest.raises(LeaseHeld) as caught:
            await store.acquire_lease("leases/p", new_lease(), 60)
        assert caught.value.blob == "leases/p"

    async def test_holder_renews_and_reacquires(self, store: BlobStore) -> None:
        """The holder can renew and re-acquire with its own id; others still cannot."""
        mine = new_lease()
        await store.acquire_lease("leases/r", mine, 15)
        await store.renew_lease("leases/r", mine)
        await store.acquire_lease("leases/r", mine, 30)
        with pytest.raises(LeaseHeld):
            await store.acquire_lease("leases/r", new_lease(), 15)

    async def test_release_lets_another_acquire(self, store: BlobStore) -> None:
        """After release, another holder acquires at once and the first one's renew fails."""
        first, second = new_lease(), new_lease()
        await store.acquire_lease("leases/x", first, 60)
        await store.release_lease("leases/x", first)
        await store.acquire_lease("leases/x", second, 60)
        with pytest.raises(LeaseLost):
            await store.renew_lease("leases/x", first)

    async def test_foreign_renew_and_release_fail(self, store: BlobStore) -> None:
        """Renewing or releasing with an id that does not hold the lease raises LeaseLost."""
        await store.acquire_lease("leases/f", new_lease(), 60)
        with pytest.raises(LeaseLost):
            await store.renew_lease("leases/f", new_lease())
        with pytest.raises(LeaseLost):
            await store.release_lease("leases/f", new_lease())

    async def test_leased_blob_cannot_be_written_or_deleted(self, store: BlobStore) -> None:
        """A leased blob refuses put and delete with LeaseHeld (leases sit on own blobs)."""
        lease = new_lease()
        await store.acquire_lease("leases/w", lease, 60)
        with pytest.raises(LeaseHeld):
            await store.put("leases/w", b"x")
        with pytest.raises(LeaseHeld):
            await store.delete("leases/w")
        await store.release_lease("leases/w", lease)
        await store.put("leases/w", b"x")

    async def test_bad_lease_arguments_are_refused(self, store: BlobStore) -> None:
        """Durations outside 15-60 s and non-GUID ids raise ValueError naming the value."""
        with pytest.raises(ValueError, match="10"):
            await store.acquire_lease("leases/bad", new_lease(), 10)
        with pytest.raises(ValueError, match="61"):
            await store.acquire_lease("leases/bad", new_lease(), 61)
        with pytest.raises(ValueError, match="holder-1"):
            await store.acquire_lease("leases/bad", "holder-1", 15)
        assert await store.list("leases/") == []

    @pytest.mark.slow
    async def test_expired_lease_passes_to_another_holder(
        self, store: BlobStore, folder_clock: ShiftedClock
    ) -> None:
        """A lease not renewed for 15 s expires; another holder takes it, the first loses it.

        The folder's 15 s pass on its injected clock; Azurite's clock cannot be moved, so
        there the second holder tries until the lease has expired (about 15 s, no more)."""
        first, second = new_lease(), new_lease()
        taken_at = time.monotonic()
        await store.acquire_lease("leases/e", first, 15)
        with pytest.raises(LeaseHeld):
            await store.acquire_lease("leases/e", second, 15)

        async def second_takes_it() -> bool:
            try:
                await store.acquire_lease("leases/e", second, 15)
            except LeaseHeld:
                return False
            return True

        if isinstance(store, LocalFolderStore):
            folder_clock.offset = 14.5
            assert not await second_takes_it(), "the lease ended before its 15 s"
            folder_clock.offset = 15.5
            assert await second_takes_it()
        else:
            await wait_for(second_takes_it, 30, "the unrenewed lease to expire", interval=0.5)
            assert time.monotonic() - taken_at >= 14, "the lease ended before its 15 s"
        with pytest.raises(LeaseLost):
            await store.renew_lease("leases/e", first)
        await store.release_lease("leases/e", second)


class TestNames:
    @pytest.mark.parametrize(
        "name", ["", "/abs/path", "../escape", "a/../b", "a//b", "trailing/", "a\\b", "dot."]
    )
    async def test_invalid_names_are_refused(self, store: BlobStore, name: str) -> None:
        """Names that cannot be one path in both backends raise ValueError naming them."""
        with pytest.raises(ValueError) as caught:
            await store.put_if_absent(name, b"x")
        assert repr(name) in str(caught.value)
        with pytest.raises(ValueError):
            await store.get(name)
        assert await store.list() == []

    async def test_invalid_metadata_is_refused(self, store: BlobStore) -> None:
        """Metadata keys that are not identifiers, or non-ASCII values, are refused by name."""
        with pytest.raises(ValueError, match="'bad-key'"):
            await store.put_if_absent("m", b"x", {"bad-key": "v"})
        with pytest.raises(ValueError, match="'note'"):
            await store.put_if_absent("m", b"x", {"note": "café"})
        assert await store.list() == []
