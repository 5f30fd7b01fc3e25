"""A full pass lists each target once and reads per item only what that listing cannot
prove in sync (replicator/target_listing.py, plan.listed_in_sync), counted on the
emulators themselves."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from replicator.plan import SOURCE_VERSION_TAG
from tests.fixtures.regions import World, WorldFactory
from vault.models import Attributes, ItemKind

SECONDARIES = ("westus", "centralus")


def ops(stats: dict[str, Any]) -> dict[str, int]:
    """Requests per operation (all statuses) from an emulator's `/_emulator/stats`."""
    return {op: sum(statuses.values()) for op, statuses in stats["by_op"].items()}


async def seed(world: World, names: list[str], value: str = "value") -> None:
    primary = world.vaults["eastus"]
    await asyncio.gather(*(primary.set_secret(n, f"{value}-{n}", Attributes()) for n in names))


class TestRequestsPerReconcile:
    async def test_mirrored_secrets_cost_no_target_request_new_ones_three(
        self, make_world: WorldFactory
    ) -> None:
        """A reconcile of N mirrored and N new secrets: on each target one listing, then a
        version listing and a write per new secret only (it was 3 per secret, 2N + N)."""
        n = 10
        world = await make_world(regions=("eastus", *SECONDARIES))
        replicator = world.replicator(world.pair(secondaries=SECONDARIES))
        await replicator.load()
        mirrored = [f"old-{i:02d}" for i in range(n)]
        new = [f"new-{i:02d}" for i in range(n)]
        await seed(world, mirrored)
        await replicator.reconcile()
        await replicator.flush()
        await seed(world, new)
        for emulator in world.emulators.values():
            emulator.reset_stats()

        report = await replicator.reconcile()

        assert report.copied == n * len(SECONDARIES) and report.unchanged == n * len(SECONDARIES)
        assert report.errors == 0
        # The primary: one listing page (20 items, 25 a page), every item's versions
        # (the only proof of which version is current), each new value once.
        assert ops(world.emulators["eastus"].stats()) == {
            "GetSecrets": 1,
            "GetSecretVersions": 2 * n,
            "GetSecret": n,
        }
        for region in SECONDARIES:
            # Before: GetSecretVersions 2N (N of them 404) and SetSecret N, 3N in all.
            assert ops(world.emulators[region].stats()) == {
                "GetSecrets": 1,
                "GetSecretVersions": n,
                "SetSecret": n,
            }, region
            assert world.emulators[region].stats()["total"] == 2 * n + 1 < 3 * n

    async def test_multi_version_secret_is_proven_by_its_checkpoint_history(
        self, world: World
    ) -> None:
        """A secret with several versions is read on the target once, then proven in sync
        from the listing and the checkpoint; a fresh checkpoint reads it again."""
        primary = world.vaults["eastus"]
        await primary.set_secret("rotated", "one", Attributes())
        world.advance_clock()  # whole-second timestamps: keep versions apart
        await primary.set_secret("rotated", "two", Attributes())
        pair = world.pair()
        replicator = world.replicator(pair)
        await replicator.load()
        await replicator.reconcile()
        await replicator.flush()

        target = world.emulators["westus"]
        target.reset_stats()
        report = await replicator.reconcile()
        assert report.unchanged == 1
        assert ops(target.stats()) == {"GetSecrets": 1}

        # Without the checkpoint's history the listing proves only the latest version.
        fresh = world.replicator(pair)
        await fresh.load()
        fresh.last_deep_reconcile = time.time()  # past its first (deep) pass
        fresh.targets["westus"].checkpoint.items.clear()
        target.reset_stats()
        report = await fresh.reconcile()
        assert report.unchanged == 1 and report.copied == 0
        read = ops(target.stats())
        # (Plus a GET of the current version when the copies share their second.)
        assert read["GetSecrets"] == 1 and read["GetSecretVersions"] == 1, read
        assert not {"SetSecret", "UpdateSecret"} & set(read), read


