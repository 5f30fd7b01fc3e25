"""What the replicator hands its change sinks (replicator/sink.py, mirror.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from replicator.pair import PairReplicator
from replicator.settings import ReplicatorSettings
from replicator.sink import version_fingerprint
from tests.fixtures.regions import World
from vault.models import Attributes, Change, ChangeOp, ItemKind, ItemRef


class RecordingSink:
    """The smallest honest ChangeSink: keeps what it was given, can be told to fail."""

    def __init__(self) -> None:
        self.changes: list[Change] = []
        self.failing = False

    async def recorded(self, pair: str, item: ItemRef) -> Mapping[str, str]:
        seen: dict[str, str] = {}
        for change in self.changes:
            if change.item == item and change.properties is not None:
                seen[change.properties.version] = version_fingerprint(change.properties)
        return seen

    async def record(self, changes: Sequence[Change]) -> None:
        if self.failing:
            raise OSError("journal storage unavailable")
        self.changes.extend(changes)


def replicator_with(world: World, sink: RecordingSink) -> PairReplicator:
    pair = world.pair()
    return PairReplicator(
        pair,
        ReplicatorSettings(pairs=(pair,)),
        world.vaults["eastus"],
        {"westus": world.vaults["westus"]},
        world.checkpoints,
        sinks=[sink],
    )


class TestSinks:
    async def test_new_versions_with_values_then_attribute_updates(self, world: World) -> None:
        """Each source version reaches the sink once with its value; an attribute change
        arrives as an update without a value."""
        primary = world.vaults["eastus"]
        sink = RecordingSink()
        replicator = replicator_with(world, sink)
        await replicator.load()
        await primary.set_secret("journaled", "first-value", Attributes())
        world.advance_clock()  # whole-second timestamps: keep the versions apart
        await primary.set_secret("journaled", "second-value", Attributes())
        await replicator.reconcile()
        assert [(c.op, c.payload) for c in sink.changes] == [
            (ChangeOp.NEW_VERSION, "first-value"),
            (ChangeOp.NEW_VERSION, "second-value"),
        ]
        latest = (await primary.list_versions(ItemKind.SECRET, "journaled"))[-1]
        await primary.update_properties(
            ItemKind.SECRET, "journaled", latest.version, Attributes(enabled=False)
        )
        await replicator.poll()
        update = sink.changes[-1]
        assert update.op is ChangeOp.UPDATE and update.payload is None
        assert update.properties is not None and update.properties.enabled is False
        await replicator.reconcile()
        assert len(sink.changes) == 3, "a second pass must not record anything again"

    async def test_failing_sink_is_retried_on_next_poll(self, world: World) -> None:
        """When the sink fails, the target still gets the copy, the pass reports an error,
        and the next poll records the change."""
        sink = RecordingSink()
        sink.failing = True
        replicator = replicator_with(world, sink)
        await replicator.load()
        await world.vaults["eastus"].set_secret("retry-me", "value-r", Attributes())
        report = await replicator.reconcile()
        assert report.errors == 1 and report.copied == 1
        assert replicator.status()["journal_errors"][0]["item"] == "secret/retry-me"
        sink.failing = False
        report = await replicator.poll()
        assert [c.payload for c in sink.changes] == ["value-r"]
        assert replicator.status()["journal_errors"] == []
