"""What a platform engineer checks in the infrastructure code, in both flavours."""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any

import pytest

from tests.deploy import bicep
from tests.deploy.iac import (
    BICEP,
    TERRAFORM,
    bicep_file,
    preceding_comment,
    terraform,
)


def _tf(rtype: str, name: str) -> dict[str, Any]:
    return terraform().resources[(rtype, name)]


def _bc(name: str) -> Any:
    return bicep_file()[name].body


def _var_default(name: str) -> Any:
    return terraform().variables[name].get("default")


def _param_default(name: str) -> Any:
    return bicep_file()[name].value


def _allowed(name: str) -> list[str]:
    for decorator in bicep_file()[name].decorators:
        if decorator.startswith("allowed("):
            return re.findall(r"'([^']+)'", decorator)
    return []


class TestVaults:
    def test_terraform_vault(self) -> None:
        """Purge protection, RBAC, soft delete 90 days, premium, public access off and a
        deny-by-default firewall."""
        vault = _tf("azurerm_key_vault", "vault")
        assert vault["purge_protection_enabled"] is True
        assert vault["rbac_authorization_enabled"] is True
        assert vault["soft_delete_retention_days"] == "${var.soft_delete_retention_days}"
        assert _var_default("soft_delete_retention_days") == 90
        assert _var_default("vault_sku") == "premium"
        assert _var_default("public_network_access") is False
        acls = vault["network_acls"][0]
        assert acls["default_action"] == "Deny"

    def test_bicep_vault(self) -> None:
        """The same properties in Bicep."""
        props = _bc("vault")["properties"]
        assert props["enablePurgeProtection"] is True
        assert props["enableRbacAuthorization"] is True
        assert props["enableSoftDelete"] is True
        assert props["networkAcls"]["defaultAction"] == "Deny"
        assert _param_default("softDeleteRetentionDays") == 90
        assert _param_default("vaultSku") == "premium"
        assert _param_default("publicNetworkAccess") is False

    def test_a_vault_per_region_with_audit_logs(self) -> None:
        """One vault per region, each with audit logs and metrics to Log Analytics."""
        assert _tf("azurerm_key_vault", "vault")["for_each"] == "${toset(var.regions)}"
        diag = _tf("azurerm_monitor_diagnostic_setting", "vault_audit")
        assert diag["enabled_log"][0]["category_group"] == "audit"
        assert diag["enabled_metric"][0]["category"] == "AllMetrics"
        loop = bicep_file()["vault"].value
        assert isinstance(loop, bicep.Loop) and loop.source == "regions"
        logs = _bc("vault_audit")["properties"]["logs"]
        assert logs[0]["categoryGroup"] == "audit"


