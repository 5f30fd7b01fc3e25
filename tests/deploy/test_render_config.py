"""The configuration rendered from either flavour's outputs passes `kvdr config check`."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.deploy import bicep
from tests.deploy.iac import DEPLOY, bicep_file, terraform, tf_object_keys
from tests.fixtures.cli import run_kvdr

REGIONS = ["eastus", "westus"]
CONTROL_REGIONS = ["northeurope", "centralus"]
CLIENT_ID = "0f0e0d0c-0b0a-0908-0706-050403020100"
SUBSCRIPTION = "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg-kvdr"
EGRESS = ["203.0.113.7", "203.0.113.8"]


def _sample(field: str, literal: Any, region: str) -> Any:
    """A value of the shape Azure gives for `field` (literals written in the IaC win)."""
    if isinstance(literal, str) and not literal.startswith("${"):
        return literal
    return {
        "client_id": CLIENT_ID,
        "region": region,
        "vault_url": f"https://kvdrtest-{region}.vault.azure.net/",
        "sku": "premium",
        "account_url": f"https://kvdrtest{region}.blob.core.windows.net/",
        "secondary_account_url": f"https://kvdrtest{region}-secondary.blob.core.windows.net/",
        "container": "kvdr",
        "name": "app",
        "primary": REGIONS[0],
        "kinds": ["secret", "key", "certificate"],
        "resource_id": f"{SUBSCRIPTION}/providers/Microsoft.KeyVault/vaults/kvdrtest-{region}",
        "action": "azure-network-deny",
        "allow_ips": EGRESS,
    }[field]


def _object(fields: dict[str, Any], region: str) -> dict[str, Any]:
    return {field: _sample(field, literal, region) for field, literal in fields.items()}


def _outputs(shapes: dict[str, tuple[bool, dict[str, Any]]]) -> dict[str, Any]:
    """`terraform output -json` / ARM outputs for the given (is_list, fields) shapes."""
    doc: dict[str, Any] = {}
    for name, (is_list, fields) in shapes.items():
        if not is_list:
            value: Any = _object(fields, REGIONS[0])
        elif name == "kvdr_control_stores":
            value = [_object(fields, r) for r in CONTROL_REGIONS]
        else:
            value = [_object(fields, r) for r in REGIONS]
        doc[name] = {"value": value, "type": "list" if is_list else "object"}
    return doc


def terraform_shapes() -> dict[str, tuple[bool, dict[str, Any]]]:
    shapes = {}
    for name, body in terraform().outputs.items():
        value = body["value"]
        if isinstance(value, dict):
            shapes[name] = (False, value)
        elif str(value).startswith("${[for"):
            keys = tf_object_keys(value)
            literals = dict.fromkeys(keys)
            # Literal fields of the for-expression's object (key = "kvdr-backup").
            for key in keys:
                marker = f'{key} = "'
                if marker in str(value):
                    literals[key] = str(value).split(marker, 1)[1].split('"', 1)[0]
            shapes[name] = (True, literals)
    return shapes


def bicep_shapes() -> dict[str, tuple[bool, dict[str, Any]]]:
    shapes = {}
    for name, output in bicep.of_kind(bicep_file(), "output").items():
        if isinstance(output.body, dict):
            shapes[name] = (isinstance(output.value, bicep.Loop), dict(output.body))
    return shapes


def run_renderer(doc: dict[str, Any], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`python deploy/render_config.py OUTPUTS.json` as the docs run it."""
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(doc))
    return subprocess.run(
        [sys.executable, str(DEPLOY / "render_config.py"), str(outputs)],
        capture_output=True,
        text=True,
        check=False,
    )


def render(doc: dict[str, Any], tmp_path: Path) -> Path:
    rendered = run_renderer(doc, tmp_path)
    assert rendered.returncode == 0, rendered.stderr
    config = tmp_path / "kvdr.toml"
    config.write_text(rendered.stdout)
    return config


# The example signer public keys the kustomize base ships (kvdr-signers ConfigMap).
SIGNERS = DEPLOY / "kubernetes" / "base" / "signers"


def config_check(config: Path) -> dict[str, Any]:
    """`kvdr config check` on `config`, with the pinned signer keys read from the example
    files where the pod mounts them (/etc/kvdr-signers)."""
    text = config.read_text()
    assert "/etc/kvdr-signers/" in text, "the configuration pins no signer"
    assert "/etc/kvdr-http/" in text, "a listener beyond loopback without its secrets"
    with tempfile.TemporaryDirectory() as folder:
        # What the kvdr-http Secret holds, as the pod sees it (files, 0400).
        http = Path(folder) / "http"
        http.mkdir()
        for name in ("events-secret", "status-token", "state-key"):
            (http / name).write_text(secrets.token_urlsafe(32))
            (http / name).chmod(0o400)
        checked = Path(folder) / "kvdr.toml"
        checked.write_text(
            text.replace("/etc/kvdr-signers/", f"{SIGNERS}/").replace("/etc/kvdr-http/", f"{http}/")
        )
        result = run_kvdr("config", "check", str(checked), "--json")
    doc: dict[str, Any] = json.loads(result.stdout)
    assert result.returncode == 0, (result.stdout, text)
    return doc


