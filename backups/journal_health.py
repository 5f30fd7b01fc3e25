"""What is wrong with the journal right now, and since when.

The journal's loop never ends on an error: a pass that fails (storage down while a
segment or a snapshot is due, a KEK that cannot wrap, a bug) is recorded here, retried
on the next pass, and cleared by the first success. The daemon shows these problems on
`/readyz`, in `/status` (`kvdr status`, the dashboard) and counts each failed pass in
`kvdr_replication_errors_total{target="journal"}` through the `on_failure` hook (the
metric belongs to the replicator, which this part may not import).

Problems name the pair and the blob or store, never an item or a value.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

log = structlog.get_logger("kvdr.backups")

# What failed: a segment write, a snapshot, or a whole pass of the loop.
FLUSH = "journal_flush"
SNAPSHOT = "journal_snapshot"
LOOP = "journal_loop"
# The pair of a problem that is not one pair's (the loop itself).
ALL_PAIRS = ""

FailureHook = Callable[[str, str], None]


@dataclass
class Problem:
    what: str
    pair: str
    error: str
    since: float
    attempts: int = 1


class JournalHealth:
    """The journal's open problems, keyed by (what, pair)."""

    def __init__(
        self, clock: Callable[[], float] = time.time, on_failure: FailureHook | None = None
    ) -> None:
        self._clock = clock
        self._on_failure = on_failure
        self._problems: dict[tuple[str, str], Problem] = {}

    @property
    def ok(self) -> bool:
        return not self._problems

    def failed(self, what: str, pair: str, error: str) -> None:
        """One failed attempt: opens the problem, or counts one more attempt of it."""
        problem = self._problems.get((what, pair))
        if problem is None:
            self._problems[(what, pair)] = Problem(what, pair, error, self._clock())
            log.error("backups.journal_unhealthy", what=what, pair=pair or None, error=error)
        else:
            problem.error = error
            problem.attempts += 1
        if self._on_failure is not None:
            self._on_failure(pair, what)

    def cleared(self, what: str, pair: str) -> None:
        """A success: closes the problem, if there was one (logged with its duration)."""
        problem = self._problems.pop((what, pair), None)
        if problem is not None:
            log.info(
                "backups.journal_recovered",
                what=what,
                pair=pair or None,
                after_seconds=round(self._clock() - problem.since, 3),
                attempts=problem.attempts,
            )

    def summary(self) -> str:
        """One line for `/readyz`: empty when healthy."""
        return "; ".join(
            f"{p.what}{f' of pair {p.pair}' if p.pair else ''}: {p.error}" for p in self._sorted()
        )

    def as_dict(self) -> dict[str, Any]:
        now = self._clock()
        return {
            "ok": self.ok,
            "problems": [
                {
                    "what": p.what,
                    "pair": p.pair or None,
                    "error": p.error,
                    "since": datetime.fromtimestamp(p.since, UTC).isoformat(),
                    "for_seconds": round(now - p.since, 3),
                    "attempts": p.attempts,
                }
                for p in self._sorted()
            ],
        }

    def _sorted(self) -> list[Problem]:
        return [self._problems[k] for k in sorted(self._problems)]
