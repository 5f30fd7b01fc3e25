"""The deletion side of one pair: the sweep's I/O, the deletion guard, the expiry watch.

`replicator.sweep` plans (pure, with the rules); `PairDeletions` acts. `PairReplicator`
holds one and calls its `sweep()` on the sweep interval (`kvdr sync --once` after its
reconciliation). Each sweep reads the guard's state from blob storage first (an operator
may have released it from another process), takes in checkpoint entries another process
wrote, lists the primary's live and deleted items, plans, records DELETE / RECOVER
changes in the sinks, soft-deletes or recovers on the targets, and refreshes the expiry
watch with the same listing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog

from replicator import metrics
from replicator.checkpoint import Checkpoint, CheckpointStore
from replicator.expiry import ExpiryWatch, horizon_days
from replicator.guard import (
    DeletionGuardStore,
    GuardConflict,
    GuardState,
    guard_limits,
    shown_key,
)
from replicator.settings import PairSettings, ReplicatorSettings
from replicator.sink import ChangeSink
from replicator.sweep import (
    RELEASED_BY_CONFIRMATION,
    SweepPlan,
    kvdr_wrote,
    merge_checkpoint_items,
    plan_sweep,
)
from storage import StorageError
from vault.client import VaultItems
from vault.errors import ItemNotFound, NoAnswer, VaultError
from vault.models import Change, ChangeOp, DeletedItem, ItemProperties, ItemRef

log = structlog.get_logger("kvdr.sweep")

# Deletions and recoveries in flight per target; the vault adapter bounds requests on top.
TARGET_CONCURRENCY = 8
# Names in one log line at most (the guard's blob and status keep them all).
LOGGED_NAMES = 20


@dataclass
class SweepReport:
    """Counts of one sweep (`kvdr sync --once` prints these)."""

    pending: int = 0
    deleted: int = 0
    recovered: int = 0
    withheld: int = 0
    conflicts: int = 0
    errors: int = 0
    guard_tripped: bool = False

    def as_dict(self) -> dict[str, int | bool]:
        return dict(self.__dict__)


@dataclass
class TargetProblem:
    """One deletion or recovery that did not happen on one target."""

    region: str
    item: str
    error: VaultError | None = None
    conflict: str | None = None


class SweepTarget(Protocol):
    """What the sweep needs of a target's state (replicator.pair.TargetState)."""

    region: str
    checkpoint: Checkpoint
    dirty: bool


@dataclass
class SweepOutcome:
    plan: SweepPlan
    guard: GuardState
    report: SweepReport
    problems: list[TargetProblem] = field(default_factory=list)
    # Items a sink failed to record (not applied on any target this sweep), and items
    # it recorded.
    sink_errors: dict[str, str] = field(default_factory=dict)
    sink_recorded: set[str] = field(default_factory=set)


