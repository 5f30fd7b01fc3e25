"""How often a pair polls its primary: the configured interval while events cannot be
trusted, far less often while they can.

A poll lists every item of every kind the pair mirrors: 4,000 requests for 100,000
items at 25 per page, a whole 10 s budget of the vault (Azure: 4,000 non-create
operations per 10 s), shared with the applications. Events (Event Grid) already bring
each change within a second, so polling only has to catch what events miss.

Events are **healthy** once at least one has been received and the last poll found no
change that events had not already applied. Then the pair polls at `poll_interval`, or
less often where that would spend more than `poll_read_share` (5%) of the primary's read
budget (`vault.other_ops_per_10s`): 100,000 items need 4,001 requests a poll, and 5% of
4,000 per 10 s is 20 requests a second, so such a vault is polled every 200 s. It is
stretched no further than the budget needs: Event Grid sends no event for an attribute
change (enabled, dates, tags), so polling is what finds those, and a small vault polled
every 10 s costs almost nothing (300 items: 13 requests, 0.3% of the budget). A poll
that finds a change events missed (a broken subscription, dropped events) makes events
unhealthy: the configured `poll_interval` applies again, whatever it costs, until a
later poll finds nothing missed. Reconciliation keeps its own interval either way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from replicator.settings import ReplicatorSettings

# Key Vault lists at most 25 items per page.
PAGE_SIZE = 25


@dataclass
class PollPacer:
    """The interval to the next poll, from what events and the last poll showed."""

    poll_interval: float
    read_share: float
    read_budget_per_10s: int
    events_seen: bool = False
    missed_by_events: bool = True
    last_pages: int = 0

    @classmethod
    def of(cls, settings: ReplicatorSettings, read_budget_per_10s: int) -> PollPacer:
        return cls(settings.poll_interval_seconds, settings.poll_read_share, read_budget_per_10s)

    def event_received(self) -> None:
        self.events_seen = True

    def poll_done(self, items_listed: int, kinds: int, changes_found: int) -> None:
        """After a poll of `items_listed` items over `kinds` listings that found
        `changes_found` changes no event had applied."""
        self.last_pages = math.ceil(items_listed / PAGE_SIZE) + kinds
        self.missed_by_events = changes_found > 0

    @property
    def events_healthy(self) -> bool:
        return self.events_seen and not self.missed_by_events

    def budget_interval(self) -> float:
        """The shortest interval at which a poll of the last size stays within the share."""
        per_second = self.read_share * self.read_budget_per_10s / 10
        return self.last_pages / per_second if per_second > 0 else math.inf

    def interval(self) -> float:
        if not self.events_healthy:
            return self.poll_interval
        return max(self.poll_interval, self.budget_interval())

    def status(self) -> dict[str, Any]:
        """What `/status` shows of polling (`polling` of each pair)."""
        return {
            "interval_seconds": round(self.interval(), 1),
            "events_healthy": self.events_healthy,
            "pages_per_poll": self.last_pages,
        }
