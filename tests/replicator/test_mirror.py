"""One secret brought up to date on its targets (replicator/mirror.py), against real
emulators: what each target gets, what the source is asked, what the sinks see first,
and how a slow or foreign target is reported without holding up the others."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from replicator.mirror import ItemOutcome, ListedItem, SecretMirror, TargetOutcome
from replicator.plan import SOURCE_VERSION_TAG, SkippedVersion
from replicator.sink import version_fingerprint
from tests.fixtures.regions import World, WorldFactory
from vault.errors import Forbidden, NoAnswer
from vault.models import Attributes, Change, ChangeOp, ItemKind, ItemRef

TARGETS = ["westus", "centralus"]


class CheckingSink:
    """A ChangeSink that notes, when it is handed changes, what the target held then."""

    def __init__(self, world: World, region: str) -> None:
        self._target = world.vaults[region]
        self.changes: list[Change] = []
        self.target_versions_seen: list[int] = []
        self.failing = False

    async def recorded(self, pair: str, item: ItemRef) -> Mapping[str, str]:
        return {
            c.properties.version: version_fingerprint(c.properties)
            for c in self.changes
            if c.item == item and c.properties is not None
        }

    async def record(self, changes: Sequence[Change]) -> None:
        if self.failing:
            raise OSError("journal storage unavailable")
        names = {c.item.name for c in changes}
        for name in names:
            listed = await self._target.list_items(ItemKind.SECRET)
            self.target_versions_seen.append(sum(1 for p in listed if p.name == name))
        self.changes.extend(changes)


def mirror_for(world: World, *, sinks: Sequence[Any] = (), timeout: float = 15.0) -> SecretMirror:
    pair = world.pair(secondaries=[r for r in world.vaults if r != "eastus"])
    targets = {t.region: world.vaults[t.region] for t in pair.secondaries}
    return SecretMirror(pair, world.vaults["eastus"], targets, sinks, timeout)


def ops(world: World, region: str) -> dict[str, int]:
    stats = world.emulators[region].stats()
    return {op: sum(statuses.values()) for op, statuses in stats["by_op"].items()}


async def two_versions(world: World, name: str) -> list[str]:
    primary = world.vaults["eastus"]
    first = await primary.set_secret(name, "first-value", Attributes(content_type="text/plain"))
    world.advance_clock()  # whole-second timestamps: keep the versions apart
    second = await primary.set_secret(name, "second-value", Attributes(tags={"env": "prod"}))
    return [first.version, second.version]


class TestCopies:
    async def test_every_target_gets_every_version_tagged_with_its_source(
        self, make_world: WorldFactory
    ) -> None:
        """Both versions arrive on both targets in order, with their values, attributes
        and the source version in kvdr's tag; the outcome names the new target version."""
        world = await make_world(regions=("eastus", *TARGETS))
        source = await two_versions(world, "db")
        outcome = await mirror_for(world).sync("db", TARGETS)
        assert outcome.source_latest is not None and outcome.source_latest.version == source[1]
        for region in TARGETS:
            copies = await world.vaults[region].list_versions(ItemKind.SECRET, "db")
            assert [c.tags[SOURCE_VERSION_TAG] for c in copies] == source
            assert [c.content_type for c in copies] == ["text/plain", None]
            assert copies[1].tags == {"env": "prod", SOURCE_VERSION_TAG: source[1]}
            values = [
                (await world.vaults[region].get_secret("db", c.version)).value for c in copies
            ]
            assert values == ["first-value", "second-value"]
            assert outcome.targets[region] == TargetOutcome(
                region, copied=2, target_version=copies[1].version
            )

    async def test_each_source_value_is_read_once_for_all_targets(
        self, make_world: WorldFactory
    ) -> None:
        """Two versions for two targets cost the source one version listing and two
        reads, not four."""
        world = await make_world(regions=("eastus", *TARGETS))
        await two_versions(world, "db")
        world.emulators["eastus"].reset_stats()
        await mirror_for(world).sync("db", TARGETS)
        assert ops(world, "eastus") == {"GetSecretVersions": 1, "GetSecret": 2}

    async def test_target_proven_by_its_listing_is_not_asked(self, world: World) -> None:
        """With the target's listing entry and the checkpoint's history in hand, an item
        in sync costs that target no request at all."""
        mirror = mirror_for(world)
        await two_versions(world, "db")
        first = await mirror.sync("db", ["westus"])
        [latest] = [p for p in await world.vaults["westus"].list_items(ItemKind.SECRET)]
        world.emulators["westus"].reset_stats()
        listed = {"westus": ListedItem(latest=latest, history=first.history)}
        again = await mirror.sync("db", ["westus"], listed=listed)
        assert again.targets == {"westus": TargetOutcome("westus")}
        assert world.emulators["westus"].stats()["total"] == 0

    async def test_disabled_source_version_is_skipped_with_the_reason(self, world: World) -> None:
        """A disabled version's value cannot be read: it is skipped and says why, the
        sink records it without a value, the enabled one is copied."""
        primary = world.vaults["eastus"]
        source = await two_versions(world, "db")
        await primary.update_properties(ItemKind.SECRET, "db", source[0], Attributes(enabled=False))
        sink = CheckingSink(world, "westus")
        outcome = await mirror_for(world, sinks=[sink]).sync("db", ["westus"])
        assert outcome.targets["westus"].skipped == (
            SkippedVersion(source[0], "disabled on the source; value unreadable"),
        )
        assert outcome.targets["westus"].copied == 1
        assert [(c.op, c.payload) for c in sink.changes] == [
            (ChangeOp.NEW_VERSION, None),
            (ChangeOp.NEW_VERSION, "second-value"),
        ]

    async def test_a_disabled_latest_version_is_refused_on_the_target_too(
        self, world: World
    ) -> None:
        """The latest version disabled right after it was written: the target does not
        serve the older value (a placeholder refuses, as the primary does); enabled
        again, its value arrives as the target's current version."""
        primary, westus = world.vaults["eastus"], world.vaults["westus"]
        mirror = mirror_for(world)
        await primary.set_secret("db", "first-value", Attributes())
        await mirror.sync("db", ["westus"])
        world.advance_clock()
        second = await primary.set_secret("db", "second-value", Attributes(tags={"env": "prod"}))
        await primary.update_properties(
            ItemKind.SECRET, "db", second.version, Attributes(enabled=False, tags={"env": "prod"})
        )
        world.advance_clock()
        outcome = await mirror.sync("db", ["westus"])
        assert outcome.targets["westus"].copied == 1
        with pytest.raises(Forbidden) as primary_refused:
            await primary.get_secret("db")
        with pytest.raises(Forbidden) as target_refused:
            await westus.get_secret("db")
        assert type(target_refused.value) is type(primary_refused.value)
        versions = await westus.list_versions(ItemKind.SECRET, "db")
        assert [v.enabled for v in versions] == [True, False]
        assert versions[-1].tags[SOURCE_VERSION_TAG] == second.version
        assert (await mirror.sync("db", ["westus"])).targets["westus"].copied == 0

        await primary.update_properties(
            ItemKind.SECRET, "db", second.version, Attributes(enabled=True, tags={"env": "prod"})
        )
        world.advance_clock()
        await mirror.sync("db", ["westus"])
        assert (await westus.get_secret("db")).value == "second-value"
        versions = await westus.list_versions(ItemKind.SECRET, "db")
        assert [v.enabled for v in versions] == [True, False, True]

    async def test_item_gone_from_the_source_touches_no_target(self, world: World) -> None:
        """An item listed earlier and gone since is left to the deletion sweep."""
        world.emulators["westus"].reset_stats()
        outcome = await mirror_for(world).sync("never-written", ["westus"])
        assert outcome == ItemOutcome(ItemRef(ItemKind.SECRET, "never-written"), None)
        assert world.emulators["westus"].stats()["total"] == 0


