"""The deletion sweep: pure planning (replicator/sweep.py) and deletions and recoveries
propagated on real emulators and Azurite (replicator/deletions.py, pair.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from hypothesis import given
from hypothesis import strategies as st

from replicator.checkpoint import ItemCheckpoint
from replicator.guard import GuardLimits, GuardState
from replicator.pair import PairReplicator
from replicator.plan import SOURCE_VERSION_TAG
from replicator.settings import PairSettings, ReplicatorSettings
from replicator.sink import version_fingerprint
from replicator.sweep import (
    item_ref,
    kvdr_wrote,
    merge_checkpoint_items,
    plan_sweep,
)
from tests.fixtures.regions import World
from vault.models import Attributes, Change, ChangeOp, ItemKind, ItemProperties, ItemRef, VaultRef

PAIR = PairSettings(
    name="p",
    primary=VaultRef("eastus", "https://east.example"),
    secondaries=(VaultRef("westus", "https://west.example"),),
    exclude=("x-*",),
)
NAMES = [f"n{i}" for i in range(12)] + ["x-1", "x-2"]
REGIONS = ("westus", "centralus")


def entry(deleted_at: float | None = None) -> ItemCheckpoint:
    return ItemCheckpoint("fp", "sv", "tv", 1.0, deleted_at)


def secret(name: str) -> ItemRef:
    return ItemRef(ItemKind.SECRET, name)


@st.composite
def sweeps(draw: st.DrawFn) -> dict[str, object]:
    """A primary's lists, per-target checkpoints, a guard, limits and the confirm flag."""
    live = draw(st.sets(st.sampled_from(NAMES)))
    deleted = draw(st.sets(st.sampled_from(NAMES))) - live
    checkpoints: dict[str, dict[str, ItemCheckpoint]] = {}
    for region in draw(st.sets(st.sampled_from(REGIONS), min_size=1)):
        names = draw(st.sets(st.sampled_from(NAMES)))
        checkpoints[region] = {
            f"secret/{n}": entry(draw(st.sampled_from([None, 5.0]))) for n in names
        }
    tripped = draw(st.booleans())
    limits = GuardLimits(draw(st.integers(0, 15)), draw(st.floats(0.01, 1.0, allow_nan=False)))
    old_limits = limits if draw(st.booleans()) else GuardLimits(99, 0.5)
    guard = (
        GuardState(pair="p").trip(
            1.0, tuple(f"secret/{n}" for n in draw(st.sets(st.sampled_from(NAMES)))), 9, old_limits
        )
        if tripped
        else GuardState(pair="p")
    )
    return {
        "live": [secret(n) for n in live],
        "deleted": [secret(n) for n in deleted],
        "checkpoints": checkpoints,
        "guard": guard,
        "limits": limits,
        "confirm": draw(st.booleans()),
    }


def plan_of(case: Mapping[str, object]):  # type: ignore[no-untyped-def]
    return plan_sweep(
        PAIR,
        case["live"],  # type: ignore[arg-type]
        case["deleted"],  # type: ignore[arg-type]
        case["checkpoints"],  # type: ignore[arg-type]
        case["guard"],  # type: ignore[arg-type]
        case["limits"],  # type: ignore[arg-type]
        100.0,
        confirm=bool(case["confirm"]),
    )


