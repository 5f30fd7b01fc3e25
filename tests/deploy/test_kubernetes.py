"""Kubernetes manifests: yamllint, structure, and a kustomize render."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML (via yamllint) has no stubs

from tests.deploy.iac import DEPLOY

KUBERNETES = DEPLOY / "kubernetes"
BASE = KUBERNETES / "base"
OVERLAYS = sorted(p for p in (KUBERNETES / "overlays").iterdir() if p.is_dir())
KUBECTL = shutil.which("kubectl")
CONFIG_PATH = "/etc/kvdr/kvdr.toml"
needs_kubectl = pytest.mark.skipif(
    KUBECTL is None, reason="kubectl is not installed here: `kubectl kustomize` cannot render"
)


def _base_documents() -> dict[str, dict[str, Any]]:
    docs: dict[str, dict[str, Any]] = {}
    for path in sorted(BASE.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            docs[doc["kind"]] = doc
    return docs


def _render(path: Path) -> list[dict[str, Any]]:
    assert KUBECTL is not None
    result = subprocess.run(
        [KUBECTL, "kustomize", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    if doc["kind"] == "CronJob":
        spec: dict[str, Any] = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        return spec
    spec = doc["spec"]["template"]["spec"]
    return spec


class TestYamllint:
    def test_manifests_and_monitoring_pass_yamllint(self) -> None:
        """yamllint (deploy/.yamllint.yaml: the default rules) over every YAML file in
        deploy/, warnings included."""
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "yamllint",
                "--strict",
                "-c",
                str(DEPLOY / ".yamllint.yaml"),
                str(DEPLOY),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr


class TestStructure:
    def test_two_replicas_with_probes_limits_and_config(self) -> None:
        """Two replicas, /healthz liveness and /readyz readiness, requests and limits, the
        configuration mounted at the documented path and `kvdr run` started on it."""
        deployment = _base_documents()["Deployment"]
        assert deployment["spec"]["replicas"] == 2
        pod = _pod_spec(deployment)
        (container,) = pod["containers"]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
        resources = container["resources"]
        assert set(resources) == {"requests", "limits"}
        assert {"cpu", "memory"} <= set(resources["limits"])
        assert container["args"] == ["run", "--config", CONFIG_PATH]
        mounts = {m["name"]: m for m in container["volumeMounts"]}
        assert mounts["config"]["mountPath"] == str(Path(CONFIG_PATH).parent)
        assert mounts["config"]["readOnly"] is True
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["config"]["configMap"]["name"] == "kvdr-config"

    def test_pods_run_locked_down(self) -> None:
        """Non-root, read-only root file system, no privilege escalation, all capabilities
        dropped, the runtime's seccomp profile, no service account token mounted."""
        docs = _base_documents()
        for kind in ("Deployment", "CronJob"):
            pod = _pod_spec(docs[kind])
            assert pod["securityContext"]["runAsNonRoot"] is True
            assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
            assert pod["automountServiceAccountToken"] is False
            for container in pod["containers"]:
                context = container["securityContext"]
                assert context["readOnlyRootFilesystem"] is True
                assert context["allowPrivilegeEscalation"] is False
                assert context["capabilities"]["drop"] == ["ALL"]

    def test_workload_identity(self) -> None:
        """Pods use workload identity through the kvdr service account."""
        docs = _base_documents()
        account = docs["ServiceAccount"]
        assert "azure.workload.identity/client-id" in account["metadata"]["annotations"]
        for kind in ("Deployment", "CronJob"):
            doc = docs[kind]
            template = (
                doc["spec"]["jobTemplate"]["spec"]["template"]
                if kind == "CronJob"
                else doc["spec"]["template"]
            )
            assert template["metadata"]["labels"]["azure.workload.identity/use"] == "true"
            assert _pod_spec(doc)["serviceAccountName"] == account["metadata"]["name"]

    def test_disruption_budget_and_network_policy_select_the_daemon(self) -> None:
        """The PDB keeps one daemon through a drain; the NetworkPolicy admits only the
        HTTP port in and DNS and HTTPS out; the Service and ServiceMonitor reach /metrics."""
        docs = _base_documents()
        labels = docs["Deployment"]["spec"]["template"]["metadata"]["labels"]
        pdb = docs["PodDisruptionBudget"]
        assert pdb["spec"]["minAvailable"] == 1
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
        policy = docs["NetworkPolicy"]["spec"]
        assert policy["policyTypes"] == ["Ingress", "Egress"]
        assert [p["port"] for rule in policy["ingress"] for p in rule["ports"]] == [8080]
        egress_ports = {p["port"] for rule in policy["egress"] for p in rule["ports"]}
        # DNS, the vaults and storage; the drill job also the daemons and the Toxiproxy API.
        assert egress_ports == {53, 443, 8080, 8474}
        monitor = docs["ServiceMonitor"]["spec"]["endpoints"][0]
        assert monitor["path"] == "/metrics" and monitor["port"] == "http"
        service_ports = docs["Service"]["spec"]["ports"]
        assert [p["name"] for p in service_ports] == ["http"]

    def test_weekly_drill_runs_against_the_configured_environment(self) -> None:
        """The drill CronJob runs weekly, never twice at once, is not suspended, drills
        the environment of the mounted configuration (`--stack config`) through its
        Toxiproxy API, and writes each run's report to the reports volume."""
        cron = _base_documents()["CronJob"]
        spec = cron["spec"]
        assert spec["schedule"].split()[2:] == ["*", "*", "2"]
        assert spec["concurrencyPolicy"] == "Forbid"
        assert spec["suspend"] is False
        pod = _pod_spec(cron)
        (container,) = pod["containers"]
        args = container["args"]
        assert args[:3] == ["drill", "run", "region-outage"]
        assert args[args.index("--stack") + 1] == "config"
        assert args[args.index("--config") + 1] == "/etc/kvdr/kvdr.toml"
        assert "--proxy-api" in args and "--i-know-this-is-production" not in args
        report = args[args.index("--report") + 1]
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        (mount,) = [path for path in mounts if report.startswith(path + "/")]
        claim = volumes[mounts[mount]]["persistentVolumeClaim"]["claimName"]
        assert claim == _base_documents()["PersistentVolumeClaim"]["metadata"]["name"]
        # $(JOB_NAME) is expanded by the kubelet from the container's env.
        env = {e["name"]: e for e in container["env"]}
        assert "$(JOB_NAME)" in report and "JOB_NAME" in env
        assert pod["serviceAccountName"] == "kvdr"

    def test_drill_reaches_the_daemons_through_the_service(self, tmp_path: Path) -> None:
        """The drill job's configuration, with the job's environment applied, points
        the drill's /status reads at the kvdr Service's port (not at its own loopback,
        where no daemon runs), and still passes the configuration check."""
        from kvdr.commands.status import local_url
        from kvdr.config import load_config

        docs = _base_documents()
        (container,) = _pod_spec(docs["CronJob"])["containers"]
        env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
        http = tmp_path / "http"
        http.mkdir()
        for name in ("events-secret", "status-token", "state-key"):
            (http / name).write_text("x" * 32)
        config = tmp_path / "kvdr.toml"
        config.write_text(
            (KUBERNETES / "overlays" / "staging" / "kvdr.toml")
            .read_text()
            .replace("/etc/kvdr-http/", f"{http}/")
            .replace("/etc/kvdr-signers/", f"{BASE / 'signers'}/")
        )
        loaded = load_config(config, env)
        service = docs["Service"]
        (port,) = [p["port"] for p in service["spec"]["ports"] if p["name"] == "http"]
        url = local_url(loaded.daemon.listen_host, loaded.daemon.listen_port)
        assert url == f"http://{service['metadata']['name']}:{port}"
        assert loaded.environment == "staging"
        # Without the job's environment the same file points at loopback.
        alone = load_config(config, {})
        assert local_url(alone.daemon.listen_host, alone.daemon.listen_port).startswith(
            "http://127.0.0.1:"
        )

    def test_no_secret_in_manifests(self) -> None:
        """No Secret object, no key or connection string anywhere in the manifests."""
        for path in KUBERNETES.rglob("*"):
            if path.is_file():
                text = path.read_text()
                assert "kind: Secret" not in text, path
                for marker in ("AccountKey=", "SharedAccessSignature", "client_secret ="):
                    assert marker not in text, f"{path}: {marker}"


