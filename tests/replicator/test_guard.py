"""The deletion guard (replicator/guard.py): its state in blob storage, a mass deletion
held back on real emulators, and its release by `kvdr sync --once --confirm-deletions`
(a real process) while a real daemon runs and across a daemon restart."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from replicator.guard import (
    DeletionGuardStore,
    GuardConflict,
    GuardLimits,
    GuardState,
    guard_blob_name,
    hidden_name,
    parse_guard_blob_name,
)
from storage import StorageError, WriteConflict
from storage.azure_blob import AzureBlobStore
from tests.fixtures.cli import run_kvdr
from tests.fixtures.daemon import DaemonProcess, free_port, write_config
from tests.fixtures.regions import World, WorldFactory
from tests.fixtures.waiting import wait_for
from vault.models import Attributes, ItemKind


def kvdr(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return run_kvdr(*args, cwd=cwd, timeout=120)


async def live_names(world: World, region: str) -> set[str]:
    return {p.name for p in await world.vaults[region].list_items(ItemKind.SECRET)}


async def seed(world: World, names: list[str]) -> None:
    primary = world.vaults["eastus"]
    await asyncio.gather(*(primary.set_secret(n, f"value-of-{n}", Attributes()) for n in names))


async def delete_on_primary(world: World, names: list[str]) -> None:
    primary = world.vaults["eastus"]
    await asyncio.gather(*(primary.delete_item(ItemKind.SECRET, n) for n in names))


class TestGuardState:
    def test_json_round_trip_and_blob_names(self) -> None:
        """The stored document gives back the same state; blob names parse back."""
        state = GuardState(pair="app").trip(12.5, ("secret/a", "key/b"), 40, GuardLimits(3, 0.1))
        again = GuardState.from_json(state.to_json(), etag="e1")
        assert again == state and again.etag == "e1"
        assert parse_guard_blob_name(guard_blob_name("app")) == "app"
        with pytest.raises(ValueError, match="not a deletion guard blob name"):
            parse_guard_blob_name("checkpoints/app/westus.json")

    def test_view_hashes_names_when_hidden(self) -> None:
        """With hide_names the withheld names are `sha256:` + 12 hex digits of the name."""
        state = GuardState(pair="app").trip(1.0, ("secret/db-password",), 4, GuardLimits())
        shown = state.view(hide_names=True)
        assert shown["withheld"] == [f"secret/{hidden_name('db-password')}"]
        assert hidden_name("db-password").startswith("sha256:")
        assert len(hidden_name("db-password")) == len("sha256:") + 12
        assert "db-password" not in json.dumps(shown)
        assert state.view()["withheld"] == ["secret/db-password"]
        assert state.view()["release_with"] == ("kvdr sync --once --pair app --confirm-deletions")

    def test_limits_refuse_nonsense(self) -> None:
        """A fraction outside (0, 1] or a negative minimum is refused by name."""
        with pytest.raises(ValueError, match="fraction"):
            GuardLimits(10, 0.0)
        with pytest.raises(ValueError, match="min_items"):
            GuardLimits(-1, 0.5)
        assert GuardLimits(10, 0.25).threshold(60) == 15.0
        assert GuardLimits(10, 0.25).threshold(8) == 10.0


class TestGuardStore:
    async def test_save_load_and_conflicting_writers(self, blob_container: AzureBlobStore) -> None:
        """A new pair's guard is armed; a write over a stale ETag is refused; `update`
        re-reads and wins."""
        store = DeletionGuardStore(blob_container)
        fresh = await store.load("app")
        assert fresh.tripped is False and fresh.etag is None
        tripped = await store.save(fresh.trip(5.0, ("secret/a",), 3, GuardLimits()))
        assert (await DeletionGuardStore(blob_container).load("app")) == tripped
        await store.save(tripped.trip(6.0, ("secret/a", "secret/b"), 3, GuardLimits()))
        with pytest.raises(GuardConflict):
            await store.save(tripped.release(7.0, "confirmation"))
        released = await store.update("app", lambda g: g.release(7.0, "confirmation"))
        assert released.tripped is False and released.released_by == "confirmation"

    async def test_conflict_names_the_blob_and_is_a_write_conflict(
        self, blob_container: AzureBlobStore
    ) -> None:
        """A first save of a guard another writer created meanwhile is refused with
        GuardConflict, which callers may catch as any WriteConflict (never as a
        StorageError); the other writer's state stays."""
        store = DeletionGuardStore(blob_container)
        fresh = await store.load("app")
        await store.save(fresh.trip(5.0, ("secret/a",), 3, GuardLimits()))
        with pytest.raises(WriteConflict) as caught:
            await store.save(fresh.release(6.0, "confirmation"))
        assert isinstance(caught.value, GuardConflict)
        assert not isinstance(caught.value, StorageError)
        assert str(caught.value) == "deletion guard guards/app.json was changed by another writer"
        assert (await store.load("app")).tripped is True


