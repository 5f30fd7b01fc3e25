"""The small part of Azure Resource Manager that fencing and `kvdr failover check` need.

    GET   /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults/{name}
    PATCH (same path)   {"properties": {"networkAcls": {...}}}

served at the emulator's own HTTPS URL, beside the data plane, in the shape of ARM's
`Vault` (specification/keyvault/resource-manager in Azure/azure-rest-api-specs; see
docs/emulator.md). Any bearer token is accepted, as on the data plane. The vault's name
is `kvdr-<region>`; subscription and resource group are taken as given. A PATCH of
networkAcls persists and is enforced on the data plane by `firewall_middleware`;
no other property can be changed (400 naming it).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from emulator.auth import MANAGEMENT_PREFIX, TENANT_ID, request_principal
from emulator.errors import Handler, KeyVaultError
from emulator.network_rules import NetworkAcls, bad_request, forbidden_by_firewall
from emulator.objects import read_json
from emulator.state import STATE_KEY, VaultState

ARM_PREFIX = "/subscriptions/"
VAULT_PATH = (
    "/subscriptions/{subscription}/resourceGroups/{group}"
    "/providers/Microsoft.KeyVault/vaults/{name}"
)
# Microsoft.KeyVault's stable management API versions (azure-rest-api-specs,
# specification/keyvault/resource-manager/Microsoft.KeyVault/stable).
API_VERSIONS = frozenset(
    {
        "2016-10-01",
        "2018-02-14",
        "2019-09-01",
        "2021-10-01",
        "2022-07-01",
        "2023-02-01",
        "2023-07-01",
        "2024-11-01",
        "2025-05-01",
        "2026-02-01",
    }
)
# Properties of VaultPatchProperties the emulator changes; any other is refused.
PATCHABLE = frozenset({"networkAcls"})


def is_arm_path(path: str) -> bool:
    """Whether a request is for the management plane, not the vault's data plane."""
    return path.startswith(ARM_PREFIX)


def _vault(request: web.Request) -> VaultState:
    version = request.query.get("api-version")
    if version is None:
        raise KeyVaultError(
            400,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )
    if version not in API_VERSIONS:
        raise KeyVaultError(
            400,
            "InvalidApiVersionParameter",
            f"The api-version '{version[:40]}' is invalid. The supported versions are "
            f"'{', '.join(sorted(API_VERSIONS))}'.",
        )
    state = request.app[STATE_KEY]
    name = request.match_info["name"]
    if name.lower() != state.settings.vault_name.lower():
        raise KeyVaultError(
            404,
            "ResourceNotFound",
            f"The Resource 'Microsoft.KeyVault/vaults/{name[:127]}' under resource group "
            f"'{request.match_info['group'][:90]}' was not found.",
        )
    return state


def vault_document(request: web.Request, state: VaultState) -> dict[str, Any]:
    """The vault as ARM's `Vault`."""
    settings = state.settings
    match = request.match_info
    properties: dict[str, Any] = {
        "sku": {"family": "A", "name": settings.sku},
        "tenantId": TENANT_ID,
        "accessPolicies": [],
        "vaultUri": state.vault_url(request) + "/",
        "enableSoftDelete": True,
        "softDeleteRetentionInDays": settings.retention_days,
        "enableRbacAuthorization": True,
        "publicNetworkAccess": "Enabled",
        "networkAcls": state.network_acls.to_json(),
        "provisioningState": "Succeeded",
    }
    # Azure leaves enablePurgeProtection out until it is turned on (it cannot be turned off).
    if settings.purge_protection:
        properties["enablePurgeProtection"] = True
    return {
        "id": (
            f"/subscriptions/{match['subscription']}/resourceGroups/{match['group']}"
            f"/providers/Microsoft.KeyVault/vaults/{settings.vault_name}"
        ),
        "name": settings.vault_name,
        "type": "Microsoft.KeyVault/vaults",
        "location": settings.region,
        "tags": {},
        "properties": properties,
    }


async def get_vault(request: web.Request) -> web.Response:
    """Vaults_Get."""
    state = _vault(request)
    return web.json_response(vault_document(request, state))


async def patch_vault(request: web.Request) -> web.Response:
    """Vaults_Update: only `properties.networkAcls` (replaced as a whole)."""
    state = _vault(request)
    body = await read_json(request)
    extra = sorted(set(body) - {"properties", "tags"})
    if extra:
        raise bad_request(f"{extra[0][:40]} is not a property of a vault update.")
    properties = body.get("properties") or {}
    if not isinstance(properties, dict):
        raise bad_request("properties must be an object.")
    refused = sorted(set(properties) - PATCHABLE)
    if refused:
        raise bad_request(
            f"properties.{refused[0][:40]} cannot be changed on the kvdr emulator "
            f"(it changes only {', '.join(sorted(PATCHABLE))})."
        )
    if "networkAcls" in properties:
        state.set_network_acls(NetworkAcls.from_json(properties["networkAcls"]))
    return web.json_response(vault_document(request, state))


@web.middleware
async def firewall_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Deny data-plane requests the vault's network rules do not allow. The emulator's
    own API and the management plane stay reachable (on Azure, ARM is another service)."""
    if request.path.startswith(MANAGEMENT_PREFIX) or is_arm_path(request.path):
        return await handler(request)
    state = request.app[STATE_KEY]
    if not state.network_acls.allows(request.remote):
        raise forbidden_by_firewall(
            request.remote,
            request_principal(request),
            state.settings.vault_name,
            state.settings.region,
        )
    return await handler(request)


def routes() -> list[web.RouteDef]:
    """The management plane's routes."""
    return [
        web.get(VAULT_PATH, get_vault, name="ARM.GetVault"),
        web.patch(VAULT_PATH, patch_vault, name="ARM.UpdateVault"),
    ]
