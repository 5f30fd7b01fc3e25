"""`[failover]` (kvdr/_config_failover.py): control stores as storage tables, located
errors, the one-or-three rule."""

from __future__ import annotations

import pytest

from kvdr.config import ConfigError, parse_config
from storage.settings import AzureBlobSettings, LocalFolderSettings

BASE = """\
[credential]
kind = "cli"

[regions.eastus]
vault_url = "https://contoso-east.vault.azure.net"

[regions.westus]
vault_url = "https://contoso-west.vault.azure.net"

[storage]
path = "/var/lib/kvdr/blobs"

[[pairs]]
name = "app"
primary = "eastus"
secondaries = ["westus"]
"""

STORE = """
[[failover.control_stores]]
path = "/var/lib/kvdr/control-{n}"
"""


class TestFailoverSection:
    def test_absent_means_the_main_storage(self) -> None:
        """Without [failover] there are no control stores of its own: [storage] holds
        the records, and a store call may take 5 s."""
        config = parse_config(BASE, "kvdr.toml")
        assert config.failover.control_stores == ()
        assert config.failover.store_timeout_seconds == 5.0

    def test_three_stores_and_timeout(self) -> None:
        """Three storage tables, of either backend, and a duration."""
        text = (
            BASE
            + '\n[failover]\nstore_timeout = "2s"\n'
            + STORE.format(n=1)
            + STORE.format(n=2)
            + '\n[[failover.control_stores]]\naccount_url = "https://a.blob.core.windows.net"\n'
            + 'container = "kvdr-control"\n'
        )
        config = parse_config(text, "kvdr.toml")
        stores = config.failover.control_stores
        assert stores[:2] == (
            LocalFolderSettings("/var/lib/kvdr/control-1"),
            LocalFolderSettings("/var/lib/kvdr/control-2"),
        )
        assert isinstance(stores[2], AzureBlobSettings)
        assert stores[2].container == "kvdr-control"
        assert config.failover.store_timeout_seconds == 2.0

    def test_two_stores_are_refused_with_the_line(self) -> None:
        """Two stores: an error at failover.control_stores with its line and why."""
        text = BASE + STORE.format(n=1) + STORE.format(n=2)
        with pytest.raises(ConfigError) as caught:
            parse_config(text, "kvdr.toml")
        (issue,) = caught.value.issues
        assert issue.key == "failover.control_stores"
        assert issue.line is not None and "one or three" in issue.message

    def test_bad_store_table_is_located(self) -> None:
        """A problem inside one store's table is reported at its index and key, and the
        count is not reported on top of it."""
        text = BASE + STORE.format(n=1) + '\n[[failover.control_stores]]\ncontainer = "X"\n'
        with pytest.raises(ConfigError) as caught:
            parse_config(text, "kvdr.toml")
        keys = [i.key for i in caught.value.issues]
        # Both problems of that table (no source, a bad container name), nothing else.
        assert keys == ["failover.control_stores[1]", "failover.control_stores[1].container"]

    @pytest.mark.parametrize(
        ("extra", "key", "words"),
        [
            ('\n[failover]\ncontrol_stores = "x"\n', "failover.control_stores", "array of tables"),
            ('\n[failover]\nstore_timeout = "soon"\n', "failover.store_timeout", ""),
            ("\n[failover]\nmodus = 1\n", "failover.modus", "unknown key"),
            (
                '\n[failover]\nmode = "eager"\n',
                "failover.mode",
                "'eager' is not one of 'manual', 'automatic'",
            ),
            (
                '\n[failover]\nepoch_check_interval = "5s"\nepoch_validity = "2s"\n',
                "failover.epoch_validity",
                "must be longer than epoch_check_interval",
            ),
            ("\n[failover]\nrequire_approvals = 11\n", "failover.require_approvals", ""),
        ],
    )
    def test_other_errors(self, extra: str, key: str, words: str) -> None:
        """Wrong types and unknown keys are errors at their key."""
        with pytest.raises(ConfigError) as caught:
            parse_config(BASE + extra, "kvdr.toml")
        (issue,) = caught.value.issues
        assert issue.key == key and words in issue.message


RID = "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/{name}"


def with_resource_ids(*regions: str) -> str:
    text = BASE
    for region in regions:
        table = f'[regions.{region}]\nvault_url = "https://contoso-{region[:4]}'
        head = text.index(table)
        line_end = text.index("\n", head + len(table))
        rid = RID.format(name=f"contoso-{region}")
        text = text[: line_end + 1] + f'resource_id = "{rid}"\n' + text[line_end + 1 :]
    return text


class TestFenceSettings:
    def test_defaults(self) -> None:
        """No fence, no allowed addresses, ARM at management.azure.com, no resource ids."""
        config = parse_config(BASE, "kvdr.toml")
        assert config.failover.fence == "none"
        assert config.failover.fence_allow_ips == ()
        assert config.failover.management_url == "https://management.azure.com"
        assert config.regions["eastus"].resource_id is None

    def test_network_deny_with_resource_ids(self) -> None:
        """Every region of the pair has a resource id: the fence, its addresses and the
        ids are read."""
        text = with_resource_ids("eastus", "westus") + (
            '\n[failover]\nfence = "azure-network-deny"\n'
            'fence_allow_ips = ["203.0.113.7", "198.51.100.0/24"]\n'
        )
        config = parse_config(text, "kvdr.toml")
        assert config.failover.fence == "azure-network-deny"
        assert config.failover.fence_allow_ips == ("203.0.113.7", "198.51.100.0/24")
        assert config.regions["westus"].resource_id == RID.format(name="contoso-westus")

    def test_network_deny_needs_resource_id_on_every_region(self) -> None:
        """A pair's region without resource_id is refused under azure-network-deny,
        naming that region (and only it)."""
        text = with_resource_ids("eastus") + '\n[failover]\nfence = "azure-network-deny"\n'
        with pytest.raises(ConfigError) as caught:
            parse_config(text, "kvdr.toml")
        (issue,) = caught.value.issues
        assert issue.key == "regions.westus.resource_id"
        assert "westus" in issue.message and "azure-network-deny" in issue.message

    @pytest.mark.parametrize(
        ("extra", "key", "words"),
        [
            ('\n[failover]\nfence = "firewall"\n', "failover.fence", "is not one of"),
            (
                '\n[failover]\nfence_allow_ips = ["10.0.0.300"]\n',
                "failover.fence_allow_ips[0]",
                "not an IP address",
            ),
            (
                '\n[failover]\nmanagement_url = "http://arm.local"\n',
                "failover.management_url",
                "https://",
            ),
        ],
    )
    def test_bad_values_are_named(self, extra: str, key: str, words: str) -> None:
        """A fence that does not exist, an address that is not one, a plain-http URL."""
        with pytest.raises(ConfigError) as caught:
            parse_config(BASE + extra, "kvdr.toml")
        (issue,) = caught.value.issues
        assert issue.key == key and words in issue.message

    def test_bad_resource_id_names_the_key_and_shape(self) -> None:
        """A resource id of another shape is refused at its key, saying the shape."""
        text = BASE.replace(
            'vault_url = "https://contoso-west.vault.azure.net"\n',
            'vault_url = "https://contoso-west.vault.azure.net"\nresource_id = "contoso-west"\n',
        )
        with pytest.raises(ConfigError) as caught:
            parse_config(text, "kvdr.toml")
        (issue,) = caught.value.issues
        assert issue.key == "regions.westus.resource_id"
        assert "Microsoft.KeyVault/vaults/<name>" in issue.message
        assert "contoso-west" not in issue.message
