"""Fence actions: stop applications writing to a vault that is not active, while kvdr
itself may still write to it.

Every action has the same three calls, each idempotent and each saying in one line
what it did:

    apply(region) -> FenceResult           fence the region's vault
    lift(region, saved) -> FenceResult     undo it (saved: what apply returned)
    observe(region) -> bool | None         fenced? None: the vault did not answer

Actions:
    none                nothing is fenced; apply and lift say so, observe is False.
    emulator-readonly   the emulator's read-only switch (PUT /_emulator/read-only)
                        with kvdr's principal exempted: reads go on, writes of any other
                        principal answer 403.
    azure-network-deny  the vault's network rules through Azure Resource Manager:
                        defaultAction Deny with kvdr's own addresses allowed. The rules
                        found before are kept in the result (`saved`, JSON) so that lift
                        writes exactly them back.

The caller stores `FenceResult.to_json()` (in the control record) and hands `saved`
back to `lift`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from failover.management import (
    ManagementError,
    NetworkRules,
    VaultManagement,
    management_session,
)
from failover.settings import FENCE_KINDS, FailoverSettings
from vault.models import VaultRef

VAULT_SCOPE = "https://vault.azure.net/.default"


class FenceError(Exception):
    """A fence could not be applied, lifted or read; one line naming the region."""


class TokenSource(Protocol):
    async def get_token(self, *scopes: str, **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class FenceResult:
    """What one call did. `saved` is whatever `lift` needs to undo `apply` (JSON)."""

    action: str
    region: str
    operation: str  # "apply" or "lift"
    changed: bool
    done: str
    saved: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "region": self.region,
            "operation": self.operation,
            "changed": self.changed,
            "done": self.done,
            "saved": self.saved,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> FenceResult:
        saved = doc.get("saved")
        if saved is not None and not isinstance(saved, dict):
            raise ValueError("fence result: saved must be an object or null")
        for key in ("action", "region", "operation", "done"):
            if not isinstance(doc.get(key), str):
                raise ValueError(f"fence result: {key} must be a string")
        if not isinstance(doc.get("changed"), bool):
            raise ValueError("fence result: changed must be true or false")
        return cls(
            action=doc["action"],
            region=doc["region"],
            operation=doc["operation"],
            changed=doc["changed"],
            done=doc["done"],
            saved=saved,
        )


class FenceAction(Protocol):
    """One way of fencing a region's vault."""

    name: str

    async def apply(self, region: str) -> FenceResult: ...

    async def lift(self, region: str, saved: Mapping[str, Any] | None = None) -> FenceResult: ...

    async def observe(self, region: str) -> bool | None: ...


def principal_of(token: str) -> str | None:
    """The `oid` claim of a JWT access token (Entra ID's and the emulator's), unverified:
    it is kvdr's own token, read only to name kvdr's principal."""
    parts = token.split(".")
    if len(parts) < 2:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    oid = payload.get("oid") if isinstance(payload, dict) else None
    return oid if isinstance(oid, str) and oid else None


async def own_principal(credential: TokenSource) -> str:
    """kvdr's principal (object id), from a vault token of its own credential."""
    try:
        token = await credential.get_token(VAULT_SCOPE)
    except Exception as exc:  # any credential's failure, in one line
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise FenceError(
            f"cannot get kvdr's own token: {type(exc).__name__}: {first[:200]}"
        ) from None
    principal = principal_of(str(token.token))
    if principal is None:
        raise FenceError("kvdr's access token carries no oid claim: its principal is unknown")
    return principal


@dataclass
class NoFence:
    """`fence = "none"`: nothing stops applications writing to a non-active region."""

    name: str = "none"

    async def apply(self, region: str) -> FenceResult:
        return FenceResult(self.name, region, "apply", False, f"{region}: no fence configured")

    async def lift(self, region: str, saved: Mapping[str, Any] | None = None) -> FenceResult:
        return FenceResult(self.name, region, "lift", False, f"{region}: no fence configured")

    async def observe(self, region: str) -> bool | None:
        return False


