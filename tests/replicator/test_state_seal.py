"""Sealed state documents (replicator/state_seal.py): with a state key, the checkpoint
and the deletion guard in blob storage name no item, and still work as before."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from replicator.checkpoint import CheckpointStore, checkpoint_blob_name
from replicator.guard import DeletionGuardStore, GuardLimits, GuardState, guard_blob_name
from replicator.state_seal import StateDocumentUnreadable, StateSealer
from tests.fixtures.regions import World
from tests.fixtures.waiting import wait_for
from vault.models import Attributes, ItemKind

SECRET_NAMES = ("payroll-db-password", "stripe-live-api-key")
KEY = "a-state-key-of-more-than-32-characters-0123456789"


def sealed_world(world: World, key: str = KEY) -> World:
    return dataclasses.replace(world, checkpoints=CheckpointStore(world.blobs, StateSealer(key)))


async def replicate(world: World) -> None:
    for name in SECRET_NAMES:
        await world.vaults["eastus"].set_secret(name, f"value-of-{name}", Attributes())
    replicator = world.replicator(world.pair())
    await replicator.load()
    report = await replicator.poll()
    assert report.copied == len(SECRET_NAMES)
    await replicator.flush()


async def stored(world: World) -> bytes:
    return (await world.blobs.get(checkpoint_blob_name("app", "westus"))).data


class TestSealedCheckpoint:
    async def test_the_stored_checkpoint_names_no_item_and_a_restart_resumes(
        self, world: World
    ) -> None:
        """The blob holds no item name (nor a value); a new replicator with the same
        key reads it back and copies nothing again."""
        sealed = sealed_world(world)
        await replicate(sealed)
        data = await stored(world)
        assert b'"sealed":1' in data
        for name in SECRET_NAMES:
            assert name.encode() not in data and b"value-of" not in data
        restarted = sealed.replicator(sealed.pair())
        await restarted.load()
        assert sorted(restarted.targets["westus"].checkpoint.items) == sorted(
            f"secret/{n}" for n in SECRET_NAMES
        )
        report = await restarted.poll()
        assert report.copied == 0 and report.unchanged == len(SECRET_NAMES)

    async def test_a_checkpoint_from_before_the_key_is_read_then_sealed(self, world: World) -> None:
        """A daemon given a state key reads the plain checkpoint it finds and seals it
        at its next write."""
        await replicate(world)
        assert SECRET_NAMES[0].encode() in await stored(world)
        sealed = sealed_world(world)
        replicator = sealed.replicator(sealed.pair())
        await replicator.load()
        assert len(replicator.targets["westus"].checkpoint.items) == len(SECRET_NAMES)
        await world.vaults["eastus"].set_secret("one-more", "v", Attributes())
        replicator.notify(ItemKind.SECRET, "one-more")
        assert (await replicator.poll()).copied == 1
        await replicator.flush()
        data = await stored(world)
        assert b'"sealed":1' in data and SECRET_NAMES[0].encode() not in data

    async def test_a_sealed_checkpoint_is_refused_without_its_key_naming_the_blob(
        self, world: World
    ) -> None:
        """No key, another key, or the document copied under another name: each a clear
        error naming the blob, never a half-read checkpoint."""
        await replicate(sealed_world(world))
        blob = checkpoint_blob_name("app", "westus")
        with pytest.raises(StateDocumentUnreadable, match="none is configured") as caught:
            await CheckpointStore(world.blobs).load("app", "westus")
        assert blob in str(caught.value)
        other = CheckpointStore(world.blobs, StateSealer("another-key-of-more-than-32-chars-xyz"))
        with pytest.raises(StateDocumentUnreadable, match="another state key"):
            await other.load("app", "westus")
        await world.blobs.put(checkpoint_blob_name("app", "eastus"), await stored(world))
        with pytest.raises(StateDocumentUnreadable, match="does not open") as moved:
            await CheckpointStore(world.blobs, StateSealer(KEY)).load("app", "eastus")
        assert checkpoint_blob_name("app", "eastus") in str(moved.value)


class TestSealedGuard:
    async def test_the_withheld_names_are_sealed_and_read_back(self, world: World) -> None:
        """A tripped guard lists the deletions it withholds: sealed, they are not in the blob."""
        store = DeletionGuardStore(world.blobs, StateSealer(KEY))
        withheld = tuple(f"secret/{n}" for n in SECRET_NAMES)
        state = GuardState(pair="app").trip(1000.0, withheld, 10, GuardLimits(2, 0.1))
        await store.save(state)
        data = (await world.blobs.get(guard_blob_name("app"))).data
        assert all(name.encode() not in data for name in SECRET_NAMES)
        assert (await store.load("app")).withheld == withheld


class TestRefusedPair:
    async def test_a_daemon_with_another_key_refuses_the_pair_and_says_why(
        self, world: World
    ) -> None:
        """The pair does not start (status shows why, naming the blob); nothing is
        copied, and the run ends cleanly when told to stop."""
        await replicate(sealed_world(world))
        other = sealed_world(world, "another-key-of-more-than-32-chars-xyz")
        replicator = other.replicator(other.pair())
        stop = asyncio.Event()
        task = asyncio.create_task(replicator.run(stop))
        await wait_for(lambda: replicator.refused is not None, 10, "the pair refused")
        assert replicator.refused is not None
        assert "another state key" in replicator.refused
        assert checkpoint_blob_name("app", "westus") in replicator.refused
        assert replicator.status()["refused"] == replicator.refused
        stop.set()
        await asyncio.wait_for(task, 10)
