"""The event half of the change feed: parsing, routing, bounds and the event budget
(replicator/change_feed.py, replicator/item_locks.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import REGISTRY

from replicator.change_feed import (
    ChangeFeed,
    DeliveryError,
    EventBudget,
    EventQueue,
    parse_delivery,
)
from replicator.item_locks import ItemLocks
from tests.fixtures.regions import World
from vault.models import Attributes, ItemKind, ItemRef


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def dropped(reason: str) -> float:
    return REGISTRY.get_sample_value("kvdr_events_dropped_total", {"reason": reason}) or 0.0


def event(name: object, vault: str = "eastus", kind: str = "Secret") -> dict[str, Any]:
    return {
        "id": "1",
        "eventType": f"Microsoft.KeyVault.{kind}NewVersionCreated",
        "data": {"VaultName": vault, "ObjectType": kind, "ObjectName": name, "Id": ""},
    }


class TestParsing:
    def test_names_key_vault_cannot_hold_are_dropped_and_counted(self) -> None:
        """Underscores, spaces, 128 characters, non-strings: dropped before anything is
        queued, counted as invalid_name; valid names (127 characters too) pass."""
        before = dropped("invalid_name")
        bad: list[object] = ["bad_name", "x y", "a" * 128, "", 7, "naïve", "a/b"]
        delivery = parse_delivery([event(n) for n in [*bad, "ok-1", "b" * 127]])
        assert [e.name for e in delivery.events] == ["ok-1", "b" * 127]
        assert dropped("invalid_name") - before == len(bad)

    def test_validation_handshake_and_junk(self) -> None:
        """The handshake's code comes back; a batch of non-objects or one too large is
        a DeliveryError; expiry events are not queued."""
        code = parse_delivery(
            {
                "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
                "data": {"validationCode": "abc"},
            }
        ).validation_code
        assert code == "abc"
        with pytest.raises(DeliveryError):
            parse_delivery([1, 2])
        with pytest.raises(DeliveryError):
            parse_delivery([event("a")] * 5001)
        expiry = event("a")
        expiry["eventType"] = "Microsoft.KeyVault.SecretNearExpiry"
        assert parse_delivery([expiry]).events == []


class TestEventQueue:
    def test_bounded_and_deduplicated(self) -> None:
        """A second event for a queued item adds nothing; beyond the limit, nothing."""
        queue = EventQueue(2)
        a, b, c = (ItemRef(ItemKind.SECRET, n) for n in "abc")
        assert queue.put(a, 1.0) and not queue.put(a, 2.0)
        assert queue.put(b, 3.0) and not queue.put(c, 4.0)
        assert queue.take_all() == {a: 1.0, b: 3.0}
        assert len(queue) == 0 and queue.put(c, 5.0)


class TestEventBudget:
    def test_share_of_the_read_budget_per_vault_per_window(self) -> None:
        """10% of 100 requests per 10 s at 2 reads per event: 5 events per vault in any
        10 s; another vault has its own; the window frees them again."""
        clock = Clock()
        budget = EventBudget(100, 0.1, clock)
        assert budget.per_window == 5
        assert [budget.take("https://a") for _ in range(6)] == [True] * 5 + [False]
        assert budget.take("https://b")
        clock.now += 9.9
        assert not budget.take("https://a")
        clock.now += 0.2
        assert budget.take("https://a")


class TestItemLocks:
    async def test_locks_are_forgotten_when_nobody_holds_them(self) -> None:
        """Per-item locks exclude each other while held, and none is kept afterwards."""
        locks = ItemLocks()
        order: list[str] = []
        ref = ItemRef(ItemKind.SECRET, "a")

        async def one(tag: str) -> None:
            async with locks.hold(ref):
                order.append(f"{tag}-in")
                await asyncio.sleep(0.01)
                order.append(f"{tag}-out")

        await asyncio.gather(one("x"), one("y"))
        assert order == ["x-in", "x-out", "y-in", "y-out"]
        assert len(locks) == 0


class TestFeedOnAPair:
    async def test_invalid_name_is_not_queued_and_leaves_no_mark(self, world: World) -> None:
        """An event naming a secret Key Vault could not hold is never queued: no pending
        mark, no RPO, no primary error."""
        replicator = world.replicator(world.pair())
        await replicator.load()
        feed = ChangeFeed(EventBudget(3600, 0.25))
        assert feed.deliver(parse_delivery([event("bad_name")]).events, [replicator]) == 0
        assert len(replicator.events) == 0
        assert replicator.lag.pending("westus") == 0 and replicator.lag.rpo() == 0.0

    async def test_mark_cleared_when_the_primary_says_no_such_item(self, world: World) -> None:
        """An item announced directly (not through the feed) that the primary refuses
        by name, and one it does not hold: syncing clears both marks, RPO is 0 again,
        and no primary error is reported."""
        replicator = world.replicator(world.pair())
        await replicator.load()
        assert replicator.notify(ItemKind.SECRET, "not_a_vault_name")
        assert replicator.notify(ItemKind.SECRET, "never-written")
        assert replicator.lag.pending("westus") == 2
        await replicator.sync_refs(replicator.events.take_all())
        assert replicator.lag.pending("westus") == 0 and replicator.lag.rpo() == 0.0
        assert replicator.source_error is None

    async def test_queue_full_duplicates_and_budget_are_counted(self, world: World) -> None:
        """With room for 3 items and 4 events of budget: duplicates spend nothing, the
        4th new name is refused by the full queue, and once the queue is taken the
        budget refuses the rest; every drop is counted by reason."""
        replicator = world.replicator(world.pair(), event_queue_limit=3)
        await replicator.load()
        feed = ChangeFeed(EventBudget(40, 0.2))  # 8 requests: 4 events per 10 s
        before = {r: dropped(r) for r in ("duplicate", "queue_full", "rate_limited")}
        names = ["a", "a", "b", "b", "c", "d"]
        assert feed.deliver(parse_delivery([event(n) for n in names]).events, [replicator]) == 3
        assert set(r.name for r in replicator.events.take_all()) == {"a", "b", "c"}
        assert feed.deliver(parse_delivery([event(n) for n in "efg"]).events, [replicator]) == 1
        after = {r: dropped(r) - before[r] for r in before}
        assert after == {"duplicate": 2, "queue_full": 1, "rate_limited": 2}
        assert replicator.lag.pending("westus") == 4

    async def test_events_route_by_vault_and_the_pair_syncs_them(self, world: World) -> None:
        """An event of the primary is queued and brings the secret across; one of
        another vault is unmatched and queues nothing."""
        replicator = world.replicator(world.pair())
        await replicator.load()
        await world.vaults["eastus"].set_secret("routed", "v", Attributes())
        feed = ChangeFeed(EventBudget(3600, 0.25))
        before = REGISTRY.get_sample_value("kvdr_events_unmatched_total") or 0.0
        events = parse_delivery([event("routed"), event("elsewhere", vault="other")]).events
        assert feed.deliver(events, [replicator]) == 1
        assert (REGISTRY.get_sample_value("kvdr_events_unmatched_total") or 0.0) - before == 1
        report = await replicator.sync_refs(replicator.events.take_all())
        assert report.copied == 1
        assert (await world.vaults["westus"].get_secret("routed")).value == "v"