class PairDeletions:
    """Sweep, deletion guard and expiry watch of one pair."""

    def __init__(
        self,
        pair: PairSettings,
        settings: ReplicatorSettings,
        source: VaultItems,
        targets: Mapping[str, VaultItems],
        sinks: Sequence[ChangeSink],
        checkpoints: CheckpointStore,
        guards: DeletionGuardStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._pair = pair
        self._checkpoints = checkpoints
        self.guards = guards or DeletionGuardStore(checkpoints.blobs, checkpoints.sealer)
        self.limits = guard_limits(pair, settings)
        self._source = source
        self._targets = targets
        self._sinks = tuple(sinks)
        self._timeout = settings.target_timeout_seconds
        horizon = pair.expiry_horizon_seconds
        self.expiry = ExpiryWatch(
            pair,
            targets,
            settings.expiry_horizon_seconds if horizon is None else horizon,
            clock,
            timeout_seconds=settings.target_timeout_seconds,
        )
        self.guard = GuardState(pair=pair.name)
        self.last_sweep: float | None = None
        self.error: str | None = None
        self._clock = clock
        self._log = log.bind(pair=pair.name)

    async def load_guard(self) -> None:
        """Read the guard's state (it outlives the process that tripped it)."""
        self.guard = await self.guards.load(self._pair.name)
        if self.guard.tripped:
            # Every start repeats the alert: the withheld deletions still wait.
            self._log.error(
                "deletion_guard.tripped",
                restored=True,
                deleted=self.guard.deleted,
                items=self.guard.items,
                release_with=f"kvdr sync --once --pair {self._pair.name} --confirm-deletions",
            )

    async def sweep(
        self,
        listing: Callable[[], Awaitable[list[ItemProperties]]],
        targets: Mapping[str, SweepTarget],
        *,
        skip: Collection[str] = (),
        confirm: bool = False,
        flush: Callable[[], Awaitable[None]] | None = None,
    ) -> SweepOutcome | None:
        """One sweep; None when blob storage could not be read or written (then no
        deletion is applied: without the guard's state none may be). A vault error of
        the primary propagates, as for the other passes."""
        try:
            # The guard before the checkpoints: a confirmation writes the checkpoints
            # before it releases the guard, so a released guard read here comes with
            # checkpoints that already hold the confirmed deletions.
            guard = await self.guards.load(self._pair.name)
            await self._refresh_checkpoints(targets)
        except (StorageError, ValueError) as exc:
            self._failed(exc)
            return None
        live = await listing()
        try:
            outcome = await self._apply(
                guard, live, targets, skip=skip, confirm=confirm, flush=flush
            )
        except StorageError as exc:
            self._failed(exc)
            return None
        self.guard = outcome.guard
        await self.expiry.refresh(live, skip=skip)
        self.last_sweep = self._clock()
        self.error = None
        return outcome

    def _failed(self, exc: Exception) -> None:
        self.error = f"deletion sweep skipped: {exc}"
        self._log.warning("sweep.failed", error=str(exc))

    async def _refresh_checkpoints(self, targets: Mapping[str, SweepTarget]) -> None:
        """Take in what another process (a `kvdr sync --once`) wrote to the checkpoints."""
        for region, state in targets.items():
            stored = await self._checkpoints.load(self._pair.name, region)
            if stored.etag == state.checkpoint.etag:
                continue
            merged = merge_checkpoint_items(state.checkpoint.items, stored.items)
            state.dirty = state.dirty or merged != stored.items
            state.checkpoint.items = merged
            state.checkpoint.etag = stored.etag
            self._log.info("checkpoint.merged", target=region, items=len(merged))

    def status(self, iso: Callable[[float | None], str | None]) -> dict[str, Any]:
        """The pair status fields of the sweep, the guard and the expiry watch."""
        return {
            "last_sweep": iso(self.last_sweep),
            "sweep_error": self.error,
            "deletion_guard": self.guard.view(self._pair.hide_names),
            "expiry_horizon_days": horizon_days(self.expiry.horizon_seconds),
            "expiring": self.expiry.status(),
        }

    def publish_metrics(self) -> None:
        tripped = 1 if self.guard.tripped else 0
        metrics.DELETION_GUARD_TRIPPED.labels(self._pair.name).set(tripped)
        self.expiry.publish_metrics()

    def forget_metrics(self) -> None:
        """This process no longer runs the pair (another daemon took it over): its
        series must not linger here and alert twice."""
        with contextlib.suppress(KeyError):
            metrics.DELETION_GUARD_TRIPPED.remove(self._pair.name)
        self.expiry.forget_metrics()

    async def _apply(
        self,
        guard: GuardState,
        live: Sequence[ItemProperties],
        targets: Mapping[str, SweepTarget],
        *,
        skip: Collection[str],
        confirm: bool,
        flush: Callable[[], Awaitable[None]] | None,
    ) -> SweepOutcome:
        """Plan against the primary's lists and `guard` as just read, record, apply.

        With `confirm`, the withheld deletions are applied, then `flush` writes the
        checkpoints, then the guard is released: in that order, so that a daemon reading
        the released guard also reads checkpoints that hold the deletions.
        """
        deleted: dict[ItemRef, DeletedItem] = {}
        for kind in sorted(self._pair.kinds):
            for item in await self._source.list_deleted(kind):
                deleted[item.ref] = item
        now = self._clock()
        plan = plan_sweep(
            self._pair,
            (p.ref for p in live),
            deleted,
            {region: state.checkpoint.items for region, state in targets.items()},
            guard,
            self.limits,
            now,
            confirm=confirm,
        )
        outcome = SweepOutcome(
            plan=plan, guard=guard, report=SweepReport(pending=len(plan.pending))
        )
        deletes = plan.deletes
        if plan.event is not None and not (confirm and plan.event == "released"):
            try:
                outcome.guard = await self.guards.save(plan.guard)
            except GuardConflict:
                # Someone (an operator's confirmation) wrote meanwhile: withhold this time,
                # read the guard again on the next sweep.
                self._log.warning("deletion_guard.conflict", action="withholding until next sweep")
                deletes = {}
            else:
                self._log_guard(plan)
        outcome.report.withheld = len(plan.pending) - len(
            {ref for refs in deletes.values() for ref in refs}
        )
        outcome.report.guard_tripped = outcome.guard.tripped

        blocked = await self._record(plan, deleted, outcome)
        await asyncio.gather(
            *(
                self._apply_target(
                    region,
                    targets[region],
                    [r for r in deletes.get(region, ()) if str(r) not in blocked],
                    [r for r in plan.recovers.get(region, ()) if str(r) not in blocked],
                    now,
                    outcome,
                )
                for region in targets
                if region not in skip
            )
        )
        if confirm and plan.event == "released":
            if flush is not None:
                await flush()
            outcome.guard = await self.guards.update(
                self._pair.name,
                lambda g: g.release(now, RELEASED_BY_CONFIRMATION) if g.tripped else g,
            )
            outcome.report.guard_tripped = outcome.guard.tripped
            self._log_guard(plan)
        return outcome

    # -- sinks -------------------------------------------------------------------------

    async def _record(
        self, plan: SweepPlan, deleted: Mapping[ItemRef, DeletedItem], outcome: SweepOutcome
    ) -> set[str]:
        """Hand every sink the deletions and recoveries it lacks; the keys of items a
        sink failed to take (applied on no target this time)."""
        blocked: set[str] = set()
        now = datetime.now(UTC)
        for sink in self._sinks:
            changes: list[Change] = []
            for ref, op in [(r, ChangeOp.DELETE) for r in plan.pending] + [
                (r, ChangeOp.RECOVER) for r in plan.recovered
            ]:
                try:
                    # A sink answers {} for an item it holds as deleted (or never saw).
                    recorded = await sink.recorded(self._pair.name, ref)
                except Exception as exc:  # any sink failure: retried on the next sweep
                    blocked.add(str(ref))
                    outcome.sink_errors[str(ref)] = str(exc)
                    continue
                if (op is ChangeOp.DELETE) == bool(recorded):
                    gone = deleted.get(ref)
                    changes.append(
                        Change(
                            pair=self._pair.name,
                            item=ref,
                            op=op,
                            observed_at=(gone.deleted_on if gone and gone.deleted_on else now),
                            extra={"purged": True} if ref in plan.vanished else {},
                        )
                    )
            if not changes:
                continue
            try:
                await sink.record(changes)
            except Exception as exc:  # any sink failure: retried on the next sweep
                for change in changes:
                    blocked.add(str(change.item))
                    outcome.sink_errors[str(change.item)] = str(exc)
                self._log.warning("sink.failed", op="sweep", items=len(changes), error=str(exc))
            else:
                outcome.sink_recorded.update(str(c.item) for c in changes)
        outcome.sink_recorded -= blocked
        return blocked

    # -- targets -----------------------------------------------------------------------

    async def _apply_target(
        self,
        region: str,
        state: SweepTarget,
        deletes: list[ItemRef],
        recovers: list[ItemRef],
        now: float,
        outcome: SweepOutcome,
    ) -> None:
        client = self._targets[region]
        limit = asyncio.Semaphore(TARGET_CONCURRENCY)

        async def one(ref: ItemRef, delete: bool) -> None:
            async with limit:
                try:
                    async with asyncio.timeout(self._timeout):
                        if delete:
                            await self._delete_one(client, state, ref, now, outcome)
                        else:
                            await self._recover_one(client, state, ref, outcome)
                except TimeoutError:
                    error = NoAnswer(
                        f"{ref} on vault {region}: no result within {self._timeout:g} s",
                        vault=region,
                        op="delete_item" if delete else "recover_item",
                    )
                    self._target_failed(region, ref, error, outcome)
                except VaultError as exc:
                    self._target_failed(region, ref, exc, outcome)

        await asyncio.gather(
            *(one(ref, True) for ref in deletes), *(one(ref, False) for ref in recovers)
        )

    def _target_failed(
        self, region: str, ref: ItemRef, error: VaultError, outcome: SweepOutcome
    ) -> None:
        outcome.problems.append(TargetProblem(region, str(ref), error=error))
        outcome.report.errors += 1
        metrics.REPLICATION_ERRORS.labels(self._pair.name, region, error.reason).inc()
        self._log.warning(
            "sweep.failed",
            item=self._shown(str(ref)),
            target=region,
            reason=error.reason,
            error=str(error),
        )

    async def _delete_one(
        self,
        client: VaultItems,
        state: SweepTarget,
        ref: ItemRef,
        now: float,
        outcome: SweepOutcome,
    ) -> None:
        key = str(ref)
        entry = state.checkpoint.items.get(key)
        if entry is None or entry.deleted_at is not None:
            return  # changed since the plan was made
        try:
            versions = await client.list_versions(ref.kind, ref.name)
        except ItemNotFound:
            versions = []
        if versions and not kvdr_wrote(versions[-1], entry):
            reason = (
                f"{key} was deleted on the primary, but the target's latest version "
                f"({versions[-1].version}) was not written by kvdr: left in place"
            )
            outcome.problems.append(TargetProblem(state.region, key, conflict=reason))
            outcome.report.conflicts += 1
            self._log.warning(
                "deletion.skipped_foreign", item=self._shown(key), target=state.region
            )
        elif versions:
            await client.delete_item(ref.kind, ref.name)
            outcome.report.deleted += 1
            metrics.CHANGES_APPLIED.labels(
                self._pair.name, state.region, ref.kind.value, "delete"
            ).inc()
            self._log.info(
                "item.deleted",
                item=self._shown(key),
                target=state.region,
                purged_on_primary=ref in outcome.plan.vanished,
            )
        # Marked either way (deleted now, already gone, or not kvdr's to delete), so it
        # is not counted again by the next sweep and a recovery is recognised.
        state.checkpoint.items[key] = replace(entry, deleted_at=now)
        state.dirty = True

    async def _recover_one(
        self, client: VaultItems, state: SweepTarget, ref: ItemRef, outcome: SweepOutcome
    ) -> None:
        key = str(ref)
        entry = state.checkpoint.items.get(key)
        if entry is None or entry.deleted_at is None:
            return
        try:
            await client.recover_item(ref.kind, ref.name)
        except ItemNotFound:
            # Purged on the target meanwhile (not by kvdr): nothing to recover; forgetting
            # the entry lets the next poll copy the item again.
            del state.checkpoint.items[key]
            state.dirty = True
            self._log.warning("recovery.target_purged", item=self._shown(key), target=state.region)
            return
        outcome.report.recovered += 1
        metrics.CHANGES_APPLIED.labels(
            self._pair.name, state.region, ref.kind.value, "recover"
        ).inc()
        self._log.info("item.recovered", item=self._shown(key), target=state.region)
        state.checkpoint.items[key] = replace(entry, deleted_at=None)
        state.dirty = True

    # -- logs --------------------------------------------------------------------------

    def _shown(self, key: str) -> str:
        return shown_key(key, self._pair.hide_names)

    def _log_guard(self, plan: SweepPlan) -> None:
        guard = plan.guard
        names = [self._shown(str(ref)) for ref in plan.withheld[:LOGGED_NAMES]]
        if plan.event == "tripped":
            # The alert: a mass deletion on the primary is held back from the targets.
            self._log.error(
                "deletion_guard.tripped",
                deleted=guard.deleted,
                items=guard.items,
                threshold=guard.limits.threshold(guard.items) if guard.limits else None,
                withheld=names,
                release_with=f"kvdr sync --once --pair {self._pair.name} --confirm-deletions",
            )
        elif plan.event == "updated":
            self._log.warning("deletion_guard.withholding", deleted=guard.deleted, withheld=names)
        elif plan.event == "released":
            self._log.warning(
                "deletion_guard.released",
                by=guard.released_by,
                applying=len(plan.pending) - len(plan.withheld),
            )
