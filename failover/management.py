"""A small Azure Resource Manager client for one Key Vault: its properties and network rules.

Fencing (`azure-network-deny`) and `kvdr failover check` need only two calls, so this is
aiohttp over ARM's REST API rather than another SDK: `Vaults_Get` and `Vaults_Update`
(PATCH `properties.networkAcls`), with a token for the management scope from kvdr's own
credential. The base URL is https://management.azure.com on Azure; locally it is the
emulator's URL, which serves the same two calls (emulator/arm.py).

Every failure is a `ManagementError` with one line that names the vault; no SDK or
aiohttp traceback text reaches the user.
"""

from __future__ import annotations

import json
import re
import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp

MANAGEMENT_SCOPE = "https://management.azure.com/.default"
DEFAULT_MANAGEMENT_URL = "https://management.azure.com"
# A stable Microsoft.KeyVault version that has every property read here.
API_VERSION = "2023-07-01"
# Key Vault names are 3-24 letters, digits and hyphens.
RESOURCE_ID = re.compile(
    r"/subscriptions/(?P<subscription>[^/]+)/resourceGroups/(?P<group>[^/]+)"
    r"/providers/Microsoft\.KeyVault/vaults/(?P<name>[A-Za-z0-9-]{3,24})",
    re.IGNORECASE,
)
RESOURCE_ID_SHAPE = (
    "/subscriptions/<id>/resourceGroups/<group>/providers/Microsoft.KeyVault/vaults/<name>"
)


class ManagementError(Exception):
    """A management-plane call failed; the message is one line naming the vault."""


class TokenSource(Protocol):
    """What this client needs of an azure-identity async credential."""

    async def get_token(self, *scopes: str, **kwargs: Any) -> Any: ...


def check_resource_id(value: str) -> str:
    """`value` if it is a Key Vault resource id, else ValueError saying the shape."""
    if not RESOURCE_ID.fullmatch(value):
        raise ValueError(f"must be a Key Vault resource id, {RESOURCE_ID_SHAPE}")
    return value


def vault_name(resource_id: str) -> str:
    """The vault's name: the last segment of its resource id."""
    return resource_id.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class NetworkRules:
    """ARM's `NetworkRuleSet` of one vault. `to_json()` is ARM's shape, so what is saved
    (in a fence result, in the control record) is exactly what is written back."""

    default_action: str = "Allow"
    bypass: str = "AzureServices"
    ip_rules: tuple[str, ...] = ()
    # (subnet resource id, ignoreMissingVnetServiceEndpoint)
    virtual_network_rules: tuple[tuple[str, bool], ...] = ()

    @property
    def denies_by_default(self) -> bool:
        return self.default_action.lower() == "deny"

    def to_json(self) -> dict[str, Any]:
        return {
            "bypass": self.bypass,
            "defaultAction": self.default_action,
            "ipRules": [{"value": v} for v in self.ip_rules],
            "virtualNetworkRules": [
                {"id": i, "ignoreMissingVnetServiceEndpoint": ignore}
                for i, ignore in self.virtual_network_rules
            ],
        }

    @classmethod
    def from_json(cls, body: object) -> NetworkRules:
        """Parse ARM's shape; absent (a vault never restricted) means allow all."""
        if body is None:
            return cls()
        if not isinstance(body, Mapping):
            raise ValueError("networkAcls is not an object")
        ips = body.get("ipRules") or []
        vnets = body.get("virtualNetworkRules") or []
        if not isinstance(ips, list) or not isinstance(vnets, list):
            raise ValueError("networkAcls ipRules and virtualNetworkRules must be lists")
        return cls(
            default_action=str(body.get("defaultAction") or "Allow"),
            bypass=str(body.get("bypass") or "AzureServices"),
            ip_rules=tuple(str(r["value"]) for r in ips if isinstance(r, Mapping)),
            virtual_network_rules=tuple(
                (str(r["id"]), bool(r.get("ignoreMissingVnetServiceEndpoint", False)))
                for r in vnets
                if isinstance(r, Mapping)
            ),
        )


