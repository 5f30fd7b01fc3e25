"""The deletion side of one pair as it acts (replicator/deletions.py), on real emulators
and Azurite: what happens when blob storage, a sink or a target fails, what the sinks
are told, and how entries another process wrote are taken in. The planning rules are
tests/replicator/test_sweep.py's."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from structlog.testing import capture_logs

from replicator.checkpoint import CheckpointStore
from replicator.deletions import PairDeletions
from replicator.pair import PairReplicator
from replicator.settings import PairSettings, ReplicatorSettings
from replicator.sink import ChangeSink
from tests.fixtures.clock import ManualClock
from tests.fixtures.regions import World, WorldFactory
from tests.replicator.blob_faults import store_through_relay
from tests.replicator.test_sweep import RecordingSink, replicator_with
from vault.errors import NoAnswer
from vault.models import Attributes, Change, ChangeOp, ItemKind, ItemProperties

TARGETS = ("westus", "centralus")


class FailingSink(RecordingSink):
    """A sink whose storage is down until `failing` is cleared."""

    failing = True

    async def record(self, changes: Sequence[Change]) -> None:
        if self.failing:
            raise OSError("journal storage unavailable")
        await super().record(changes)


async def mirrored(
    world: World, pair: PairSettings, names: Sequence[str], sink: RecordingSink | None = None
) -> PairReplicator:
    """A replicator that has copied `names` onto every target of `pair` (and handed
    their versions to `sink`)."""
    for name in names:
        await world.vaults["eastus"].set_secret(name, f"value-of-{name}", Attributes())
    replicator = world.replicator(pair) if sink is None else replicator_with(world, pair, sink)
    await replicator.load()
    await replicator.reconcile()
    await replicator.flush()
    return replicator


def deletions_for(
    world: World,
    pair: PairSettings,
    *,
    sinks: Sequence[ChangeSink] = (),
    checkpoints: CheckpointStore | None = None,
    clock: ManualClock | None = None,
    target_timeout_seconds: float = 15.0,
) -> PairDeletions:
    return PairDeletions(
        pair,
        ReplicatorSettings(pairs=(pair,), target_timeout_seconds=target_timeout_seconds),
        world.vaults["eastus"],
        {t.region: world.vaults[t.region] for t in pair.secondaries},
        sinks,
        checkpoints or world.checkpoints,
        clock=clock or ManualClock(),
    )


def primary_listing(world: World) -> Callable[[], Awaitable[list[ItemProperties]]]:
    async def listing() -> list[ItemProperties]:
        return await world.vaults["eastus"].list_items(ItemKind.SECRET)

    return listing


async def live(world: World, region: str) -> set[str]:
    return {p.name for p in await world.vaults[region].list_items(ItemKind.SECRET)}


class TestStorage:
    async def test_unreachable_storage_skips_the_sweep_and_deletes_nothing(
        self, world: World
    ) -> None:
        """Without the guard's state no deletion may be applied: the sweep is skipped,
        says why in status, and the next sweep with storage back applies it."""
        pair = world.pair()
        replicator = await mirrored(world, pair, ["doomed"])
        await world.vaults["eastus"].delete_item(ItemKind.SECRET, "doomed")
        async with store_through_relay(world.azurite, world.blobs.container_name) as (blobs, relay):
            cut_off = deletions_for(world, pair, checkpoints=CheckpointStore(blobs))
            await relay.stop()
            with capture_logs() as logs:
                outcome = await cut_off.sweep(primary_listing(world), replicator.targets)
        assert outcome is None
        assert cut_off.error is not None and cut_off.error.startswith("deletion sweep skipped: ")
        assert cut_off.status(lambda ts: None)["sweep_error"] == cut_off.error
        assert [e["event"] for e in logs if e["event"] == "sweep.failed"] == ["sweep.failed"]
        assert cut_off.last_sweep is None
        assert await live(world, "westus") == {"doomed"}

        report = await replicator.sweep()
        assert (report.deleted, report.errors) == (1, 0)
        assert await live(world, "westus") == set()


class TestSinks:
    async def test_deletion_reaches_the_sink_with_the_primarys_time(self, world: World) -> None:
        """The sink gets a DELETE stamped with when the primary deleted the item; one
        deleted and purged between two sweeps is marked purged."""
        pair = world.pair()
        sink = RecordingSink()
        replicator = await mirrored(world, pair, ["gone", "vanished"], sink)
        primary = world.vaults["eastus"]
        await primary.delete_item(ItemKind.SECRET, "gone")
        await primary.delete_item(ItemKind.SECRET, "vanished")
        await primary.purge_item(ItemKind.SECRET, "vanished")
        [deleted] = await primary.list_deleted(ItemKind.SECRET)
        deletions = deletions_for(world, pair, sinks=[sink])
        outcome = await deletions.sweep(primary_listing(world), replicator.targets)
        assert outcome is not None and outcome.report.deleted == 2
        changes = sorted(
            (c for c in sink.changes if c.op is ChangeOp.DELETE), key=lambda c: c.item.name
        )
        assert [(c.op, c.item.name, c.extra) for c in changes] == [
            (ChangeOp.DELETE, "gone", {}),
            (ChangeOp.DELETE, "vanished", {"purged": True}),
        ]
        assert changes[0].observed_at == deleted.deleted_on
        assert outcome.sink_recorded == {"secret/gone", "secret/vanished"}

    async def test_failing_sink_holds_the_deletion_back_until_it_records(
        self, world: World
    ) -> None:
        """A deletion the journal could not record is applied on no target; the next
        sweep, with the journal back, records and applies it."""
        pair = world.pair()
        sink = FailingSink()
        sink.failing = False
        replicator = await mirrored(world, pair, ["held"], sink)
        await world.vaults["eastus"].delete_item(ItemKind.SECRET, "held")
        sink.failing = True
        deletions = deletions_for(world, pair, sinks=[sink])
        outcome = await deletions.sweep(primary_listing(world), replicator.targets)
        assert outcome is not None
        assert outcome.sink_errors == {"secret/held": "journal storage unavailable"}
        assert (outcome.report.deleted, outcome.sink_recorded) == (0, set())
        assert await live(world, "westus") == {"held"}

        sink.failing = False
        outcome = await deletions.sweep(primary_listing(world), replicator.targets)
        assert outcome is not None and outcome.report.deleted == 1
        assert [(c.op, c.item.name) for c in sink.changes] == [
            (ChangeOp.NEW_VERSION, "held"),
            (ChangeOp.DELETE, "held"),
        ]
        assert await live(world, "westus") == set()


class TestTargets:
    async def test_slow_target_is_no_answer_and_the_other_is_done(
        self, make_world: WorldFactory
    ) -> None:
        """A target that does not answer within the target timeout gets NoAnswer naming
        the bound; the other target's deletion is applied."""
        world = await make_world(regions=("eastus", *TARGETS))
        pair = world.pair(secondaries=TARGETS)
        replicator = await mirrored(world, pair, ["doomed"])
        await world.vaults["eastus"].delete_item(ItemKind.SECRET, "doomed")
        slow = world.emulators["centralus"]
        slow.latency_ms = 1500
        slow.restart()
        deletions = deletions_for(world, pair, target_timeout_seconds=0.5)
        outcome = await deletions.sweep(primary_listing(world), replicator.targets)
        assert outcome is not None
        assert (outcome.report.deleted, outcome.report.errors) == (1, 1)
        [problem] = outcome.problems
        assert isinstance(problem.error, NoAnswer)
        assert (problem.region, problem.item, str(problem.error), problem.error.op) == (
            "centralus",
            "secret/doomed",
            "secret/doomed on vault centralus: no result within 0.5 s",  # not "0 s"
            "delete_item",
        )
        assert await live(world, "westus") == set()
        assert replicator.targets["centralus"].checkpoint.items["secret/doomed"].deleted_at is None

    async def test_skipped_target_is_left_for_a_later_sweep(self, make_world: WorldFactory) -> None:
        """A target the replicator has suspended is not touched; once it is not skipped,
        the deletion reaches it."""
        world = await make_world(regions=("eastus", *TARGETS))
        pair = world.pair(secondaries=TARGETS)
        replicator = await mirrored(world, pair, ["doomed"])
        await world.vaults["eastus"].delete_item(ItemKind.SECRET, "doomed")
        deletions = deletions_for(world, pair)
        await deletions.sweep(primary_listing(world), replicator.targets, skip={"westus"})
        assert (await live(world, "westus"), await live(world, "centralus")) == ({"doomed"}, set())
        outcome = await deletions.sweep(primary_listing(world), replicator.targets)
        assert outcome is not None and outcome.report.deleted == 1
        assert await live(world, "westus") == set()

    async def test_recovery_of_a_copy_purged_on_the_target_forgets_it(self, world: World) -> None:
        """When the primary recovers an item whose soft-deleted copy someone purged on the
        target, the checkpoint forgets it, and the next poll copies it again."""
        pair = world.pair()
        replicator = await mirrored(world, pair, ["phoenix"])
        primary, target = world.vaults["eastus"], world.vaults["westus"]
        await primary.delete_item(ItemKind.SECRET, "phoenix")
        assert (await replicator.sweep()).deleted == 1
        await target.purge_item(ItemKind.SECRET, "phoenix")
        await primary.recover_item(ItemKind.SECRET, "phoenix")
        with capture_logs() as logs:
            report = await replicator.sweep()
        assert (report.recovered, report.errors) == (0, 0)
        assert "secret/phoenix" not in replicator.targets["westus"].checkpoint.items
        assert [e["item"] for e in logs if e["event"] == "recovery.target_purged"] == [
            "secret/phoenix"
        ]
        assert (await replicator.poll()).copied == 1
        assert (await target.get_secret("phoenix")).value == "value-of-phoenix"


