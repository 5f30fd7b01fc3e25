"""The container image and the systemd units start `kvdr run` with the configuration
path the docs describe (checked statically: no image is built here)."""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.iac import DEPLOY, REPO

CONFIG_PATH = "/etc/kvdr/kvdr.toml"
DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
SYSTEMD = DEPLOY / "systemd"


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", path.read_text())
    result = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            word, _, rest = stripped.partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


def _exec_form(argument: str) -> list[str]:
    words = re.findall(r'"((?:[^"\\]|\\.)*)"', argument)
    assert argument.startswith("[") and words, f"not exec form: {argument}"
    return words


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(
        # systemd allows repeated keys; keep the last, as systemd does for these.
        (SYSTEMD / name).read_text()
    )
    return parser


class TestContainerImage:
    def test_entry_point_runs_the_daemon_on_the_documented_config(self) -> None:
        """ENTRYPOINT kvdr + CMD run --config /etc/kvdr/kvdr.toml, and the docs say so."""
        instructions = _instructions(DOCKERFILE)
        final = instructions[max(i for i, (w, _) in enumerate(instructions) if w == "FROM") :]
        entry = [_exec_form(a) for w, a in final if w == "ENTRYPOINT"][-1]
        command = [_exec_form(a) for w, a in final if w == "CMD"][-1]
        assert entry + command == ["kvdr", "run", "--config", CONFIG_PATH]
        assert CONFIG_PATH in (REPO / "docs" / "deploy.md").read_text()

    def test_multi_stage_non_root_with_health_check(self) -> None:
        """Two stages; the final one copies only the virtual environment, runs as a
        numeric non-root user and checks /healthz."""
        instructions = _instructions(DOCKERFILE)
        froms = [a for w, a in instructions if w == "FROM"]
        assert len(froms) == 2 and " AS build" in froms[0]
        final = instructions[max(i for i, (w, _) in enumerate(instructions) if w == "FROM") :]
        copies = [a for w, a in final if w == "COPY"]
        assert copies == ["--from=build /opt/kvdr /opt/kvdr"]
        (user,) = [a for w, a in final if w == "USER"]
        assert user.split(":")[0].isdigit() and not user.startswith("0")
        (health,) = [a for w, a in final if w == "HEALTHCHECK"]
        assert "http://127.0.0.1:8080/healthz" in health
        # No compiler or package manager run in the final stage.
        runs = " ".join(a for w, a in final if w == "RUN")
        assert "pip install" not in runs and "apt-get" not in runs

    def test_installs_the_hashed_lock(self) -> None:
        """Dependencies come from requirements.lock with --require-hashes; kvdr itself is
        installed without resolving dependencies again."""
        runs = [a for w, a in _instructions(DOCKERFILE) if w == "RUN"]
        lock = [r for r in runs if "requirements.lock" in r]
        assert lock and "--require-hashes" in lock[0]
        (own,) = [r for r in runs if "pip install --no-deps --no-build-isolation ." in r]
        # Built by the locked setuptools, which then leaves the image.
        assert "pip uninstall --quiet --yes setuptools wheel" in own
        runtime = (REPO / "requirements.lock").read_text()
        assert "\npytest==" not in runtime and "\nsetuptools==" in runtime
        ignore = [
            line
            for line in (DEPLOY / "docker" / "Dockerfile.dockerignore").read_text().splitlines()
            if line and not line.startswith("#")
        ]
        # Everything is excluded from the build context except what the image needs.
        assert ignore[0] == "*" and "!requirements.lock" in ignore


class TestSystemd:
    def test_service_runs_the_daemon_on_the_documented_config(self) -> None:
        """kvdr.service starts `kvdr run --config /etc/kvdr/kvdr.toml` as the kvdr user,
        after checking the file."""
        service = _unit("kvdr.service")["Service"]
        argv = shlex.split(service["ExecStart"])
        assert Path(argv[0]).name == "kvdr" and argv[1:] == ["run", "--config", CONFIG_PATH]
        assert shlex.split(service["ExecStartPre"])[1:] == ["config", "check", CONFIG_PATH]
        assert service["User"] == "kvdr"
        assert service["RestartPreventExitStatus"] == "2"

    def test_service_is_hardened(self) -> None:
        """The hardening directives a reviewer looks for."""
        service = _unit("kvdr.service")["Service"]
        for key, value in {
            "NoNewPrivileges": "yes",
            "ProtectSystem": "strict",
            "PrivateTmp": "yes",
            "ProtectHome": "yes",
            "PrivateDevices": "yes",
            "ProtectKernelTunables": "yes",
            "ProtectControlGroups": "yes",
            "RestrictSUIDSGID": "yes",
            "CapabilityBoundingSet": "",
            "StateDirectory": "kvdr",
        }.items():
            assert service.get(key) == value, key

    def test_drill_timer_starts_the_drill_weekly(self) -> None:
        """kvdr-drill.timer starts kvdr-drill.service once a week, which runs
        `kvdr drill run --stack config` on the same configuration, its report where
        node_exporter's textfile collector reads metrics.prom."""
        timer = _unit("kvdr-drill.timer")["Timer"]
        assert timer["Unit"] == "kvdr-drill.service"
        assert timer["OnCalendar"].startswith("Tue ")
        assert timer["Persistent"] == "true"
        argv = shlex.split(_unit("kvdr-drill.service")["Service"]["ExecStart"])
        assert argv[1:4] == ["drill", "run", "region-outage"]
        assert argv[argv.index("--stack") + 1] == "config"
        assert argv[argv.index("--config") + 1] == CONFIG_PATH
        report = argv[argv.index("--report") + 1]
        assert report.startswith("/var/lib/kvdr/")  # StateDirectory: writable under ProtectSystem
        text = (SYSTEMD / "kvdr-drill.service").read_text()
        assert f"--collector.textfile.directory={report}" in text
        assert "PENDING" not in text


class TestSystemdAnalyze:
    @pytest.mark.skipif(
        shutil.which("systemd-analyze") is None,
        reason="systemd-analyze is not installed here (no systemd on this machine)",
    )
    def test_units_verify_without_a_warning(self, tmp_path: Path) -> None:
        """`systemd-analyze verify` knows every directive and finds the timer's service;
        the kvdr path is pointed at this checkout's kvdr so that it exists."""
        kvdr = Path(sys.executable).with_name("kvdr")
        units = []
        for name in ("kvdr.service", "kvdr-drill.service", "kvdr-drill.timer"):
            unit = tmp_path / name
            unit.write_text((SYSTEMD / name).read_text().replace("/opt/kvdr/bin/kvdr", str(kvdr)))
            units.append(str(unit))
        result = subprocess.run(
            ["systemd-analyze", "verify", *units], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0 and result.stdout + result.stderr == "", (
            result.stdout + result.stderr
        )
