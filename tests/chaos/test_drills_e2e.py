"""Drills end to end, as a user runs them: `kvdr drill run` as a process, on its own
throwaway local stack (free ports, its own folder) or on a stack the test started
(`--stack config`), with shortened timings. The reports are read back and the proxy's
and emulators' APIs are asked what was left behind."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chaos.faults import Faults
from kvdr.local_stack import LocalStack
from tests.fixtures.stack_failover import running_stack


def drill(
    *args: str, cwd: Path, timeout: float = 420
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    result = subprocess.run(
        [sys.executable, "-m", "kvdr", "drill", "run", *args, "--json"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    try:
        doc = json.loads(result.stdout)
    except ValueError:
        pytest.fail(f"no JSON on stdout (exit {result.returncode}): {result.stderr[-3000:]}")
    return result, doc


def explain(doc: dict[str, Any], result: subprocess.CompletedProcess[str]) -> str:
    return (
        json.dumps(
            {
                k: doc.get(k)
                for k in (
                    "status",
                    "reason",
                    "why_not",
                    "measured",
                    "rto",
                    "rpo",
                    "hypothesis",
                    "left_behind",
                    "rollbacks",
                )
            },
            default=str,
        )[:4000]
        + result.stderr[-2000:]
    )


def run_builtin(name: str, tmp_path: Path, scale: float) -> dict[str, Any]:
    report = tmp_path / "report"
    result, doc = drill(name, "--time-scale", str(scale), "--report", str(report), cwd=tmp_path)
    assert result.returncode == 0, explain(doc, result)
    assert doc["passed"] and doc["status"] == "completed"
    assert doc["left_behind"] == []
    assert json.loads((report / "report.json").read_text())["verdict"] == "pass"
    assert "kvdr_drill_passed" in (report / "metrics.prom").read_text()
    return doc


@pytest.mark.slow
class TestBuiltinScenarios:
    """Every built-in passes its objectives on a throwaway stack (shortened timings)."""

    def test_flaky_primary_loses_nothing(self, tmp_path: Path) -> None:
        """Resets and jittered latency on the primary's link: every acknowledged write
        reaches the secondary, RPO 0."""
        doc = run_builtin("flaky-primary", tmp_path, 0.4)
        assert doc["measured"]["rpo_items"] == 0
        assert doc["measured"]["writes_acknowledged"] > 10
        assert all(not a["unaccounted"] for a in doc["accounting"])

    def test_throttled_target_raises_lag_and_loses_nothing(self, tmp_path: Path) -> None:
        """429 on most of the secondary's requests: lag rises, then every write arrives."""
        doc = run_builtin("throttled-target", tmp_path, 0.5)
        lags = [p["lag_seconds"] or 0 for p in doc["chart"]["lag"]]
        assert max(lags) >= 1.0, lags
        assert doc["measured"]["rpo_items"] == 0

    def test_slow_secondary(self, tmp_path: Path) -> None:
        """2 s latency and 10 KB/s to the secondary: lag grows, nothing lost."""
        doc = run_builtin("slow-secondary", tmp_path, 0.5)
        assert max(p["lag_seconds"] or 0 for p in doc["chart"]["lag"]) >= 2.0
        assert doc["measured"]["rpo_items"] == 0

    def test_daemon_crash_no_loss_no_duplicates(self, tmp_path: Path) -> None:
        """SIGKILL mid-sync and a restart: nothing lost, no version mirrored twice."""
        doc = run_builtin("daemon-crash", tmp_path, 0.5)
        assert all(a["duplicates"] == 0 for a in doc["accounting"])
        assert doc["measured"]["rpo_items"] == 0

    def test_deny_access_alerts_and_deletes_nothing(self, tmp_path: Path) -> None:
        """The primary refuses kvdr: the daemon reports it, nothing is lost or deleted."""
        doc = run_builtin("deny-access", tmp_path, 0.5)
        awaited = [e for e in doc["timeline"] if e["kind"] == "await"]
        assert any(e["condition"] == "daemon_reports_error" and e["ok"] for e in awaited)
        assert all(not a["unaccounted"] for a in doc["accounting"])

    def test_storage_outage(self, tmp_path: Path) -> None:
        """Blob storage down: replication carries on, the journal recovers after."""
        doc = run_builtin("storage-outage", tmp_path, 0.5)
        assert doc["measured"]["rpo_items"] == 0

    def test_planned_switchover_zero_loss(self, tmp_path: Path) -> None:
        """Switch to westus with the load running: 0 writes lost, and back again."""
        doc = run_builtin("planned-switchover", tmp_path, 0.5)
        assert doc["rpo"][0]["items"] == 0

    def test_region_outage_promote_and_failback(self, tmp_path: Path) -> None:
        """The primary's vault gone: promote westus, measure the loss, fail back; every
        acknowledged write is on eastus afterwards or was declared lost."""
        doc = run_builtin("region-outage", tmp_path, 0.5)
        assert doc["rpo"] and doc["measured"]["rto_seconds"] is not None


