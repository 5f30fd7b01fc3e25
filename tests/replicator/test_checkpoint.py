"""Checkpoints: their format, and how often the pair writes them (replicator/checkpoint.py)."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter

import pytest

from replicator.checkpoint import Checkpoint, CheckpointStore, ItemCheckpoint
from replicator.errors import CheckpointConflict
from replicator.pair import PairReplicator
from storage import AzureBlobStore, StorageError, WriteConflict
from tests.fixtures.regions import World
from tests.fixtures.waiting import wait_for
from vault.models import Attributes, ItemKind

EVENTS = 40


class CountingCheckpoints(CheckpointStore):
    """The real store over Azurite, counting its writes per target."""

    def __init__(self, store: CheckpointStore) -> None:
        super().__init__(store.blobs)
        self.writes: Counter[str] = Counter()

    async def save(self, checkpoint: Checkpoint) -> None:
        await super().save(checkpoint)
        self.writes[checkpoint.target] += 1


async def started(replicator: PairReplicator, stop: asyncio.Event) -> asyncio.Task[None]:
    """`run()` in a task, past its start-up reconciliation and sweep."""
    task = asyncio.create_task(replicator.run(stop))
    while replicator.deletions.last_sweep is None:
        await asyncio.sleep(0.02)
    return task


async def burst(world: World, replicator: PairReplicator, names: list[str]) -> float:
    """Write and announce each name on the primary, one event at a time; wait until all
    are applied. Returns the burst's duration in seconds."""
    began = time.monotonic()
    for name in names:
        await world.vaults["eastus"].set_secret(name, f"value-{name}", Attributes())
        replicator.notify(ItemKind.SECRET, name)
        await asyncio.sleep(0.02)  # let the loop take it as its own batch
    while len(replicator.targets["westus"].checkpoint.items) < len(names):
        await asyncio.sleep(0.02)
    return time.monotonic() - began


class TestFormat:
    def test_history_round_trips_and_older_readers_see_a_live_entry(self) -> None:
        """An entry with a history keeps it; its fifth element (deletion time) stays null,
        so a reader that knows only four or five elements reads it as live."""
        cp = Checkpoint(pair="p", target="t")
        cp.items["secret/a"] = ItemCheckpoint("f", "sv", "tv", 1.0, history="h1")
        cp.items["secret/b"] = ItemCheckpoint("f", "sv", None, 1.0, deleted_at=2.0)
        cp.items["secret/c"] = ItemCheckpoint("f", "sv", "tv", 1.0)
        raw = json.loads(cp.to_json())["items"]
        assert raw["secret/a"][4] is None and raw["secret/a"][5] == "h1"
        assert len(raw["secret/b"]) == 5 and len(raw["secret/c"]) == 4
        back = Checkpoint.from_json(cp.to_json(), etag=None)
        assert back.items == cp.items


class TestConflicts:
    async def test_other_writers_checkpoint_is_never_overwritten(
        self, blob_container: AzureBlobStore
    ) -> None:
        """A first save of a checkpoint another writer created meanwhile, and a save over
        a stale ETag, raise CheckpointConflict (a WriteConflict, not a StorageError) and
        leave the other writer's checkpoint as it is."""
        mine, theirs = CheckpointStore(blob_container), CheckpointStore(blob_container)
        entry = ItemCheckpoint("f", "v1", "t1", 1.0)
        ours = await mine.load("app", "westus")
        other = await theirs.load("app", "westus")
        other.items["secret/theirs"] = entry
        await theirs.save(other)
        for attempt in ("created meanwhile", "stale etag"):
            ours.items["secret/mine"] = entry
            with pytest.raises(CheckpointConflict) as caught:
                await mine.save(ours)
            assert str(caught.value) == (
                "checkpoint checkpoints/app/westus.json was changed by another writer"
            ), attempt
            assert isinstance(caught.value, WriteConflict)
            assert not isinstance(caught.value, StorageError)
            stored = await mine.load("app", "westus")
            assert list(stored.items) == ["secret/theirs"]
            ours = await mine.load("app", "westus")
            await theirs.save(other)  # the other writer again, so our ETag goes stale

    async def test_saves_over_the_etag_read(self, blob_container: AzureBlobStore) -> None:
        """A save over the version it read succeeds and takes the new ETag, so the next
        save by the same writer succeeds too."""
        store = CheckpointStore(blob_container)
        checkpoint = await store.load("app", "westus")
        for version in ("v1", "v2"):
            checkpoint.items["secret/a"] = ItemCheckpoint("f", version, "t", 1.0)
            await store.save(checkpoint)
            assert checkpoint.etag == (await store.load("app", "westus")).etag
        assert (await store.load("app", "westus")).items["secret/a"].source_version == "v2"


class TestWrites:
    async def test_burst_of_events_writes_about_once_a_second(self, world: World) -> None:
        """40 events one by one: a handful of checkpoint writes (at most one a second
        plus the stop's), not one per event batch; the stop writes every item."""
        checkpoints = world.checkpoints = CountingCheckpoints(world.checkpoints)
        replicator = world.replicator(world.pair())
        stop = asyncio.Event()
        task = await started(replicator, stop)
        checkpoints.writes.clear()

        seconds = await burst(world, replicator, [f"burst-{i:02d}" for i in range(EVENTS)])
        stop.set()
        await task

        writes = checkpoints.writes["westus"]
        assert writes <= seconds + 2, (writes, seconds)
        assert writes * 4 <= EVENTS, writes
        saved = await world.checkpoints.load("app", "westus")
        assert len(saved.items) == EVENTS

    async def test_a_write_put_off_happens_without_further_events(self, world: World) -> None:
        """A change applied right after a write reaches storage within about a second,
        although no other event or pass comes."""
        replicator = world.replicator(world.pair())
        stop = asyncio.Event()
        task = await started(replicator, stop)
        await burst(world, replicator, ["first", "second"])

        async def both_written() -> bool:
            return len((await world.checkpoints.load("app", "westus")).items) >= 2

        await wait_for(both_written, 5, "the put-off write")
        stop.set()
        await task

    async def test_restart_after_a_clean_stop_copies_nothing(self, world: World) -> None:
        """After a burst and a clean stop, a new replicator finds every item in its
        checkpoint: its poll reads nothing from the target and copies nothing."""
        names = [f"again-{i:02d}" for i in range(10)]
        replicator = world.replicator(world.pair())
        stop = asyncio.Event()
        task = await started(replicator, stop)
        await burst(world, replicator, names)
        stop.set()
        await task

        restarted = world.replicator(world.pair())
        await restarted.load()
        world.emulators["westus"].reset_stats()
        report = await restarted.poll()
        assert report.copied == 0 and report.unchanged == len(names)
        assert world.emulators["westus"].stats()["total"] == 0
        for name in names:
            assert len(await world.vaults["westus"].list_versions(ItemKind.SECRET, name)) == 1
