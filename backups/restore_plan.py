"""Restore planning, pure: the state of a pair at time T against what a target vault
holds, as steps per item (create, new version, update attributes, delete, recover).

Plans reference versions by their source version id and never carry material, so a plan
can be printed (`--dry-run`) and logged. Applying a plan (`backups.restore`) and planning
again gives an empty plan: that is what makes a restore idempotent and resumable.

Secrets: every version written by a restore carries the tag `kvdr-source-version` with
the source version it copies (the tag the replicator's mirror uses, so a restored vault
can also serve as a mirror target). A target version "is" a source version when it
carries that tag or has the same version id (a restore into the same vault).
- absent on the target: create it with every recorded version, oldest first;
- present, its current version a copy of the state's current version: only attribute
  updates of the copies;
- present, its current version a copy of an older state version (an interrupted
  restore): the versions after it;
- otherwise (a rollback): the state's current version as a new version.

Keys and certificates restore from the newest backup blob of the whole object (Key Vault
keeps their version ids): into an absent name, then attributes are brought in line. An
item the target holds with other versions cannot be rolled back in place (Key Vault
restores only into a free name); it is reported, never purged.

An item the state has as deleted, or does not have at all, is deleted on the target (a
soft delete, recoverable). A soft-deleted target item that the state has is recovered
first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from backups.state import ItemState
from vault.models import Attributes, ItemKind, ItemProperties, ItemRef

SOURCE_VERSION_TAG = "kvdr-source-version"


class StepOp(StrEnum):
    CREATE = "create"
    NEW_VERSION = "new_version"
    UPDATE = "update"
    DELETE = "delete"
    RECOVER = "recover"


@dataclass(frozen=True)
class TargetItem:
    """What the target holds of one item: versions oldest first (current last), or
    soft-deleted (versions unknown until recovered)."""

    ref: ItemRef
    versions: tuple[ItemProperties, ...] = ()
    deleted: bool = False


@dataclass(frozen=True)
class Step:
    """One call on the target. `source_version` names the state version to write (or
    whose attributes to set); `target_version` the target version to update."""

    op: StepOp
    source_version: str | None = None
    target_version: str | None = None

    def as_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"op": self.op.value}
        if self.source_version:
            doc["source_version"] = self.source_version
        if self.target_version:
            doc["target_version"] = self.target_version
        return doc


@dataclass(frozen=True)
class ItemPlan:
    """The steps for one item; `problem` when it cannot be restored (and why)."""

    item: ItemRef
    steps: tuple[Step, ...] = ()
    problem: str | None = None
    notes: tuple[str, ...] = ()
    # After these steps the target must be listed and planned again (a recovery or a
    # backup restore: what the target then holds is only known afterwards).
    replan: bool = False

    def as_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"item": str(self.item), "steps": [s.as_dict() for s in self.steps]}
        if self.problem:
            doc["problem"] = self.problem
        if self.notes:
            doc["notes"] = list(self.notes)
        return doc


@dataclass
class RestorePlan:
    pair: str
    items: list[ItemPlan] = field(default_factory=list)
    unchanged: int = 0
    # In-scope items the target holds (live or soft-deleted): restoring over them needs --force.
    target_items: int = 0

    @property
    def empty(self) -> bool:
        return not any(p.steps for p in self.items)

    def counts(self) -> dict[str, int]:
        counts = {op.value: 0 for op in StepOp}
        for plan in self.items:
            for step in plan.steps:
                counts[step.op.value] += 1
        counts["unrestorable"] = sum(1 for p in self.items if p.problem)
        counts["unchanged"] = self.unchanged
        return counts

    def as_dict(self) -> dict[str, Any]:
        return {
            "pair": self.pair,
            "counts": self.counts(),
            "target_items": self.target_items,
            "items": [p.as_dict() for p in self.items],
        }


def user_tags(props: ItemProperties) -> dict[str, str]:
    return {k: v for k, v in props.tags.items() if k != SOURCE_VERSION_TAG}


def attributes_match(kind: ItemKind, source: ItemProperties, target: ItemProperties) -> bool:
    """What an update can change for this kind is equal (secrets: all five attributes;
    keys: no content type; certificates: enabled and tags only)."""
    same = source.enabled == target.enabled and user_tags(source) == user_tags(target)
    if kind is ItemKind.CERTIFICATE:
        return same
    same = same and source.not_before == target.not_before
    same = same and source.expires_on == target.expires_on
    if kind is ItemKind.KEY:
        return same
    return same and (source.content_type or None) == (target.content_type or None)


def write_attributes(source: ItemProperties) -> Attributes:
    """Attributes of a secret version written by a restore: the source's plus the tag."""
    attrs = Attributes.of(source)
    attrs.tags.pop(SOURCE_VERSION_TAG, None)
    attrs.tags[SOURCE_VERSION_TAG] = source.version
    return attrs


def update_attributes(source: ItemProperties, target: ItemProperties) -> Attributes:
    """Attributes to set on an existing target version: the source's, keeping the
    target's own kvdr tag."""
    attrs = Attributes.of(source)
    attrs.tags.pop(SOURCE_VERSION_TAG, None)
    if SOURCE_VERSION_TAG in target.tags:
        attrs.tags[SOURCE_VERSION_TAG] = target.tags[SOURCE_VERSION_TAG]
    return attrs