class TestSinksFirst:
    async def test_sink_has_the_change_before_the_target_does(self, world: World) -> None:
        """The journal is handed the new version while the target does not hold it yet."""
        sink = CheckingSink(world, "westus")
        await world.vaults["eastus"].set_secret("db", "value", Attributes())
        await mirror_for(world, sinks=[sink]).sync("db", ["westus"])
        assert sink.target_versions_seen == [0]
        assert [(c.op, c.payload) for c in sink.changes] == [(ChangeOp.NEW_VERSION, "value")]

    async def test_failing_sink_is_reported_and_the_targets_still_sync(self, world: World) -> None:
        """A sink that fails is the item's sink error (so it is synced again later); the
        target gets the version all the same."""
        sink = CheckingSink(world, "westus")
        sink.failing = True
        await world.vaults["eastus"].set_secret("db", "value", Attributes())
        with capture_logs() as logs:
            outcome = await mirror_for(world, sinks=[sink]).sync("db", ["westus"])
        assert str(outcome.sink_error) == "journal storage unavailable"
        assert outcome.targets["westus"].copied == 1
        assert [(e["event"], e["item"]) for e in logs if e["event"] == "sink.failed"] == [
            ("sink.failed", "secret/db")
        ]


class TestTargetsApart:
    async def test_slow_target_times_out_alone(self, make_world: WorldFactory) -> None:
        """A target slower than the target timeout is NoAnswer; the other one is done
        and reported first; the error is counted in kvdr_replication_errors_total."""
        world = await make_world(
            regions=("eastus", *TARGETS), per_region={"centralus": {"latency_ms": 1500}}
        )
        await world.vaults["eastus"].set_secret("db", "value", Attributes())
        labels = {"pair": "app", "target": "centralus", "reason": "NoAnswer"}
        before = REGISTRY.get_sample_value("kvdr_replication_errors_total", labels) or 0.0
        reported: list[str] = []
        with capture_logs() as logs:
            outcome = await mirror_for(world, timeout=0.5).sync(
                "db", TARGETS, on_target=lambda _item, result: reported.append(result.target)
            )
        assert reported == ["westus", "centralus"]
        assert outcome.targets["westus"].copied == 1
        error = outcome.targets["centralus"].error
        assert isinstance(error, NoAnswer)
        assert (str(error), error.vault, error.op) == (
            "secret/db on vault centralus: no result within the time allowed",
            "centralus",
            "mirror",
        )
        assert REGISTRY.get_sample_value("kvdr_replication_errors_total", labels) == before + 1
        assert [e["target"] for e in logs if e["event"] == "mirror.timeout"] == ["centralus"]

    async def test_foreign_target_version_is_a_conflict_left_in_place(self, world: World) -> None:
        """A target whose latest version kvdr did not write is not written to; the
        conflict says how to take it over."""
        await world.vaults["eastus"].set_secret("shared", "from-primary", Attributes())
        by_hand = await world.vaults["westus"].set_secret("shared", "by-hand", Attributes())
        outcome = await mirror_for(world).sync("shared", ["westus"])
        assert outcome.targets["westus"].conflict == (
            f"target secret 'shared' has a latest version that kvdr did not write "
            f"({by_hand.version}); set adopt = true on the pair to take it over"
        )
        assert outcome.targets["westus"].copied == 0
        assert (await world.vaults["westus"].get_secret("shared")).value == "by-hand"

    async def test_soft_deleted_target_is_recovered_then_written(self, world: World) -> None:
        """A name soft-deleted on the target is recovered (Azure's 409 otherwise), and
        the new version is written on top of what recovery brought back."""
        mirror = mirror_for(world)
        await world.vaults["eastus"].set_secret("phoenix", "one", Attributes())
        await mirror.sync("phoenix", ["westus"])
        await world.vaults["westus"].delete_item(ItemKind.SECRET, "phoenix")
        world.advance_clock()
        await world.vaults["eastus"].set_secret("phoenix", "two", Attributes())
        with capture_logs() as logs:
            outcome = await mirror.sync("phoenix", ["westus"])
        assert (outcome.targets["westus"].copied, outcome.targets["westus"].error) == (1, None)
        versions = await world.vaults["westus"].list_versions(ItemKind.SECRET, "phoenix")
        values = [
            (await world.vaults["westus"].get_secret("phoenix", v.version)).value for v in versions
        ]
        assert values == ["one", "two"]
        assert [e["event"] for e in logs if e["event"] == "target.recovered"] == [
            "target.recovered"
        ]
