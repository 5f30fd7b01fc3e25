"""RPO and per-target lag, as DESIGN.md defines them.

A change is *pending* on a target from the moment it happened on the primary (the
source version's `updated_on`) until kvdr applied it there. Lag of a target is the age
of its oldest pending change; RPO of a pair is the largest lag among its targets (0 when
every target is caught up).

While the primary cannot be read, changes made there since the last listing that
succeeded are unseen but at risk all the same: RPO is then at least the time since that
listing began, so a primary outage shows in `kvdr_rpo_seconds` (and its alert) while it
lasts instead of reading 0. The per-target lag counts only changes kvdr has seen.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable


class LagTracker:
    """Pending changes of one pair, per target."""

    def __init__(self, targets: Iterable[str], clock: Callable[[], float] = time.time) -> None:
        self._pending: dict[str, dict[str, float]] = {t: {} for t in targets}
        self._clock = clock
        # When the last listing of the primary that succeeded began; set while it fails.
        self._unread_since: float | None = None
        self._last_read: float | None = None

    def source_read(self, began: float) -> None:
        """A listing of the primary that began at `began` succeeded."""
        self._last_read = began
        self._unread_since = None

    def source_failed(self) -> None:
        """Reading the primary failed: whatever changed there since the last good listing
        counts toward RPO until one succeeds again."""
        if self._unread_since is None:
            self._unread_since = self._last_read if self._last_read is not None else self._clock()

    def mark_pending(self, target: str, item: str, since: float) -> None:
        """Record that `item` changed at `since` (epoch seconds) and awaits `target`."""
        pending = self._pending[target]
        previous = pending.get(item)
        # Keep the oldest: a second change to an item already pending does not make the
        # first one younger.
        pending[item] = since if previous is None else min(previous, since)

    def mark_applied(self, target: str, item: str) -> None:
        self._pending[target].pop(item, None)

    def pending(self, target: str) -> int:
        return len(self._pending[target])

    def oldest(self, target: str, limit: int) -> list[tuple[str, float]]:
        """Up to `limit` pending items of `target`, oldest first: (item key, since)."""
        pending = self._pending[target]
        return sorted(pending.items(), key=lambda kv: (kv[1], kv[0]))[:limit]

    def lag(self, target: str) -> float:
        pending = self._pending[target]
        if not pending:
            return 0.0
        return max(0.0, self._clock() - min(pending.values()))

    def rpo(self) -> float:
        seen = max((self.lag(t) for t in self._pending), default=0.0)
        if self._unread_since is None:
            return seen
        return max(seen, self._clock() - self._unread_since)
