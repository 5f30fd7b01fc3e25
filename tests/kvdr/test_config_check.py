"""`kvdr config check FILE [--json]`: through click's runner and as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from click.testing import CliRunner

from kvdr.cli import cli

GOOD = """\
[regions.eastus]
vault_url = "https://a.vault.azure.net"
[regions.westus]
vault_url = "https://b.vault.azure.net"
[storage]
account_url = "https://acct.blob.core.windows.net"
[[pairs]]
name = "apps"
primary = "eastus"
secondaries = ["westus"]
"""

BAD = """\
[regions.eastus]
vault_url = "https://a.vault.azure.net"
[storage]
account_url = "https://acct.blob.core.windows.net"
[[pairs]]
name = "apps"
primary = "eastus"
secondaries = ["westus"]
adopt = "yes"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "kvdr.toml"
    path.write_text(textwrap.dedent(text))
    return path


def clean_env() -> dict[str, str]:
    """The current environment without KVDR__ overrides that could leak into a test."""
    return {k: v for k, v in os.environ.items() if not k.upper().startswith("KVDR__")}


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


class TestConfigCheckCommand:
    """The command through click's CliRunner."""

    def test_valid_file_prints_ok_and_summary(self, tmp_path: Path) -> None:
        """A valid file exits 0 and prints FILE: OK with its regions and pairs."""
        path = write(tmp_path, GOOD)
        code, out, _ = run("config", "check", str(path))
        assert code == 0
        assert f"{path}: OK" in out
        assert "regions: 2: eastus (https://a.vault.azure.net), westus" in out
        assert "apps: eastus -> westus [secret]" in out

    def test_every_error_is_printed_with_file_and_line(self, tmp_path: Path) -> None:
        """Each problem is one FILE:LINE: key: message line; exit code 2."""
        path = write(tmp_path, BAD)
        code, out, err = run("config", "check", str(path))
        assert code == 2
        lines = out.splitlines()
        assert f"{path}:8: pairs[0].secondaries[0]: unknown region 'westus' " in lines[0]
        assert lines[1] == f"{path}:9: pairs[0].adopt: expected true or false, got a string"
        assert "2 errors" in err

    def test_network_fence_without_resource_id_names_the_region(self, tmp_path: Path) -> None:
        """fence = "azure-network-deny" with westus lacking resource_id: exit 2, one line
        at westus's table naming the region and the fence."""
        rid = "/subscriptions/0/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv-a"
        text = GOOD.replace(
            'vault_url = "https://a.vault.azure.net"\n',
            f'vault_url = "https://a.vault.azure.net"\nresource_id = "{rid}"\n',
        )
        path = write(tmp_path, text + '[failover]\nfence = "azure-network-deny"\n')
        code, out, _ = run("config", "check", str(path))
        assert code == 2
        (line,) = out.splitlines()
        assert line.startswith(f"{path}:4: regions.westus.resource_id: required by [failover]")
        assert "region westus of pair apps has no resource_id" in line

    def test_json_document_shape(self, tmp_path: Path) -> None:
        """--json prints one document: file, ok, errors, warnings, summary."""
        path = write(tmp_path, BAD)
        code, out, _ = run("config", "check", str(path), "--json")
        assert code == 2
        doc = json.loads(out)
        assert set(doc) == {"file", "ok", "errors", "warnings", "summary"}
        assert doc["ok"] is False and doc["summary"] is None
        assert doc["errors"][1] == {
            "file": str(path),
            "key": "pairs[0].adopt",
            "line": 9,
            "message": "expected true or false, got a string",
            "variable": None,
            "severity": "error",
        }

    def test_json_summary_for_a_valid_file(self, tmp_path: Path) -> None:
        """A valid file's JSON has ok=true and the pairs and regions."""
        code, out, _ = run("config", "check", str(write(tmp_path, GOOD)), "--json")
        assert code == 0
        doc = json.loads(out)
        assert doc["ok"] is True and doc["errors"] == []
        assert doc["summary"]["regions"] == {
            "eastus": "https://a.vault.azure.net",
            "westus": "https://b.vault.azure.net",
        }
        assert doc["summary"]["pairs"][0]["secondaries"] == ["westus"]

    def test_environment_override_is_checked_and_named(self, tmp_path: Path) -> None:
        """A bad KVDR__ variable fails the check and is named instead of a line."""
        path = write(tmp_path, GOOD)
        code, out, _ = run(
            "config", "check", str(path), env={"KVDR__REPLICATION__POLL_INTERVAL": "soon"}
        )
        assert code == 2
        assert out.startswith(f"{path}: env KVDR__REPLICATION__POLL_INTERVAL: ")

    def test_warnings_do_not_fail_the_check(self, tmp_path: Path) -> None:
        """A warning is printed, the file is still OK."""
        extra = "[replication]\npoll_interval = 60\nreconcile_interval = 30\n"
        path = write(tmp_path, GOOD + extra)
        code, out, _ = run("config", "check", str(path))
        assert code == 0
        assert f"{path}:13: replication.reconcile_interval: warning: shorter than" in out
        assert f"{path}: OK" in out

    def test_missing_file_exits_2_naming_it(self, tmp_path: Path) -> None:
        """A file that does not exist is named, exit code 2."""
        missing = tmp_path / "absent.toml"
        code, out, _ = run("config", "check", str(missing))
        assert code == 2
        assert f"{missing}: file not found" in out


class TestConfigCheckProcess:
    """`python -m kvdr config check` as a real process."""

    def check(self, path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "kvdr", "config", "check", str(path), *extra],
            capture_output=True,
            text=True,
            env=clean_env(),
            timeout=60,
            check=False,
        )

    def test_exit_codes_and_output_of_the_real_command(self, tmp_path: Path) -> None:
        """0 and OK for a good file; 2 and the line for a bad one; --json is pure JSON."""
        good = self.check(write(tmp_path, GOOD))
        assert good.returncode == 0, good.stderr
        assert "kvdr.toml: OK" in good.stdout

        bad_path = write(tmp_path, BAD)
        bad = self.check(bad_path)
        assert bad.returncode == 2
        assert f"{bad_path}:9: pairs[0].adopt:" in bad.stdout

        as_json = self.check(bad_path, "--json")
        assert as_json.returncode == 2
        assert [e["line"] for e in json.loads(as_json.stdout)["errors"]] == [8, 9]

        missing = self.check(tmp_path / "gone.toml")
        assert missing.returncode == 2
        assert "gone.toml: file not found" in missing.stdout
