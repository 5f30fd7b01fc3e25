"""A pair's blob lease: one holder at a time, renewed, and given up before it could
expire when storage stops answering; work run under it stops the moment it is lost
(storage/lease.py), against Azurite. The lease's clock is a `VirtualClock`: renewals go
to Azurite for real, the lease period passes without waiting for it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from azure.storage.blob.aio import BlobLeaseClient, ContainerClient
from structlog.testing import capture_logs

from storage import AzureBlobStore, BlobStore, LeaseLost, LeaseTiming, PairLease
from storage.lease import keeping, lease_blob_name, parse_lease_blob_name, run_while_held
from tests.fixtures.azurite import Azurite, fresh_container
from tests.replicator.blob_faults import store_through_relay
from tests.storage.lease_time import CountedRenewals, keeper_task, step_until
from tests.vault.virtual_clock import VirtualClock

SHORTEST = LeaseTiming(15)


@pytest.fixture
async def store(azurite: Azurite) -> AsyncIterator[AzureBlobStore]:
    async with fresh_container(azurite) as blobs:
        yield blobs


def stepped(blobs: BlobStore, pair: str) -> tuple[PairLease, VirtualClock, CountedRenewals]:
    """A lease on `pair` whose time the test steps and whose renewals it counts."""
    clock, renewals = VirtualClock(), CountedRenewals(blobs)
    lease = PairLease(renewals, pair, SHORTEST, clock=clock.time, sleep=clock.sleep)  # type: ignore[arg-type]
    return lease, clock, renewals


async def break_and_take(azurite: Azurite, store: AzureBlobStore, lease: PairLease) -> None:
    """An operator breaks `lease` and another holder takes it."""
    async with ContainerClient.from_connection_string(
        azurite.connection_string, store.container_name
    ) as client:
        await BlobLeaseClient(client.get_blob_client(lease.blob)).break_lease(0)
    assert await PairLease(store, lease.pair, SHORTEST).acquire()


class Work:
    """A piece of work that runs until told to finish, and records being cancelled."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.finish = asyncio.Event()
        self.cancelled = False

    async def __call__(self) -> str:
        self.started.set()
        try:
            await self.finish.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return "done"