class TestKustomize:
    @needs_kubectl
    @pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda p: p.name)
    def test_overlay_renders(self, overlay: Path) -> None:
        """Each overlay renders into its own namespace with its own identity, image tag
        and configuration file, and the ConfigMap name the pods mount is the generated one."""
        docs = _render(overlay)
        kinds = sorted(doc["kind"] for doc in docs)
        assert kinds == sorted(
            [
                "ConfigMap",
                "ConfigMap",
                "CronJob",
                "Deployment",
                "Namespace",
                "NetworkPolicy",
                "PersistentVolumeClaim",
                "PodDisruptionBudget",
                "Service",
                "ServiceAccount",
                "ServiceMonitor",
            ]
        )
        namespace = f"kvdr-{overlay.name}"
        by_kind = {doc["kind"]: doc for doc in docs if doc["kind"] != "ConfigMap"}
        maps = {
            doc["metadata"]["name"].rsplit("-", 1)[0]: doc
            for doc in docs
            if doc["kind"] == "ConfigMap"
        }
        by_kind["ConfigMap"] = maps["kvdr-config"]
        assert by_kind["Namespace"]["metadata"]["name"] == namespace
        for doc in docs:
            if doc["kind"] != "Namespace":
                assert doc["metadata"]["namespace"] == namespace, doc["kind"]
        config_map = by_kind["ConfigMap"]
        assert config_map["data"]["kvdr.toml"] == (overlay / "kvdr.toml").read_text()
        base_client = _base_documents()["ServiceAccount"]["metadata"]["annotations"]
        client = by_kind["ServiceAccount"]["metadata"]["annotations"]
        assert client != base_client
        assert client["azure.workload.identity/client-id"] in config_map["data"]["kvdr.toml"]
        for kind in ("Deployment", "CronJob"):
            pod = _pod_spec(by_kind[kind])
            volumes = {v["name"]: v for v in pod["volumes"]}
            assert volumes["config"]["configMap"]["name"] == config_map["metadata"]["name"]
            # The pinned signer keys, where the configuration's public_key paths point.
            signers = maps["kvdr-signers"]
            assert volumes["signers"]["configMap"]["name"] == signers["metadata"]["name"]
            assert sorted(signers["data"]) == ["eastus.pem", "westus.pem"]
            image = pod["containers"][0]["image"]
            assert image.startswith("kvdr.azurecr.io/kvdr:") and not image.endswith(":latest")
        # Staging drills every week; production only by hand, with named approvers.
        assert by_kind["CronJob"]["spec"]["suspend"] is (overlay.name == "production")
        # The drill reads the pair's lag through the Service, which only the pair's
        # leader reports: staging, drilled on a schedule, runs one daemon.
        replicas = by_kind["Deployment"]["spec"]["replicas"]
        assert replicas == (2 if overlay.name == "production" else 1)
        budget = by_kind["PodDisruptionBudget"]["spec"]
        assert budget.get("minAvailable", 0) < replicas
        environment = "production" if overlay.name == "production" else "staging"
        assert f'environment = "{environment}"' in config_map["data"]["kvdr.toml"]

    @needs_kubectl
    def test_base_renders(self) -> None:
        docs = _render(BASE)
        assert {doc["metadata"].get("namespace") for doc in docs if doc["kind"] != "Namespace"} == {
            "kvdr"
        }
