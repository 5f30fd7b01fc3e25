"""Restore to a point in time: the state of a pair at T from its backups
(`backups.point_in_time`, re-exported here), what a target vault holds, and applying the
plan between them (`backups.restore_plan` plans, purely).

    point = await state_at(store, keks, "app", at, now=now)
    target = await read_target(vault, scope)
    plan = plan_restore("app", scoped(point.state, scope), target)
    report = await apply_plan(plan, point.state, vault)

Refusals (`RestoreRefused`, each saying what to do): those of `state_at` (time, gaps,
the journal head, signatures: see `backups.point_in_time`), and a non-empty target
without `force` (`check_target`).

Applying is idempotent and resumable: every step is planned from what the target holds
now, and planning again after a partial run yields only what is left. Requests go
through the target's adapter, so its throttle budget and backoff apply.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from backups.errors import RestoreRefused

# Re-exported: the state at T is half of every restore.
from backups.point_in_time import PointInTime as PointInTime
from backups.point_in_time import state_at as state_at
from backups.restore_plan import (
    SOURCE_VERSION_TAG,
    ItemPlan,
    RestorePlan,
    Step,
    StepOp,
    TargetItem,
    plan_item,
    update_attributes,
    write_attributes,
)
from backups.state import ItemState, PairState
from vault.client import VaultItems
from vault.errors import BadRequest, ItemNotFound, VaultError
from vault.models import ItemKind, ItemProperties, ItemRef

log = structlog.get_logger("kvdr.backups")


# -- scope and target ------------------------------------------------------------------


@dataclass(frozen=True)
class RestoreScope:
    """Which items a restore covers: the pair's kinds and names, and an --item filter."""

    kinds: frozenset[ItemKind]
    selects: Callable[[str], bool] = field(default=lambda name: True)
    items: frozenset[ItemRef] = frozenset()

    def covers(self, ref: ItemRef) -> bool:
        if self.items:
            return ref in self.items
        return ref.kind in self.kinds and self.selects(ref.name)


def scoped(state: PairState, scope: RestoreScope) -> dict[ItemRef, ItemState]:
    return {ref: item for ref, item in state.items.items() if scope.covers(ref)}


async def _read_one(vault: VaultItems, ref: ItemRef) -> TargetItem | None:
    try:
        versions = await vault.list_versions(ref.kind, ref.name)
    except ItemNotFound:
        versions = []
    if versions:
        return TargetItem(ref, tuple(versions))
    if await vault.get_deleted(ref.kind, ref.name) is not None:
        return TargetItem(ref, deleted=True)
    return None


async def read_target(
    vault: VaultItems, scope: RestoreScope, concurrency: int = 8
) -> dict[ItemRef, TargetItem]:
    """What the target holds within `scope`: versions of live items, soft-deleted ones.

    Certificate-backed keys and secrets (`managed`) are never part of a scope: they come
    back with their certificate.
    """
    found: dict[ItemRef, TargetItem] = {}
    limit = asyncio.Semaphore(concurrency)

    async def one(ref: ItemRef) -> None:
        async with limit:
            item = await _read_one(vault, ref)
        if item is not None:
            found[ref] = item

    if scope.items:
        refs = sorted(scope.items, key=lambda r: (r.kind.value, r.name))
        async with asyncio.TaskGroup() as group:
            for ref in refs:
                group.create_task(one(ref))
        return found
    live: list[ItemRef] = []
    for kind in sorted(scope.kinds, key=lambda k: k.value):
        for props in await vault.list_items(kind):
            if not props.managed and scope.covers(props.ref):
                live.append(props.ref)
        for deleted in await vault.list_deleted(kind):
            if scope.covers(deleted.ref):
                found[deleted.ref] = TargetItem(deleted.ref, deleted=True)
    async with asyncio.TaskGroup() as group:
        for ref in live:
            group.create_task(one(ref))
    return found


def check_target(plan: RestorePlan, force: bool) -> None:
    """A target that holds items of the scope is only restored over with `force`."""
    if plan.target_items and not force:
        raise RestoreRefused(
            f"the target holds {plan.target_items} item(s) within the restore's scope: "
            "pass --force to restore over them (see --dry-run for what would change)"
        )


# -- applying -----------------------------------------------------------------------------