def plan_restore(
    pair: str,
    state: Mapping[ItemRef, ItemState],
    target: Mapping[ItemRef, TargetItem],
) -> RestorePlan:
    """Steps that make the target hold `state` (both already limited to the restore's
    scope: the pair's kinds and names, and any --item filter)."""
    plan = RestorePlan(pair=pair)
    plan.target_items = len(target)
    for ref in sorted(set(state) | set(target), key=lambda r: (r.kind.value, r.name)):
        wanted = state.get(ref)
        have = target.get(ref)
        if wanted is None or wanted.deleted or not wanted.versions:
            item_plan = ItemPlan(ref, (Step(StepOp.DELETE),)) if have and not have.deleted else None
        else:
            item_plan = plan_item(wanted, have)
        if item_plan is None or (not item_plan.steps and not item_plan.problem):
            plan.unchanged += 1
        else:
            plan.items.append(item_plan)
    return plan


def plan_item(wanted: ItemState, have: TargetItem | None) -> ItemPlan:
    """Steps for one live item of the state (pure)."""
    ref = wanted.ref
    if have is not None and have.deleted:
        return ItemPlan(ref, (Step(StepOp.RECOVER),), replan=True)
    if ref.kind is ItemKind.SECRET:
        return _plan_secret(wanted, have.versions if have else ())
    return _plan_backup_item(wanted, have.versions if have else ())


def _plan_secret(wanted: ItemState, versions: tuple[ItemProperties, ...]) -> ItemPlan:
    ref = wanted.ref
    ordered = wanted.ordered()
    writable = [v for v in ordered if v.payload is not None]
    notes = tuple(
        f"version {v.props.version} has no recorded value (disabled on the source)"
        for v in ordered
        if v.payload is None
    )
    current = ordered[-1]
    problem = None
    if current.payload is None:
        problem = (
            f"the current version {current.props.version} at that time has no recorded value "
            "(it was disabled on the source, so its value was unreadable)"
        )
    if not versions:
        created = [
            Step(StepOp.CREATE if i == 0 else StepOp.NEW_VERSION, v.props.version)
            for i, v in enumerate(writable)
        ]
        return ItemPlan(ref, tuple(created), problem, notes)
    ids = {v.props.version for v in ordered}
    copies: dict[str, ItemProperties] = {}
    for tv in versions:
        source_id = tv.tags.get(SOURCE_VERSION_TAG) or (tv.version if tv.version in ids else None)
        if source_id in ids:
            copies[source_id] = tv
    current_copy_of = versions[-1].tags.get(SOURCE_VERSION_TAG) or versions[-1].version
    steps: list[Step] = []
    index = {v.props.version: i for i, v in enumerate(ordered)}
    if current_copy_of == current.props.version:
        pass  # the target already serves the state's current version
    elif current_copy_of in index:
        k = index[current_copy_of]
        steps += [
            Step(StepOp.NEW_VERSION, v.props.version)
            for v in ordered[k + 1 :]
            if v.payload is not None
        ]
    elif current.payload is not None:
        steps.append(Step(StepOp.NEW_VERSION, current.props.version))
    written = {s.source_version for s in steps}
    for v in ordered:
        copy = copies.get(v.props.version)
        if copy is None or v.props.version in written:
            continue
        if not attributes_match(ItemKind.SECRET, v.props, copy):
            steps.append(Step(StepOp.UPDATE, v.props.version, copy.version))
    return ItemPlan(ref, tuple(steps), problem, notes)


def _plan_backup_item(wanted: ItemState, versions: tuple[ItemProperties, ...]) -> ItemPlan:
    ref = wanted.ref
    kind = ref.kind.value
    if not versions:
        if wanted.backup is None:
            return ItemPlan(ref, problem=f"no {kind} backup was recorded for it")
        return ItemPlan(
            ref, (Step(StepOp.CREATE, wanted.ordered()[-1].props.version),), replan=True
        )
    wanted_ids = [v.props.version for v in wanted.ordered()]
    have_ids = [v.version for v in versions]
    if set(wanted_ids) != set(have_ids):
        extra = sorted(set(have_ids) - set(wanted_ids))
        missing = sorted(set(wanted_ids) - set(have_ids))
        detail = []
        if extra:
            detail.append(f"versions the backup lacks: {', '.join(extra)}")
        if missing:
            detail.append(f"missing versions: {', '.join(missing)}")
        return ItemPlan(
            ref,
            problem=(
                f"the target's {kind} has other versions than at that time ({'; '.join(detail)}); "
                f"Key Vault restores a {kind} only into a free name: delete and purge it on the "
                "target, then restore again (kvdr never purges)"
            ),
        )
    by_id = {v.version: v for v in versions}
    steps = tuple(
        Step(StepOp.UPDATE, v.props.version, v.props.version)
        for v in wanted.ordered()
        if not attributes_match(ref.kind, v.props, by_id[v.props.version])
    )
    return ItemPlan(ref, steps)