class TestOtherProcesses:
    async def test_entries_another_process_wrote_are_taken_in(self, world: World) -> None:
        """An item a `kvdr sync --once` mirrored after this replicator loaded its
        checkpoint is known to the sweep, so its deletion is applied too."""
        pair = world.pair()
        replicator = await mirrored(world, pair, ["early"])
        await mirrored(world, pair, ["late"])  # another process, its own checkpoint write
        primary = world.vaults["eastus"]
        await primary.delete_item(ItemKind.SECRET, "late")
        clock = ManualClock(1_767_225_600.0)
        deletions = deletions_for(world, pair, clock=clock)
        with capture_logs() as logs:
            outcome = await deletions.sweep(primary_listing(world), replicator.targets)
        assert outcome is not None and outcome.report.deleted == 1
        assert await live(world, "westus") == {"early"}
        assert [(e["target"], e["items"]) for e in logs if e["event"] == "checkpoint.merged"] == [
            ("westus", 2)
        ]
        entry = replicator.targets["westus"].checkpoint.items["secret/late"]
        assert entry.deleted_at == clock.now and replicator.targets["westus"].dirty
        status = deletions.status(lambda ts: None if ts is None else f"at {ts:.0f}")
        assert (status["last_sweep"], status["sweep_error"]) == ("at 1767225600", None)
