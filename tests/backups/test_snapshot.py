"""Snapshots (backups/snapshot.py): compaction equals replay, later snapshots build on
earlier ones, never over a gap; a journal restarts from a snapshot."""

from __future__ import annotations

from typing import Any

import pytest

from backups.catalog import load_catalog
from backups.errors import JournalGap
from backups.replay import replay
from backups.snapshot import create_snapshot
from backups.state import PairState
from backups.stores import BackupStores
from storage import AzureBlobStore
from tests.backups.conftest import RING, make_journal, secret_change
from tests.fixtures.waiting import wait_for
from vault.models import ChangeOp, ItemKind

PAIR = "app"


def summary(state: PairState) -> dict[str, Any]:
    """Everything a restore would use, comparable with ==."""
    return {
        str(ref): (
            item.deleted,
            [(v.props, v.payload) for v in item.ordered()],
        )
        for ref, item in state.items.items()
    }


async def full_replay(store: AzureBlobStore, use_snapshot: bool) -> tuple[PairState, int]:
    catalog = await load_catalog(store, PAIR)
    gen = catalog.latest
    assert gen is not None
    state = PairState(PAIR, gen.generation)
    result = await replay(store, RING, gen, state, use_snapshot=use_snapshot)
    return state, result.segments_read


async def write_history(store: AzureBlobStore, rounds: int = 3, start: int = 0) -> None:
    journal = make_journal(store)
    for i in range(start, start + rounds):
        await journal.record(
            [
                secret_change("db", f"v{i}", f"value-{i}"),
                secret_change(f"s{i}", "x1", f"other-{i}", tags={"n": str(i)}),
                secret_change("k", f"k{i}", kind=ItemKind.KEY, payload=f"backup-{i}".encode()),
            ]
        )
        if i % 2:
            await journal.record([secret_change(f"s{i - 1}", "", op=ChangeOp.DELETE)])
        await journal.flush()
    await journal.close()


class TestCompaction:
    async def test_snapshot_equals_replay_of_the_journal(
        self, blob_container: AzureBlobStore
    ) -> None:
        """The state a snapshot holds is exactly what replaying every segment gives."""
        await write_history(blob_container)
        made = await create_snapshot(BackupStores(blob_container), RING, PAIR)
        assert made is not None and made.written and made.segments_read == 3
        from_segments, _ = await full_replay(blob_container, use_snapshot=False)
        from_snapshot, read = await full_replay(blob_container, use_snapshot=True)
        assert read == 0
        assert summary(from_snapshot) == summary(from_segments)
        assert made.sequence == from_segments.sequence

    async def test_next_snapshot_builds_on_the_previous(
        self, blob_container: AzureBlobStore
    ) -> None:
        """A later snapshot reads the previous snapshot plus only the segments after it."""
        stores = BackupStores(blob_container)
        await write_history(blob_container, rounds=2)
        first = await create_snapshot(stores, RING, PAIR)
        await write_history(blob_container, rounds=2, start=5)
        second = await create_snapshot(stores, RING, PAIR)
        assert first is not None and second is not None
        assert second.sequence > first.sequence and second.segments_read == 2
        from_segments, _ = await full_replay(blob_container, use_snapshot=False)
        from_snapshot, _ = await full_replay(blob_container, use_snapshot=True)
        assert summary(from_snapshot) == summary(from_segments)

    async def test_nothing_new_means_no_snapshot(self, blob_container: AzureBlobStore) -> None:
        """No journal, or nothing after the last snapshot: no new snapshot is written."""
        stores = BackupStores(blob_container)
        assert await create_snapshot(stores, RING, PAIR) is None
        await write_history(blob_container, rounds=1)
        assert await create_snapshot(stores, RING, PAIR) is not None
        assert await create_snapshot(stores, RING, PAIR) is None

    async def test_never_over_a_gap(self, blob_container: AzureBlobStore) -> None:
        """A missing segment stops compaction with the gap's range."""
        await write_history(blob_container, rounds=3)
        gen = (await load_catalog(blob_container, PAIR)).latest
        assert gen is not None
        await blob_container.delete(gen.segments[1].blob)
        with pytest.raises(JournalGap) as caught:
            await create_snapshot(BackupStores(blob_container), RING, PAIR)
        assert caught.value.first == gen.segments[1].name.first
        assert gen.segments[2].blob in str(caught.value)


class TestJournalRestartsFromSnapshots:
    async def test_restart_reads_snapshot_and_later_segments_only(
        self, blob_container: AzureBlobStore
    ) -> None:
        """With old segments gone (retention), a journal resumes from the snapshot."""
        await write_history(blob_container, rounds=2)
        made = await create_snapshot(BackupStores(blob_container), RING, PAIR)
        assert made is not None
        gen = (await load_catalog(blob_container, PAIR)).latest
        assert gen is not None
        for seg in gen.segments:
            await blob_container.delete(seg.blob)
        journal = make_journal(blob_container)
        position = await journal.position(PAIR)
        assert position.generation == gen.generation and position.sequence == made.sequence
        await journal.record([secret_change("db", "later")])
        await journal.flush()
        from_snapshot, read = await full_replay(blob_container, use_snapshot=True)
        assert read == 1 and from_snapshot.sequence == made.sequence + 1

    async def test_journal_snapshots_on_its_interval(self, blob_container: AzureBlobStore) -> None:
        """The journal's own loop writes a snapshot once the interval has passed."""

        async def snapshots() -> list[int]:
            gen = (await load_catalog(blob_container, PAIR)).latest
            return [s.sequence for s in gen.snapshots] if gen else []

        async with make_journal(blob_container, snapshot_interval_seconds=0.05) as journal:
            await journal.record([secret_change("db", "v1")])
            await wait_for(snapshots, 10, "the loop's snapshot")
        assert await snapshots() == [1]
