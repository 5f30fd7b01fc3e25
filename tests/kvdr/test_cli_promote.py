"""`kvdr failover promote|failback|approve` as a user runs them: real emulators (a
region goes down by its process), three local-folder control stores, a `kvdr run`
daemon that follows the control record."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.cli import run_kvdr
from tests.fixtures.daemon import DaemonProcess, free_port, write_config
from tests.fixtures.regions import World
from tests.fixtures.waiting import wait_for, wait_for_sync
from tests.kvdr.test_cli_failover import caught_up, control_stores, holds, status
from vault.models import Attributes, ItemKind


def failover(config: Path, *args: str) -> tuple[int, dict[str, Any]]:
    result = run_kvdr("failover", *args, "--json", "--config", str(config), timeout=120)
    try:
        return result.returncode, json.loads(result.stdout)
    except ValueError:
        raise AssertionError(result.stdout + result.stderr) from None


def promote(config: Path, to: str = "westus", *more: str) -> tuple[int, dict[str, Any]]:
    return failover(config, "promote", "--pair", "app", "--to", to, "--yes", *more)


def targets(daemon: DaemonProcess) -> list[str]:
    pairs = daemon.status()["pairs"]
    return [t["region"] for t in pairs[0]["targets"]] if pairs else []


class TestPromote:
    async def test_refused_while_the_primary_answers(self, world: World, tmp_path: Path) -> None:
        """Both regions answer: promote says to use switchover, exit 1, nothing written."""
        config = write_config(
            world,
            tmp_path / "kvdr.toml",
            port=free_port(),
            extra=control_stores(tmp_path),
            credential_region="westus",
        )
        code, doc = promote(config)
        assert code == 1 and doc["ok"] is False
        assert any("eastus answers: use `kvdr failover switchover`" in r for r in doc["refused"])
        assert status(config)[1]["pairs"][0]["record"] == "none"

    @pytest.mark.slow
    async def test_promote_then_failback_keeps_a_divergent_write(
        self, world: World, tmp_path: Path
    ) -> None:
        """eastus's process stops: promote makes westus active at epoch 1 and reports
        the loss from the daemon's last lag reading; the daemon mirrors westus -> eastus
        once eastus is back, over a version an application wrote on eastus after the
        promotion. Failback lists that divergent write (kept in eastus's history,
        resynchronised, no version written twice); then eastus is active again."""
        eastus, westus = world.vaults["eastus"], world.vaults["westus"]
        await eastus.set_secret("shared", "original", Attributes())
        port = free_port()
        config = write_config(
            world,
            tmp_path / "kvdr.toml",
            port=port,
            extra=control_stores(tmp_path),
            credential_region="westus",
        )
        daemon = DaemonProcess(config, port).start()
        try:
            await wait_for(lambda: holds(westus, "shared", "original"), 30, "the first copy")
            wait_for_sync(lambda: caught_up(daemon), 30, "westus caught up")
            world.emulators["eastus"].stop()
            code, doc = promote(config, "westus", "--reason", "eastus is gone")
            assert code == 0, doc
            assert (doc["from_region"], doc["epoch"], doc["state"]) == ("eastus", 1, "failed-over")
            assert 3.0 <= doc["rto_seconds"] < 30
            assert doc["loss_items"] == 0 and "daemon" in doc["loss_basis"]
            assert doc["fences"]["eastus"] == "required"
            wait_for_sync(lambda: targets(daemon) == ["eastus"], 15, "the daemon reversed")

            await westus.set_secret("written-on-westus", "w", Attributes())
            world.emulators["eastus"].restart()
            # An application that did not follow writes to the old primary.
            world.advance_clock()
            await eastus.set_secret("shared", "diverged", Attributes())
            await wait_for(lambda: holds(eastus, "written-on-westus", "w"), 30, "copy on eastus")
            # westus has nothing newer of "shared": the divergent version stays current
            # on eastus until the failback resynchronises it.
            assert await holds(eastus, "shared", "diverged")

            assert await holds(westus, "shared", "original")
            code, back = failover(config, "failback", "--pair", "app", "--yes")
            assert code == 0, back
            assert (back["to_region"], back["epoch"], back["state"]) == ("eastus", 2, "normal")
            (item,) = back["divergent"]
            assert (item["kind"], item["name"], item["resynced"]) == ("secret", "shared", True), (
                json.dumps(item)
            )
            versions = await eastus.list_versions(ItemKind.SECRET, "shared")
            values = [(await eastus.get_secret("shared", v.version)).value for v in versions]
            assert values == ["original", "diverged", "original"]
            wait_for_sync(lambda: targets(daemon) == ["westus"], 15, "eastus is the source")
            await eastus.set_secret("after-failback", "e", Attributes())
            await wait_for(lambda: holds(westus, "after-failback", "e"), 30, "copy on westus")
            # The divergent version never reached westus.
            west = await westus.list_versions(ItemKind.SECRET, "shared")
            assert [(await westus.get_secret("shared", v.version)).value for v in west] == [
                "original"
            ]
            code, shown = status(config)
            kinds = [t["kind"] for t in shown["pairs"][0]["last_transitions"]]
            assert code == 0 and kinds == ["failback", "promote"]
        finally:
            daemon.terminate()

    async def test_two_promotions_at_once_one_wins(self, world: World, tmp_path: Path) -> None:
        """Two processes promote westus at the same moment: exactly one exits 0; the
        other exits 1 and names the winner's transition."""
        config = write_config(
            world,
            tmp_path / "kvdr.toml",
            port=free_port(),
            extra=control_stores(tmp_path),
            credential_region="westus",
        )
        world.emulators["eastus"].stop()
        argv = [
            sys.executable,
            "-m",
            "kvdr",
            "failover",
            "promote",
            "--pair",
            "app",
            "--to",
            "westus",
            "--yes",
            "--json",
            "--config",
            str(config),
        ]
        racers = [
            subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        outcomes = [(p.wait(120), json.loads(p.communicate()[0])) for p in racers]
        codes = sorted(code for code, _ in outcomes)
        assert codes == [0, 1], json.dumps(outcomes)
        loser = next(doc for code, doc in outcomes if code == 1)
        # It lost the compare-and-swap, or read the record after the winner committed.
        said = loser.get("error", "") + " ".join(loser.get("refused", []))
        assert (
            "another promote won: epoch 1 made westus active" in said
            or "westus is already the active region (epoch 1, promote by" in said
        ), loser
        assert status(config)[1]["pairs"][0]["epoch"] == 1

    async def test_two_of_three_stores_gone_needs_force(self, world: World, tmp_path: Path) -> None:
        """Two control stores unreachable: refused (exit 1) without --force; with it the
        promotion is written to the one store that answers, recorded as forced, and the
        output says so loudly."""
        config = write_config(
            world,
            tmp_path / "kvdr.toml",
            port=free_port(),
            extra=control_stores(tmp_path),
            credential_region="westus",
        )
        world.emulators["eastus"].stop()
        for index in (1, 2):
            # A file where a store's folder should be: every call to it fails.
            (tmp_path / f"control-{index}").write_text("not a folder")
        code, doc = promote(config)
        assert code == 1 and "control stores could be read" in doc["error"]
        code, doc = promote(config, "westus", "--force")
        assert code == 0, doc
        assert any(w.startswith("FORCED without a majority") for w in doc["warnings"])
        assert len(doc["written"]) == 1
        record = json.loads(
            (tmp_path / "control-0" / "failover" / "app" / "control.json").read_text()
        )
        assert record["active_region"] == "westus" and record["history"][-1]["forced"] is True

    async def test_one_of_three_stores_gone_still_promotes(
        self, world: World, tmp_path: Path
    ) -> None:
        """One control store unreachable: the promotion commits on the other two."""
        config = write_config(
            world,
            tmp_path / "kvdr.toml",
            port=free_port(),
            extra=control_stores(tmp_path),
            credential_region="westus",
        )
        world.emulators["eastus"].stop()
        (tmp_path / "control-2").write_text("not a folder")
        code, doc = promote(config)
        assert code == 0, doc
        assert len(doc["written"]) == 2 and list(doc["missed"]) == ["2:control store 2"]
        assert not any(w.startswith("FORCED") for w in doc.get("warnings", []))


@pytest.mark.slow
class TestAutomatic:
    async def test_the_daemon_promotes_after_the_outage(self, world: World, tmp_path: Path) -> None:
        """mode = "automatic", automatic_after 2 s, fast probes: once eastus's process
        is gone for 2 s, the daemon that leads the pair promotes westus by itself, with
        its inputs in the reason, and mirrors from westus."""
        extra = control_stores(tmp_path).replace(
            "[failover]\n",
            '[failover]\nmode = "automatic"\nautomatic_after = "2s"\n'
            'probe_interval = "500ms"\nprobe_timeout = "500ms"\ndown_after = 2\n'
            'down_window = "5s"\n',
        )
        port = free_port()
        config = write_config(
            world, tmp_path / "kvdr.toml", port=port, extra=extra, credential_region="westus"
        )
        await world.vaults["eastus"].set_secret("before", "v", Attributes())
        daemon = DaemonProcess(config, port).start()
        try:
            await wait_for(lambda: holds(world.vaults["westus"], "before", "v"), 30, "copy")
            world.emulators["eastus"].stop()
            wait_for_sync(
                lambda: (
                    daemon.status()["pairs"][0].get("control", {}).get("active_region") == "westus"
                ),
                30,
                "the automatic promotion",
            )
            code, shown = status(config)
            entry = shown["pairs"][0]["last_transitions"][0]
            assert code == 0 and entry["kind"] == "promote" and entry["by"].endswith("(automatic)")
            assert entry["reason"].startswith("automatic: eastus down for")
            assert "within the objective 30 s" in entry["reason"]
            wait_for_sync(lambda: targets(daemon) == ["eastus"], 15, "the daemon reversed")
        finally:
            daemon.terminate()


@pytest.mark.slow
class TestApprovals:
    async def test_promote_waits_for_approvals_and_break_glass_is_recorded(
        self, world: World, tmp_path: Path
    ) -> None:
        """require_approvals = 2: refused with none and with one; after a second
        operator approves, the promotion goes through and names both. Break-glass on
        the way back needs a reason and is recorded as such."""
        extra = control_stores(tmp_path).replace(
            "[failover]\n", '[failover]\nrequire_approvals = 2\napproval_window = "1h"\n'
        )
        config = write_config(
            world, tmp_path / "kvdr.toml", port=free_port(), extra=extra, credential_region="westus"
        )
        world.emulators["eastus"].stop()
        code, doc = promote(config)
        assert code == 1
        needed = "2 approvals needed within 3600 s, 0 given"
        assert any(r.startswith(needed) for r in doc["refused"])
        code, one = failover(config, "approve", "--pair", "app", "--operator", "ana")
        assert code == 0 and one["approved"] == ["ana"] and one["required"] == 2
        # The same operator twice is still one approval.
        failover(config, "approve", "--pair", "app", "--operator", "ana")
        code, doc = promote(config)
        assert code == 1 and any("1 given (ana)" in r for r in doc["refused"])
        failover(config, "approve", "--pair", "app", "--operator", "bo")
        code, doc = promote(config)
        assert code == 0, doc
        entry = status(config)[1]["pairs"][0]["last_transitions"][0]
        assert (entry["kind"], entry["approved_by"], entry["break_glass"]) == (
            "promote",
            ["ana", "bo"],
            False,
        )
        # The approvals were used up by the transition.
        world.emulators["eastus"].restart()
        usage = run_kvdr(
            "failover",
            "promote",
            "--pair",
            "app",
            "--to",
            "eastus",
            "--yes",
            "--break-glass",
            "--reason",
            " ",
            "--config",
            str(config),
        )
        assert usage.returncode == 2 and "--break-glass needs --reason" in usage.stderr
        code, doc = promote(
            config, "eastus", "--force", "--break-glass", "--reason", "INC-42 westus down"
        )
        assert code == 0, doc
        entry = status(config)[1]["pairs"][0]["last_transitions"][0]
        assert (entry["break_glass"], entry["approved_by"], entry["reason"]) == (
            True,
            [],
            "INC-42 westus down",
        )
