"""`kvdr failover check` as a user runs it, against two real emulators (their management
plane), Azurite, and a `kvdr run` daemon for the lag where one is needed."""

from __future__ import annotations

import json
import ssl
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

from tests.fixtures.cli import run_kvdr
from tests.fixtures.daemon import DaemonProcess, free_port, write_config
from tests.fixtures.regions import World, WorldFactory
from tests.fixtures.waiting import wait_for_sync

RID = "/subscriptions/0000/resourceGroups/rg-kv/providers/Microsoft.KeyVault/vaults/kvdr-{r}"


def configure(
    world: World, path: Path, *, port: int, resource_ids: bool = True, extra: str = ""
) -> Path:
    """write_config, each region with its resource id and the emulator as its
    management plane; `extra` follows the pair's table."""
    write_config(world, path, port=port, extra=extra)
    text = path.read_text()
    if resource_ids:
        for region, emu in world.emulators.items():
            line = f'[regions.{region}]\nvault_url = "{emu.url}"\n'
            text = text.replace(
                line,
                line + f'resource_id = "{RID.format(r=region)}"\nmanagement_url = "{emu.url}"\n',
            )
    path.write_text(text)
    return path


def check(config: Path, *more: str) -> subprocess.CompletedProcess[str]:
    return run_kvdr("failover", "check", "--config", str(config), *more, timeout=120)


def by_check(doc: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
    (pair,) = doc["pairs"]
    out: dict[str, list[dict[str, str]]] = {}
    for finding in pair["findings"]:
        out.setdefault(finding["check"], []).append(finding)
    return out


def severities(found: list[dict[str, str]]) -> list[str]:
    return [f["severity"] for f in found]


def deny_westus(world: World, allowed: str) -> None:
    emu = world.emulators["westus"]
    body = {
        "properties": {"networkAcls": {"defaultAction": "Deny", "ipRules": [{"value": allowed}]}}
    }
    request = urllib.request.Request(
        f"{emu.url}{RID.format(r='westus')}?api-version=2023-07-01",
        data=json.dumps(body).encode(),
        method="PATCH",
        headers={"Authorization": "Bearer x.y.", "Content-Type": "application/json"},
    )
    context = ssl.create_default_context(cafile=str(emu.ca_path))
    with urllib.request.urlopen(request, context=context, timeout=10) as resp:
        assert resp.status == 200


class TestCheck:
    async def test_weaker_secondary_blocks(self, make_world: WorldFactory, tmp_path: Path) -> None:
        """eastus premium with purge protection, westus standard without, the pair
        mirroring keys, westus denying kvdr's address, no fence, no daemon: blockers for
        SKU, purge protection and network rules, warnings for the unknown lag, the
        configured SKU that disagrees, no fence and no approvals; exit 1."""
        world = await make_world(
            per_region={"eastus": {"sku": "premium", "purge_protection": True}}
        )
        deny_westus(world, "10.0.0.0/8")
        extra = 'kinds = ["secret", "key"]\n\n[failover]\nfence_allow_ips = ["127.0.0.1"]\n'
        config = configure(world, tmp_path / "kvdr.toml", port=free_port(), extra=extra)
        result = check(config, "--json")
        assert result.returncode == 1, result.stderr
        doc = json.loads(result.stdout)
        assert doc["ok"] is False
        assert (doc["pairs"][0]["from_region"], doc["pairs"][0]["to_region"]) == (
            "eastus",
            "westus",
        )
        found = by_check(doc)
        assert severities(found["lag"]) == ["warning"]
        assert "unknown" in found["lag"][0]["found"]
        assert severities(found["sku"]) == ["blocker", "warning"]
        assert "RSA-HSM" in found["sku"][0]["found"]
        assert "management plane says premium" in found["sku"][1]["found"]
        assert severities(found["purge-protection"]) == ["blocker"]
        assert found["purge-protection"][0]["action"]
        assert severities(found["network"]) == ["blocker"]
        assert "127.0.0.1" in found["network"][0]["found"]
        assert severities(found["fence"]) == ["warning"]
        assert severities(found["approvals"]) == ["warning"]

        text = check(config)
        assert text.returncode == 1
        assert "NOT safe" in text.stdout and "[blocker] purge-protection" in text.stdout

    async def test_equal_vaults_caught_up_is_safe(self, world: World, tmp_path: Path) -> None:
        """Both standard, neither with purge protection, the emulator fence, and a daemon
        that has westus caught up: no blocker, exit 0; lag, SKU, soft delete, purge
        protection, network and fence are ok."""
        port = free_port()
        extra = '\n[failover]\nfence = "emulator-readonly"\n'
        config = configure(world, tmp_path / "kvdr.toml", port=port, extra=extra)
        daemon = DaemonProcess(config, port).start()
        try:
            wait_for_sync(lambda: caught_up(daemon), 30, "westus caught up")
            result = check(config, "--json", "--pair", "app", "--to", "westus")
        finally:
            daemon.terminate()
        assert result.returncode == 0, result.stdout + result.stderr
        found = by_check(json.loads(result.stdout))
        for name in ("lag", "sku", "soft-delete", "purge-protection", "network", "fence"):
            assert severities(found[name]) == ["ok"], found[name]
        assert "0 s behind" in found["lag"][0]["found"]

    async def test_without_resource_ids_says_what_was_not_checked(
        self, world: World, tmp_path: Path
    ) -> None:
        """No resource_id: soft delete, purge protection and network rules are warnings
        that say they could not be checked and why; nothing blocks, exit 0."""
        config = configure(world, tmp_path / "kvdr.toml", port=free_port(), resource_ids=False)
        result = check(config, "--json")
        assert result.returncode == 0, result.stderr
        found = by_check(json.loads(result.stdout))
        assert severities(found["soft-delete"]) == ["warning"]
        assert "no resource_id configured" in found["soft-delete"][0]["found"]
        assert severities(found["network"]) == ["warning"]

    async def test_usage_errors_exit_2(self, world: World, tmp_path: Path) -> None:
        """--to naming the primary or an unknown region, and an unknown --pair, exit 2
        naming the input; nothing on stdout."""
        config = configure(world, tmp_path / "kvdr.toml", port=free_port())
        for args, words in (
            (("--to", "eastus"), "--to: 'eastus' is not a secondary"),
            (("--to", "mars"), "--to: 'mars'"),
            (("--pair", "nope"), "--pair: no pair named 'nope'"),
        ):
            result = check(config, *args)
            assert result.returncode == 2 and words in result.stderr and result.stdout == ""


def caught_up(daemon: DaemonProcess, region: str = "westus") -> bool:
    for pair in daemon.status()["pairs"]:
        for target in pair["targets"]:
            if target["region"] == region:
                return bool(target["lag_seconds"] == 0 and target["pending"] == 0)
    return False
