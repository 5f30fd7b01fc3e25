"""What one pair shows: its gauges on `/metrics` and its JSON status (`kvdr status`).

Rendering only: the figures come from the replicator's lag, target states and error
fields. Names and versions only, never values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import structlog

from replicator import metrics
from replicator.accounting import RECENT_ERRORS, TargetState
from replicator.deletions import PairDeletions
from replicator.guard import shown_key
from replicator.lag import LagTracker
from replicator.settings import PairSettings
from vault.models import ItemKind

log = structlog.get_logger("kvdr.replicator")


class RpoAlarm:
    """Publishes a pair's gauges, and logs once when RPO crosses the objective either way."""

    def __init__(self, pair: PairSettings) -> None:
        self._pair = pair
        self._log = log.bind(pair=pair.name)
        self._above = False

    def publish(
        self,
        lag: LagTracker,
        targets: Mapping[str, TargetState],
        kinds: Iterable[ItemKind],
        deletions: PairDeletions,
    ) -> None:
        rpo = lag.rpo()
        above = rpo > self._pair.rpo_objective_seconds
        if above and not self._above:
            self._log.warning(
                "rpo.above_objective",
                rpo_seconds=round(rpo, 1),
                objective_seconds=self._pair.rpo_objective_seconds,
            )
        elif self._above and not above:
            self._log.info("rpo.within_objective", rpo_seconds=round(rpo, 1))
        self._above = above
        name = self._pair.name
        metrics.RPO_SECONDS.labels(name).set(rpo)
        for region, state in targets.items():
            metrics.REPLICATION_LAG_SECONDS.labels(name, region).set(lag.lag(region))
            metrics.CONFLICTS.labels(name, region).set(len(state.conflicts))
            for kind in kinds:
                blocked = sum(1 for item in state.blocked if item.startswith(f"{kind.value}/"))
                metrics.BLOCKED.labels(name, region, kind.value).set(blocked)
        deletions.publish_metrics()


def iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat() if ts else None


# Pending items a target's status names, oldest first: what a promotion reports as lost
# when the old primary is gone before the replicator read them (failover/promote.py).
PENDING_ITEMS_SHOWN = 500


def target_status(
    region: str, state: TargetState, lag: LagTracker, now: float, hide_names: bool = False
) -> dict[str, Any]:
    """One target's part of the pair's status."""
    return {
        "region": region,
        "lag_seconds": round(lag.lag(region), 3),
        "pending": lag.pending(region),
        "pending_items": [
            {"item": shown_key(key, hide_names), "since": iso(since)}
            for key, since in lag.oldest(region, PENDING_ITEMS_SHOWN)
        ],
        "items": len(state.checkpoint.items),
        "last_success": iso(state.last_success),
        "suspended_until": iso(state.suspended_until) if state.suspended_until > now else None,
        "conflicts": [
            {"item": item, "reason": reason} for item, reason in sorted(state.conflicts.items())
        ],
        "blocked": [
            {"item": item, "reason": reason} for item, reason in sorted(state.blocked.items())
        ],
        "recent_errors": list(state.errors),
    }


def pair_status(
    pair: PairSettings,
    *,
    lag: LagTracker,
    targets: Mapping[str, TargetState],
    deletions: PairDeletions,
    last_reconcile: float | None,
    last_poll: float | None,
    source_error: str | None,
    passes: int = 0,
    passes_begun: int = 0,
    refused: str | None,
    sink_errors: Mapping[str, str],
    clock: Callable[[], float],
) -> dict[str, Any]:
    """A JSON-ready view of one pair (names and versions only, never values)."""
    rpo = lag.rpo()
    now = clock()
    return {
        "name": pair.name,
        "primary": pair.primary.region,
        "kinds": sorted(k.value for k in pair.kinds),
        "rpo_seconds": round(rpo, 3),
        "rpo_objective_seconds": pair.rpo_objective_seconds,
        "rpo_ok": rpo <= pair.rpo_objective_seconds,
        "last_reconcile": iso(last_reconcile),
        "last_poll": iso(last_poll),
        "passes": passes,
        "passes_begun": passes_begun,
        "source_error": source_error,
        "refused": refused,
        "journal_errors": [
            {"item": item, "message": message}
            for item, message in sorted(sink_errors.items())[:RECENT_ERRORS]
        ],
        **deletions.status(iso),
        "targets": [
            target_status(region, state, lag, now, pair.hide_names)
            for region, state in targets.items()
        ],
    }


def pair_shell(pair: PairSettings) -> dict[str, Any]:
    """The same document as `pair_status` for a pair this process does not run (another
    daemon does, or none: `kvdr status` from the checkpoints): what the configuration
    says, the live figures None or empty. Callers fill in what they know."""
    return {
        "name": pair.name,
        "primary": pair.primary.region,
        "kinds": sorted(k.value for k in pair.kinds),
        "rpo_seconds": None,
        "rpo_objective_seconds": pair.rpo_objective_seconds,
        "rpo_ok": None,
        "last_reconcile": None,
        "last_poll": None,
        "polling": None,
        "passes": None,
        "passes_begun": None,
        "source_error": None,
        "refused": None,
        "journal_errors": [],
        "last_sweep": None,
        "sweep_error": None,
        "deletion_guard": None,
        "expiry_horizon_days": None,
        "expiring": [],
        "targets": [
            {
                "region": target.region,
                "lag_seconds": None,
                "pending": None,
                "pending_items": [],
                "items": None,
                "last_success": None,
                "suspended_until": None,
                "conflicts": [],
                "blocked": [],
                "recent_errors": [],
            }
            for target in pair.secondaries
        ],
    }
