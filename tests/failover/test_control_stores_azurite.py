"""Three control stores as three Azurite containers, one reached through a relay that
is cut or swallows requests (a region's link down): the majority rule on real blobs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest

from failover.control_record import control_blob_name
from failover.control_stores import ControlStores, NoMajority
from storage import AzureBlobStore
from tests.failover.control_fixtures import switch_to
from tests.fixtures.azurite import Azurite, fresh_container
from tests.replicator.blob_faults import BlackHoleRelay, store_through_relay


class Three:
    def __init__(self, stores: list[AzureBlobStore], relays: list[BlackHoleRelay]) -> None:
        self.stores = stores
        # Links of the second and third stores.
        self.relays = relays
        self.relay = relays[1]
        # A short timeout: a swallowed request must count against, not hang the write.
        self.control = ControlStores(stores, timeout_seconds=1.5)


@pytest.fixture
async def three(azurite: Azurite) -> AsyncIterator[Three]:
    async with AsyncExitStack() as stack:
        direct = [await stack.enter_async_context(fresh_container(azurite)) for _ in range(3)]
        # The second and third stores: their containers reached through relays.
        linked = [
            await stack.enter_async_context(store_through_relay(azurite, store.container_name))
            for store in direct[1:]
        ]
        yield Three([direct[0], *(s for s, _ in linked)], [r for _, r in linked])


class TestAzuriteMajority:
    async def test_all_up_writes_three(self, three: Three) -> None:
        """A switchover reaches all three containers; each holds the same record."""
        done = await three.control.transition("app", switch_to("westus"))
        assert len(done.written) == 3
        for store in three.stores:
            assert (await store.get(control_blob_name("app"))).data == done.record.to_json()

    async def test_one_link_cut_commits_and_repairs_on_return(self, three: Three) -> None:
        """With the third store's link cut a transition commits on two; once the link is
        back, a read writes the record onto the third container."""
        await three.relay.stop()
        done = await three.control.transition("app", switch_to("westus"))
        assert len(done.written) == 2 and len(done.missed) == 1
        await three.relay.start()
        read = await three.control.read("app")
        assert read.committed is not None and read.committed.key == done.record.key
        held = await three.stores[2].get(control_blob_name("app"))
        assert held.data == done.record.to_json()

    async def test_swallowed_link_counts_against_within_the_timeout(self, three: Three) -> None:
        """A link that accepts and never answers costs one timeout, not the write."""
        await three.relay.swallow()
        done = await three.control.transition("app", switch_to("westus"))
        assert len(done.written) == 2
        assert "no answer in time" in next(iter(done.missed.values()))

    async def test_two_links_cut_is_refused(self, three: Three) -> None:
        """With two of three links cut nothing is decided or written: NoMajority names
        both stores, and the reachable container is left as it was."""
        for relay in three.relays:
            await relay.stop()
        with pytest.raises(NoMajority, match="only 1 of 3") as caught:
            await three.control.transition("app", switch_to("westus"))
        assert set(caught.value.problems) == set(three.control.descriptions[1:])
        assert await three.stores[0].list("failover/") == []
