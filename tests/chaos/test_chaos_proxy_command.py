"""`kvdr chaos-proxy`: the command line around the fault proxy, as a real process."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.fixtures.waiting import wait_for_sync

KVDR = [sys.executable, "-m", "kvdr"]


def start(log_path: Path, *args: str) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log_file:
        return subprocess.Popen(
            [*KVDR, "chaos-proxy", *args], stdout=subprocess.PIPE, stderr=log_file
        )


def wait_for_url(proc: subprocess.Popen[bytes], log_path: Path) -> str:
    def announced() -> str | None:
        match = re.search(r"Toxiproxy API on (http://\S+)", log_path.read_text())
        if match:
            return match.group(1)
        assert proc.poll() is None, log_path.read_text()
        return None

    return wait_for_sync(announced, 20, "kvdr chaos-proxy to start")


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        yield int(sock.getsockname()[1])


class TestChaosProxyCommand:
    """Start-up, port errors and signals."""

    @pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
    def test_signal_exits_zero(self, tmp_path: Path, sig: signal.Signals) -> None:
        """The server answers the API, then SIGTERM or SIGINT stops it with exit code 0."""
        log_path = tmp_path / "stderr.log"
        proc = start(log_path, "--port", "0")
        try:
            url = wait_for_url(proc, log_path)
            assert requests.get(f"{url}/proxies", timeout=5).json() == {}
            proc.send_signal(sig)
            stdout, _ = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 0, log_path.read_text()
        assert stdout == b""  # logs go to stderr only

    def test_signal_drops_proxies(self, tmp_path: Path) -> None:
        """On exit the proxies' listeners close with the server."""
        log_path = tmp_path / "stderr.log"
        proc = start(log_path, "--port", "0")
        try:
            url = wait_for_url(proc, log_path)
            created = requests.post(
                f"{url}/proxies", json={"name": "p", "upstream": "127.0.0.1:1"}, timeout=5
            ).json()
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        host, _, port = created["listen"].rpartition(":")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((host, int(port)), timeout=1).close()

    def test_port_in_use_exits_one(self, busy_port: int) -> None:
        """A port already taken exits 1 with a message naming host and port."""
        result = subprocess.run(
            [*KVDR, "chaos-proxy", "--port", str(busy_port)],
            capture_output=True,
            timeout=30,
        )
        assert result.returncode == 1
        message = result.stderr.decode()
        assert f"127.0.0.1:{busy_port}" in message
        assert "address already in use" in message
        assert "Traceback" not in message

    def test_bad_port_is_usage_error(self) -> None:
        """A port out of range is a usage error (exit 2) naming the option."""
        result = subprocess.run(
            [*KVDR, "chaos-proxy", "--port", "70000"], capture_output=True, timeout=30
        )
        assert result.returncode == 2
        assert "--port" in result.stderr.decode()

    def test_listed_in_help(self) -> None:
        """`kvdr --help` lists chaos-proxy."""
        result = subprocess.run([*KVDR, "--help"], capture_output=True, timeout=30)
        assert result.returncode == 0
        assert "chaos-proxy" in result.stdout.decode()
