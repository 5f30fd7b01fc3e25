"""`kvdr emulator` on the command line: options, startup handshake, TLS files."""

from __future__ import annotations

import json
import socket
import ssl
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from kvdr.cli import cli
from tests.fixtures.emulator import EmulatorFactory, secret_client


class TestOptions:
    """Bad option values exit 2 and name the option."""

    @pytest.mark.parametrize(
        ("args", "option"),
        [
            (["--retention-days", "5"], "--retention-days"),
            (["--retention-days", "91"], "--retention-days"),
            (["--sku", "gold"], "--sku"),
            (["--throttle", "sometimes"], "--throttle"),
            (["--latency", "-1"], "--latency"),
            (["--events-to", "ftp://x"], "--events-to"),
            (["--region", "east_us"], "--region"),
            (["--port", "70000"], "--port"),
        ],
    )
    def test_bad_values(self, tmp_path: Path, args: list[str], option: str) -> None:
        """Each bad value is a usage error (exit 2) whose message names the option."""
        result = CliRunner().invoke(
            cli, ["emulator", "--port", "0", "--state-dir", str(tmp_path), *args]
        )
        assert result.exit_code == 2
        assert option in result.output

    def test_state_dir_is_required(self) -> None:
        """--state-dir is required."""
        result = CliRunner().invoke(cli, ["emulator", "--port", "0"])
        assert result.exit_code == 2
        assert "--state-dir" in result.output

    def test_port_in_use_fails(self, make_emulator: EmulatorFactory, tmp_path: Path) -> None:
        """A taken port exits 1 with a message naming it."""
        emu = make_emulator()
        proc = subprocess.run(
            [
                *(sys.executable, "-m", "kvdr", "emulator"),
                *("--port", str(emu.port), "--state-dir", str(tmp_path / "other")),
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert proc.returncode == 1
        assert str(emu.port) in proc.stderr


class TestStartup:
    """endpoint.json, the stderr line and the TLS files."""

    def test_endpoint_json_and_announcement(self, make_emulator: EmulatorFactory) -> None:
        """endpoint.json names url, port, CA and identity endpoint; stderr has the line."""
        emu = make_emulator(region="westus", geo="us")
        endpoint = json.loads((emu.state_dir / "endpoint.json").read_text())
        assert endpoint["url"] == f"https://127.0.0.1:{emu.port}"
        assert endpoint["region"] == "westus" and endpoint["geo"] == "us"
        assert endpoint["pid"] == emu.process.pid  # type: ignore[union-attr]
        assert endpoint["identity_endpoint"].endswith("/_emulator/identity/token")
        assert Path(endpoint["ca"]) == emu.state_dir / "tls" / "ca.pem"
        assert (emu.state_dir / "identity-header").read_text() == endpoint["identity_header"]
        line = f"kvdr emulator listening on https://127.0.0.1:{emu.port} (region westus)"
        assert line in emu.log_tail()

    def test_tls_files(self, make_emulator: EmulatorFactory) -> None:
        """The server certificate verifies against ca.pem for 127.0.0.1; the key is 0600."""
        emu = make_emulator()
        tls = emu.state_dir / "tls"
        assert stat.S_IMODE((tls / "server-key.pem").stat().st_mode) == 0o600
        assert stat.S_IMODE((emu.state_dir / "identity-header").stat().st_mode) == 0o600
        context = ssl.create_default_context(cafile=str(tls / "ca.pem"))
        with (
            socket.create_connection(("127.0.0.1", emu.port), timeout=5) as sock,
            context.wrap_socket(sock, server_hostname="127.0.0.1") as tls_sock,
        ):
            assert tls_sock.version() is not None

    def test_stale_endpoint_is_replaced(self, make_emulator: EmulatorFactory) -> None:
        """A stale endpoint.json from a dead process is overwritten at start."""
        emu = make_emulator()
        emu.kill()
        stale = json.loads((emu.state_dir / "endpoint.json").read_text())
        emu.port = 0
        emu.start()
        fresh = json.loads((emu.state_dir / "endpoint.json").read_text())
        assert fresh["pid"] != stale["pid"]
        secret_client(emu).set_secret("alive", "yes")


class TestStateFolderSecurity:
    """The state folder and the files holding the identity header and the data are owner-only."""

    def test_fresh_folder_is_private(self, make_emulator: EmulatorFactory) -> None:
        """A new state folder is 0700; endpoint.json, identity-header and vault.db are 0600."""
        emu = make_emulator()
        assert stat.S_IMODE(emu.state_dir.stat().st_mode) == 0o700
        for name in ("endpoint.json", "identity-header", "vault.db"):
            assert stat.S_IMODE((emu.state_dir / name).stat().st_mode) == 0o600, name

    def test_loose_modes_are_tightened(self, make_emulator: EmulatorFactory) -> None:
        """A restart on a folder and files left world-readable makes them owner-only again."""
        emu = make_emulator()
        secret_client(emu).set_secret("kept", "value")
        emu.stop()
        emu.state_dir.chmod(0o755)
        for name in ("endpoint.json", "identity-header", "vault.db"):
            (emu.state_dir / name).chmod(0o644)
        emu.port = 0
        emu.start()
        assert stat.S_IMODE(emu.state_dir.stat().st_mode) == 0o700
        for name in ("endpoint.json", "identity-header", "vault.db", "vault.db-wal"):
            assert stat.S_IMODE((emu.state_dir / name).stat().st_mode) == 0o600, name
        assert secret_client(emu).get_secret("kept").value == "value"


class TestRemoteHost:
    """A --host beyond loopback needs --allow-remote, which says why it is dangerous."""

    @pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "vault.example.com"])
    def test_non_loopback_refused(self, tmp_path: Path, host: str) -> None:
        """A non-loopback --host is a usage error (exit 2) naming --host and --allow-remote."""
        result = CliRunner().invoke(
            cli, ["emulator", "--port", "0", "--state-dir", str(tmp_path), "--host", host]
        )
        assert result.exit_code == 2
        assert "--host" in result.output and "--allow-remote" in result.output
        assert not (tmp_path / "vault.db").exists()

    @pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
    def test_loopback_needs_no_flag(self, make_emulator: EmulatorFactory, host: str) -> None:
        """Loopback addresses start without --allow-remote and print no warning."""
        emu = make_emulator(extra_args=["--host", host])
        assert emu.health()["status"] == "ok"
        assert "WARNING" not in emu.log_tail()

    def test_allow_remote_warns(self, make_emulator: EmulatorFactory) -> None:
        """With --allow-remote it serves on 0.0.0.0 and stderr says anyone can read the secrets."""
        emu = make_emulator(extra_args=["--host", "0.0.0.0", "--allow-remote"])
        log = emu.log_tail()
        assert "--allow-remote" in log and "every secret" in log
        assert "identity header" in log
        with socket.create_connection(("127.0.0.1", emu.port), timeout=5):
            pass