IMPOSSIBLE = """
name = "impossible"
description = "An RTO objective no drill can meet."
[objectives]
rto_seconds = 0
[load]
rate = 5
[[steps]]
action = "load_start"
[[steps]]
action = "vault_errors"
id = "outage"
region = "eastus"
status = 503
share = 1
duration_seconds = 2
[[steps]]
action = "wait"
seconds = 1
[[steps]]
action = "load_stop"
"""


@pytest.mark.slow
class TestImpossibleObjective:
    def test_fails_with_exit_1_and_says_why(self, tmp_path: Path) -> None:
        """RTO 0 after a 2 s outage: exit 1, and the report names the RTO it measured."""
        path = tmp_path / "impossible.toml"
        path.write_text(IMPOSSIBLE)
        report = tmp_path / "report"
        result, doc = drill(str(path), "--report", str(report), cwd=tmp_path)
        assert result.returncode == 1, explain(doc, result)
        assert doc["verdict"] == "fail" and doc["status"] == "completed"
        assert any(w.startswith("RTO: ") and "objective 0 s" in w for w in doc["why_not"])
        assert doc["measured"]["rto_seconds"] >= 1.5
        assert doc["measured"]["writes_failed"] > 0
        assert "Why it failed" in (report / "report.md").read_text()
        assert doc["left_behind"] == []


def marked_drill(text: str) -> str:
    return 'environment = "drill"\n' + text


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalStack, Path]]:
    """A local stack on free ports with its daemon, marked `environment = "drill"`."""
    folder = tmp_path_factory.mktemp("drillstack")
    with running_stack(folder, edit_config=marked_drill) as running:
        yield running.local, running.config


LONG_FAULTS = """
name = "long-faults"
description = "Faults of every kind, then a long wait to be interrupted in."
[[steps]]
action = "load_start"
[[steps]]
action = "toxic"
id = "slow"
link = "westus-vault"
type = "latency"
attributes = { latency = 300 }
[[steps]]
action = "link_down"
id = "blob"
link = "blob"
[[steps]]
action = "vault_errors"
id = "throttle"
region = "westus"
share = 0.5
[[steps]]
action = "read_only"
id = "fence"
region = "eastus"
[[steps]]
action = "wait"
seconds = 120
"""


def emulator_api(local: LocalStack, region: str) -> str:
    port = json.loads((local.emulator_dirs[region] / "endpoint.json").read_text())["port"]
    return f"https://127.0.0.1:{port}"


def emulator_get(local: LocalStack, region: str, path: str) -> Any:
    import ssl
    import urllib.request

    context = ssl.create_default_context(cafile=str(local.emulator_dirs[region] / "tls" / "ca.pem"))
    with urllib.request.urlopen(
        f"{emulator_api(local, region)}/_emulator/{path}", context=context, timeout=10
    ) as resp:
        return json.loads(resp.read())


