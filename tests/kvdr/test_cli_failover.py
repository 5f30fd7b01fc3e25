"""`kvdr failover status|switchover` as a user runs them (real processes: emulators,
Azurite, a `kvdr run` daemon for the lag, three local-folder control stores)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from failover.control_record import control_blob_name
from tests.fixtures.cli import run_kvdr
from tests.fixtures.daemon import DaemonProcess, free_port, write_config
from tests.fixtures.regions import World
from tests.fixtures.waiting import wait_for, wait_for_sync
from vault.client import VaultItems
from vault.errors import ItemNotFound
from vault.models import Attributes, ItemKind

_SECRET = ItemKind.SECRET


def kvdr(*args: str) -> subprocess.CompletedProcess[str]:
    return run_kvdr(*args, timeout=120)


def control_stores(tmp_path: Path, count: int = 3) -> str:
    return '\n[failover]\nstore_timeout = "2s"\n' + "".join(
        f'\n[[failover.control_stores]]\npath = "{tmp_path / f"control-{i}"}"\n'
        for i in range(count)
    )


def switch(config: Path, to: str, *more: str) -> subprocess.CompletedProcess[str]:
    """`kvdr failover switchover --pair app --to TO --yes` with `more` options."""
    return kvdr(
        "failover",
        "switchover",
        "--pair",
        "app",
        "--to",
        to,
        "--yes",
        "--config",
        str(config),
        *more,
    )


def status(config: Path) -> tuple[int, dict[str, Any]]:
    result = kvdr("failover", "status", "--json", "--config", str(config))
    return result.returncode, json.loads(result.stdout)


async def holds(vault: VaultItems, name: str, value: str) -> bool:
    """True once `vault`'s current version of secret `name` is `value`."""
    try:
        return (await vault.get_secret(name)).value == value
    except ItemNotFound:
        return False


def caught_up(daemon: DaemonProcess, region: str = "westus") -> bool:
    for pair in daemon.status()["pairs"]:
        for target in pair["targets"]:
            if target["region"] == region:
                return bool(target["lag_seconds"] == 0 and target["pending"] == 0)
    return False


class TestStatus:
    async def test_before_any_transition(self, world: World, tmp_path: Path) -> None:
        """No record yet: the configured primary is active at epoch 0, every store is
        read (absent), exit 0; the text form says so too."""
        port = free_port()
        config = write_config(
            world, tmp_path / "kvdr.toml", port=port, extra=control_stores(tmp_path)
        )
        code, doc = status(config)
        assert code == 0 and doc["ok"] is True
        (pair,) = doc["pairs"]
        assert (pair["record"], pair["active_region"], pair["epoch"], pair["state"]) == (
            "none",
            "eastus",
            0,
            "normal",
        )
        assert pair["majority"] == 2 and [s["absent"] for s in pair["stores"]] == [True] * 3
        # Health of each region (one probe each) and the lag (no daemon: unknown).
        assert pair["health"] == {
            "eastus": {"up": True, "error": None},
            "westus": {"up": True, "error": None},
        }
        assert "no daemon answers" in pair["lag"]["westus"]["unknown"]
        text = kvdr("failover", "status", "--config", str(config))
        assert text.returncode == 0 and "no transition yet" in text.stdout

    async def test_unknown_pair_is_a_usage_error(self, world: World, tmp_path: Path) -> None:
        """--pair naming no pair exits 2 naming it and the pairs there are."""
        config = write_config(world, tmp_path / "kvdr.toml", port=free_port())
        result = kvdr("failover", "status", "--pair", "nope", "--config", str(config))
        assert result.returncode == 2
        assert "'nope'" in result.stderr and "app" in result.stderr and result.stdout == ""

    async def test_malformed_record_fails_naming_the_blob(
        self, world: World, tmp_path: Path
    ) -> None:
        """One control store (the main [storage]) holding a malformed record: exit 1,
        the JSON names the blob."""
        config = write_config(world, tmp_path / "kvdr.toml", port=free_port())
        await world.blobs.put(control_blob_name("app"), b'{"format": 1, "epoch": "x"}')
        code, doc = status(config)
        assert code == 1 and doc["ok"] is False
        (pair,) = doc["pairs"]
        assert pair["record"] == "unreadable"
        assert control_blob_name("app") in pair["error"]