@dataclass
class EmulatorReadOnly:
    """The emulator's read-only switch, kvdr's principal exempted."""

    vault_urls: Mapping[str, str]
    # kvdr's principal, fetched when first needed (a token request).
    principal: Callable[[], Awaitable[str]]
    session: aiohttp.ClientSession
    name: str = "emulator-readonly"
    timeout_seconds: float = 5.0

    async def _call(self, region: str, method: str, body: Any = None) -> dict[str, Any]:
        url = self.vault_urls.get(region)
        if url is None:
            raise FenceError(f"{region}: not a configured region")
        try:
            async with self.session.request(
                method,
                f"{url.rstrip('/')}/_emulator/read-only",
                json=body,
                timeout=aiohttp.ClientTimeout(total=self.timeout_seconds),
            ) as response:
                doc = await response.json(content_type=None)
                if response.status >= 400 or not isinstance(doc, dict):
                    raise FenceError(
                        f"{region}: the emulator's read-only switch answered {response.status}"
                    )
                return doc
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise FenceError(
                f"{region}: emulator at {url} unreachable: {type(exc).__name__}"
            ) from None

    async def apply(self, region: str) -> FenceResult:
        principal = await self.principal()
        before = await self._call(region, "GET")
        exempt = sorted(before.get("exempt_principals") or [])
        if before.get("read_only") is True and principal in exempt:
            return FenceResult(
                self.name, region, "apply", False, f"{region}: already read-only, kvdr exempt"
            )
        await self._call(
            region, "PUT", {"read_only": True, "exempt_principals": sorted({*exempt, principal})}
        )
        return FenceResult(
            self.name,
            region,
            "apply",
            True,
            f"{region}: made read-only for every principal but kvdr's ({principal})",
            saved={"read_only": bool(before.get("read_only")), "exempt_principals": exempt},
        )

    async def lift(self, region: str, saved: Mapping[str, Any] | None = None) -> FenceResult:
        before = await self._call(region, "GET")
        # Back to what apply found (normally: writable, nobody exempt).
        was_read_only = bool(saved.get("read_only")) if saved else False
        was_exempt = sorted(str(p) for p in (saved.get("exempt_principals") or [])) if saved else []
        now_exempt = sorted(str(p) for p in (before.get("exempt_principals") or []))
        if bool(before.get("read_only")) == was_read_only and now_exempt == was_exempt:
            return FenceResult(self.name, region, "lift", False, f"{region}: not fenced")
        await self._call(
            region, "PUT", {"read_only": was_read_only, "exempt_principals": was_exempt}
        )
        return FenceResult(self.name, region, "lift", True, f"{region}: writable again")

    async def observe(self, region: str) -> bool | None:
        try:
            return bool((await self._call(region, "GET")).get("read_only"))
        except FenceError:
            return None


def deny_rules(allow_ips: tuple[str, ...]) -> NetworkRules:
    """The fence's rules: deny by default, kvdr's own addresses allowed. Bypass becomes
    None: "trusted Microsoft services" could otherwise still write for applications."""
    return NetworkRules(
        default_action="Deny",
        bypass="None",
        ip_rules=tuple(allow_ips),
        virtual_network_rules=(),
    )


@dataclass
class AzureNetworkDeny:
    """Default-deny network rules on the vault, kvdr's addresses allowed."""

    vaults: Mapping[str, VaultManagement]
    allow_ips: tuple[str, ...]
    name: str = "azure-network-deny"

    def _vault(self, region: str) -> VaultManagement:
        vault = self.vaults.get(region)
        if vault is None:
            raise FenceError(f"{region}: no resource_id configured, so it cannot be fenced")
        return vault

    async def apply(self, region: str) -> FenceResult:
        vault = self._vault(region)
        try:
            current = (await vault.properties()).network_rules
            fence = deny_rules(self.allow_ips)
            if current == fence:
                return FenceResult(
                    self.name,
                    region,
                    "apply",
                    False,
                    f"{region}: {vault.name} already denies all but kvdr",
                )
            await vault.set_network_rules(fence)
        except ManagementError as exc:
            raise FenceError(f"{region}: {exc}") from None
        allowed = ", ".join(self.allow_ips) or "no address"
        return FenceResult(
            self.name,
            region,
            "apply",
            True,
            f"{region}: {vault.name} denies by default now, allowing {allowed}",
            saved={"network_acls": current.to_json()},
        )

    async def lift(self, region: str, saved: Mapping[str, Any] | None = None) -> FenceResult:
        vault = self._vault(region)
        try:
            current = (await vault.properties()).network_rules
            if current != deny_rules(self.allow_ips):
                return FenceResult(
                    self.name, region, "lift", False, f"{region}: {vault.name} is not fenced"
                )
            if saved is None or "network_acls" not in saved:
                raise FenceError(
                    f"{region}: {vault.name} is fenced but the rules from before the fence "
                    "were not saved; set its network rules by hand"
                )
            previous = NetworkRules.from_json(saved["network_acls"])
            await vault.set_network_rules(previous)
        except ManagementError as exc:
            raise FenceError(f"{region}: {exc}") from None
        except ValueError as exc:
            raise FenceError(f"{region}: the saved network rules are malformed: {exc}") from None
        return FenceResult(
            self.name,
            region,
            "lift",
            True,
            f"{region}: {vault.name} has its network rules from before the fence again "
            f"(default {previous.default_action}, {len(previous.ip_rules)} IP rules)",
        )

    async def observe(self, region: str) -> bool | None:
        vault = self._vault(region)
        try:
            return (await vault.properties()).network_rules.denies_by_default
        except ManagementError:
            return None


@asynccontextmanager
async def open_fence(
    settings: FailoverSettings,
    regions: Mapping[str, VaultRef],
    credential: TokenSource,
    ca_file: str | None = None,
) -> AsyncIterator[FenceAction]:
    """The fence action `settings.fence` names, over `regions`, with kvdr's credential;
    `ca_file` is the CA to trust for the emulator or the management plane (None: the
    system's)."""
    if settings.fence not in FENCE_KINDS:
        raise FenceError(f"fence {settings.fence!r} is not one of {', '.join(FENCE_KINDS)}")
    if settings.fence == "none":
        yield NoFence()
        return
    async with management_session(ca_file) as session:
        if settings.fence == "emulator-readonly":
            urls = {name: ref.url for name, ref in regions.items()}
            yield EmulatorReadOnly(urls, lambda: own_principal(credential), session)
            return
        vaults = {
            name: VaultManagement(
                ref.resource_id,
                credential,
                session,
                base_url=ref.management_url or settings.management_url,
            )
            for name, ref in regions.items()
            if ref.resource_id is not None
        }
        yield AzureNetworkDeny(vaults, settings.fence_allow_ips)
