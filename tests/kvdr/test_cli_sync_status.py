"""`kvdr sync --once` and `kvdr status` as a user runs them (real processes)."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob.aio import BlobLeaseClient, ContainerClient

from storage.lease import LeaseTiming, PairLease, lease_blob_name
from tests.fixtures.cli import run_kvdr
from tests.fixtures.daemon import DaemonProcess, free_port, write_config
from tests.fixtures.regions import World, WorldFactory
from tests.fixtures.waiting import wait_for
from vault.models import Attributes, ItemKind


def kvdr(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return run_kvdr(*args, cwd=cwd, timeout=120)


class TestSyncOnce:
    async def test_json_counts_then_nothing_left(self, world: World, tmp_path: Path) -> None:
        """A first pass copies, a second finds everything unchanged; stdout is pure JSON."""
        for i in range(5):
            await world.vaults["eastus"].set_secret(f"cli-{i}", f"value-{i}", Attributes())
        config = write_config(world, tmp_path / "kvdr.toml", port=free_port())
        first = kvdr("sync", "--once", "--json", "--config", str(config))
        assert first.returncode == 0, first.stderr
        doc = json.loads(first.stdout)
        assert doc["ok"] is True
        assert doc["pairs"][0]["pair"] == "app" and doc["pairs"][0]["copied"] == 5
        second = json.loads(kvdr("sync", "--once", "--json", "--config", str(config)).stdout)
        assert second["pairs"][0]["copied"] == 0 and second["pairs"][0]["unchanged"] == 5

    async def test_human_output_names_conflicts(self, world: World, tmp_path: Path) -> None:
        """Without --json the counts and each conflict are printed."""
        await world.vaults["eastus"].set_secret("taken", "primary-value", Attributes())
        await world.vaults["westus"].set_secret("taken", "someone-elses", Attributes())
        config = write_config(world, tmp_path / "kvdr.toml", port=free_port())
        result = kvdr("sync", "--once", "--config", str(config))
        assert result.returncode == 0, result.stderr
        assert "conflicts 1" in result.stdout
        assert "conflict on westus" in result.stdout and "adopt" in result.stdout
        assert "primary-value" not in result.stdout + result.stderr

    async def test_unknown_pair_is_a_usage_error(self, world: World, tmp_path: Path) -> None:
        """--pair with a name the configuration lacks exits 2 and names the pairs it has."""
        config = write_config(world, tmp_path / "kvdr.toml", port=free_port())
        result = kvdr("sync", "--once", "--pair", "nope", "--config", str(config))
        assert result.returncode == 2
        assert "'nope'" in result.stderr and "app" in result.stderr

    async def test_unreachable_target_fails_the_run(self, world: World, tmp_path: Path) -> None:
        """Errors on a target make the exit code 1, with the error printed."""
        await world.vaults["eastus"].set_secret("lonely", "v-lonely", Attributes())
        world.emulators["westus"].set_read_only(True)
        config = write_config(world, tmp_path / "kvdr.toml", port=free_port())
        result = kvdr("sync", "--once", "--config", str(config))
        world.emulators["westus"].set_read_only(False)
        assert result.returncode == 1
        assert "error on westus: secret/lonely" in result.stdout

    async def test_pair_run_by_a_daemon_is_left_to_it(self, world: World, tmp_path: Path) -> None:
        """While a daemon holds the pair's lease, `kvdr sync --once` writes nothing beside
        it: it names the daemon and exits 1."""
        port = free_port()
        config = write_config(world, tmp_path / "kvdr.toml", port=port)
        daemon = DaemonProcess(config, port).start()
        try:
            result = kvdr("sync", "--once", "--json", "--config", str(config))
            human = kvdr("sync", "--once", "--config", str(config))
        finally:
            daemon.terminate()
        assert result.returncode == 1, result.stdout + result.stderr
        doc = json.loads(result.stdout)
        assert doc["ok"] is False
        assert doc["pairs"][0]["run_by"] == "daemon test-daemon"
        assert doc["pairs"][0]["copied"] == 0 and doc["pairs"][0]["deletions"] is None
        assert human.returncode == 1
        assert "pair app: run by daemon test-daemon, which holds its lease" in human.stdout

    async def test_syncs_under_the_lease_and_gives_it_back(
        self, world: World, tmp_path: Path
    ) -> None:
        """A lease held by another process keeps the command off the pair; once free, the
        command takes it for its pass and releases it at the end."""
        await world.vaults["eastus"].set_secret("leased", "v-leased", Attributes())
        config = write_config(world, tmp_path / "kvdr.toml", port=free_port())
        other = PairLease(world.blobs, "app", LeaseTiming(15))
        assert await other.acquire()
        held = await asyncio.to_thread(kvdr, "sync", "--once", "--config", str(config))
        assert held.returncode == 1 and "run by another process" in held.stdout
        assert "copied" not in held.stdout
        await other.release()
        free = await asyncio.to_thread(kvdr, "sync", "--once", "--config", str(config))
        assert free.returncode == 0, free.stdout + free.stderr
        assert "copied 1" in free.stdout
        # Released at the end, not left to expire: another holder gets it at once.
        assert await PairLease(world.blobs, "app", LeaseTiming(15)).acquire()

    async def test_lease_lost_mid_pass_stops_the_pass(
        self, make_world: WorldFactory, tmp_path: Path
    ) -> None:
        """When the pair's lease is taken from the command while its pass runs (here: it
        is broken and taken by another holder), the pass stops at the next renewal: exit
        1 with one line that says so, and the other holder keeps the lease."""
        # A slow target (2 s a request, 48 items) keeps the pass running past the first
        # renewal, a third of the 15 s lease after it was taken.
        world = await make_world(per_region={"westus": {"latency_ms": 2000}})
        for i in range(48):
            await world.vaults["eastus"].set_secret(f"slow-{i}", f"value-{i}", Attributes())
        config = write_config(world, tmp_path / "kvdr.toml", port=free_port())
        config.write_text(
            config.read_text().replace("[replication]\n", '[replication]\nlease_duration = "15s"\n')
        )
        run = asyncio.create_task(
            asyncio.to_thread(kvdr, "sync", "--once", "--config", str(config))
        )
        async with ContainerClient.from_connection_string(
            world.azurite.connection_string, world.blobs.container_name
        ) as container:
            blob = container.get_blob_client(lease_blob_name("app"))

            async def leased() -> bool:
                try:
                    return (await blob.get_blob_properties()).lease.state == "leased"
                except ResourceNotFoundError:
                    return False

            await wait_for(leased, 60, "the command to take the pair's lease")
            await BlobLeaseClient(blob).break_lease(0)
        thief = PairLease(world.blobs, "app", LeaseTiming(15))
        assert await thief.acquire()
        result = await asyncio.wait_for(run, 120)
        assert result.returncode == 1, result.stdout + result.stderr
        assert "lost the lease of pair app mid-pass (taken or gone" in result.stderr
        assert "Traceback" not in result.stderr
        assert not await PairLease(world.blobs, "app", LeaseTiming(15)).acquire()
        copied = len(await world.vaults["westus"].list_items(ItemKind.SECRET))
        assert copied < 48

    async def test_unreachable_storage_is_one_line_not_a_traceback(
        self, world: World, tmp_path: Path
    ) -> None:
        """With blob storage down, sync and status end with exit 1 and one line that
        says storage is unreachable, never a Python traceback."""
        config = write_config(world, tmp_path / "kvdr.toml", port=free_port())
        dead = f"http://127.0.0.1:{free_port()}/devstoreaccount1"
        text = config.read_text().replace(world.azurite.blob_endpoint, dead)
        config.write_text(text.replace("[storage]\n", "[storage]\nretries = 0\n"))
        for args in (("sync", "--once"), ("status",)):
            result = await asyncio.to_thread(kvdr, *args, "--config", str(config))
            assert result.returncode == 1, (args, result.stderr)
            assert "Traceback" not in result.stderr, args
            assert "storage endpoints are both unreachable" in result.stderr, args

    def test_missing_config_is_a_usage_error(self, tmp_path: Path) -> None:
        """No configuration anywhere: exit 2 with a hint."""
        result = kvdr("sync", "--once", cwd=tmp_path)
        assert result.returncode == 2
        assert "--config" in result.stderr


class TestStatus:
    async def test_from_checkpoints_when_no_daemon(self, world: World, tmp_path: Path) -> None:
        """With no daemon answering, status reads the checkpoints."""
        await world.vaults["eastus"].set_secret("one", "v-one", Attributes())
        config = write_config(world, tmp_path / "kvdr.toml", port=free_port())
        assert kvdr("sync", "--once", "--config", str(config)).returncode == 0
        result = kvdr("status", "--json", "--config", str(config))
        assert result.returncode == 0, result.stderr
        doc = json.loads(result.stdout)
        assert doc["source"] == "checkpoints"
        assert doc["pairs"][0]["targets"][0]["items"] == 1
        human = kvdr("status", "--config", str(config))
        assert "daemon not running" in human.stdout and "app" in human.stdout

    async def test_from_running_daemon(self, world: World, tmp_path: Path) -> None:
        """With a daemon running, status shows its live view: regions, RPO, targets."""
        port = free_port()
        config = write_config(world, tmp_path / "kvdr.toml", port=port)
        daemon = DaemonProcess(config, port).start()
        try:
            result = kvdr("status", "--json", "--config", str(config))
            doc = json.loads(result.stdout)
            assert doc["source"] == "daemon" and doc["instance"] == "test-daemon"
            assert {r["region"] for r in doc["regions"]} == {"eastus", "westus"}
            assert doc["pairs"][0]["rpo_seconds"] == 0.0
            human = kvdr("status", "--config", str(config))
            assert "test-daemon" in human.stdout and "westus" in human.stdout
        finally:
            daemon.terminate()