@pytest.mark.slow
class TestInterrupted:
    @pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
    def test_signal_mid_fault_leaves_nothing_behind(
        self, stack: tuple[LocalStack, Path], tmp_path: Path, sig: signal.Signals
    ) -> None:
        """SIGINT / SIGTERM while a toxic, a link down, an emulator fault and a read-only
        fence are on: the drill rolls every one back, reports `interrupted`, exits 1."""
        local, config = stack
        path = tmp_path / "long.toml"
        path.write_text(LONG_FAULTS)
        args = [
            sys.executable,
            "-m",
            "kvdr",
            "drill",
            "run",
            str(path),
            "--stack",
            "config",
            "--config",
            str(config),
            "--proxy-api",
            f"127.0.0.1:{local.ports.proxy_api}",
            "--emulator-api",
            f"eastus={emulator_api(local, 'eastus')}",
            "--emulator-api",
            f"westus={emulator_api(local, 'westus')}",
            "--json",
        ]
        process = subprocess.Popen(
            args,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ),
        )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                fenced = emulator_get(local, "eastus", "read-only")["read_only"]
                if fenced:
                    break
                time.sleep(0.2)
            else:
                pytest.fail("the drill never reached its faults: " + process.stderr.read()[-2000:])
            toxics = asyncio.run(Faults(port=local.ports.proxy_api).toxics("westus-vault"))
            assert toxics, "the toxic should be on while the drill runs"
            assert emulator_get(local, "westus", "faults")["active"] is True
            process.send_signal(sig)
            out, err = process.communicate(timeout=120)
        finally:
            if process.poll() is None:
                process.kill()
        assert process.returncode == 1, err[-3000:]
        doc = json.loads(out)
        assert doc["status"] == "interrupted", doc["reason"]
        assert doc["left_behind"] == []
        assert {r["what"] for r in doc["rollbacks"] if r["ok"]} >= {
            "turn eastus's read-only mode off",
            "clear fault throttle on westus's vault",
            "bring link blob up",
            "remove toxic latency from link westus-vault",
        }
        # Asked directly, not taken from the report.
        faults = Faults(port=local.ports.proxy_api)
        links = asyncio.run(faults.links())
        assert set(links) == {"eastus-vault", "westus-vault", "blob", "blob-secondary"}
        for name, link in links.items():
            assert link.enabled, name
            assert asyncio.run(faults.toxics(name)) == [], name
        for region in ("eastus", "westus"):
            assert emulator_get(local, region, "faults")["active"] is False
            assert emulator_get(local, region, "read-only")["read_only"] is False


