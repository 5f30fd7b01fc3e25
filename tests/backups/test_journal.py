"""The journal (backups/journal.py) over real Azurite: sequences, segments, durability,
restart, generations, faults, fencing and replicas."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from structlog.testing import capture_logs

from backups import paths
from backups.catalog import load_catalog
from backups.errors import JournalFenced, JournalUnavailable
from backups.objects import read_segment
from backups.paths import SegmentName
from replicator.sink import version_fingerprint
from storage import AzureBlobStore, BlobStore, StorageUnavailable
from storage.store import BlobInfo
from tests.backups.conftest import RING, make_journal, secret_change
from tests.fixtures.azurite import Azurite, fresh_container, relayed_settings
from tests.fixtures.waiting import wait_for
from tests.storage.tcp_relay import TcpRelay
from vault.models import ChangeOp, ItemKind, ItemRef

PAIR = "app"


async def segments(store: BlobStore, pair: str = PAIR) -> list[SegmentName]:
    catalog = await load_catalog(store, pair)
    return [s.name for g in catalog.ordered() for s in g.segments]


class TestRecording:
    async def test_segments_are_named_by_sequence_range(
        self, blob_container: AzureBlobStore
    ) -> None:
        """Three changes become one segment 1-3 that decrypts back to them in order."""
        journal = make_journal(blob_container)
        await journal.record(
            [
                secret_change("db", "v1", "one"),
                secret_change("db", "v2", "two"),
                secret_change("api", "a1", "x"),
            ]
        )
        await journal.flush()
        (name,) = await segments(blob_container)
        assert (name.first, name.last) == (1, 3)
        segment = await read_segment(blob_container, RING, name)
        assert [c.sequence for c in segment.changes] == [1, 2, 3]
        assert [c.payload for c in segment.changes] == ["one", "two", "x"]
        assert segment.header.prev == ""
        assert (await journal.position(PAIR)).sequence == 3

    async def test_recorded_answers_fingerprints_and_deletions(
        self, blob_container: AzureBlobStore
    ) -> None:
        """recorded() gives version -> fingerprint; {} once deleted; back after recovery."""
        journal = make_journal(blob_container)
        change = secret_change("db", "v1", "one", tags={"env": "prod"})
        await journal.record([change])
        item = ItemRef(ItemKind.SECRET, "db")
        assert change.properties is not None
        assert await journal.recorded(PAIR, item) == {"v1": version_fingerprint(change.properties)}
        await journal.record([secret_change("db", "", op=ChangeOp.DELETE)])
        assert await journal.recorded(PAIR, item) == {}
        await journal.record([secret_change("db", "", op=ChangeOp.RECOVER)])
        assert set(await journal.recorded(PAIR, item)) == {"v1"}
        assert await journal.recorded(PAIR, ItemRef(ItemKind.SECRET, "other")) == {}

    async def test_background_flush_by_count_and_interval(
        self, blob_container: AzureBlobStore
    ) -> None:
        """Inside `async with`, full buffers and the interval write segments unasked."""
        async with make_journal(blob_container, flush_max_changes=5) as journal:
            await journal.record([secret_change(f"s{i}", "v1") for i in range(12)])

            async def all_durable() -> bool:
                return (await journal.position(PAIR)).sequence == 12

            await wait_for(all_durable, 10, "every change durable")
        ranges = [(s.first, s.last) for s in await segments(blob_container)]
        assert ranges == [(1, 5), (6, 10), (11, 12)]

    async def test_sync_durability_and_group_commit(self, blob_container: AzureBlobStore) -> None:
        """In sync mode record() returns once durable; concurrent calls share segments."""
        journal = make_journal(blob_container, durability="sync")
        await asyncio.gather(*(journal.record([secret_change(f"s{i}", "v1")]) for i in range(20)))
        found = await segments(blob_container)
        assert found[-1].last == 20
        assert len(found) < 20  # at least some calls shared one write
        assert sum(s.last - s.first + 1 for s in found) == 20

    async def test_observed_times_never_go_back(self, blob_container: AzureBlobStore) -> None:
        """A change observed earlier but recorded later is stamped with the later time."""
        journal = make_journal(blob_container)
        late = datetime.now(UTC)
        await journal.record([secret_change("a", "v1", at=late)])
        await journal.record([secret_change("b", "v1", at=late - timedelta(seconds=30))])
        await journal.flush()
        (name,) = await segments(blob_container)
        stamped = [c.observed_at for c in (await read_segment(blob_container, RING, name)).changes]
        assert stamped == [late, late]

    async def test_bad_changes_are_refused_without_values(
        self, blob_container: AzureBlobStore
    ) -> None:
        """A naive time, a wrong payload type or foreign properties raise, naming the item."""
        journal = make_journal(blob_container)
        naive = secret_change("db", "v1", "hunter2", at=datetime(2025, 1, 1))
        with pytest.raises(ValueError, match="timezone-aware") as caught:
            await journal.record([naive])
        assert "hunter2" not in str(caught.value)
        with pytest.raises(ValueError, match="must be str"):
            await journal.record([secret_change("db", "v1", payload=b"bytes")])
        with pytest.raises(ValueError, match="must be bytes"):
            await journal.record([secret_change("k", "v1", kind=ItemKind.KEY, payload="text")])


class TestRestart:
    async def test_resumes_the_same_generation(self, blob_container: AzureBlobStore) -> None:
        """A new journal over the same storage continues the generation and its index."""
        first = make_journal(blob_container)
        await first.record([secret_change("db", "v1"), secret_change("db", "v2")])
        await first.close()
        generation = (await first.position(PAIR)).generation
        second = make_journal(blob_container)
        assert set(await second.recorded(PAIR, ItemRef(ItemKind.SECRET, "db"))) == {"v1", "v2"}
        await second.record([secret_change("db", "v3")])
        await second.flush()
        assert await second.position(PAIR) == paths.Pos(generation, 3)
        last = (await segments(blob_container))[-1]
        first_seg = (await segments(blob_container))[0]
        previous = await read_segment(blob_container, RING, first_seg)
        assert (await read_segment(blob_container, RING, last)).header.prev == previous.digest

    async def test_first_start_says_why(self, blob_container: AzureBlobStore) -> None:
        """The first generation of a pair is logged with its reason."""
        with capture_logs() as logs:
            await make_journal(blob_container).pair_log(PAIR)
        (event,) = [e for e in logs if e["event"] == "backups.new_generation"]
        assert event["reason"] == "no journal for this pair yet"

    async def test_missing_segment_starts_a_new_generation(
        self, blob_container: AzureBlobStore
    ) -> None:
        """A removed middle segment breaks continuity: new generation, reason names the gap."""
        journal = make_journal(blob_container)
        for i in range(3):
            await journal.record(
                [secret_change("db", f"v{2 * i}"), secret_change("db", f"v{2 * i + 1}")]
            )
            await journal.flush()
        old = (await journal.position(PAIR)).generation
        middle = (await segments(blob_container))[1]
        await blob_container.delete(middle.blob)
        with capture_logs() as logs:
            restarted = make_journal(blob_container)
            position = await restarted.position(PAIR)
        assert position.generation != old and position.sequence == 0
        (event,) = [e for e in logs if e["event"] == "backups.new_generation"]
        assert "journal gap" in event["reason"] and "sequences 3-4" in event["reason"]
        assert await restarted.recorded(PAIR, ItemRef(ItemKind.SECRET, "db")) == {}
        catalog = await load_catalog(blob_container, PAIR)
        assert old in catalog.generations  # the old generation stays restorable

    async def test_lost_last_segment_is_a_gap_too(self, blob_container: AzureBlobStore) -> None:
        """The head remembers the last durable sequence, so a lost tail is detected."""
        journal = make_journal(blob_container)
        for i in range(2):
            await journal.record([secret_change("db", f"v{i}")])
            await journal.flush()
        await blob_container.delete((await segments(blob_container))[-1].blob)
        with capture_logs() as logs:
            await make_journal(blob_container).pair_log(PAIR)
        (event,) = [e for e in logs if e["event"] == "backups.new_generation"]
        assert "journal gap after 1" in event["reason"] and "up to 2" in event["reason"]

    async def test_corrupted_segment_starts_a_new_generation(
        self, blob_container: AzureBlobStore
    ) -> None:
        """A segment that fails authentication cannot be continued from; its name is logged."""
        journal = make_journal(blob_container)
        await journal.record([secret_change("db", "v1")])
        await journal.flush()
        (name,) = await segments(blob_container)
        blob = await blob_container.get(name.blob)
        damaged = bytearray(blob.data)
        damaged[-5] ^= 0x40
        await blob_container.put(name.blob, bytes(damaged))
        with capture_logs() as logs:
            await make_journal(blob_container).pair_log(PAIR)
        (event,) = [e for e in logs if e["event"] == "backups.new_generation"]
        assert name.blob in event["reason"] and "authentication failed" in event["reason"]


class FlakyPuts:
    """A real store whose next put_if_absent lands but answers as if the line dropped."""

    def __init__(self, inner: BlobStore) -> None:
        self.inner = inner
        self.drop_next_answer = False

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    async def put_if_absent(
        self, name: str, data: bytes, metadata: dict[str, str] | None = None
    ) -> BlobInfo:
        info = await self.inner.put_if_absent(name, data, metadata)
        if self.drop_next_answer:
            self.drop_next_answer = False
            raise StorageUnavailable(f"put_if_absent {name!r}: connection reset", blob=name)
        return info


class TestFaults:
    async def test_storage_outage_keeps_changes_until_it_is_back(
        self, azurite: Azurite, azurite_relay: TcpRelay
    ) -> None:
        """With storage cut, record() still accepts (interval mode), flush fails, and the
        same segment is written once storage is back."""
        settings = relayed_settings(azurite, azurite_relay)
        async with fresh_container(azurite, **settings) as store:
            journal = make_journal(store)
            await journal.record([secret_change("db", "v1")])
            await azurite_relay.stop()
            await journal.record([secret_change("db", "v2")])
            with pytest.raises(JournalUnavailable, match="cannot write journal segment"):
                await journal.flush()
            await azurite_relay.start()
            await journal.flush()
            assert [(s.first, s.last) for s in await segments(store)] == [(1, 2)]

    async def test_retry_after_a_lost_answer_is_not_a_fork(
        self, blob_container: AzureBlobStore
    ) -> None:
        """A write that landed but lost its answer is retried with the same bytes: success."""
        flaky = FlakyPuts(blob_container)
        journal = make_journal(flaky)  # type: ignore[arg-type]
        await journal.record([secret_change("db", "v1")])
        await journal.pair_log(PAIR)
        flaky.drop_next_answer = True
        with pytest.raises(JournalUnavailable):
            await journal.flush()
        await journal.flush()
        assert (await journal.position(PAIR)).sequence == 1
        assert len(await segments(blob_container)) == 1

    async def test_a_second_writer_is_fenced(self, blob_container: AzureBlobStore) -> None:
        """Two journals on one pair: the one that loses the race does not fork the chain;
        its next record() starts again from what storage holds."""
        a, b = make_journal(blob_container), make_journal(blob_container)
        await a.pair_log(PAIR)
        await b.pair_log(PAIR)
        await a.record([secret_change("db", "v1")])
        await a.flush()
        await b.record([secret_change("db", "v9")])
        with pytest.raises(JournalFenced):
            await b.flush()
        with capture_logs() as logs:
            await b.record([secret_change("db", "v10")])
        assert any(e["event"] == "backups.journal_reopened" for e in logs)
        assert set(await b.recorded(PAIR, ItemRef(ItemKind.SECRET, "db"))) == {"v1", "v10"}
        await b.flush()
        await a.record([secret_change("db", "v2")])
        with pytest.raises(JournalFenced):
            await a.flush()
        assert [(s.first, s.last) for s in await segments(blob_container)] == [(1, 1), (2, 2)]


class TestReplicas:
    async def test_every_object_reaches_the_replica(
        self, blob_container: AzureBlobStore, azurite: Azurite
    ) -> None:
        """A second account receives every segment, byte for byte."""
        async with fresh_container(azurite) as replica:
            journal = make_journal(blob_container, replicas=[replica])
            await journal.record([secret_change("db", "v1")])
            await journal.flush()
            (name,) = await segments(blob_container)
            assert (await replica.get(name.blob)).data == (await blob_container.get(name.blob)).data

    async def test_replica_outage_queues_copies(
        self, blob_container: AzureBlobStore, azurite: Azurite, azurite_relay: TcpRelay
    ) -> None:
        """An unreachable replica does not stop the journal; copies follow once it is back."""
        settings = relayed_settings(azurite, azurite_relay, secondary=False)
        async with fresh_container(azurite, **settings) as replica:
            journal = make_journal(blob_container, replicas=[replica])
            await azurite_relay.stop()
            await journal.record([secret_change("db", "v1")])
            await journal.flush()
            assert journal._stores.pending_replica_copies == 1
            await azurite_relay.start()
            await journal._stores.copy_pending()
            (name,) = await segments(blob_container)
            assert (await replica.get(name.blob)).data == (await blob_container.get(name.blob)).data