class TestPlanSweep:
    @given(sweeps())
    def test_deletes_only_mirrored_selected_items_gone_from_the_primary(
        self, case: dict[str, object]
    ) -> None:
        """A deletion is planned only for an item the target's checkpoint holds as live,
        that the pair selects, and that the primary does not list as live."""
        plan = plan_of(case)
        live = set(case["live"])  # type: ignore[call-overload]
        checkpoints: dict[str, dict[str, ItemCheckpoint]] = case["checkpoints"]  # type: ignore[assignment]
        for region, refs in plan.deletes.items():
            for ref in refs:
                assert ref not in live
                assert PAIR.selects(ref.name)
                assert checkpoints[region][str(ref)].deleted_at is None

    @given(sweeps())
    def test_every_recovery_is_planned_whatever_the_guard(self, case: dict[str, object]) -> None:
        """Each selected item live on the primary and marked deleted on a target is
        recovered there, tripped guard or not; nothing else is."""
        plan = plan_of(case)
        live = set(case["live"])  # type: ignore[call-overload]
        checkpoints: dict[str, dict[str, ItemCheckpoint]] = case["checkpoints"]  # type: ignore[assignment]
        for region, entries in checkpoints.items():
            expected = {
                item_ref(k)
                for k, e in entries.items()
                if e.deleted_at is not None and item_ref(k) in live and PAIR.selects(k[7:])
            }
            assert set(plan.recovers.get(region, ())) == expected

    @given(sweeps())
    def test_guard_trips_on_more_than_the_threshold(self, case: dict[str, object]) -> None:
        """An armed guard trips exactly when more than max(min_items, fraction * items)
        deletions are pending, and then nothing is deleted and all of them are withheld."""
        guard: GuardState = case["guard"]  # type: ignore[assignment]
        limits: GuardLimits = case["limits"]  # type: ignore[assignment]
        if guard.tripped:
            return
        plan = plan_of(case)
        trips = len(plan.pending) > max(limits.min_items, limits.fraction * plan.items)
        assert plan.guard.tripped is trips
        if trips:
            assert plan.event == "tripped" and not plan.deletes
            assert plan.withheld == plan.pending
            assert plan.guard.withheld == tuple(str(r) for r in plan.pending)
        else:
            assert plan.withheld == ()
            assert {r for refs in plan.deletes.values() for r in refs} == set(plan.pending)

    @given(sweeps())
    def test_tripped_guard_holds_until_confirmed_or_reconfigured(
        self, case: dict[str, object]
    ) -> None:
        """A tripped guard lets nothing through unless confirmed (then only what it
        withheld) or the limits changed so that the deletions no longer trip it."""
        guard: GuardState = case["guard"]  # type: ignore[assignment]
        limits: GuardLimits = case["limits"]  # type: ignore[assignment]
        if not guard.tripped:
            return
        plan = plan_of(case)
        deleted = {str(r) for refs in plan.deletes.values() for r in refs}
        if case["confirm"]:
            assert deleted <= set(guard.withheld)
            assert not plan.guard.tripped and plan.guard.released_by == "confirmation"
        elif guard.limits == limits or limits.trips(len(plan.pending), plan.items):
            assert not deleted and plan.guard.tripped
            assert plan.guard.since == guard.since
        else:
            assert not plan.guard.tripped and plan.guard.released_by == "configuration"

    @given(sweeps())
    def test_vanished_items_are_pending_and_in_neither_list(self, case: dict[str, object]) -> None:
        """An item deleted and purged between sweeps is still a deletion (never a purge)."""
        plan = plan_of(case)
        assert plan.vanished <= set(plan.pending)
        assert not plan.vanished & set(case["deleted"])  # type: ignore[call-overload]

    def test_thirty_of_sixty_trips_the_default_guard(self) -> None:
        """30 of 60 items deleted is more than max(10, 25% of 60 = 15)."""
        names = [f"s{i:02d}" for i in range(60)]
        cps = {"westus": {f"secret/{n}": entry() for n in names}}
        plan = plan_sweep(
            PAIR, [secret(n) for n in names[30:]], [], cps, GuardState("p"), GuardLimits(), 7.0
        )
        assert plan.event == "tripped" and plan.guard.since == 7.0
        assert plan.items == 60 and len(plan.withheld) == 30 and not plan.deletes

    def test_ten_deletions_never_trip_the_default_guard(self) -> None:
        """Up to min_items deletions pass even in a small vault (10 of 12)."""
        names = [f"s{i:02d}" for i in range(12)]
        cps = {"westus": {f"secret/{n}": entry() for n in names}}
        plan = plan_sweep(
            PAIR, [secret(n) for n in names[10:]], [], cps, GuardState("p"), GuardLimits(), 7.0
        )
        assert plan.event is None and len(plan.deletes["westus"]) == 10

    def test_unselected_and_unknown_keys_are_left_alone(self) -> None:
        """Excluded names and keys of unknown kinds in a checkpoint are never deleted."""
        cps = {"westus": {"secret/x-1": entry(), "widget/n1": entry(), "secret/n2": entry()}}
        plan = plan_sweep(PAIR, [], [], cps, GuardState("p"), GuardLimits(), 1.0)
        assert plan.deletes == {"westus": (secret("n2"),)}


