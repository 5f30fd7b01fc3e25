"""Polling paced by the health of events (replicator/poll_pacing.py): the arithmetic,
then a pair against real emulators whose interval stretches while events bring every
change and falls back when a poll finds one they missed."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from replicator.poll_pacing import PollPacer
from replicator.settings import ReplicatorSettings
from tests.fixtures.regions import World
from vault.models import Attributes, ItemKind


def pacer(**kw: float) -> PollPacer:
    settings = ReplicatorSettings(
        poll_interval_seconds=kw.get("poll", 10.0),
        poll_read_share=kw.get("share", 0.05),
    )
    return PollPacer.of(settings, int(kw.get("budget", 4000)))


class TestArithmetic:
    def test_without_events_the_configured_interval(self) -> None:
        p = pacer()
        p.poll_done(items_listed=100_000, kinds=1, changes_found=0)
        assert not p.events_healthy and p.interval() == 10.0

    def test_a_100k_vault_with_healthy_events_spends_5_percent(self) -> None:
        """100,000 items are 4,001 requests a poll; 5% of 4,000 per 10 s is 20 a second:
        one poll every 200 s (and a little)."""
        p = pacer()
        p.event_received()
        p.poll_done(items_listed=100_000, kinds=1, changes_found=0)
        assert p.events_healthy and p.last_pages == 4001
        assert p.interval() == 4001 / 20
        # What that costs: requests per 10 s over the budget.
        assert p.last_pages / p.interval() * 10 / 4000 <= 0.05

    def test_a_small_vault_keeps_its_interval(self) -> None:
        """300 items cost 15 requests a poll: within the share at every 10 s, so the
        attribute changes only polling finds are not found later."""
        p = pacer()
        p.event_received()
        p.poll_done(items_listed=300, kinds=3, changes_found=0)
        assert p.events_healthy and p.interval() == 10.0

    def test_a_change_events_missed_brings_the_configured_interval_back(self) -> None:
        p = pacer()
        p.event_received()
        p.poll_done(items_listed=50_000, kinds=1, changes_found=0)
        assert p.interval() == 2001 / 20
        p.poll_done(items_listed=50_001, kinds=1, changes_found=1)
        assert not p.events_healthy and p.interval() == 10.0
        p.poll_done(items_listed=50_001, kinds=1, changes_found=0)
        assert p.interval() == 2002 / 20

    @given(
        st.integers(0, 500_000),
        st.integers(1, 3),
        st.floats(0.01, 1.0),
        st.integers(100, 4000),
    )
    def test_healthy_polling_never_spends_more_than_its_share(
        self, items: int, kinds: int, share: float, budget: int
    ) -> None:
        p = pacer(share=share, budget=budget)
        p.event_received()
        p.poll_done(items_listed=items, kinds=kinds, changes_found=0)
        assert p.last_pages * 10 / p.interval() <= share * budget * (1 + 1e-9)
        assert p.interval() >= 10.0


class TestOnAPair:
    async def test_events_stretch_the_interval_a_missed_change_resets_it(
        self, world: World
    ) -> None:
        """With a read budget so small that one poll of this vault overspends it, healthy
        events stretch the interval; a change no event announced resets it."""
        replicator = world.replicator(world.pair(), poll_interval_seconds=2.0, poll_read_share=0.01)
        # 1% of 100 requests per 10 s: 0.1 requests a second; a 2-page poll -> 20 s.
        replicator.pacer.read_budget_per_10s = 100
        await replicator.load()
        await replicator.reconcile()
        assert replicator.status()["polling"]["interval_seconds"] == 2.0

        # An event brings a change; the poll after it finds nothing events missed.
        await world.vaults["eastus"].set_secret("announced", "v", Attributes())
        assert replicator.notify(ItemKind.SECRET, "announced")
        await replicator.sync_refs(replicator.events.take_all())
        await replicator.poll()
        polling = replicator.status()["polling"]
        assert polling == {"interval_seconds": 20.0, "events_healthy": True, "pages_per_poll": 2}

        # A change no event announced: the next poll finds it, polling speeds up again.
        world.advance_clock()
        await world.vaults["eastus"].set_secret("unannounced", "v", Attributes())
        report = await replicator.poll()
        assert report.copied == 1
        assert replicator.status()["polling"]["interval_seconds"] == 2.0
        assert replicator.status()["polling"]["events_healthy"] is False