@dataclass
class RestoreReport:
    """What applying a plan did."""

    applied: dict[str, int] = field(default_factory=lambda: {op.value: 0 for op in StepOp})
    restored: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    unrestorable: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed and not self.unrestorable

    def as_dict(self) -> dict[str, Any]:
        return {
            "applied": dict(self.applied),
            "items_restored": self.restored,
            "failed": self.failed,
            "unrestorable": self.unrestorable,
            "seconds": round(self.seconds, 3),
            "ok": self.ok,
        }


def _reason(exc: VaultError, ref: ItemRef) -> str:
    text = str(exc)
    if isinstance(exc, BadRequest) and ref.kind is not ItemKind.SECRET and "geograph" in text:
        return (
            f"the {ref.kind.value} backup is from another geography and Key Vault restores "
            f"backups only within their geography: {text}"
        )
    return text


async def _apply_step(
    vault: VaultItems, wanted: ItemState | None, ref: ItemRef, step: Step
) -> None:
    op = step.op
    version = wanted.versions.get(step.source_version or "") if wanted else None
    if op is StepOp.DELETE:
        await vault.delete_item(ref.kind, ref.name)
    elif op is StepOp.RECOVER:
        await vault.recover_item(ref.kind, ref.name)
    elif op in (StepOp.CREATE, StepOp.NEW_VERSION):
        assert wanted is not None and version is not None
        if ref.kind is ItemKind.SECRET:
            assert isinstance(version.payload, str)
            await vault.set_secret(ref.name, version.payload, write_attributes(version.props))
        else:
            backup = wanted.backup
            assert backup is not None
            await vault.restore_item(ref.kind, backup)
    elif op is StepOp.UPDATE:
        assert version is not None and step.target_version
        # A target version other than the source's own is a restored copy: keep its tag.
        tags = {}
        if ref.kind is ItemKind.SECRET and step.target_version != version.props.version:
            tags = {SOURCE_VERSION_TAG: version.props.version}
        target = ItemProperties(ref.kind, ref.name, step.target_version, tags=tags)
        await vault.update_properties(
            ref.kind, ref.name, step.target_version, update_attributes(version.props, target)
        )


async def _apply_item(
    item_plan: ItemPlan, state: PairState, vault: VaultItems, report: RestoreReport
) -> None:
    ref = item_plan.item
    wanted = state.items.get(ref)
    current = item_plan
    try:
        for _ in range(3):  # a plan, then at most two follow-ups after recover / restore
            for step in current.steps:
                await _apply_step(vault, wanted, ref, step)
                report.applied[step.op.value] += 1
            if current.problem:
                report.unrestorable.append({"item": str(ref), "reason": current.problem})
                return
            if not current.replan or wanted is None:
                break
            current = plan_item(wanted, await _read_one(vault, ref))
            if not current.steps and not current.problem:
                break
    except VaultError as exc:
        report.failed.append({"item": str(ref), "reason": _reason(exc, ref)})
        log.warning("backups.restore_item_failed", item=str(ref), reason=exc.reason)
        return
    report.restored += 1


async def apply_plan(
    plan: RestorePlan,
    state: PairState,
    vault: VaultItems,
    *,
    concurrency: int = 16,
    progress: Callable[[int, int], None] | None = None,
) -> RestoreReport:
    """Apply `plan` on `vault`, items in parallel (the adapter keeps to the vault's
    budget); a failing item is reported and the others go on."""
    started = time.monotonic()
    report = RestoreReport()
    for item_plan in plan.items:
        if item_plan.problem and not item_plan.steps:
            report.unrestorable.append({"item": str(item_plan.item), "reason": item_plan.problem})
    todo = [p for p in plan.items if p.steps]
    limit = asyncio.Semaphore(concurrency)
    done = 0

    async def one(item_plan: ItemPlan) -> None:
        nonlocal done
        async with limit:
            await _apply_item(item_plan, state, vault, report)
        done += 1
        if progress is not None:
            progress(done, len(todo))

    async with asyncio.TaskGroup() as group:
        for item_plan in todo:
            group.create_task(one(item_plan))
    report.seconds = time.monotonic() - started
    log.info(
        "backups.restore_applied",
        pair=plan.pair,
        restored=report.restored,
        failed=len(report.failed),
        unrestorable=len(report.unrestorable),
        seconds=round(report.seconds, 3),
    )
    return report


def target_summary(target: Mapping[ItemRef, TargetItem]) -> dict[str, int]:
    return {
        "live": sum(1 for t in target.values() if not t.deleted),
        "soft_deleted": sum(1 for t in target.values() if t.deleted),
    }