class TestSwitchover:
    async def test_usage_errors_name_the_input(self, world: World, tmp_path: Path) -> None:
        """An unknown region, a missing --to and no --yes off a terminal exit 2."""
        config = write_config(world, tmp_path / "kvdr.toml", port=free_port())
        args = ("failover", "switchover", "--pair", "app", "--config", str(config))
        mars = kvdr(*args, "--to", "mars", "--yes")
        assert mars.returncode == 2 and "--to: 'mars'" in mars.stderr and "westus" in mars.stderr
        missing = kvdr(*args, "--yes")
        assert missing.returncode == 2 and "--to" in missing.stderr
        unsure = kvdr(*args, "--to", "westus")
        assert unsure.returncode == 2 and "--yes" in unsure.stderr

    async def test_a_malformed_record_fails_naming_the_blob_before_any_fence(
        self, world: World, tmp_path: Path
    ) -> None:
        """The control record cannot be read: exit 1 with the blob named in the JSON
        (not a traceback), and nothing was fenced."""
        config = write_config(world, tmp_path / "kvdr.toml", port=free_port())
        await world.blobs.put(control_blob_name("app"), b'{"format": 1, "epoch": "x"}')
        result = switch(config, "westus", "--json")
        assert result.returncode == 1, result.stderr
        doc = json.loads(result.stdout)
        assert doc["ok"] is False and control_blob_name("app") in doc["error"]
        assert "Traceback" not in result.stderr
        assert world.emulators["eastus"].management("GET", "read-only")["read_only"] is False

    async def test_refused_without_a_lag_reading(self, world: World, tmp_path: Path) -> None:
        """No daemon: the lag cannot be shown to be 0, so the switchover is refused
        (exit 1) and the record is not touched."""
        config = write_config(
            world, tmp_path / "kvdr.toml", port=free_port(), extra=control_stores(tmp_path)
        )
        result = switch(config, "westus", "--json")
        assert result.returncode == 1, result.stderr
        doc = json.loads(result.stdout)
        assert doc["ok"] is False and doc["checks"]["health"] == {"eastus": True, "westus": True}
        assert any("lag to westus is unknown" in r for r in doc["refused"])
        assert status(config)[1]["pairs"][0]["record"] == "none"

    @pytest.mark.slow
    async def test_switchover_reverses_replication_and_back(
        self, world: World, tmp_path: Path
    ) -> None:
        """With the daemon caught up, westus becomes active at epoch 1 (the record holds
        the transition with its measured RTO and loss 0, on all three stores); the
        daemon then mirrors from westus: a secret written there reaches eastus, and
        nothing it mirrored before is copied back. Switching back to eastus is an
        ordinary switchover (epoch 2), after which eastus's writes reach westus."""
        await world.vaults["eastus"].set_secret("before-switch", "v", Attributes())
        port = free_port()
        config = write_config(
            world, tmp_path / "kvdr.toml", port=port, extra=control_stores(tmp_path)
        )
        daemon = DaemonProcess(config, port).start()
        try:
            wait_for_sync(lambda: caught_up(daemon), 30, "westus caught up")
            result = switch(config, "westus", "--json", "--reason", "patching eastus")
            assert result.returncode == 0, result.stdout + result.stderr
            doc = json.loads(result.stdout)
            assert (doc["ok"], doc["from_region"], doc["epoch"], doc["state"]) == (
                True,
                "eastus",
                1,
                "normal",
            )
            # The RTO includes the wait for the old direction's writers (3 s validity).
            assert 3.0 <= doc["rto_seconds"] < 30 and doc["loss_items"] == 0
            assert len(doc["written"]) == 3 and doc["missed"] == {}
            assert doc["fences"] == {"eastus": "required", "westus": "none"}

            code, after = status(config)
            (pair,) = after["pairs"]
            assert code == 0
            assert (pair["record"], pair["active_region"], pair["epoch"]) == (
                "committed",
                "westus",
                1,
            )
            (last,) = pair["last_transitions"]
            assert (last["from_region"], last["to_region"], last["reason"]) == (
                "eastus",
                "westus",
                "patching eastus",
            )
            assert last["rto_seconds"] == doc["rto_seconds"] and last["loss_items"] == 0
            assert [s["epoch"] for s in pair["stores"]] == [1, 1, 1]

            # The daemon now runs westus -> eastus.
            wait_for_sync(
                lambda: (
                    daemon.status()["pairs"][0].get("control", {}).get("epoch") == 1
                    and [t["region"] for t in daemon.status()["pairs"][0]["targets"]] == ["eastus"]
                ),
                15,
                "the daemon reversed the pair",
            )
            await world.vaults["westus"].set_secret("after-switch", "w1", Attributes())
            await wait_for(
                lambda: holds(world.vaults["eastus"], "after-switch", "w1"), 30, "copy on eastus"
            )
            # What was mirrored eastus -> westus is one value: no version copied back.
            assert len(await world.vaults["eastus"].list_versions(_SECRET, "before-switch")) == 1

            back = switch(config, "eastus", "--json")
            assert back.returncode == 0, back.stdout + back.stderr
            assert json.loads(back.stdout)["epoch"] == 2
            wait_for_sync(
                lambda: [t["region"] for t in daemon.status()["pairs"][0]["targets"]] == ["westus"],
                15,
                "the daemon mirrors from eastus again",
            )
            await world.vaults["eastus"].set_secret("after-switch-back", "e2", Attributes())
            await wait_for(
                lambda: holds(world.vaults["westus"], "after-switch-back", "e2"),
                30,
                "copy on westus",
            )
            for name in ("before-switch", "after-switch"):
                assert len(await world.vaults["westus"].list_versions(_SECRET, name)) == 1
                assert len(await world.vaults["eastus"].list_versions(_SECRET, name)) == 1
        finally:
            daemon.terminate()