class TestStorage:
    def test_terraform_accounts(self) -> None:
        """Every account (backup and control): TLS 1.2, no shared key, no public blobs,
        versioning and soft delete, deny by default, infrastructure encryption."""
        account = _tf("azurerm_storage_account", "storage")
        assert account["for_each"] == "${local.storage_accounts}"
        assert account["min_tls_version"] == "TLS1_2"
        assert account["shared_access_key_enabled"] is False
        assert account["allow_nested_items_to_be_public"] is False
        assert account["https_traffic_only_enabled"] is True
        assert account["infrastructure_encryption_enabled"] is True
        assert account["network_rules"][0]["default_action"] == "Deny"
        blob = account["blob_properties"][0]
        assert blob["versioning_enabled"] is True
        assert blob["delete_retention_policy"][0]["days"] == "${var.blob_soft_delete_days}"
        assert _var_default("blob_soft_delete_days") > 0

    def test_bicep_accounts(self) -> None:
        """The same properties in Bicep (the blob service carries versioning)."""
        loop = bicep_file()["storage"].value
        assert isinstance(loop, bicep.Loop) and loop.source == "storageAccounts"
        props = _bc("storage")["properties"]
        assert props["minimumTlsVersion"] == "TLS1_2"
        assert props["allowSharedKeyAccess"] is False
        assert props["allowBlobPublicAccess"] is False
        assert props["supportsHttpsTrafficOnly"] is True
        assert props["encryption"]["requireInfrastructureEncryption"] is True
        assert props["networkAcls"]["defaultAction"] == "Deny"
        service = _bc("storage_blob_service")["properties"]
        assert service["isVersioningEnabled"] is True
        assert service["deleteRetentionPolicy"]["enabled"] is True

    def test_backup_account_is_geo_redundant(self) -> None:
        """RA-GZRS by default, and only geo-redundant choices, in both flavours."""
        assert _var_default("storage_replication") == "RAGZRS"
        condition = terraform().variables["storage_replication"]["validation"][0]["condition"]
        choices = re.findall(r"\b(RAGZRS|GZRS|RAGRS|LRS|ZRS|GRS)\b", condition)
        assert set(choices) == {"RAGZRS", "GZRS", "RAGRS"}
        assert _param_default("storageReplication") == "RAGZRS"
        assert set(_allowed("storageReplication")) == {"RAGZRS", "GZRS", "RAGRS"}
        skus = bicep_file()["storageSkus"].value
        assert set(skus.values()) == {"Standard_RAGZRS", "Standard_GZRS", "Standard_RAGRS"}
        assert _tf("azurerm_storage_account", "storage")["account_replication_type"] == (
            '${each.key == "backup" ? var.storage_replication : "GZRS"}'
        )
        assert bicep_file()["controlStores"].value.body["sku"] == "Standard_GZRS"
        assert _bc("storage")["sku"]["name"].text == "account.sku"

    def test_immutability_is_a_variable(self) -> None:
        """A time-based immutability policy on the backup container, off by default."""
        worm = _tf("azurerm_storage_container_immutability_policy", "backup_worm")
        assert worm["count"] == "${var.backup_immutability_days > 0 ? 1 : 0}"
        assert worm["immutability_period_in_days"] == "${var.backup_immutability_days}"
        assert _var_default("backup_immutability_days") == 0
        declaration = bicep_file()["backup_worm"]
        assert isinstance(declaration.value, bicep.Conditional)
        assert declaration.value.condition == "backupImmutabilityDays > 0"
        props = declaration.body["properties"]
        assert getattr(props["immutabilityPeriodSinceCreationInDays"], "text", "") == (
            "backupImmutabilityDays"
        )

    def test_three_store_control_accounts(self) -> None:
        """Two optional control accounts in other regions (three stores with the main one),
        each with its own container and the daemon's blob role on it."""
        validation = terraform().variables["control_regions"]["validation"][0]["condition"]
        assert "== 2" in validation
        assert 'for i, r in var.control_regions : "control${i + 1}"' in terraform().text
        controls = bicep_file()["controlStores"].value
        assert isinstance(controls, bicep.Loop) and controls.source == "controlRegions"
        assert "controlStores" in bicep_file()["storageAccounts"].value.text
        roles = _tf("azurerm_role_assignment", "daemon_blob_contributor")
        assert roles["for_each"] == "${local.storage_accounts}"