class TestGuardOnVaults:
    async def test_mass_deletion_is_withheld_while_the_rest_replicates(self, world: World) -> None:
        """30 of 60 deleted trips the guard: nothing is deleted on the target, status,
        metric and an error log say so, a new secret still arrives, and a restarted
        replicator reads the guard back."""
        names = [f"mass-{i:02d}" for i in range(60)]
        await seed(world, names)
        pair = world.pair(name="guard-trip")
        replicator = world.replicator(pair)
        await replicator.load()
        await replicator.reconcile()
        await delete_on_primary(world, names[:30])

        with capture_logs() as logs:
            report = await replicator.sweep()
        await replicator.flush()
        replicator.publish_metrics()
        assert report.guard_tripped and report.withheld == 30 and report.deleted == 0
        assert await live_names(world, "westus") == set(names)
        guard = replicator.status()["deletion_guard"]
        assert guard["tripped"] and guard["deleted"] == 30 and guard["items"] == 60
        assert guard["withheld_count"] == 30 and "secret/mass-00" in guard["withheld"]
        assert (
            REGISTRY.get_sample_value("kvdr_deletion_guard_tripped", {"pair": "guard-trip"}) == 1.0
        )
        alert = [e for e in logs if e["event"] == "deletion_guard.tripped"]
        assert alert and alert[0]["log_level"] == "error" and alert[0]["deleted"] == 30

        await world.vaults["eastus"].set_secret("after-trip", "still-flows", Attributes())
        await replicator.poll()
        assert (await world.vaults["westus"].get_secret("after-trip")).value == "still-flows"
        await world.vaults["eastus"].delete_item(ItemKind.SECRET, "after-trip")
        report = await replicator.sweep()
        assert report.deleted == 0 and report.withheld == 31, "one more deletion is held too"

        restarted = world.replicator(pair)
        await restarted.load()
        assert restarted.status()["deletion_guard"]["tripped"]
        assert (await restarted.sweep()).deleted == 0
        assert len(await live_names(world, "westus")) == 61

    async def test_raising_the_threshold_in_config_releases(self, world: World) -> None:
        """After a trip, a configuration whose limits no longer count the deletions as a
        mass deletion releases the guard and the deletions go through; names are hashed
        in status when the pair hides them."""
        names = [f"few-{i:02d}" for i in range(14)]
        await seed(world, names)
        pair = world.pair(hide_names=True)
        first = world.replicator(pair)
        await first.load()
        await first.reconcile()
        await first.flush()
        await delete_on_primary(world, names[:11])  # 11 > max(10, 25% of 14)
        assert (await first.sweep()).guard_tripped
        await first.flush()
        withheld = first.status()["deletion_guard"]["withheld"]
        assert len(withheld) == 11 and not any("few-" in name for name in withheld)

        raised = world.replicator(world.pair(hide_names=True, deletion_guard_min_items=20))
        await raised.load()
        report = await raised.sweep()
        assert report.deleted == 11 and not report.guard_tripped
        guard = raised.status()["deletion_guard"]
        assert guard["tripped"] is False and guard["released_by"] == "configuration"
        assert await live_names(world, "westus") == set(names[11:])


def with_replication(config: Path, **keys: str) -> Path:
    """Add keys to the [replication] table write_config wrote."""
    extra = "".join(f'{key} = "{value}"\n' for key, value in keys.items())
    config.write_text(config.read_text().replace("[replication]\n", "[replication]\n" + extra, 1))
    return config


