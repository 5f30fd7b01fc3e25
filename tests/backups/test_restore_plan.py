"""Restore planning (backups/restore_plan.py, pure): property tests against a simulated
target."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from backups.restore_plan import (
    SOURCE_VERSION_TAG,
    RestorePlan,
    StepOp,
    TargetItem,
    plan_item,
    plan_restore,
    update_attributes,
    write_attributes,
)
from backups.state import ItemState, VersionState
from vault.models import ItemKind, ItemProperties, ItemRef

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
_ids = itertools.count()


@dataclass
class SimItem:
    versions: list[ItemProperties] = field(default_factory=list)
    deleted: bool = False


class SimVault:
    """A target vault in memory that follows Key Vault's rules for what a plan does."""

    def __init__(self, items: dict[ItemRef, SimItem]) -> None:
        self.items = items

    def listing(self) -> dict[ItemRef, TargetItem]:
        return {
            ref: TargetItem(ref, () if it.deleted else tuple(it.versions), it.deleted)
            for ref, it in self.items.items()
            if it.deleted or it.versions
        }

    def apply(self, plan: RestorePlan, state: dict[ItemRef, ItemState]) -> None:
        for item_plan in plan.items:
            current = item_plan
            for _ in range(3):
                self._steps(current.item, current.steps, state.get(current.item))
                if not current.replan:
                    break
                current = plan_item(state[current.item], self.listing().get(current.item))

    def _steps(self, ref: ItemRef, steps: object, wanted: ItemState | None) -> None:
        item = self.items.setdefault(ref, SimItem())
        for step in steps:  # type: ignore[attr-defined]
            source = (
                wanted.versions[step.source_version] if wanted and step.source_version else None
            )
            if step.op is StepOp.DELETE:
                item.deleted = True
            elif step.op is StepOp.RECOVER:
                item.deleted = False
            elif step.op in (StepOp.CREATE, StepOp.NEW_VERSION) and ref.kind is ItemKind.SECRET:
                assert source is not None and source.payload is not None
                attrs = write_attributes(source.props)
                item.versions.append(
                    ItemProperties(
                        ref.kind,
                        ref.name,
                        f"t{next(_ids)}",
                        enabled=attrs.enabled,
                        content_type=attrs.content_type,
                        tags=attrs.tags,
                    )
                )
            elif step.op is StepOp.CREATE:
                assert wanted is not None and wanted.backup is not None
                # A backup brings every version back with its ids (attributes of then).
                item.versions = [replace(v.props, tags={}) for v in wanted.ordered()]
            elif step.op is StepOp.UPDATE:
                assert source is not None
                index = next(
                    i for i, v in enumerate(item.versions) if v.version == step.target_version
                )
                attrs = update_attributes(source.props, item.versions[index])
                item.versions[index] = replace(
                    item.versions[index],
                    enabled=attrs.enabled,
                    not_before=attrs.not_before,
                    expires_on=attrs.expires_on,
                    content_type=attrs.content_type
                    if ref.kind is ItemKind.SECRET
                    else item.versions[index].content_type,
                    tags=attrs.tags,
                )


NAMES = st.sampled_from(["a", "b", "c"])
KINDS = st.sampled_from([ItemKind.SECRET, ItemKind.SECRET, ItemKind.KEY])


@st.composite
def version_props(draw: st.DrawFn, ref: ItemRef, version: str) -> ItemProperties:
    return ItemProperties(
        ref.kind,
        ref.name,
        version,
        enabled=draw(st.booleans()),
        content_type=draw(st.sampled_from([None, "text/plain"]))
        if ref.kind is ItemKind.SECRET
        else None,
        tags=draw(st.dictionaries(st.sampled_from(["env", "team"]), st.sampled_from(["x", "y"]))),
    )


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[dict[ItemRef, ItemState], SimVault]:
    refs = {ItemRef(draw(KINDS), name) for name in draw(st.lists(NAMES, max_size=3))}
    state: dict[ItemRef, ItemState] = {}
    target: dict[ItemRef, SimItem] = {}
    for ref in refs:
        if draw(st.booleans()):
            item = ItemState(ref, deleted=draw(st.booleans()))
            for n in range(draw(st.integers(1, 3))):
                props = draw(version_props(ref, f"s{n}"))
                payload: str | bytes | None
                if ref.kind is ItemKind.SECRET:
                    payload = draw(st.sampled_from([f"value-{n}", f"value-{n}", None]))
                else:
                    payload = b"backup"
                item.versions[props.version] = VersionState(props, 0.0, payload)
            state[ref] = item
        shape = draw(st.sampled_from(["absent", "deleted", "copies", "same-ids", "foreign"]))
        if shape == "deleted":
            target[ref] = SimItem(deleted=True)
        elif shape in ("copies", "same-ids") and ref in state:
            versions = []
            for v in state[ref].ordered()[: draw(st.integers(1, len(state[ref].versions)))]:
                if shape == "copies" and ref.kind is ItemKind.SECRET:
                    tags = {**v.props.tags, SOURCE_VERSION_TAG: v.props.version}
                    versions.append(replace(v.props, version=f"t{next(_ids)}", tags=tags))
                else:
                    versions.append(replace(v.props, enabled=draw(st.booleans())))
            target[ref] = SimItem(versions)
        elif shape == "foreign":
            target[ref] = SimItem([ItemProperties(ref.kind, ref.name, f"f{next(_ids)}")])
    return state, SimVault(target)