class TestIdentityAndRoles:
    def test_every_role_assignment_says_why(self) -> None:
        """Each role assignment has a comment naming the kvdr operation that needs it."""
        tf_text, bicep_text = terraform().text, BICEP.read_text()
        for (rtype, name), _ in terraform().resources.items():
            if rtype != "azurerm_role_assignment":
                continue
            for comment in (
                preceding_comment(tf_text, f'resource "azurerm_role_assignment" "{name}"'),
                preceding_comment(bicep_text, f"resource {name} "),
            ):
                assert len(comment) > 30, f"{name}: no comment says which operation needs it"

    def test_daemon_reads_the_primary_and_writes_only_secondaries(self) -> None:
        """Least privilege: reader roles on the primary, officer roles on the secondaries,
        and blob access on the container, not the account."""
        resources = terraform().resources
        primary = resources[("azurerm_role_assignment", "daemon_secrets_user_primary")]
        assert primary["scope"] == "${azurerm_key_vault.vault[var.primary_region].id}"
        officer = resources[("azurerm_role_assignment", "daemon_secrets_officer_secondary")]
        assert officer["for_each"] == "${toset(local.secondaries)}"
        assert "r != var.primary_region" in terraform().text
        blob = resources[("azurerm_role_assignment", "daemon_blob_contributor")]
        assert blob["scope"] == "${azurerm_storage_container.storage_container[each.key].id}"
        assert "Owner" not in terraform().text and "'Contributor'" not in BICEP.read_text()
        secondary = bicep_file()["daemon_secrets_officer_secondary"].value
        assert isinstance(secondary, bicep.Loop)
        assert secondary.condition == "region != primaryRegion"

    def test_applications_read_every_region(self) -> None:
        """Applications get Key Vault Secrets User on every region's vault."""
        apps = terraform().resources[("azurerm_role_assignment", "app_secrets_user")]
        assert apps["role_definition_name"] == "Key Vault Secrets User"
        assert "setproduct(var.application_principal_ids, var.regions)" in terraform().text
        loop = bicep_file()["app_secrets_user"].value
        assert isinstance(loop, bicep.Loop)
        assert loop.source == "range(0, appReadCount)"
        assert "length(applicationPrincipalIds) * length(regions)" in str(
            bicep_file()["appReadCount"].value
        )


class TestEventsAndSecrets:
    def test_event_grid_delivers_new_versions_with_a_secret_header(self) -> None:
        """The subscription sends NewVersionCreated events to /events with the shared
        secret as a secret delivery header."""
        sub = _tf("azurerm_eventgrid_system_topic_event_subscription", "daemon_events")
        assert "Microsoft.KeyVault.SecretNewVersionCreated" in str(sub["included_event_types"])
        header = sub["dynamic"][0]["delivery_property"]["content"][0]
        assert header["secret"] is True and header["value"] == "${var.events_shared_secret}"
        topic = _tf("azurerm_eventgrid_system_topic", "primary_vault_events")
        assert topic["topic_type"] == "Microsoft.KeyVault.vaults"
        destination = _bc("daemon_events")["properties"]["destination"]["properties"]
        assert "isSecret: true" in destination["deliveryAttributeMappings"].text
        assert destination["endpointUrl"].text == "eventsEndpointUrl"

    def test_no_secret_reaches_an_output(self) -> None:
        """No output refers to the shared secret, and nothing is inline: no literal
        secret default, no account key."""
        for name, body in terraform().outputs.items():
            assert "events_shared_secret" not in str(body["value"]), name
            assert body.get("sensitive") is not True, f"{name}: outputs carry no secrets"
        for name, output in bicep.of_kind(bicep_file(), "output").items():
            assert "eventsSharedSecret" not in str(output.value), name
        assert terraform().variables["events_shared_secret"]["sensitive"] is True
        assert _var_default("events_shared_secret") is None
        assert _param_default("eventsSharedSecret") == ""
        for text in (terraform().text, BICEP.read_text()):
            assert "AccountKey=" not in text and "listKeys(" not in text
            assert "primary_access_key" not in text and "connection_string" not in text

    def test_chaos_experiment_denies_the_primary(self) -> None:
        """The optional Chaos Studio experiment applies Deny Access to the primary vault."""
        capability = _tf("azurerm_chaos_studio_capability", "chaos_deny_access")
        assert capability["capability_type"] == "DenyAccess-1.0"
        assert _tf("azurerm_chaos_studio_target", "chaos_target")["target_resource_id"] == (
            "${azurerm_key_vault.vault[var.primary_region].id}"
        )
        assert _bc("chaos_deny_access")["name"] == "DenyAccess-1.0"
        assert _var_default("chaos_experiment") is False
        assert _param_default("chaosExperiment") is False


class TestFormatting:
    @pytest.mark.skipif(
        shutil.which("terraform") is None,
        reason="terraform is not installed here (the other tests read the files with python-hcl2)",
    )
    def test_terraform_fmt(self) -> None:
        """`terraform fmt -check` finds nothing to change (no provider download needed)."""
        result = subprocess.run(
            ["terraform", f"-chdir={TERRAFORM}", "fmt", "-check", "-diff"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout
