"""Secret replication end to end against real emulators and Azurite (replicator/pair.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from structlog.testing import capture_logs

from replicator.plan import SOURCE_VERSION_TAG
from tests.fixtures.clock import ManualClock
from tests.fixtures.regions import World, WorldFactory
from vault.adapter import KeyVaultAdapter
from vault.models import Attributes, ItemKind, ItemProperties, ItemRef

SOON = datetime.now(UTC).replace(microsecond=0) + timedelta(days=10)


async def versions(vault: KeyVaultAdapter, name: str) -> list[ItemProperties]:
    return await vault.list_versions(ItemKind.SECRET, name)


async def values(vault: KeyVaultAdapter, name: str) -> list[str]:
    return [(await vault.get_secret(name, v.version)).value for v in await versions(vault, name)]


def same_attributes(source: ItemProperties, target: ItemProperties) -> bool:
    user_tags = {k: v for k, v in target.tags.items() if k != SOURCE_VERSION_TAG}
    return (
        source.enabled == target.enabled
        and source.not_before == target.not_before
        and source.expires_on == target.expires_on
        and source.content_type == target.content_type
        and source.tags == user_tags
        and target.tags.get(SOURCE_VERSION_TAG) == source.version
    )


class TestMirrorsSecrets:
    async def test_lifecycle_arrives_on_every_secondary(self, make_world: WorldFactory) -> None:
        """Create, update, disable, expire and re-enable arrive on both secondaries in order."""
        world = await make_world(regions=("eastus", "westus", "centralus"))
        primary = world.vaults["eastus"]
        pair = world.pair(secondaries=("westus", "centralus"))
        replicator = world.replicator(pair)
        await replicator.load()

        await primary.set_secret("db-password", "v1-value", Attributes(content_type="text/plain"))
        await primary.set_secret(
            "db-password", "v2-value", Attributes(content_type="text/plain", tags={"env": "prod"})
        )
        await primary.set_secret("api-token", "token-1", Attributes())
        report = await replicator.reconcile()
        assert report.copied == 6 and report.errors == 0

        v2 = (await versions(primary, "db-password"))[-1]
        await primary.update_properties(
            ItemKind.SECRET,
            "db-password",
            v2.version,
            Attributes(enabled=False, content_type="text/plain", tags={"env": "prod"}),
        )
        token = (await versions(primary, "api-token"))[-1]
        await primary.update_properties(
            ItemKind.SECRET, "api-token", token.version, Attributes(expires_on=SOON)
        )
        report = await replicator.poll()
        assert report.updated == 4 and report.copied == 0

        await primary.update_properties(
            ItemKind.SECRET,
            "db-password",
            v2.version,
            Attributes(enabled=True, content_type="text/plain", tags={"env": "prod"}),
        )
        await replicator.poll()

        for region in ("westus", "centralus"):
            target = world.vaults[region]
            for name in ("db-password", "api-token"):
                source_versions = await versions(primary, name)
                target_versions = await versions(target, name)
                assert len(target_versions) == len(source_versions)
                for s, t in zip(source_versions, target_versions, strict=True):
                    assert same_attributes(s, t), (region, name)
                assert await values(target, name) == await values(primary, name)

    async def test_reapplying_creates_no_new_version(self, world: World) -> None:
        """A second reconcile, even from a fresh checkpoint, writes nothing."""
        await world.vaults["eastus"].set_secret("idem", "value-1", Attributes())
        pair = world.pair()
        first = world.replicator(pair)
        await first.load()
        await first.reconcile()
        # No checkpoint written: a brand-new replicator must still not duplicate.
        second = world.replicator(pair)
        await second.load()
        report = await second.reconcile()
        assert report.copied == 0 and report.unchanged == 1
        assert len(await versions(world.vaults["westus"], "idem")) == 1

    async def test_foreign_target_secret_is_left_alone_and_reported(self, world: World) -> None:
        """A target secret kvdr did not write is not overwritten; status names the conflict."""
        await world.vaults["eastus"].set_secret("shared", "from-primary", Attributes())
        await world.vaults["westus"].set_secret("shared", "written-by-hand", Attributes())
        replicator = world.replicator(world.pair())
        await replicator.load()
        report = await replicator.reconcile()
        assert report.conflicts == 1
        assert await values(world.vaults["westus"], "shared") == ["written-by-hand"]
        conflicts = replicator.status()["targets"][0]["conflicts"]
        assert conflicts[0]["item"] == "secret/shared" and "adopt" in conflicts[0]["reason"]

    async def test_adopt_takes_over_foreign_secret(self, world: World) -> None:
        """With adopt = true the primary's versions are written on top."""
        await world.vaults["eastus"].set_secret("shared", "from-primary", Attributes())
        await world.vaults["westus"].set_secret("shared", "written-by-hand", Attributes())
        replicator = world.replicator(world.pair(adopt=True))
        await replicator.load()
        await replicator.reconcile()
        assert (await world.vaults["westus"].get_secret("shared")).value == "from-primary"

    async def test_soft_deleted_target_is_recovered_before_writing(self, world: World) -> None:
        """A soft-deleted target name is recovered, then gets the new version (no 409)."""
        primary, target = world.vaults["eastus"], world.vaults["westus"]
        replicator = world.replicator(world.pair())
        await replicator.load()
        await primary.set_secret("phoenix", "one", Attributes())
        await replicator.reconcile()
        await target.delete_item(ItemKind.SECRET, "phoenix")
        # Key Vault stamps times in whole seconds; a poll tells versions apart by time.
        world.advance_clock()
        await primary.set_secret("phoenix", "two", Attributes())
        report = await replicator.poll()
        assert report.errors == 0
        assert await values(target, "phoenix") == ["one", "two"]

    async def test_include_exclude_globs_select_items(self, world: World) -> None:
        """Only names the pair selects are mirrored."""
        primary = world.vaults["eastus"]
        for name in ("app-a", "app-b", "app-secret-internal", "other"):
            await primary.set_secret(name, f"value-of-{name}", Attributes())
        replicator = world.replicator(world.pair(include=("app-*",), exclude=("*-internal",)))
        await replicator.load()
        await replicator.reconcile()
        mirrored = {p.name for p in await world.vaults["westus"].list_items(ItemKind.SECRET)}
        assert mirrored == {"app-a", "app-b"}


