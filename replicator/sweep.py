"""The deletion sweep: deletions and recoveries on a primary, propagated to its targets.

Event Grid sends no delete, purge or recover events (DESIGN.md), so deletions are found
by comparing listings: on its own interval the sweep lists the primary's live and
deleted items of every kind of the pair and compares them with each target's checkpoint.

- An item the checkpoint holds as mirrored and the primary no longer lists as live was
  deleted there: it is soft-deleted on that target. Only kvdr's own copy is deleted: the
  target's latest version must carry kvdr's `kvdr-source-version` tag or the version id
  kvdr recorded (restored keys and certificates keep the source's ids); anything else is
  left in place and reported.
- An item the checkpoint marks as deleted and the primary lists as live again was
  recovered there: it is recovered on that target.
- Nothing is ever purged on a target. A purge on the primary changes nothing: the
  target keeps its soft-deleted copy until its own retention ends. An item deleted and
  purged between two sweeps (in neither list) is soft-deleted on the target like any
  other deletion, and logged as such.

Deleted items stay in the checkpoint, marked with `deleted_at`, so a recovery is
recognised. Sinks (the journal) get a DELETE or RECOVER change before any target applies
it. The deletion guard (`replicator.guard`) decides whether deletions may be applied.

`plan_sweep()` is pure; `DeletionSweeper` does the I/O.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Literal, Protocol

import structlog

from replicator import metrics
from replicator.checkpoint import Checkpoint, ItemCheckpoint
from replicator.guard import DeletionGuardStore, GuardConflict, GuardLimits, GuardState, shown_key
from replicator.plan import SOURCE_VERSION_TAG
from replicator.settings import PairSettings
from replicator.sink import ChangeSink
from vault.client import VaultClient
from vault.errors import ItemNotFound, NoAnswer, VaultError
from vault.models import Change, ChangeOp, DeletedItem, ItemKind, ItemProperties, ItemRef

log = structlog.get_logger("kvdr.sweep")

GuardEvent = Literal["tripped", "updated", "released"]
RELEASED_BY_CONFIRMATION = "confirmation"
RELEASED_BY_CONFIGURATION = "configuration"
# Deletions and recoveries in flight per target; the vault adapter bounds requests on top.
TARGET_CONCURRENCY = 8
# Names in one log line at most (the guard's blob and status keep them all).
LOGGED_NAMES = 20


def item_ref(key: str) -> ItemRef | None:
    """The item of a checkpoint key `kind/name`; None for a key of no known kind."""
    kind, sep, name = key.partition("/")
    if not sep or not name:
        return None
    try:
        return ItemRef(ItemKind(kind), name)
    except ValueError:
        return None


@dataclass(frozen=True)
class SweepPlan:
    """What one sweep does, per target, and what the guard becomes."""

    # Deletions to apply now and recoveries to apply, per target region.
    deletes: Mapping[str, tuple[ItemRef, ...]]
    recovers: Mapping[str, tuple[ItemRef, ...]]
    # Items deleted on the primary and not yet deleted on every target.
    pending: tuple[ItemRef, ...]
    # Of `pending`: in neither of the primary's lists (deleted and purged since seen).
    vanished: frozenset[ItemRef]
    # Items live on the primary again and still marked deleted on some target.
    recovered: tuple[ItemRef, ...]
    # Of `pending`: not applied by this sweep (the guard holds them back).
    withheld: tuple[ItemRef, ...]
    # The pair's items the guard counts against: live on the primary plus `pending`.
    items: int
    guard: GuardState
    event: GuardEvent | None = None


def plan_sweep(
    pair: PairSettings,
    live: Iterable[ItemRef],
    deleted: Iterable[ItemRef],
    checkpoints: Mapping[str, Mapping[str, ItemCheckpoint]],
    guard: GuardState,
    limits: GuardLimits,
    now: float,
    *,
    confirm: bool = False,
) -> SweepPlan:
    """Compare the primary's lists with each target's checkpoint (pure).

    Only items the pair selects (kind and name globs) and that a checkpoint holds are
    considered: kvdr deletes nothing it did not mirror. With `confirm`, a tripped guard
    lets exactly the deletions it withheld through (those still pending) and is
    released; other pending deletions wait for the next sweep.
    """

    def selected(ref: ItemRef) -> bool:
        return ref.kind in pair.kinds and pair.selects(ref.name)

    live_set = {ref for ref in live if selected(ref)}
    pending_by: dict[str, list[ItemRef]] = {}
    recover_by: dict[str, list[ItemRef]] = {}
    for region, entries in sorted(checkpoints.items()):
        for key, entry in sorted(entries.items()):
            ref = item_ref(key)
            if ref is None or not selected(ref):
                continue
            if ref in live_set:
                if entry.deleted_at is not None:
                    recover_by.setdefault(region, []).append(ref)
            elif entry.deleted_at is None:
                pending_by.setdefault(region, []).append(ref)
    pending = tuple(sorted({r for refs in pending_by.values() for r in refs}, key=str))
    recovered = tuple(sorted({r for refs in recover_by.values() for r in refs}, key=str))
    items = len(live_set) + len(pending)
    keys = tuple(str(ref) for ref in pending)

    event: GuardEvent | None = None
    next_guard = guard
    if confirm and guard.tripped:
        confirmed = set(guard.withheld)
        allowed = {ref for ref in pending if str(ref) in confirmed}
        next_guard, event = guard.release(now, RELEASED_BY_CONFIRMATION), "released"
    elif guard.tripped:
        if guard.limits != limits and not limits.trips(len(pending), items):
            # The configuration changed and no longer counts this many as a mass deletion.
            allowed = set(pending)
            next_guard, event = guard.release(now, RELEASED_BY_CONFIGURATION), "released"
        else:
            allowed = set()
            next_guard = guard.trip(now, keys, items, limits)
            event = "updated" if next_guard != guard else None
    elif limits.trips(len(pending), items):
        allowed = set()
        next_guard, event = guard.trip(now, keys, items, limits), "tripped"
    else:
        allowed = set(pending)

    deletes = {
        region: tuple(ref for ref in refs if ref in allowed) for region, refs in pending_by.items()
    }
    return SweepPlan(
        deletes={region: refs for region, refs in deletes.items() if refs},
        recovers={region: tuple(refs) for region, refs in recover_by.items()},
        pending=pending,
        vanished=frozenset(pending) - set(deleted),
        recovered=recovered,
        withheld=tuple(ref for ref in pending if ref not in allowed),
        items=items,
        guard=next_guard,
        event=event,
    )


def merge_checkpoint_items(
    mine: Mapping[str, ItemCheckpoint], theirs: Mapping[str, ItemCheckpoint]
) -> dict[str, ItemCheckpoint]:
    """Both writers' entries, the more recent one where both have an item (pure).

    A checkpoint records what was applied on a target; when another process (a
    `kvdr sync --once`) wrote it meanwhile, the union of what either applied is true.
    """
    merged = dict(theirs)
    for key, entry in mine.items():
        other = merged.get(key)
        if other is None or entry.changed_at > other.changed_at:
            merged[key] = entry
    return merged


def kvdr_wrote(latest: ItemProperties, entry: ItemCheckpoint) -> bool:
    """True when a target item's latest version is kvdr's copy: a secret version kvdr
    wrote carries its tag; a restored key or certificate keeps the source's version id."""
    return SOURCE_VERSION_TAG in latest.tags or latest.version in (
        entry.source_version,
        entry.target_version,
    )


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


