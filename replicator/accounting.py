"""Accounting of one pair's outcomes: what each item and target result does to the
target's state (counts, conflicts, blocked items, errors, circuit breaker), the lag and
the checkpoint.

The replicator's passes (replicator/pair.py) produce outcomes; this module books them.
It does no I/O: checkpoints are only marked dirty here and written by the pair's flush.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog

from replicator.checkpoint import Checkpoint, ItemCheckpoint
from replicator.lag import LagTracker
from replicator.mirror import ItemOutcome, TargetOutcome
from replicator.plan import fingerprint
from vault.errors import VaultError
from vault.models import ItemKind, ItemProperties, ItemRef

log = structlog.get_logger("kvdr.replicator")

RECENT_ERRORS = 20

# A target that stops answering is left alone for a while (doubling up to this many
# seconds) so the pair's other targets keep their pace; its changes wait as lag.
MAX_SUSPENSION_SECONDS = 60.0


def item_key(kind: ItemKind, name: str) -> str:
    return f"{kind.value}/{name}"


def ref_key(ref: ItemRef) -> str:
    return item_key(ref.kind, ref.name)


@dataclass
class SyncReport:
    """Counts of one pass (`kvdr sync --once` prints these)."""

    items: int = 0
    copied: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    conflicts: int = 0
    errors: int = 0
    # Items a target cannot take (purge protection, key type): status says why.
    blocked: int = 0

    def add(self, other: SyncReport) -> None:
        for name in ("items", "copied", "updated", "unchanged", "skipped", "conflicts", "errors"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.blocked += other.blocked

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class TargetState:
    """What status shows for one target."""

    region: str
    checkpoint: Checkpoint
    conflicts: dict[str, str] = field(default_factory=dict)
    # Items whose new versions this target cannot take: item -> reason and remedy.
    blocked: dict[str, str] = field(default_factory=dict)
    errors: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=RECENT_ERRORS))
    last_success: float | None = None
    dirty: bool = False
    # Circuit breaker: consecutive unreachable results and until when to skip the target.
    failures: int = 0
    suspended_until: float = 0.0

    def record_error(self, now: float, item: str, error: VaultError) -> None:
        """Keep `error` among the target's recent errors (status shows them)."""
        self.errors.append(
            {
                "at": datetime.fromtimestamp(now, UTC).isoformat(),
                "item": item,
                "reason": error.reason,
                "message": str(error),
            }
        )


def changed_items(listing: list[ItemProperties], checkpoint: Checkpoint) -> list[ItemProperties]:
    """Items of the source listing whose latest version or attributes differ from what
    the checkpoint says was applied (pure)."""
    changed = []
    for props in listing:
        applied = checkpoint.items.get(item_key(props.kind, props.name))
        if applied is None or applied.fingerprint != fingerprint(props):
            changed.append(props)
    return changed


class Accounting:
    """Books one pair's outcomes into its targets' states, its lag and its error fields.

    `source_error` and `sink_errors` are the pair's (status shows them); the replicator
    exposes them as its own attributes.
    """

    def __init__(
        self,
        targets: dict[str, TargetState],
        lag: LagTracker,
        clock: Callable[[], float],
        pair_name: str,
    ) -> None:
        self.targets = targets
        self.lag = lag
        self._clock = clock
        self._log = log.bind(pair=pair_name)
        self.source_error: str | None = None
        # Items a sink (the journal) failed to record, with the error; cleared on success.
        self.sink_errors: dict[str, str] = {}

    def item_done(self, outcome: ItemOutcome, report: SyncReport) -> None:
        """What concerns the item as a whole: the source and the sinks."""
        key = ref_key(outcome.ref)
        if outcome.source_error is not None:
            report.errors += 1
            self.source_error = str(outcome.source_error)
        elif outcome.source_latest is None:
            # Gone from the source: nothing left to apply (deletions are the sweep's).
            for region in self.targets:
                self.lag.mark_applied(region, key)
        elif outcome.sink_error is not None:
            report.errors += 1
            self.sink_errors[key] = str(outcome.sink_error)
        else:
            self.sink_errors.pop(key, None)

    def target_done(self, outcome: ItemOutcome, result: TargetOutcome, report: SyncReport) -> None:
        """One target is done with one item: counts, conflicts, lag and its checkpoint."""
        assert outcome.source_latest is not None  # targets run only for a listed source
        key = ref_key(outcome.ref)
        now = self._clock()
        state = self.targets[result.target]
        report.copied += result.copied
        report.updated += result.updated
        report.skipped += len(result.skipped)
        if result.error is not None:
            report.errors += 1
            state.record_error(now, key, result.error)
            if result.error.transient:
                self.suspend(state, now, result.error)
            return
        if result.conflict is not None:
            report.conflicts += 1
            state.conflicts[key] = result.conflict
        else:
            state.conflicts.pop(key, None)
            if not result.copied and not result.updated and result.blocked is None:
                report.unchanged += 1
        # Blocked, like a conflict, is reported on its own and leaves the lag: only an
        # operator can change it; each full pass looks again.
        if result.blocked is not None:
            report.blocked += 1
            state.blocked[key] = result.blocked
        else:
            state.blocked.pop(key, None)
        state.last_success = now
        state.failures = 0
        # A conflict is reported on its own; it is not a change kvdr is about to apply,
        # so it leaves the lag like an applied change does.
        self.lag.mark_applied(result.target, key)
        if outcome.sink_error is not None:
            # Leave the checkpoint behind so the next poll syncs the item again and the
            # sink (the journal) gets another chance to record it.
            return
        previous = state.checkpoint.items.get(key)
        state.checkpoint.items[key] = ItemCheckpoint(
            fingerprint=fingerprint(outcome.source_latest),
            source_version=outcome.source_latest.version,
            target_version=result.target_version or (previous.target_version if previous else None),
            applied_at=now,
            # Applied in full: a conflict or a block left versions or attributes behind.
            history=outcome.history if result.conflict is None and result.blocked is None else None,
        )
        state.dirty = True

    def suspend(self, state: TargetState, now: float, error: VaultError) -> None:
        """Leave an unreachable target alone for a while (doubling, up to a minute)."""
        if state.suspended_until > now:
            return  # already suspended by another item of this pass
        state.failures += 1
        pause = min(MAX_SUSPENSION_SECONDS, 2.0 ** min(state.failures, 6))
        state.suspended_until = now + pause
        self._log.warning(
            "target.suspended", target=state.region, seconds=pause, reason=error.reason
        )

    def live_targets(self, regions: Iterable[str]) -> list[str]:
        """Those of `regions` that are not suspended now."""
        now = self._clock()
        return [r for r in regions if self.targets[r].suspended_until <= now]