class TestListingProvesOnlyWhatItCan:
    async def test_older_version_disabled_on_the_source_reaches_the_target(
        self, world: World
    ) -> None:
        """Disabling an older version changes no listing; the history tells it, and the
        target's copy of that version is disabled too."""
        primary, target = world.vaults["eastus"], world.vaults["westus"]
        await primary.set_secret("leaked", "old", Attributes())
        world.advance_clock()
        await primary.set_secret("leaked", "new", Attributes())
        replicator = world.replicator(world.pair())
        await replicator.load()
        await replicator.reconcile()
        first = (await primary.list_versions(ItemKind.SECRET, "leaked"))[0]
        await primary.update_properties(
            ItemKind.SECRET, "leaked", first.version, Attributes(enabled=False)
        )

        report = await replicator.reconcile()

        assert report.updated == 1
        copies = await target.list_versions(ItemKind.SECRET, "leaked")
        assert [c.enabled for c in copies] == [False, True]
        assert copies[0].tags[SOURCE_VERSION_TAG] == first.version

    async def test_changed_tag_on_the_target_copy_is_put_back(self, world: World) -> None:
        """A target copy whose attributes drifted is not proven in sync: it is updated."""
        primary, target = world.vaults["eastus"], world.vaults["westus"]
        await primary.set_secret("drift", "v", Attributes(tags={"env": "prod"}))
        replicator = world.replicator(world.pair())
        await replicator.load()
        await replicator.reconcile()
        [copy] = await target.list_versions(ItemKind.SECRET, "drift")
        await target.update_properties(
            ItemKind.SECRET, "drift", copy.version, Attributes(tags={**copy.tags, "env": "dev"})
        )

        report = await replicator.reconcile()

        assert report.updated == 1
        [copy] = await target.list_versions(ItemKind.SECRET, "drift")
        assert copy.tags["env"] == "prod"

    async def test_older_target_copy_changed_behind_kvdr_is_repaired_by_a_deep_pass(
        self, world: World
    ) -> None:
        """An older target copy disabled behind kvdr's back is invisible to the listing: a
        shallow pass leaves it, the next deep pass (`deep_reconcile_interval`) puts it
        back."""
        primary, target = world.vaults["eastus"], world.vaults["westus"]
        await primary.set_secret("quiet", "old", Attributes())
        world.advance_clock()
        await primary.set_secret("quiet", "new", Attributes())
        replicator = world.replicator(world.pair(), deep_reconcile_interval_seconds=3600.0)
        await replicator.load()
        await replicator.reconcile()  # the first pass of a process is deep
        old_copy = (await target.list_versions(ItemKind.SECRET, "quiet"))[0]
        await target.update_properties(
            ItemKind.SECRET,
            "quiet",
            old_copy.version,
            Attributes(enabled=False, tags=old_copy.tags),
        )

        shallow = await replicator.reconcile()
        assert shallow.updated == 0
        assert [c.enabled for c in await target.list_versions(ItemKind.SECRET, "quiet")] == [
            False,
            True,
        ]

        assert replicator.last_deep_reconcile is not None
        replicator.last_deep_reconcile -= 3600.0  # the interval has passed
        deep = await replicator.reconcile()
        assert deep.updated == 1
        assert [c.enabled for c in await target.list_versions(ItemKind.SECRET, "quiet")] == [
            True,
            True,
        ]

    async def test_unreachable_target_listing_leaves_items_to_the_per_item_path(
        self, make_world: WorldFactory
    ) -> None:
        """A target that cannot list reports its errors item by item; the other target
        is served from its listing."""
        world = await make_world(regions=("eastus", *SECONDARIES))
        replicator = world.replicator(
            world.pair(secondaries=SECONDARIES), target_timeout_seconds=2.0
        )
        await replicator.load()
        await seed(world, ["a", "b"])
        await replicator.reconcile()
        world.emulators["centralus"].stop()
        world.emulators["westus"].reset_stats()

        report = await replicator.reconcile()

        assert (report.unchanged, report.errors) == (2, 2)
        assert ops(world.emulators["westus"].stats()) == {"GetSecrets": 1}
        errors = replicator.status()["targets"][1]["recent_errors"]
        # The stopped vault refuses connections; the adapter retries until the target
        # timeout ends the item.
        assert sorted((e["item"], e["reason"], e["message"]) for e in errors) == [
            (
                f"secret/{n}",
                "NoAnswer",
                f"secret/{n} on vault centralus: no result within the time allowed",
            )
            for n in ("a", "b")
        ]
