"""`kvdr up` / `kvdr down` as a user runs them, on the stack's fixed ports (run these
only under `flock /tmp/kvdr-stack.lock`): the demo's three kinds mirrored, the daemon
supervised as a child, and a stack left by a killed `kvdr up` found and stopped."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from azure.keyvault.certificates.aio import CertificateClient
from azure.keyvault.keys.aio import KeyClient
from azure.keyvault.secrets.aio import SecretClient

from kvdr.commands.up import DEMO_CERTIFICATE, DEMO_KEY, DEMO_SECRETS
from kvdr.local_stack import StackPorts, port_in_use
from kvdr.stack_processes import StackProcess, read_records
from tests.e2e.stack_clients import kvdr, stack_secret_client
from tests.fixtures.emulator import AsyncStaticTokenCredential
from tests.fixtures.waiting import wait_for, wait_for_sync


class TestKvdrUp:
    def test_port_in_use_is_named(self, tmp_path: Path) -> None:
        """`kvdr up` refuses to start when a port it needs is taken, naming the port."""
        blocker = socket.socket()
        try:
            blocker.bind(("127.0.0.1", 8443))
            blocker.listen()
        except OSError:
            pass  # already taken by something else: the message must name it all the same
        try:
            result = kvdr("up", cwd=tmp_path, timeout=60)
        finally:
            blocker.close()
        assert result.returncode == 1
        assert "port in use: 8443 (eastus vault)" in result.stderr

    def test_detach_status_down(self, tmp_path: Path) -> None:
        """`kvdr up --detach` comes up with the demo secrets, key and certificate mirrored
        to westus, `kvdr status` shows both regions, the daemon runs as a child of its
        own, and `kvdr down` stops every process it started."""
        started = kvdr("up", "--detach", cwd=tmp_path)
        assert started.returncode == 0, started.stdout + started.stderr
        assert "http://127.0.0.1:8080/" in started.stdout and DEMO_CERTIFICATE in started.stdout
        try:

            def mirrored() -> dict[str, Any] | None:
                doc: dict[str, Any] = json.loads(kvdr("status", "--json", cwd=tmp_path).stdout)
                return doc if doc["pairs"] and doc["pairs"][0]["targets"][0]["items"] == 5 else None

            doc = wait_for_sync(mirrored, 60, "the five demo items on westus", interval=0.5)
            assert doc["source"] == "daemon"
            assert {r["region"]: r["up"] for r in doc["regions"]} == {
                "eastus": True,
                "westus": True,
            }
            (pair,) = doc["pairs"]
            assert pair["kinds"] == ["certificate", "key", "secret"]
            assert pair["targets"][0]["items"] == 5
            assert asyncio.run(westus_demo_items(tmp_path / ".kvdr")) == {
                "secret": sorted(DEMO_SECRETS),
                "key": [DEMO_KEY],
                "certificate": [DEMO_CERTIFICATE],
            }
            records = listed(tmp_path)
            assert sorted(r.name for r in records) == [
                "azurite",
                "chaos-proxy",
                "daemon",
                "emulator-eastus",
                "emulator-westus",
                "up",
            ]
            assert all(r.running() for r in records)
            assert (tmp_path / ".kvdr" / "logs" / "daemon.log").stat().st_size > 0
        finally:
            stopped = kvdr("down", cwd=tmp_path)
        assert stopped.returncode == 0 and "stopped the local stack" in stopped.stdout
        assert not (tmp_path / ".kvdr" / "up.pid").exists()
        assert_all_gone(records)

    def test_killed_up_leaves_a_stale_stack_that_up_and_down_find(self, tmp_path: Path) -> None:
        """After `kvdr up` is SIGKILLed its stack still runs: `kvdr up` finds it and refuses
        (exit 1, naming `kvdr down`), on a terminal asks and keeps it when told no,
        `kvdr up --replace` stops it and starts anew, and after a second SIGKILL
        `kvdr down` stops every listed process and frees the ports."""
        first = kvdr("up", "--detach", cwd=tmp_path)
        assert first.returncode == 0, first.stdout + first.stderr
        try:
            old = listed(tmp_path)
            kill_up(old)
            refused = subprocess.run(
                [sys.executable, "-m", "kvdr", "up", "--detach"],
                cwd=tmp_path,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert refused.returncode == 1, refused.stdout + refused.stderr
            assert "stale local stack" in refused.stderr and "kvdr down" in refused.stderr
            assert all(r.running() for r in old if r.name != "up")
            declined = up_on_a_terminal(tmp_path, answer="n")
            assert declined.returncode == 1, declined.stdout + declined.stderr
            assert "Stop it?" in declined.stderr and "emulator-eastus (pid" in declined.stderr
            assert all(r.running() for r in old if r.name != "up")
            replaced = kvdr("up", "--detach", "--replace", cwd=tmp_path)
            assert replaced.returncode == 0, replaced.stdout + replaced.stderr
            assert "stopped the stale local stack" in replaced.stderr
            assert_all_gone(old)
            new = listed(tmp_path)
            assert len(new) == 6 and not {r.pid for r in new} & {r.pid for r in old}
            kill_up(new)
        finally:
            stopped = kvdr("down", cwd=tmp_path)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert "left behind by a kvdr up that is gone" in stopped.stdout
        assert_all_gone(new)
        assert not (tmp_path / ".kvdr" / "stack.pids").exists()
        taken = [port for port in StackPorts().named().values() if port_in_use(port)]
        assert taken == []

    # About 40 s, most of it the killed daemon's 30 s pair lease lapsing: with the slow ones.
    @pytest.mark.slow
    def test_killed_daemon_is_restarted_and_replicates(self, tmp_path: Path) -> None:
        """The daemon killed with SIGKILL is started again by `kvdr up` (the restart is
        counted in its log) and a secret written afterwards reaches westus."""
        started = kvdr("up", "--detach", cwd=tmp_path)
        assert started.returncode == 0, started.stdout + started.stderr
        try:
            (daemon,) = [r for r in listed(tmp_path) if r.name == "daemon"]
            os.kill(daemon.pid, signal.SIGKILL)

            def restarted() -> StackProcess | None:
                found = [r for r in listed(tmp_path) if r.name == "daemon"]
                return found[0] if found and found[0].pid != daemon.pid else None

            again = wait_for_sync(restarted, 30, "a new daemon process", interval=0.2)
            assert again.running()
            up_log = (tmp_path / ".kvdr" / "logs" / "up.log").read_text()
            assert "daemon.restarted" in up_log and "restarts" in up_log
            asyncio.run(write_then_find_on_westus(tmp_path / ".kvdr", "after-daemon-restart"))
        finally:
            stopped = kvdr("down", cwd=tmp_path)
        assert stopped.returncode == 0 and "stopped the local stack" in stopped.stdout
        assert not again.running()


def listed(folder: Path) -> list[StackProcess]:
    """`kvdr up` itself and what its `stack.pids` lists."""
    state = folder / ".kvdr"
    return read_records(state / "up.pid") + read_records(state / "stack.pids")


def up_on_a_terminal(folder: Path, answer: str) -> subprocess.CompletedProcess[str]:
    """`kvdr up --detach` with its stdin on a terminal (a pty), given `answer`."""
    controller, terminal = pty.openpty()
    try:
        os.write(controller, f"{answer}\n".encode())
        return subprocess.run(
            [sys.executable, "-m", "kvdr", "up", "--detach"],
            cwd=folder,
            stdin=terminal,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(terminal)
        os.close(controller)


def kill_up(records: list[StackProcess]) -> None:
    (up,) = [r for r in records if r.name == "up"]
    os.kill(up.pid, signal.SIGKILL)
    wait_for_sync(lambda: not up.running(), 10, "kvdr up to die", interval=0.1)


def assert_all_gone(records: list[StackProcess]) -> None:
    survivors = [r.describe() for r in records if r.running()]
    assert survivors == [], f"processes of the stack survived: {survivors}"


async def westus_demo_items(state: Path) -> dict[str, list[str]]:
    """The names of the secrets, keys and certificates westus holds (unmanaged only)."""
    url = "https://127.0.0.1:8444"
    options: dict[str, Any] = {
        "verify_challenge_resource": False,
        "connection_verify": str(state / "vaults" / "ca-bundle.pem"),
    }
    credential = AsyncStaticTokenCredential()
    async with (
        SecretClient(url, credential, **options) as secrets,
        KeyClient(url, credential, **options) as keys,
        CertificateClient(url, credential, **options) as certificates,
    ):
        return {
            "secret": sorted(
                [p.name async for p in secrets.list_properties_of_secrets() if not p.managed]
            ),
            "key": sorted([p.name async for p in keys.list_properties_of_keys() if not p.managed]),
            "certificate": sorted(
                [p.name async for p in certificates.list_properties_of_certificates()]
            ),
        }


async def write_then_find_on_westus(state: Path, name: str) -> None:
    async with stack_secret_client(state, 8443) as primary:
        await primary.set_secret(name, "value-after-restart")
    async with stack_secret_client(state, 8444) as westus:

        async def arrived() -> bool:
            names = [p.name async for p in westus.list_properties_of_secrets()]
            return name in names

        # The killed daemon's pair lease (30 s) must lapse before the new one takes over.
        await wait_for(arrived, 90, f"{name} on westus", interval=0.2)