def pair_status(daemon: DaemonProcess) -> dict[str, Any]:
    pairs: list[dict[str, Any]] = daemon.status()["pairs"]
    return pairs[0]


class TestGuardAcrossProcesses:
    async def test_guard_survives_restart_and_is_released_by_confirmation(
        self, make_world: WorldFactory, tmp_path: Path
    ) -> None:
        """A real daemon trips on 30 of 60 deletions and deletes nothing, also after a
        restart; `kvdr status` shows the guard with and without a daemon; `kvdr sync
        --once --pair app --confirm-deletions` (a separate process) applies them and
        releases the guard, and the running daemon does not trip again."""
        port = free_port()
        world = await make_world()
        names = [f"mass-{i:02d}" for i in range(60)]
        await seed(world, names)
        config = with_replication(
            write_config(world, tmp_path / "kvdr.toml", port=port, poll_interval="500ms"),
            deletion_sweep_interval="1s",
        )
        daemon = DaemonProcess(config, port).start()
        try:
            await wait_for(lambda: pair_status(daemon).get("last_sweep"), 30, "the first sweep")
            assert await live_names(world, "westus") == set(names)
            await delete_on_primary(world, names[:30])
            await wait_for(
                lambda: pair_status(daemon)["deletion_guard"]["tripped"], 20, "the guard to trip"
            )
            guard = pair_status(daemon)["deletion_guard"]
            assert guard["withheld_count"] == 30 and guard["items"] == 60
            _, metrics = daemon.get("/metrics")
            assert 'kvdr_deletion_guard_tripped{pair="app"} 1.0' in metrics.decode()
            assert await live_names(world, "westus") == set(names)
            human = kvdr("status", "--config", str(config))
            assert (
                "deletion guard tripped" in human.stdout and "--confirm-deletions" in human.stdout
            )

            assert daemon.terminate() == 0
            # No daemon: status reads the guard from blob storage.
            offline = json.loads(kvdr("status", "--json", "--config", str(config)).stdout)
            assert offline["source"] == "checkpoints"
            assert offline["pairs"][0]["deletion_guard"]["withheld_count"] == 30
            daemon = DaemonProcess(config, port).start()
            await wait_for(
                lambda: pair_status(daemon).get("last_sweep"), 30, "a sweep after the restart"
            )
            assert pair_status(daemon)["deletion_guard"]["tripped"]
            assert await live_names(world, "westus") == set(names)

            result = kvdr(
                "sync",
                "--once",
                "--pair",
                "app",
                "--confirm-deletions",
                "--json",
                "--config",
                str(config),
            )
            assert result.returncode == 0, result.stdout + result.stderr
            doc = json.loads(result.stdout)
            assert doc["ok"] is True
            assert doc["pairs"][0]["deletions"]["deleted"] == 30
            assert doc["pairs"][0]["deletion_guard"]["released_by"] == "confirmation"
            assert await live_names(world, "westus") == set(names[30:])

            await wait_for(
                lambda: not pair_status(daemon)["deletion_guard"]["tripped"],
                15,
                "the daemon to see the release",
            )
            seen = pair_status(daemon)["last_sweep"]
            await wait_for(lambda: pair_status(daemon)["last_sweep"] != seen, 15, "one more sweep")
            assert not pair_status(daemon)["deletion_guard"]["tripped"]
            _, metrics = daemon.get("/metrics")
            assert 'kvdr_deletion_guard_tripped{pair="app"} 0.0' in metrics.decode()
        finally:
            assert daemon.terminate() == 0
        alerts = [
            json.loads(line)
            for line in daemon.logs().splitlines()
            if '"deletion_guard.tripped"' in line
        ]
        assert alerts and all(a["level"] == "error" for a in alerts)
        assert any(a.get("restored") for a in alerts), "the restart repeats the alert"

    def test_confirm_deletions_needs_a_pair(self, tmp_path: Path) -> None:
        """--confirm-deletions without --pair is a usage error (exit 2)."""
        result = kvdr("sync", "--once", "--confirm-deletions", cwd=tmp_path)
        assert result.returncode == 2
        assert "--pair" in result.stderr