class TestCheckpointMerge:
    def test_newer_entry_wins_and_both_sides_are_kept(self) -> None:
        """A deletion recorded by another process after our copy is taken in; items only
        one side knows are kept."""
        mine = {"secret/a": ItemCheckpoint("f1", "v1", "t1", 10.0), "secret/b": entry()}
        theirs = {
            "secret/a": ItemCheckpoint("f1", "v1", "t1", 10.0, deleted_at=20.0),
            "secret/c": entry(),
        }
        merged = merge_checkpoint_items(mine, theirs)
        assert merged["secret/a"].deleted_at == 20.0
        assert set(merged) == {"secret/a", "secret/b", "secret/c"}
        newer = {"secret/a": ItemCheckpoint("f2", "v2", "t2", 30.0)}
        assert merge_checkpoint_items(newer, theirs)["secret/a"].source_version == "v2"

    def test_kvdr_wrote_by_tag_or_version_id(self) -> None:
        """kvdr's copy: a secret version with its tag, or a restored version id."""
        e = ItemCheckpoint("f", "src-v", "tgt-v", 1.0)

        def props(version: str, tags: dict[str, str]) -> ItemProperties:
            return ItemProperties(ItemKind.SECRET, "a", version, tags=tags)

        assert kvdr_wrote(props("other", {SOURCE_VERSION_TAG: "x"}), e)
        assert kvdr_wrote(props("src-v", {}), e)
        assert kvdr_wrote(props("tgt-v", {}), e)
        assert not kvdr_wrote(props("hand-made", {"owner": "ops"}), e)


class RecordingSink:
    """A ChangeSink that keeps what it is given, as the journal would."""

    def __init__(self) -> None:
        self.changes: list[Change] = []

    async def recorded(self, pair: str, item: ItemRef) -> Mapping[str, str]:
        seen: dict[str, str] = {}
        for change in self.changes:
            if change.item != item:
                continue
            if change.op is ChangeOp.DELETE:
                seen = {}
            elif change.properties is not None:
                seen[change.properties.version] = version_fingerprint(change.properties)
        return seen

    async def record(self, changes: Sequence[Change]) -> None:
        self.changes.extend(changes)


def replicator_with(world: World, pair: PairSettings, sink: RecordingSink) -> PairReplicator:
    return PairReplicator(
        pair,
        ReplicatorSettings(pairs=(pair,)),
        world.vaults[pair.primary.region],
        {t.region: world.vaults[t.region] for t in pair.secondaries},
        world.checkpoints,
        sinks=[sink],
    )


async def live_names(world: World, region: str) -> set[str]:
    return {p.name for p in await world.vaults[region].list_items(ItemKind.SECRET)}


async def deleted_names(world: World, region: str) -> set[str]:
    return {d.name for d in await world.vaults[region].list_deleted(ItemKind.SECRET)}


class TestSweepOnVaults:
    async def test_delete_then_recover_propagate(self, world: World) -> None:
        """A deletion on the primary soft-deletes the target copy (recoverable, kept in
        the checkpoint as deleted); a recovery brings it back with its versions; the sink
        gets DELETE then RECOVER."""
        primary = world.vaults["eastus"]
        sink = RecordingSink()
        replicator = replicator_with(world, world.pair(), sink)
        await replicator.load()
        for name in ("keep", "drop"):
            await primary.set_secret(name, f"value-of-{name}", Attributes())
        await replicator.reconcile()
        before = await world.vaults["westus"].list_versions(ItemKind.SECRET, "drop")

        await primary.delete_item(ItemKind.SECRET, "drop")
        report = await replicator.sweep()
        await replicator.flush()
        assert report.deleted == 1 and report.errors == 0 and not report.guard_tripped
        assert await live_names(world, "westus") == {"keep"}
        assert await deleted_names(world, "westus") == {"drop"}
        saved = await world.checkpoints.load("app", "westus")
        assert saved.items["secret/drop"].deleted_at is not None

        await primary.recover_item(ItemKind.SECRET, "drop")
        report = await replicator.sweep()
        await replicator.flush()
        assert report.recovered == 1
        assert await live_names(world, "westus") == {"keep", "drop"}
        after = await world.vaults["westus"].list_versions(ItemKind.SECRET, "drop")
        assert [v.version for v in after] == [v.version for v in before]
        saved = await world.checkpoints.load("app", "westus")
        assert saved.items["secret/drop"].deleted_at is None
        ops = [(c.op, c.item.name) for c in sink.changes if c.op is not ChangeOp.NEW_VERSION]
        assert ops == [(ChangeOp.DELETE, "drop"), (ChangeOp.RECOVER, "drop")]
        assert (await replicator.sweep()).deleted == 0, "a second sweep does nothing"

    async def test_purge_on_primary_purges_nothing_on_target(self, world: World) -> None:
        """Purging on the primary, after the deletion was propagated or before the sweep
        saw it, leaves a recoverable soft-deleted copy on the target."""
        primary = world.vaults["eastus"]
        replicator = world.replicator(world.pair())
        await replicator.load()
        for name in ("early", "late"):
            await primary.set_secret(name, f"value-of-{name}", Attributes())
        await replicator.reconcile()

        await primary.delete_item(ItemKind.SECRET, "early")
        await replicator.sweep()
        await primary.purge_item(ItemKind.SECRET, "early")
        # Deleted and purged between two sweeps: in neither of the primary's lists.
        await primary.delete_item(ItemKind.SECRET, "late")
        await primary.purge_item(ItemKind.SECRET, "late")
        report = await replicator.sweep()
        assert report.deleted == 1 and report.errors == 0
        assert await deleted_names(world, "westus") == {"early", "late"}
        await world.vaults["westus"].recover_item(ItemKind.SECRET, "early")
        value = await world.vaults["westus"].get_secret("early")
        assert value.value == "value-of-early"

    async def test_target_version_written_by_someone_else_is_not_deleted(
        self, world: World
    ) -> None:
        """When the target's latest version is not kvdr's, the deletion is reported as a
        conflict and the item stays."""
        primary, target = world.vaults["eastus"], world.vaults["westus"]
        replicator = world.replicator(world.pair())
        await replicator.load()
        await primary.set_secret("shared", "from-primary", Attributes())
        await replicator.reconcile()
        await target.set_secret("shared", "changed-by-hand", Attributes())
        await primary.delete_item(ItemKind.SECRET, "shared")
        report = await replicator.sweep()
        assert report.deleted == 0 and report.conflicts == 1
        assert (await target.get_secret("shared")).value == "changed-by-hand"
        conflicts = replicator.status()["targets"][0]["conflicts"]
        assert conflicts[0]["item"] == "secret/shared" and "left in place" in conflicts[0]["reason"]
        assert (await replicator.sweep()).conflicts == 0, "reported once, not every sweep"

    async def test_items_outside_the_selection_are_never_deleted(self, world: World) -> None:
        """After the pair's globs narrow, an item kvdr mirrored earlier but no longer
        selects is not deleted on the target when it goes from the primary."""
        primary = world.vaults["eastus"]
        wide = world.replicator(world.pair())
        await wide.load()
        for name in ("app-a", "other"):
            await primary.set_secret(name, f"value-of-{name}", Attributes())
        await wide.reconcile()
        await wide.flush()
        narrow = world.replicator(world.pair(include=("app-*",)))
        await narrow.load()
        await primary.delete_item(ItemKind.SECRET, "other")
        await primary.delete_item(ItemKind.SECRET, "app-a")
        report = await narrow.sweep()
        assert report.deleted == 1
        assert await live_names(world, "westus") == {"other"}

    async def test_refused_deletion_is_retried_next_sweep(self, world: World) -> None:
        """A target that refuses the deletion (read-only) reports the error; the deletion
        stays pending and is applied by a later sweep."""
        primary = world.vaults["eastus"]
        replicator = world.replicator(world.pair())
        await replicator.load()
        await primary.set_secret("retry", "value-r", Attributes())
        await replicator.reconcile()
        await primary.delete_item(ItemKind.SECRET, "retry")
        world.emulators["westus"].set_read_only(True)
        try:
            report = await replicator.sweep()
        finally:
            world.emulators["westus"].set_read_only(False)
        assert report.errors == 1 and report.deleted == 0
        assert replicator.status()["targets"][0]["recent_errors"][-1]["item"] == "secret/retry"
        report = await replicator.sweep()
        assert report.deleted == 1
        assert await deleted_names(world, "westus") == {"retry"}