class TestPlanConverges:
    @given(scenarios())
    @settings(max_examples=150, deadline=None)
    def test_applying_then_planning_again_is_empty(
        self, scenario: tuple[dict[ItemRef, ItemState], SimVault]
    ) -> None:
        """After applying a plan, a new plan has nothing left to do: idempotent, resumable."""
        state, vault = scenario
        vault.apply(plan_restore("app", state, vault.listing()), state)
        again = plan_restore("app", state, vault.listing())
        assert [p for p in again.items if p.steps] == [], again.as_dict()

    @given(scenarios())
    @settings(max_examples=150, deadline=None)
    def test_the_target_ends_on_the_state(
        self, scenario: tuple[dict[ItemRef, ItemState], SimVault]
    ) -> None:
        """Live secrets end on a copy of the state's current version; deleted ones are gone."""
        state, vault = scenario
        plan = plan_restore("app", state, vault.listing())
        vault.apply(plan, state)
        troubled = {p.item for p in plan.items if p.problem}
        for ref, item in vault.listing().items():
            wanted = state.get(ref)
            if ref in troubled:
                continue
            if wanted is None or wanted.deleted:
                assert item.deleted
            elif ref.kind is ItemKind.SECRET and wanted.ordered()[-1].payload is not None:
                current = item.versions[-1]
                source = current.tags.get(SOURCE_VERSION_TAG) or current.version
                assert source == wanted.ordered()[-1].props.version

    @given(scenarios())
    @settings(max_examples=100, deadline=None)
    def test_an_empty_target_only_gets_creates(
        self, scenario: tuple[dict[ItemRef, ItemState], SimVault]
    ) -> None:
        """Into an empty vault a plan only creates: nothing to delete, recover or update."""
        state, _ = scenario
        plan = plan_restore("app", state, {})
        ops = {s.op for p in plan.items for s in p.steps}
        assert ops <= {StepOp.CREATE, StepOp.NEW_VERSION}
        assert plan.target_items == 0


class TestPlanCases:
    def test_rollback_writes_the_old_value_as_a_new_version(self) -> None:
        """Same vault, newer version since: the old current version is written again."""
        ref = ItemRef(ItemKind.SECRET, "db")
        v1 = ItemProperties(ref.kind, "db", "v1")
        state = {ref: ItemState(ref, {"v1": VersionState(v1, 0.0, "old")})}
        target = {ref: TargetItem(ref, (v1, ItemProperties(ref.kind, "db", "v2")))}
        (item,) = plan_restore("app", state, target).items
        assert [(s.op, s.source_version) for s in item.steps] == [(StepOp.NEW_VERSION, "v1")]

    def test_key_with_other_versions_is_reported_not_purged(self) -> None:
        """A key the target holds with a later version cannot be rolled back in place."""
        ref = ItemRef(ItemKind.KEY, "signing")
        k1 = ItemProperties(ref.kind, "signing", "k1")
        state = {ref: ItemState(ref, {"k1": VersionState(k1, 0.0, b"backup")})}
        target = {ref: TargetItem(ref, (k1, ItemProperties(ref.kind, "signing", "k2")))}
        (item,) = plan_restore("app", state, target).items
        assert not item.steps and item.problem is not None
        assert "versions the backup lacks: k2" in item.problem and "purge" in item.problem

    def test_plan_output_carries_no_values(self) -> None:
        """A printed plan names items and versions, never a value."""
        ref = ItemRef(ItemKind.SECRET, "db")
        props = ItemProperties(ref.kind, "db", "v1")
        state = {ref: ItemState(ref, {"v1": VersionState(props, 0.0, "hunter2")})}
        assert "hunter2" not in repr(plan_restore("app", state, {}).as_dict())