class TestCheckpoints:
    async def test_restart_mid_sync_resumes_without_duplicates(self, world: World) -> None:
        """A replicator stopped mid-pass resumes from its checkpoint; no duplicate versions."""
        primary = world.vaults["eastus"]
        names = [f"bulk-{i:03d}" for i in range(80)]
        await asyncio.gather(*(primary.set_secret(n, f"value-{n}", Attributes()) for n in names))
        pair = world.pair()
        first = world.replicator(pair, max_concurrent_items=4)
        await first.load()
        done = asyncio.Event()

        def progress(count: int, total: int) -> None:
            if count >= 30:
                done.set()

        task = asyncio.create_task(first.reconcile(progress=progress))
        await done.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await first.flush()
        saved = await world.checkpoints.load(pair.name, "westus")
        assert 30 <= len(saved.items) < 80

        second = world.replicator(pair)
        await second.load()
        report = await second.poll()
        # Items in flight when it stopped were written but not checkpointed: their tag
        # tells the resumed pass they are there, so at most the rest is copied.
        assert report.copied <= 80 - len(saved.items)
        for name in names:
            assert len(await versions(world.vaults["westus"], name)) == 1, name

    async def test_poll_uses_checkpoint_not_target(self, world: World) -> None:
        """A poll after a completed pass reads nothing from the target."""
        await world.vaults["eastus"].set_secret("quiet", "value", Attributes())
        replicator = world.replicator(world.pair())
        await replicator.load()
        await replicator.reconcile()
        await replicator.flush()
        world.emulators["westus"].reset_stats()
        report = await replicator.poll()
        assert report.unchanged == 1
        stats = world.emulators["westus"].stats()
        assert stats["total"] == 0, stats


