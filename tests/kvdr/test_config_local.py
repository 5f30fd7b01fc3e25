"""The local stack's built-in configuration (kvdr/local.toml, kvdr/_config_local.py)
and region SKUs."""

from __future__ import annotations

from pathlib import Path

import pytest

from kvdr.config import (
    LOCAL_SOURCE,
    load_config,
    local_config,
    local_events_secret,
    local_state_key,
    parse_config,
    render_local_toml,
    write_local_config,
)
from storage.settings import AzureBlobSettings
from tests.kvdr.test_config import MINIMAL, only_issue, write
from vault.models import ItemKind, VaultRef


class TestLocalConfig:
    """The built-in configuration of the local two-region stack."""

    def test_local_config_loads(self, tmp_path: Path) -> None:
        """eastus -> westus on 8443/8444, emulator credential, Azurite on 10000."""
        config = local_config(tmp_path)
        assert config.source == Path(LOCAL_SOURCE)
        assert config.regions == {
            "eastus": VaultRef("eastus", "https://127.0.0.1:8443"),
            "westus": VaultRef("westus", "https://127.0.0.1:8444"),
        }
        assert config.credential.kind == "emulator"
        assert config.credential.emulator_state_dir == str(tmp_path / "vaults" / "eastus")
        assert isinstance(config.storage, AzureBlobSettings)
        assert config.storage.connection_string is not None
        assert "AccountName=devstoreaccount1" in config.storage.connection_string
        assert "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;" in (
            config.storage.connection_string
        )
        [demo] = config.replicator.pairs
        assert (demo.name, demo.primary.region) == ("demo", "eastus")
        assert [ref.region for ref in demo.secondaries] == ["westus"]
        assert demo.kinds == frozenset(ItemKind)  # the demo mirrors all three kinds
        assert config.vault.verify_challenge_resource is False
        assert config.daemon.listen_port == 8080
        assert config.warnings == ()

    def test_rendered_with_other_ports(self, tmp_path: Path) -> None:
        """Every port of the template can be moved."""
        config = local_config(
            tmp_path, eastus_port=18443, westus_port=18444, blob_port=20000, daemon_port=18080
        )
        assert config.regions["westus"].url == "https://127.0.0.1:18444"
        assert config.daemon.listen_port == 18080
        assert isinstance(config.storage, AzureBlobSettings)
        assert ":20000/devstoreaccount1;" in (config.storage.connection_string or "")

    def test_bad_port_is_refused(self, tmp_path: Path) -> None:
        """A port outside 1-65535 names the parameter."""
        with pytest.raises(ValueError, match="blob_port"):
            render_local_toml(tmp_path, blob_port=70000)

    def test_unusual_state_dir_is_escaped(self, tmp_path: Path) -> None:
        """A folder with quotes and backslashes still renders valid TOML."""
        odd = tmp_path / 'we"ird\\dir'
        config = local_config(odd)
        assert config.daemon.state_dir == odd

    def test_write_local_config_writes_file_and_ca_bundle(self, tmp_path: Path) -> None:
        """The written file loads back; both emulators' CAs land in one bundle."""
        for region, pem in (("eastus", "EAST"), ("westus", "WEST")):
            tls = tmp_path / "vaults" / region / "tls"
            tls.mkdir(parents=True)
            (tls / "ca.pem").write_text(f"-----BEGIN CERTIFICATE-----\n{pem}\n")
        path = tmp_path / "kvdr.toml"
        written = write_local_config(
            path,
            emulator_state_dirs={r: tmp_path / "vaults" / r for r in ("eastus", "westus")},
            blob_connection_string="UseDevelopmentStorage=true",
        )
        loaded = load_config(path, env={})
        assert loaded.regions == written.regions
        bundle = Path(loaded.vault.ca_file or "")
        assert bundle == tmp_path / "vaults" / "ca-bundle.pem"
        assert "EAST" in bundle.read_text() and "WEST" in bundle.read_text()
        assert isinstance(loaded.storage, AzureBlobSettings)
        assert loaded.storage.connection_string == "UseDevelopmentStorage=true"

    def test_template_file_is_the_package_data(self, tmp_path: Path) -> None:
        """kvdr/local.toml is the template (placeholders inside TOML strings); its events
        secret and state key are the state folder's files, made 0600 on first use."""
        template = Path(__file__).parents[2] / "kvdr" / "local.toml"
        assert "${eastus_port}" in template.read_text()
        rendered = render_local_toml(tmp_path)
        assert "${" not in rendered
        secret = local_events_secret(tmp_path)
        assert (tmp_path / "events.secret").stat().st_mode & 0o777 == 0o600
        state_key = local_state_key(tmp_path)
        assert (tmp_path / "state.key").stat().st_mode & 0o777 == 0o600
        config = parse_config(rendered, "x", {})
        assert config.replicator.pairs[0].name == "demo"
        assert config.daemon.events_secret == secret and len(secret) >= 32
        assert config.replicator.state_key == state_key != secret


class TestRegionSku:
    def test_sku_defaults_to_standard_and_is_read(self, tmp_path: Path) -> None:
        """`sku` is optional (standard), case-insensitive, and lands on the VaultRef."""
        text = MINIMAL.replace(
            'vault_url = "https://b.vault.azure.net"',
            'vault_url = "https://b.vault.azure.net"\nsku = "Premium"',
        )
        config = load_config(write(tmp_path, text), env={})
        assert config.regions["eastus"].sku == "standard"
        assert config.regions["westus"].sku == "premium"
        assert config.replicator.pairs[0].secondaries[0].sku == "premium"

    def test_unknown_sku_is_located_with_the_choices(self, tmp_path: Path) -> None:
        """A misspelt sku is an error at its line naming the valid ones."""
        text = MINIMAL.replace(
            'vault_url = "https://b.vault.azure.net"',
            'vault_url = "https://b.vault.azure.net"\nsku = "premum"',
        )
        issue = only_issue(write(tmp_path, text))
        assert (issue.key, issue.line) == ("regions.westus.sku", 5)
        assert "'premium'" in issue.message and "managed-hsm" in issue.message
