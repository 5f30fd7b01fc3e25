"""Both infrastructure flavours read into plain Python for the deploy tests: Terraform
through python-hcl2, Bicep through tests/deploy/bicep.py."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import hcl2

from tests.deploy import bicep

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
TERRAFORM = DEPLOY / "terraform"
BICEP = DEPLOY / "bicep" / "main.bicep"

# The ARM type each Terraform resource type creates.
ARM_TYPES = {
    "azurerm_log_analytics_workspace": "Microsoft.OperationalInsights/workspaces",
    "azurerm_user_assigned_identity": "Microsoft.ManagedIdentity/userAssignedIdentities",
    "azurerm_federated_identity_credential": (
        "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials"
    ),
    "azurerm_key_vault": "Microsoft.KeyVault/vaults",
    "azurerm_private_endpoint": "Microsoft.Network/privateEndpoints",
    "azurerm_monitor_diagnostic_setting": "Microsoft.Insights/diagnosticSettings",
    "azurerm_storage_account": "Microsoft.Storage/storageAccounts",
    "azurerm_storage_container": "Microsoft.Storage/storageAccounts/blobServices/containers",
    "azurerm_storage_container_immutability_policy": (
        "Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies"
    ),
    "azurerm_storage_management_policy": "Microsoft.Storage/storageAccounts/managementPolicies",
    "azurerm_role_assignment": "Microsoft.Authorization/roleAssignments",
    "azurerm_eventgrid_system_topic": "Microsoft.EventGrid/systemTopics",
    "azurerm_eventgrid_system_topic_event_subscription": (
        "Microsoft.EventGrid/systemTopics/eventSubscriptions"
    ),
    "azurerm_chaos_studio_target": "Microsoft.Chaos/targets",
    "azurerm_chaos_studio_capability": "Microsoft.Chaos/targets/capabilities",
    "azurerm_chaos_studio_experiment": "Microsoft.Chaos/experiments",
}


def unquote(value: Any) -> Any:
    """python-hcl2 keeps the quotes of string literals and of block labels."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def clean(value: Any) -> Any:
    """An hcl2 value without quotes and without its bookkeeping keys."""
    if isinstance(value, dict):
        return {unquote(k): clean(v) for k, v in value.items() if not k.startswith("__")}
    if isinstance(value, list):
        return [clean(v) for v in value]
    return unquote(value)


@dataclass(frozen=True)
class Terraform:
    resources: dict[tuple[str, str], dict[str, Any]]
    variables: dict[str, dict[str, Any]]
    outputs: dict[str, dict[str, Any]]
    text: str  # every .tf file, concatenated


@cache
def terraform() -> Terraform:
    resources: dict[tuple[str, str], dict[str, Any]] = {}
    variables: dict[str, dict[str, Any]] = {}
    outputs: dict[str, dict[str, Any]] = {}
    texts = []
    for path in sorted(TERRAFORM.glob("*.tf")):
        text = path.read_text()
        texts.append(text)
        doc = hcl2.loads(text)
        for block in doc.get("resource", []):
            for rtype, named in clean(block).items():
                for name, body in named.items():
                    resources[(rtype, name)] = body
        for block in doc.get("variable", []):
            variables.update(clean(block))
        for block in doc.get("output", []):
            outputs.update(clean(block))
    return Terraform(resources, variables, outputs, "\n".join(texts))


@cache
def bicep_file() -> dict[str, bicep.Declaration]:
    return bicep.parse(BICEP.read_text())


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def tf_object_keys(value: Any) -> list[str]:
    """The keys of an output value: an object literal, or the object a `for` builds."""
    if isinstance(value, dict):
        return list(value)
    match = re.search(r"\{(.*)\}", str(value), flags=re.S)
    if not match:
        return []
    return re.findall(r"(\w+)\s*=", match.group(1))


def bicep_role(body: dict[str, Any]) -> str:
    """The built-in role name a Bicep role assignment refers to (roleIds['<name>'])."""
    ref = body["properties"]["roleDefinitionId"]
    match = re.search(r"roleIds\['([^']+)'\]", getattr(ref, "text", str(ref)))
    assert match, f"role assignment does not name its role through roleIds: {ref}"
    return match.group(1)


def preceding_comment(text: str, declaration: str) -> str:
    """The comment lines directly above `declaration` in `text`."""
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if line.startswith(declaration):
            comment = []
            for above in reversed(lines[:index]):
                stripped = above.strip()
                if stripped.startswith(("#", "//")):
                    comment.append(stripped.lstrip("#/ "))
                else:
                    break
            return " ".join(reversed(comment))
    raise AssertionError(f"{declaration!r} not found")