class TestLagAndRpo:
    async def test_rpo_counts_pending_changes_and_returns_to_zero(self, world: World) -> None:
        """RPO grows while a change waits and is 0 once it is applied."""
        primary = world.vaults["eastus"]
        clock = ManualClock()
        replicator = world.replicator(world.pair(), clock=clock)
        await replicator.load()
        await replicator.reconcile()
        written = await primary.set_secret("late", "value", Attributes())
        world.emulators["westus"].set_read_only(True)
        report = await replicator.poll()
        assert report.errors == 1
        assert written.updated_on is not None
        clock.now = written.updated_on.timestamp() + 30.0
        # Pending since the primary stamped the change, counted on the replicator's clock.
        assert replicator.lag.rpo() == 30.0
        [error] = replicator.status()["targets"][0]["recent_errors"]
        assert (error["item"], error["reason"]) == ("secret/late", "Forbidden")
        world.emulators["westus"].set_read_only(False)
        await replicator.poll()
        assert replicator.lag.rpo() == 0.0

    async def test_an_unreadable_primary_shows_in_rpo_while_it_lasts(self, world: World) -> None:
        """The primary refuses every read: changes there are unseen but at risk, so RPO
        grows from the start of the last poll that read it (the per-target lag, which
        counts only seen changes, stays 0); a poll that reads it again ends it."""
        clock = ManualClock()
        replicator = world.replicator(world.pair(), clock=clock)
        await replicator.load()
        await replicator.reconcile()
        last_read = clock.now
        world.emulators["eastus"].management("PUT", "faults", {"deny": "*"})
        clock.advance(12.0)
        await replicator._guarded(replicator.poll)
        clock.advance(8.0)
        await replicator._guarded(replicator.poll)
        status = replicator.status()
        assert status["source_error"] is not None
        assert status["rpo_seconds"] == clock.now - last_read == 20.0
        assert status["targets"][0]["lag_seconds"] == 0.0
        world.emulators["eastus"].management("DELETE", "faults")
        await replicator._guarded(replicator.poll)
        assert replicator.status()["rpo_seconds"] == 0.0

    async def test_event_waiting_for_a_busy_loop_counts_as_lag(self, world: World) -> None:
        """A change an event announced is pending from the event on, even while no pass
        has picked it up yet; syncing it brings the lag back to 0."""
        clock = ManualClock()
        replicator = world.replicator(world.pair(), clock=clock)
        await replicator.load()
        await replicator.reconcile()
        await world.vaults["eastus"].set_secret("announced", "value", Attributes())
        replicator.notify(ItemKind.SECRET, "announced")
        replicator.notify(ItemKind.SECRET, "gone-before-the-pass")
        clock.advance(0.5)
        assert replicator.lag.lag("westus") == 0.5
        assert replicator.lag.pending("westus") == 2
        await replicator.sync_refs(
            {
                ItemRef(ItemKind.SECRET, "announced"): clock.now,
                ItemRef(ItemKind.SECRET, "gone-before-the-pass"): clock.now,
            }
        )
        assert replicator.lag.rpo() == 0.0

    async def test_rpo_above_objective_is_logged_once_and_cleared(self, world: World) -> None:
        """Crossing the objective logs one warning; catching up logs that it is back."""
        clock = ManualClock()
        replicator = world.replicator(world.pair(rpo_objective_seconds=0.5), clock=clock)
        await replicator.load()
        written = await world.vaults["eastus"].set_secret("slowpoke", "value", Attributes())
        world.emulators["westus"].set_read_only(True)
        assert written.updated_on is not None
        with capture_logs() as logs:
            await replicator.poll()
            clock.now = written.updated_on.timestamp() + 0.75
            replicator.publish_metrics()
            replicator.publish_metrics()
            world.emulators["westus"].set_read_only(False)
            replicator.targets["westus"].suspended_until = 0.0
            await replicator.poll()
            replicator.publish_metrics()
        events = [e["event"] for e in logs if e["event"].startswith("rpo.")]
        assert events == ["rpo.above_objective", "rpo.within_objective"]
        assert replicator.status()["rpo_ok"] is True


class TestThrottling:
    async def test_429s_slow_down_but_lose_nothing(self, make_world: WorldFactory) -> None:
        """With the target enforcing Azure's limits, a burst above its budget converges."""
        # The target enforces Azure's limits; the primary is only seeded (through an
        # adapter allowing itself more than 300 creates per 10 s, so no wait for a window).
        world = await make_world(per_region={"westus": {"throttle": "azure"}})
        seeder = await world.open_vault("eastus", secret_creates_per_10s=1000)
        names = [f"t-{i:03d}" for i in range(320)]
        await asyncio.gather(*(seeder.set_secret(n, "v", Attributes()) for n in names))
        # A second adapter that allows itself more than Azure does, so 429s really happen.
        eager = await world.open_vault("westus", secret_creates_per_10s=1000, max_attempts=10)
        world.vaults["westus"] = eager
        replicator = world.replicator(world.pair(), max_concurrent_items=32)
        await replicator.load()
        report = await replicator.reconcile()
        assert report.errors == 0 and report.copied == 320
        assert eager.rate.stats().throttled > 0
        listed = await world.vaults["westus"].list_items(ItemKind.SECRET)
        assert len(listed) == 320


class TestNoValuesLeak:
    async def test_values_absent_from_logs_status_and_metrics(self, world: World) -> None:
        """No secret value appears in captured logs, status or /metrics output."""
        from prometheus_client import REGISTRY, generate_latest

        marker = "s3cr3t-marker-value-7d1f"
        await world.vaults["eastus"].set_secret("leak-check", marker, Attributes())
        await world.vaults["westus"].set_secret("leak-foreign", marker + "-2", Attributes())
        await world.vaults["eastus"].set_secret("leak-foreign", marker + "-3", Attributes())
        replicator = world.replicator(world.pair())
        with capture_logs() as logs:
            await replicator.load()
            await replicator.reconcile()
            await replicator.flush()
        assert any(entry["event"] == "secret.mirrored" for entry in logs)
        assert marker not in repr(logs)
        assert marker not in repr(replicator.status())
        assert marker not in generate_latest(REGISTRY).decode()
        checkpoint = await world.blobs.get("checkpoints/app/westus.json")
        assert marker.encode() not in checkpoint.data