@dataclass
class UnderLease:
    """A `Work` started with `run_while_held` under a stepped lease on `app`."""

    lease: PairLease
    clock: VirtualClock
    renewals: CountedRenewals
    work: Work
    run: asyncio.Task[str]
    granted: float

    @classmethod
    async def start(cls, blobs: BlobStore) -> UnderLease:
        lease, clock, renewals = stepped(blobs, "app")
        assert await lease.acquire()
        work = Work()
        run = asyncio.create_task(run_while_held(lease, work()))
        await work.started.wait()
        return cls(lease, clock, renewals, work, run, clock.now)

    async def step(self, seconds: float, *, swallowed: bool = False) -> None:
        """Step the lease's time until the run ends or `seconds` after the grant."""
        await step_until(
            self.clock,
            keeper_task(self.lease.pair),
            self.renewals,
            self.run.done,
            until=self.granted + seconds,
            swallowed=swallowed,
        )


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
        renewal, a third of a period after the grant, ends `keep()` with the reason and
        the lease is no longer held."""
        holder, clock, renewals = stepped(store, "app")
        assert await holder.acquire()
        granted = clock.now
        keeper = asyncio.create_task(holder.keep(), name="lease-app")
        await break_and_take(azurite, store, holder)
        await step_until(clock, keeper, renewals, keeper.done, until=granted + SHORTEST.seconds)
        reason = await asyncio.wait_for(keeper, 30)
        assert "taken" in reason
        assert not holder.held
        assert clock.now - granted == SHORTEST.renew_every
        assert renewals.sent == 1

    async def test_renewed_while_reachable_given_up_before_expiry_when_not(
        self, store: AzureBlobStore, azurite: Azurite
    ) -> None:
        """Renewals keep a 15 s lease ours for longer than 15 s; with storage refusing
        connections, or accepting them and never answering, `keep()` gives up before the
        lease expires: at that moment nobody else can take it yet. (The three cases run
        side by side, on three pairs, each on its own clock.)"""

        async def reachable() -> None:
            holder, clock, renewals = stepped(store, "kept")
            other = PairLease(store, "kept", SHORTEST)
            assert await holder.acquire()
            granted = clock.now
            keeper = asyncio.create_task(holder.keep(), name="lease-kept")
            try:
                await step_until(
                    clock, keeper, renewals, keeper.done, until=granted + SHORTEST.seconds
                )
                clock.advance(1.5)  # 16.5 s after the grant: past one lease period
                assert not keeper.done()
                assert holder.held
                assert renewals.sent == renewals.back == 3
                assert not await other.acquire()
            finally:
                keeper.cancel()
            await holder.release()

        async def cut_off(pair: str, fault: str) -> tuple[str, float, bool]:
            other = PairLease(store, pair, SHORTEST)
            async with store_through_relay(azurite, store.container_name) as (blobs, relay):
                holder, clock, renewals = stepped(blobs, pair)
                assert await holder.acquire()
                granted = clock.now
                keeper = asyncio.create_task(holder.keep(), name=f"lease-{pair}")
                if fault == "refused":
                    await relay.stop()
                else:
                    await relay.swallow()
                await step_until(
                    clock,
                    keeper,
                    renewals,
                    keeper.done,
                    until=granted + 2 * SHORTEST.seconds,
                    swallowed=fault == "unanswered",
                )
                reason = await asyncio.wait_for(keeper, 30)
                given_up = clock.now - granted
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


class TestRunWhileHeld:
    async def test_work_runs_past_the_lease_period_and_the_lease_is_released_after(
        self, store: AzureBlobStore
    ) -> None:
        """Work that outlasts a lease period keeps running under the renewals; its result
        is returned, and the lease is released at once after it (another holder takes it
        without waiting for expiry)."""
        with capture_logs() as logs:
            held = await UnderLease.start(store)
            keeper = keeper_task("app")
            await held.step(SHORTEST.seconds)
            held.clock.advance(1.5)
            assert not held.run.done()
            assert held.lease.held
            held.work.finish.set()
            assert await asyncio.wait_for(held.run, 30) == "done"
        assert held.renewals.sent == 3
        assert keeper.cancelled()
        assert not held.lease.held
        assert await PairLease(store, "app", SHORTEST).acquire()
        assert [e["event"] for e in logs] == ["lease.released"]

    @pytest.mark.parametrize("fault", ["refused", "unanswered"])
    async def test_storage_cut_off_mid_run_cancels_the_work_before_expiry(
        self, store: AzureBlobStore, azurite: Azurite, fault: str
    ) -> None:
        """When storage stops answering (connections refused, or accepted and never
        answered) the work is cancelled and `LeaseLost` raised with the reason, before
        the lease could expire: at that moment nobody else can take it yet."""
        async with store_through_relay(azurite, store.container_name) as (blobs, relay):
            held = await UnderLease.start(blobs)
            if fault == "refused":
                await relay.stop()
            else:
                await relay.swallow()
            await held.step(2 * SHORTEST.seconds, swallowed=fault == "unanswered")
            with pytest.raises(LeaseLost, match="expire") as lost:
                await held.run
        assert lost.value.blob == "leases/app"
        assert held.work.cancelled
        assert held.clock.now - held.granted == 12.5  # a sixth of the 15 s period early
        assert not held.lease.held
        assert not await PairLease(store, "app", SHORTEST).acquire()

    async def test_taken_lease_cancels_the_work(
        self, store: AzureBlobStore, azurite: Azurite
    ) -> None:
        """A lease broken and taken by another holder stops the work at the next renewal,
        and is not released on the way out (it is the other holder's now)."""
        with capture_logs() as logs:
            held = await UnderLease.start(store)
            await break_and_take(azurite, store, held.lease)
            await held.step(SHORTEST.seconds)
            with pytest.raises(LeaseLost, match="taken"):
                await held.run
        assert held.work.cancelled
        assert held.clock.now - held.granted == SHORTEST.renew_every
        assert [e["event"] for e in logs] == ["lease.lost"]
        assert not await PairLease(store, "app", SHORTEST).acquire()

    async def test_failing_work_raises_its_error_and_releases(self, store: AzureBlobStore) -> None:
        """An error of the work is raised as it is (not as a lost lease), and the lease
        is released for the next holder."""
        holder = PairLease(store, "app", SHORTEST)
        assert await holder.acquire()

        async def failing() -> None:
            raise ValueError("bad item")

        with pytest.raises(ValueError, match="bad item"):
            await run_while_held(holder, failing())
        assert await PairLease(store, "app", SHORTEST).acquire()

    async def test_keeper_reports_the_loss_to_a_block_that_keeps_going(
        self, store: AzureBlobStore, azurite: Azurite
    ) -> None:
        """Inside `keeping()`, the keeper says whether and why the lease was lost, and a
        later `run()` refuses to start work at all: the work never runs."""
        holder, clock, renewals = stepped(store, "app")
        assert await holder.acquire()
        async with keeping(holder) as keeper:
            assert (keeper.lost, keeper.reason) == (False, None)
            await break_and_take(azurite, store, holder)
            await step_until(
                clock, keeper_task("app"), renewals, lambda: keeper.lost, until=clock.now + 15
            )
            assert keeper.lost
            assert "taken" in (keeper.reason or "")
            assert await keeper.wait_lost() == keeper.reason
            work = Work()
            with pytest.raises(LeaseLost, match="taken"):
                await keeper.run(work())
            assert not work.started.is_set()