def flaky_primary_on(tmp_path: Path, environment: str | None) -> subprocess.CompletedProcess[str]:
    """`kvdr drill run flaky-primary` on a local configuration whose `environment` is
    `environment` (no such key when None), as a process."""
    from kvdr.config import write_local_config

    config = tmp_path / "kvdr.toml"
    write_local_config(config)
    if environment is not None:
        config.write_text(f'environment = "{environment}"\n' + config.read_text())
    return subprocess.run(
        [sys.executable, "-m", "kvdr", "drill", "run", "flaky-primary", "--config", str(config)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class TestEnvironmentGuard:
    def test_production_refused_without_the_flag(self, tmp_path: Path) -> None:
        """A link-cutting scenario on a production configuration exits 2 before anything
        is touched, naming the flag."""
        result = flaky_primary_on(tmp_path, "production")
        assert result.returncode == 2
        assert "--i-know-this-is-production" in result.stderr

    def test_unmarked_environment_refused(self, tmp_path: Path) -> None:
        """A configuration without `environment` is not drilled."""
        result = flaky_primary_on(tmp_path, None)
        assert result.returncode == 2
        assert 'environment = "drill"' in result.stderr


CERTIFICATE_FAULTS = """
name = "certificate-faults"
description = "Chaos Studio's certificate faults: disable a version, add a version."
[[steps]]
action = "disable_certificate"
id = "off"
certificate = "drill-cert"
duration_seconds = 1
[[steps]]
action = "add_certificate_version"
certificate = "drill-cert"
[[steps]]
action = "await"
condition = { probe = "lag_below", seconds = 1 }
timeout_seconds = 60
"""


@pytest.mark.slow
class TestCertificateFaults:
    def test_disable_is_rolled_back_and_the_new_version_is_mirrored(
        self, stack: tuple[LocalStack, Path], tmp_path: Path
    ) -> None:
        """The disabled version is enabled again afterwards; the added version (same
        material, a new version) exists on the primary and reaches the secondary."""
        from azure.keyvault.certificates import CertificateClient, CertificatePolicy

        from tests.fixtures.emulator import StaticTokenCredential

        local, config = stack
        bundle = str(local.state_dir / "vaults" / "ca-bundle.pem")

        def client(port: int) -> CertificateClient:
            return CertificateClient(
                f"https://127.0.0.1:{port}",
                StaticTokenCredential(),
                verify_challenge_resource=False,
                connection_verify=bundle,
            )

        primary = client(local.ports.eastus)
        first = primary.begin_create_certificate(
            "drill-cert", CertificatePolicy.get_default()
        ).result()
        path = tmp_path / "cert.toml"
        path.write_text(CERTIFICATE_FAULTS)
        result, doc = drill(
            str(path),
            "--stack",
            "config",
            "--config",
            str(config),
            "--proxy-api",
            f"127.0.0.1:{local.ports.proxy_api}",
            cwd=tmp_path,
        )
        assert result.returncode == 0, explain(doc, result)
        # The drill left its record in the environment's storage, and the daemon running
        # there exports it: the dashboard's last drill per pair, whoever ran it.
        assert doc["record"]["blob"] == "drills/demo/certificate-faults.json", doc["record"]
        exported = 'kvdr_drill_passed{pair="demo",scenario="certificate-faults"} 1.0'
        deadline = time.monotonic() + 40
        while exported not in daemon_metrics(local) and time.monotonic() < deadline:
            time.sleep(1)
        assert exported in daemon_metrics(local)
        assert [r["what"] for r in doc["rollbacks"]] == ["enable certificate drill-cert in eastus"]
        assert [r["by"] for r in doc["rollbacks"]] == ["heal"]
        faults = [e["what"] for e in doc["timeline"] if e["kind"] == "fault"]
        assert faults == ["certificate drill-cert disabled in eastus", "new version of drill-cert"]
        versions = list(primary.list_properties_of_certificate_versions("drill-cert"))
        assert len(versions) == 2
        assert all(v.enabled for v in versions)
        assert primary.get_certificate_version(
            "drill-cert", first.properties.version
        ).properties.enabled
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            mirrored = list(
                client(local.ports.westus).list_properties_of_certificate_versions("drill-cert")
            )
            if len(mirrored) >= 2:
                break
            time.sleep(1)
        assert len(mirrored) >= 2


def daemon_metrics(local: LocalStack) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{local.ports.daemon}/metrics", timeout=5) as r:
        return str(r.read().decode())


REGION_KILLED = """
name = "secondary-killed"
description = "The secondary region's emulator process killed and started again."
[objectives]
rto_seconds = 30
[load]
rate = 4
[[steps]]
action = "load_start"
[[steps]]
action = "wait"
seconds = 2
[[steps]]
action = "kill_region"
id = "gone"
region = "westus"
duration_seconds = 5
[[steps]]
action = "wait"
seconds = 2
[[steps]]
action = "load_stop"
[[steps]]
action = "await"
condition = { probe = "lag_below", seconds = 2 }
timeout_seconds = 90
[[steps]]
action = "verify"
"""


@pytest.mark.slow
class TestRegionKilled:
    def test_killed_secondary_catches_up(self, tmp_path: Path) -> None:
        """The secondary's process killed for 5 s: lag rises while it is gone, it comes
        back on its port, every acknowledged write reaches it, nothing left behind."""
        path = tmp_path / "killed.toml"
        path.write_text(REGION_KILLED)
        result, doc = drill(str(path), cwd=tmp_path)
        assert result.returncode == 0, explain(doc, result)
        assert [w["what"] for w in doc["chart"]["fault_windows"]] == ["region westus killed"]
        assert max(p["lag_seconds"] or 0 for p in doc["chart"]["lag"]) >= 2
        assert doc["accounting"][1]["region"] == "westus"
        assert doc["accounting"][1]["present"] == doc["measured"]["writes_acknowledged"]