class TestRenderedConfiguration:
    @pytest.mark.parametrize("flavour", ["terraform", "bicep"])
    def test_outputs_render_a_valid_configuration(self, flavour: str, tmp_path: Path) -> None:
        """The outputs each flavour declares fill a configuration that kvdr accepts:
        managed identity, both regions, RA-GZRS storage with its secondary endpoint,
        one KEK per region, one pair."""
        shapes = terraform_shapes() if flavour == "terraform" else bicep_shapes()
        config = render(_outputs(shapes), tmp_path)
        doc = config_check(config)
        assert doc["ok"] is True and doc["errors"] == [] and doc["warnings"] == []
        text = config.read_text()
        assert 'kind = "managed-identity"' in text
        assert f'client_id = "{CLIENT_ID}"' in text
        assert 'secondaries = ["westus"]' in text
        assert "secondary_account_url" in text
        assert text.count("[[backups.keks]]") == len(REGIONS)
        assert text.count("[[backups.signers]]") == len(REGIONS)
        # Three control stores: the backup account's and the two of their own.
        assert text.count("[[failover.control_stores]]") == 3
        assert "northeurope" in text or "neu" in text
        # The network fence, with each vault's ARM id for its management plane.
        assert 'fence = "azure-network-deny"' in text
        assert f"fence_allow_ips = {json.dumps(EGRESS)}" in text
        for region in REGIONS:
            assert f'vaults/kvdrtest-{region}"' in text

    def test_no_fence_output_renders_no_fence(self, tmp_path: Path) -> None:
        """fence = "none" (the default), or outputs of a deployment older than the
        kvdr_fence output: no fence keys, and the file still passes config check."""
        for variant in ("none", "absent"):
            doc = _outputs(terraform_shapes())
            if variant == "none":
                doc["kvdr_fence"]["value"] = {"action": "none", "allow_ips": []}
            else:
                del doc["kvdr_fence"]
            folder = tmp_path / variant
            folder.mkdir()
            config = render(doc, folder)
            text = config.read_text()
            assert "fence" not in text, variant
            assert "resource_id = " in text
            assert config_check(config)["ok"] is True

    @pytest.mark.parametrize(
        ("change", "named"),
        [
            ({"allow_ips": []}, "allow_ips"),
            ({"action": "emulator-readonly"}, "emulator-readonly"),
        ],
    )
    def test_an_unusable_fence_is_refused(
        self, change: dict[str, Any], named: str, tmp_path: Path
    ) -> None:
        """A network fence admitting no kvdr address (it would lock kvdr out), or an
        action that cannot run on Azure: exit 2 naming it, nothing written."""
        doc = _outputs(terraform_shapes())
        doc["kvdr_fence"]["value"].update(change)
        result = run_renderer(doc, tmp_path)
        assert result.returncode == 2, result.stdout
        assert named in result.stderr and "kvdr_fence" in result.stderr
        assert result.stdout == ""

    def test_a_fence_without_resource_ids_is_refused(self, tmp_path: Path) -> None:
        """The network fence with a region lacking its ARM id: exit 2 naming the region."""
        doc = _outputs(terraform_shapes())
        del doc["kvdr_regions"]["value"][1]["resource_id"]
        result = run_renderer(doc, tmp_path)
        assert result.returncode == 2
        assert "westus" in result.stderr and "resource_id" in result.stderr

    def test_environment_is_written_first(self, tmp_path: Path) -> None:
        """--environment staging marks the file for `kvdr drill run --stack config`;
        an unknown one is a usage error."""
        outputs = tmp_path / "outputs.json"
        outputs.write_text(json.dumps(_outputs(terraform_shapes())))
        script = str(DEPLOY / "render_config.py")
        ok = subprocess.run(
            [sys.executable, script, str(outputs), "--environment", "staging"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert ok.returncode == 0, ok.stderr
        assert ok.stdout.splitlines()[1] == 'environment = "staging"'
        config = tmp_path / "kvdr.toml"
        config.write_text(ok.stdout)
        assert config_check(config)["ok"] is True
        bad = subprocess.run(
            [sys.executable, script, str(outputs), "--environment", "prod"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert bad.returncode == 2 and "--environment" in bad.stderr

    def test_flavours_render_the_same_file(self, tmp_path: Path) -> None:
        """Terraform's and Bicep's outputs give byte-identical configuration files."""
        (tmp_path / "tf").mkdir()
        (tmp_path / "bicep").mkdir()
        tf = render(_outputs(terraform_shapes()), tmp_path / "tf")
        bc = render(_outputs(bicep_shapes()), tmp_path / "bicep")
        assert tf.read_text() == bc.read_text()

    def test_a_missing_output_is_refused(self, tmp_path: Path) -> None:
        """Outputs without kvdr_storage: exit 2 naming it, no half-written file."""
        doc = _outputs(terraform_shapes())
        del doc["kvdr_storage"]
        result = run_renderer(doc, tmp_path)
        assert result.returncode == 2
        assert "kvdr_storage" in result.stderr and result.stdout == ""


class TestShippedConfigurations:
    @pytest.mark.parametrize(
        "path",
        [
            "kubernetes/base/kvdr.toml",
            "kubernetes/overlays/staging/kvdr.toml",
            "kubernetes/overlays/production/kvdr.toml",
        ],
    )
    def test_manifest_configurations_pass_config_check(self, path: str) -> None:
        """The files the ConfigMaps carry are valid, listen beyond loopback for the
        kubelet's probes and keep state in /var/lib/kvdr."""
        doc = config_check(DEPLOY / path)
        assert doc["ok"] is True and doc["errors"] == []
        assert doc["summary"]["listen"] == "0.0.0.0:8080"
        text = (DEPLOY / path).read_text()
        assert 'state_dir = "/var/lib/kvdr"' in text
