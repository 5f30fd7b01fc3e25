"""A pair's blob lease: one holder at a time, renewed, and given up before it could
expire when storage stops answering (replicator/lease.py), against Azurite."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from azure.storage.blob.aio import BlobLeaseClient, ContainerClient

from replicator.lease import LeaseTiming, PairLease, lease_blob_name, parse_lease_blob_name
from storage import AzureBlobStore
from tests.fixtures.azurite import Azurite, fresh_container
from tests.replicator.blob_faults import store_through_relay

SHORTEST = LeaseTiming(15)


@pytest.fixture
async def store(azurite: Azurite) -> AsyncIterator[AzureBlobStore]:
    async with fresh_container(azurite) as blobs:
        yield blobs


class TestLeaseTiming:
    def test_intervals_follow_the_period(self) -> None:
        """A 30 s lease renews every 10 s, stops 5 s early and ticks every 3 s."""
        timing = LeaseTiming(30)
        assert (timing.renew_every, timing.margin, timing.tick) == (10.0, 5.0, 3.0)
        assert timing.retry_every == 1.0

    @pytest.mark.parametrize("bad", [14, 61, 20.0, True, "30"])
    def test_outside_azure_limits_is_refused(self, bad: object) -> None:
        """Only whole seconds from 15 to 60 (Azure's lease limits) are accepted."""
        with pytest.raises(ValueError, match="lease duration must be a whole number"):
            LeaseTiming(bad)  # type: ignore[arg-type]

    def test_blob_names_round_trip(self) -> None:
        """leases/<pair> and back; anything else is refused by name."""
        assert parse_lease_blob_name(lease_blob_name("app-1")) == "app-1"
        with pytest.raises(ValueError, match="not a lease blob name"):
            parse_lease_blob_name("checkpoints/app/westus.json")


class TestPairLease:
    async def test_one_holder_at_a_time(self, store: AzureBlobStore) -> None:
        """While one daemon holds a pair's lease another cannot take it; after a release
        it can, at once."""
        first, second = PairLease(store, "app", SHORTEST), PairLease(store, "app", SHORTEST)
        assert await first.acquire()
        assert first.held
        assert not await second.acquire()
        await first.release()
        assert not first.held
        assert await second.acquire()

    async def test_taken_lease_stops_the_keeper(
        self, store: AzureBlobStore, azurite: Azurite
    ) -> None:
        """When another holder has the lease (here: it was broken and taken), the next
        renewal ends `keep()` with the reason and the lease is no longer held."""
        holder, thief = PairLease(store, "app", SHORTEST), PairLease(store, "app", SHORTEST)
        assert await holder.acquire()
        keeper = asyncio.create_task(holder.keep())
        async with ContainerClient.from_connection_string(
            azurite.connection_string, store.container_name
        ) as client:
            await BlobLeaseClient(client.get_blob_client(holder.blob)).break_lease(0)
        assert await thief.acquire()
        reason = await asyncio.wait_for(keeper, SHORTEST.renew_every + 5)
        assert "taken" in reason
        assert not holder.held

    async def test_renewed_while_reachable_given_up_before_expiry_when_not(
        self, store: AzureBlobStore, azurite: Azurite
    ) -> None:
        """Renewals keep a 15 s lease ours for longer than 15 s; with storage refusing
        connections, or accepting them and never answering, `keep()` gives up before the
        lease expires: at that moment nobody else can take it yet. (The three cases run
        side by side, on three pairs, to spend one lease period on all of them.)"""

        async def reachable() -> None:
            holder, other = PairLease(store, "kept", SHORTEST), PairLease(store, "kept", SHORTEST)
            assert await holder.acquire()
            keeper = asyncio.create_task(holder.keep())
            try:
                await asyncio.sleep(SHORTEST.seconds + 1.5)
                assert not keeper.done()
                assert holder.held
                assert not await other.acquire()
            finally:
                keeper.cancel()
            await holder.release()

        async def cut_off(pair: str, fault: str) -> tuple[str, float, bool]:
            other = PairLease(store, pair, SHORTEST)
            async with store_through_relay(azurite, store.container_name) as (blobs, relay):
                holder = PairLease(blobs, pair, SHORTEST)
                assert await holder.acquire()
                granted = time.monotonic()
                keeper = asyncio.create_task(holder.keep())
                await asyncio.sleep(0.5)
                if fault == "refused":
                    await relay.stop()
                else:
                    await relay.swallow()
                reason = await asyncio.wait_for(keeper, SHORTEST.seconds + 5)
                given_up = time.monotonic() - granted
                # The service still has the lease, so no one else could be writing yet.
                taken_by_other = await other.acquire()
                assert not holder.held
            return reason, given_up, taken_by_other

        _, *results = await asyncio.gather(
            reachable(), cut_off("refused", "refused"), cut_off("unanswered", "unanswered")
        )
        for reason, given_up, taken_by_other in results:
            assert not taken_by_other
            assert "expire" in reason
            assert SHORTEST.renew_every <= given_up < SHORTEST.seconds
