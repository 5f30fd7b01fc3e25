"""A vault's network rules (ARM's `NetworkRuleSet`) and the firewall they make.

    {"bypass": "AzureServices" | "None", "defaultAction": "Allow" | "Deny",
     "ipRules": [{"value": "203.0.113.7" | "203.0.113.0/24"}],
     "virtualNetworkRules": [{"id": "...", "ignoreMissingVnetServiceEndpoint": false}]}

With `defaultAction` Deny, a data-plane request whose source address matches no IP rule
is answered 403 `Forbidden` with inner code `ForbiddenByFirewall`, as Azure does.
Virtual-network rules are kept (so a caller that saved them gets them back) but never
match: a request to the emulator never comes from an Azure subnet.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from emulator.errors import KeyVaultError

BYPASS = ("AzureServices", "None")
DEFAULT_ACTIONS = ("Allow", "Deny")
# Azure's limit on IP rules per vault (Key Vault service limits: 1,000 IPv4 rules).
MAX_IP_RULES = 1000

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def bad_request(message: str) -> KeyVaultError:
    """400 in ARM's shape; the message names the property that was refused."""
    return KeyVaultError(400, "BadRequest", message)


def _network(value: object, where: str) -> IpNetwork:
    if not isinstance(value, str) or not value:
        raise bad_request(f"{where}.value must be an IP address or a CIDR range.")
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise bad_request(
            f"{where}.value {value[:60]!r} is not an IP address or a CIDR range."
        ) from None


@dataclass(frozen=True)
class VirtualNetworkRule:
    id: str
    ignore_missing: bool = False


@dataclass(frozen=True)
class NetworkAcls:
    """One vault's network rules; the default allows every address."""

    bypass: str = "AzureServices"
    default_action: str = "Allow"
    ip_rules: tuple[str, ...] = ()
    virtual_network_rules: tuple[VirtualNetworkRule, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """ARM's representation."""
        return {
            "bypass": self.bypass,
            "defaultAction": self.default_action,
            "ipRules": [{"value": v} for v in self.ip_rules],
            "virtualNetworkRules": [
                {
                    "id": r.id,
                    "ignoreMissingVnetServiceEndpoint": r.ignore_missing,
                }
                for r in self.virtual_network_rules
            ],
        }

    @classmethod
    def from_json(cls, body: object, where: str = "properties.networkAcls") -> NetworkAcls:
        """Parse a `NetworkRuleSet`; a property left out takes its default (the whole
        set is replaced, as a PATCH of networkAcls replaces it on Azure)."""
        if not isinstance(body, Mapping):
            raise bad_request(f"{where} must be an object.")
        unknown = sorted(set(body) - {"bypass", "defaultAction", "ipRules", "virtualNetworkRules"})
        if unknown:
            raise bad_request(f"{where}.{unknown[0][:40]} is not a property of a network rule set.")
        bypass = body.get("bypass", "AzureServices")
        if bypass not in BYPASS:
            raise bad_request(f"{where}.bypass must be one of {', '.join(BYPASS)}.")
        action = body.get("defaultAction", "Allow")
        if action not in DEFAULT_ACTIONS:
            raise bad_request(f"{where}.defaultAction must be one of {', '.join(DEFAULT_ACTIONS)}.")
        ip_rules = body.get("ipRules") or []
        if not isinstance(ip_rules, list) or len(ip_rules) > MAX_IP_RULES:
            raise bad_request(f"{where}.ipRules must be a list of at most {MAX_IP_RULES} rules.")
        values: list[str] = []
        for index, rule in enumerate(ip_rules):
            spot = f"{where}.ipRules[{index}]"
            if not isinstance(rule, Mapping):
                raise bad_request(f"{spot} must be an object with a value.")
            _network(rule.get("value"), spot)
            values.append(str(rule["value"]))
        vnet_rules = body.get("virtualNetworkRules") or []
        if not isinstance(vnet_rules, list):
            raise bad_request(f"{where}.virtualNetworkRules must be a list.")
        vnets: list[VirtualNetworkRule] = []
        for index, rule in enumerate(vnet_rules):
            spot = f"{where}.virtualNetworkRules[{index}]"
            if not isinstance(rule, Mapping) or not isinstance(rule.get("id"), str):
                raise bad_request(f"{spot} must be an object with an id.")
            ignore = rule.get("ignoreMissingVnetServiceEndpoint", False)
            if not isinstance(ignore, bool):
                raise bad_request(f"{spot}.ignoreMissingVnetServiceEndpoint must be true or false.")
            vnets.append(VirtualNetworkRule(rule["id"], ignore))
        return cls(str(bypass), str(action), tuple(values), tuple(vnets))

    def allows(self, address: str | None) -> bool:
        """Whether a request from `address` passes the firewall."""
        if self.default_action == "Allow":
            return True
        if address is None:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in ipaddress.ip_network(v, strict=False) for v in self.ip_rules)


def forbidden_by_firewall(
    address: str | None, principal: str | None, vault: str, region: str
) -> KeyVaultError:
    """403 for a source address the vault's network rules deny, in Key Vault's words."""
    return KeyVaultError(
        403,
        "Forbidden",
        "Client address is not authorized and caller is not a trusted service.\r\n"
        f"Client address: {address or 'unknown'}\r\n"
        f"Caller: oid={principal or 'unknown'}\r\n"
        f"Vault: {vault};location={region}",
        "ForbiddenByFirewall",
    )
