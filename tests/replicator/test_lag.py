"""RPO and lag bookkeeping (replicator/lag.py)."""

from __future__ import annotations

from replicator.lag import LagTracker
from tests.fixtures.clock import ManualClock


class TestLagTracker:
    def test_caught_up_is_zero(self) -> None:
        """With nothing pending, lag and RPO are 0."""
        lag = LagTracker(["westus"], ManualClock(1000.0))
        assert lag.lag("westus") == 0.0 and lag.rpo() == 0.0

    def test_lag_is_age_of_oldest_pending_change(self) -> None:
        """Lag counts from when the oldest unapplied change happened on the primary."""
        clock = ManualClock(1000.0)
        lag = LagTracker(["westus"], clock)
        lag.mark_pending("westus", "secret/a", 990.0)
        lag.mark_pending("westus", "secret/b", 995.0)
        clock.now = 1010.0
        assert lag.lag("westus") == 20.0
        lag.mark_applied("westus", "secret/a")
        assert lag.lag("westus") == 15.0

    def test_second_change_does_not_rejuvenate_pending_item(self) -> None:
        """A newer change to an item already pending keeps the older timestamp."""
        clock = ManualClock(1000.0)
        lag = LagTracker(["westus"], clock)
        lag.mark_pending("westus", "secret/a", 990.0)
        lag.mark_pending("westus", "secret/a", 999.0)
        assert lag.lag("westus") == 10.0

    def test_rpo_is_worst_target(self) -> None:
        """RPO is the largest lag among the pair's targets."""
        clock = ManualClock(1000.0)
        lag = LagTracker(["westus", "northeurope"], clock)
        lag.mark_pending("westus", "secret/a", 995.0)
        lag.mark_pending("northeurope", "secret/a", 970.0)
        assert lag.rpo() == 30.0


class TestPrimaryUnread:
    def test_rpo_counts_from_the_last_good_listing_while_the_primary_fails(self) -> None:
        """Changes on an unreachable primary are unseen but at risk: RPO grows from the
        start of the last listing that succeeded, and falls back once one succeeds."""
        now = [1000.0]
        lag = LagTracker(["westus"], clock=lambda: now[0])
        lag.source_read(began=1000.0)
        now[0] = 1010.0
        lag.source_failed()
        now[0] = 1025.0
        lag.source_failed()  # a second failure does not move the start
        assert lag.rpo() == 25.0 and lag.lag("westus") == 0.0
        lag.mark_pending("westus", "secret/db", since=990.0)
        assert lag.rpo() == 35.0
        lag.source_read(began=1026.0)
        lag.mark_applied("westus", "secret/db")
        assert lag.rpo() == 0.0
