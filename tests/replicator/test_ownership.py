"""Daemons sharing pairs through leases, in one process (replicator/ownership.py):
real emulators and Azurite; each `PairOwnership` stands for one daemon."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from structlog.testing import capture_logs

from replicator.checkpoint import CheckpointStore
from replicator.ownership import PairOwnership
from replicator.pair import PairReplicator
from replicator.settings import PairSettings, ReplicatorSettings
from storage import BlobStore
from storage.lease import LeaseTiming
from tests.fixtures.regions import World, WorldFactory
from tests.fixtures.waiting import wait_for
from tests.replicator.blob_faults import store_through_relay
from vault.errors import ItemNotFound
from vault.models import Attributes, ItemKind

TIMING = LeaseTiming(15)


async def on_target(world: World, name: str) -> bool:
    try:
        await world.vaults["westus"].get_secret(name)
    except ItemNotFound:
        return False
    return True


@dataclass
class Daemon:
    """One `PairOwnership` running as a task, as one daemon would."""

    ownership: PairOwnership
    stop: asyncio.Event
    task: asyncio.Task[None]

    def leads(self) -> set[str]:
        return {r.pair.name for r in self.ownership.replicators()}

    async def close(self) -> None:
        self.stop.set()
        await asyncio.wait_for(asyncio.gather(self.task, return_exceptions=True), 30)


@contextlib.asynccontextmanager
async def daemon(
    world: World,
    pairs: Sequence[PairSettings],
    instance: str,
    blobs: BlobStore | None = None,
) -> AsyncIterator[Daemon]:
    store = blobs or world.blobs
    settings = ReplicatorSettings(pairs=tuple(pairs), poll_interval_seconds=0.3)

    def make(pair: PairSettings) -> PairReplicator:
        return PairReplicator(
            pair,
            settings,
            world.vaults[pair.primary.region],
            {t.region: world.vaults[t.region] for t in pair.secondaries},
            CheckpointStore(store),
        )

    ownership = PairOwnership(pairs, store, instance, TIMING, make, drain_seconds=2.0)
    await ownership.start()
    stop = asyncio.Event()
    running = Daemon(ownership, stop, asyncio.create_task(ownership.run(stop)))
    try:
        yield running
    finally:
        await running.close()


def split_pairs(world: World, count: int) -> list[PairSettings]:
    """Pairs on the same two vaults, splitting the names by prefix."""
    return [world.pair(f"p{i}", include=(f"p{i}-*",)) for i in range(count)]


class TestSharing:
    async def test_two_daemons_split_the_pairs_and_name_each_other(self, world: World) -> None:
        """A daemon that starts alone takes every pair; a second one gets half of them
        handed over; each pair runs on exactly one, and each daemon names the other as
        the owner of the pairs it does not run."""
        pairs = split_pairs(world, 4)
        async with daemon(world, pairs, "first") as first:
            assert first.leads() == {"p0", "p1", "p2", "p3"}
            async with daemon(world, pairs, "second") as second:
                await wait_for(
                    lambda: len(first.leads()) == 2 and len(second.leads()) == 2,
                    30,
                    "two pairs each",
                )
                assert first.leads().isdisjoint(second.leads())
                await wait_for(
                    lambda: all(
                        p["owner"] == ("first" if p["name"] in first.leads() else "second")
                        for p in second.ownership.status()
                    ),
                    10,
                    "the second daemon naming the first as owner",
                )
                for pair in ("p0", "p1", "p2", "p3"):
                    await world.vaults["eastus"].set_secret(f"{pair}-s", "v", Attributes())
                for pair in ("p0", "p1", "p2", "p3"):
                    await wait_for(lambda p=pair: on_target(world, f"{p}-s"), 15, f"{pair}'s copy")
                standby = next(p for p in first.ownership.status() if not p["leader"])
                assert standby["rpo_seconds"] is None
                assert standby["targets"][0]["items"] is None

    async def test_clean_stop_hands_over_at_once(self, world: World) -> None:
        """A daemon that stops flushes, releases its leases and leaves: the other one
        runs the pair at once, not a lease period later, from the flushed checkpoint."""
        pairs = split_pairs(world, 1)
        await world.vaults["eastus"].set_secret("p0-a", "v", Attributes())
        async with daemon(world, pairs, "owner") as owner, daemon(world, pairs, "heir") as heir:
            assert owner.leads() == {"p0"} and heir.leads() == set()
            await wait_for(lambda: on_target(world, "p0-a"), 15, "the first copy")
            await owner.close()
            stopped = time.monotonic()
            await wait_for(lambda: heir.leads() == {"p0"}, TIMING.seconds, "the heir")
            assert time.monotonic() - stopped < TIMING.seconds / 2
            checkpoint = await world.checkpoints.load("p0", "westus")
            assert "secret/p0-a" in checkpoint.items
            # The leaver deleted its heartbeat; only the heir's is left.
            assert len(await world.blobs.list("members/")) == 1

    async def test_checkpoint_written_by_another_restarts_the_pair(self, world: World) -> None:
        """When someone else writes the pair's checkpoint (say `kvdr sync --once`), the
        owner's next write is refused; it starts over from the stored checkpoint and
        keeps replicating under its lease."""
        pairs = split_pairs(world, 1)
        await world.vaults["eastus"].set_secret("p0-a", "v", Attributes())
        with capture_logs() as logs:
            async with daemon(world, pairs, "only") as only:
                await wait_for(lambda: on_target(world, "p0-a"), 15, "the first copy")
                await wait_for(
                    lambda: only.ownership.status()[0]["last_reconcile"], 10, "a full pass"
                )
                other = CheckpointStore(world.blobs)
                checkpoint = await other.load("p0", "westus")
                await other.save(checkpoint)
                await world.vaults["eastus"].set_secret("p0-b", "v", Attributes())
                await wait_for(lambda: on_target(world, "p0-b"), 15, "the copy after the restart")
                assert only.leads() == {"p0"}
        assert any(e["event"] == "pair.restarting" and "another writer" in e["error"] for e in logs)


class TestLostLease:
    async def test_unreachable_storage_stops_the_pair_before_another_takes_it(
        self, make_world: WorldFactory
    ) -> None:
        """A daemon cut off from blob storage stops its pair before the lease can expire
        (nobody else can take it yet at that moment), without crashing; the other daemon
        takes the pair after expiry and replicates on, with no version written twice;
        back online, the first names the second as owner."""
        world = await make_world()
        pairs = split_pairs(world, 1)
        async with store_through_relay(world.azurite, world.blobs.container_name) as (
            cut_off,
            relay,
        ):
            with capture_logs() as logs:
                async with daemon(world, pairs, "cut-off", blobs=cut_off) as first:
                    assert first.leads() == {"p0"}
                    async with daemon(world, pairs, "healthy") as second:
                        await world.vaults["eastus"].set_secret("p0-a", "v", Attributes())
                        await wait_for(lambda: on_target(world, "p0-a"), 15, "the first copy")
                        await relay.stop()
                        await wait_for(lambda: not first.leads(), TIMING.seconds, "the stop")
                        taken_at_stop = second.leads()
                        await wait_for(
                            lambda: second.leads() == {"p0"}, TIMING.seconds, "the take-over"
                        )
                        await world.vaults["eastus"].set_secret("p0-b", "v", Attributes())
                        await wait_for(lambda: on_target(world, "p0-b"), 15, "the heir's copy")
                        await relay.start()
                        await wait_for(
                            lambda: first.ownership.status()[0]["owner"] == "healthy",
                            10,
                            "the first daemon naming the heir",
                        )
                        assert not first.task.done()
                        assert first.leads() == set()
        assert taken_at_stop == set()
        assert any(e["event"] == "pair.stopped_lease_lost" for e in logs)
        for name in ("p0-a", "p0-b"):
            versions = await world.vaults["westus"].list_versions(ItemKind.SECRET, name)
            assert len(versions) == 1