@dataclass(frozen=True)
class VaultProperties:
    """What `check` compares between regions (safe to print: no secrets here)."""

    resource_id: str
    location: str
    sku: str
    soft_delete: bool
    soft_delete_retention_days: int | None
    purge_protection: bool
    public_network_access: str
    network_rules: NetworkRules

    @classmethod
    def from_arm(cls, doc: Mapping[str, Any], resource_id: str) -> VaultProperties:
        props = doc.get("properties")
        if not isinstance(props, Mapping):
            raise ValueError("the answer has no properties object")
        sku = props.get("sku")
        retention = props.get("softDeleteRetentionInDays")
        return cls(
            resource_id=str(doc.get("id") or resource_id),
            location=str(doc.get("location") or ""),
            sku=str(sku.get("name", "")).lower() if isinstance(sku, Mapping) else "",
            # Soft delete is on for every vault since 2025 and cannot be turned off;
            # older answers may still say false, newer ones leave it out.
            soft_delete=props.get("enableSoftDelete") is not False,
            soft_delete_retention_days=int(retention) if isinstance(retention, int) else None,
            # Left out until it is turned on.
            purge_protection=props.get("enablePurgeProtection") is True,
            public_network_access=str(props.get("publicNetworkAccess") or "Enabled"),
            network_rules=NetworkRules.from_json(props.get("networkAcls")),
        )


def _one_line(text: str, limit: int = 200) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


class VaultManagement:
    """The management plane of one vault (a resource id), over a shared session."""

    def __init__(
        self,
        resource_id: str,
        credential: TokenSource,
        session: aiohttp.ClientSession,
        *,
        base_url: str = DEFAULT_MANAGEMENT_URL,
        timeout_seconds: float = 10.0,
    ) -> None:
        self.resource_id = check_resource_id(resource_id)
        self.name = vault_name(resource_id)
        self._credential = credential
        self._session = session
        self._base = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)

    async def properties(self) -> VaultProperties:
        """Vaults_Get."""
        return self._parse(await self._call("GET", None))

    async def set_network_rules(self, rules: NetworkRules) -> VaultProperties:
        """Vaults_Update with `properties.networkAcls` replaced by `rules`."""
        body = {"properties": {"networkAcls": rules.to_json()}}
        return self._parse(await self._call("PATCH", body))

    def _parse(self, doc: Any) -> VaultProperties:
        try:
            if not isinstance(doc, Mapping):
                raise ValueError("the answer is not a JSON object")
            return VaultProperties.from_arm(doc, self.resource_id)
        except (ValueError, KeyError, TypeError) as exc:
            raise ManagementError(
                f"vault {self.name}: unexpected management answer: {_one_line(str(exc))}"
            ) from None

    async def _token(self) -> str:
        try:
            token = await self._credential.get_token(MANAGEMENT_SCOPE)
        except Exception as exc:  # any credential's failure, said in one line
            raise ManagementError(
                f"vault {self.name}: no management token ({MANAGEMENT_SCOPE}): "
                f"{type(exc).__name__}: {_one_line(str(exc).splitlines()[0] if str(exc) else '')}"
            ) from None
        return str(token.token)

    async def _call(self, method: str, body: Mapping[str, Any] | None) -> Any:
        url = f"{self._base}{self.resource_id}"
        host = urlsplit(self._base).netloc
        headers = {"Authorization": f"Bearer {await self._token()}"}
        try:
            async with self._session.request(
                method,
                url,
                params={"api-version": API_VERSION},
                json=body,
                headers=headers,
                timeout=self._timeout,
            ) as response:
                text = await response.text()
                status = response.status
        except TimeoutError:
            raise ManagementError(
                f"vault {self.name}: management plane {host} did not answer within "
                f"{self._timeout.total:g} s"
            ) from None
        except aiohttp.ClientError as exc:
            raise ManagementError(
                f"vault {self.name}: management plane {host} unreachable: "
                f"{_one_line(str(exc) or type(exc).__name__)}"
            ) from None
        try:
            doc = _json(text)
        except ValueError:
            doc = None
        if status >= 400:
            error = doc.get("error") if isinstance(doc, Mapping) else None
            code = error.get("code", "") if isinstance(error, Mapping) else ""
            message = error.get("message", "") if isinstance(error, Mapping) else text
            raise ManagementError(
                f"vault {self.name}: {method} answered {status} {code}: {_one_line(message)}"
            )
        if doc is None:
            raise ManagementError(f"vault {self.name}: {method} answered {status} without JSON")
        return doc


def _json(text: str) -> Any:
    return json.loads(text)


@asynccontextmanager
async def management_session(ca_file: str | None = None) -> AsyncIterator[aiohttp.ClientSession]:
    """One HTTP session for management calls, trusting `ca_file` (the emulator's CA
    locally) on top of nothing else, or the system's CAs when None."""
    context = (
        ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
    )
    connector = aiohttp.TCPConnector(ssl=context)
    async with aiohttp.ClientSession(
        connector=connector, cookie_jar=aiohttp.DummyCookieJar()
    ) as session:
        yield session


__all__ = [
    "API_VERSION",
    "DEFAULT_MANAGEMENT_URL",
    "MANAGEMENT_SCOPE",
    "ManagementError",
    "NetworkRules",
    "VaultManagement",
    "VaultProperties",
    "check_resource_id",
    "management_session",
]