class DeletionSweeper:
    """Runs the sweep of one pair: lists, plans, records in the sinks, applies."""

    def __init__(
        self,
        pair: PairSettings,
        source: VaultClient,
        targets: Mapping[str, VaultClient],
        sinks: Sequence[ChangeSink],
        guards: DeletionGuardStore,
        target_timeout_seconds: float = 15.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._pair = pair
        self._source = source
        self._targets = targets
        self._sinks = tuple(sinks)
        self.guards = guards
        self._timeout = target_timeout_seconds
        self._clock = clock
        self._log = log.bind(pair=pair.name)

    async def source_deleted(self) -> dict[ItemRef, DeletedItem]:
        """The primary's soft-deleted items of every kind of the pair."""
        found: dict[ItemRef, DeletedItem] = {}
        for kind in sorted(self._pair.kinds):
            for item in await self._source.list_deleted(kind):
                found[item.ref] = item
        return found

    async def sweep(
        self,
        guard: GuardState,
        live: Sequence[ItemProperties],
        targets: Mapping[str, SweepTarget],
        limits: GuardLimits,
        *,
        skip: Collection[str] = (),
        confirm: bool = False,
        flush: Callable[[], Awaitable[None]] | None = None,
    ) -> SweepOutcome:
        """One sweep against the primary's `live` listing and `guard` as just read.

        `skip` names targets not to touch now (suspended); their deletions stay pending.
        With `confirm`, the withheld deletions are applied, then `flush` writes the
        checkpoints, then the guard is released: in that order, so that a daemon reading
        the released guard also reads checkpoints that hold the deletions.
        """
        deleted = await self.source_deleted()
        now = self._clock()
        plan = plan_sweep(
            self._pair,
            (p.ref for p in live),
            deleted,
            {region: state.checkpoint.items for region, state in targets.items()},
            guard,
            limits,
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
                        f"{ref} on vault {region}: no result within {self._timeout:.0f} s",
                        vault=region,
                        op="delete_item" if delete else "recover_item",
                    )
                    self._failed(region, ref, error, outcome)
                except VaultError as exc:
                    self._failed(region, ref, exc, outcome)

        await asyncio.gather(
            *(one(ref, True) for ref in deletes), *(one(ref, False) for ref in recovers)
        )

    def _failed(self, region: str, ref: ItemRef, error: VaultError, outcome: SweepOutcome) -> None:
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
        client: VaultClient,
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
        self, client: VaultClient, state: SweepTarget, ref: ItemRef, outcome: SweepOutcome
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
