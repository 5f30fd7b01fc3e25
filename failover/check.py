"""`kvdr failover check`: is a promotion of a pair's secondary safe right now?

Pure logic: `findings(CheckInputs) -> list[Finding]` turns what the command read (the
daemon's lag, the configured SKUs, each vault's management-plane properties, the fence
and approval settings) into findings, each with a severity, what was found and what to
do. The command (kvdr/commands/failover_check.py) does the reading.

Severities: `blocker` (a promotion now would lose data beyond the objective, or leave a
vault that cannot hold what the pair mirrors or protects less than the primary),
`warning` (something could not be checked, or is weaker than it should be), `ok`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from failover.management import NetworkRules, VaultProperties

Severity = Literal["blocker", "warning", "ok"]
SEVERITIES: tuple[Severity, ...] = ("blocker", "warning", "ok")


@dataclass(frozen=True)
class Finding:
    check: str
    severity: Severity
    found: str
    action: str = ""

    def to_dict(self) -> dict[str, str]:
        return {
            "check": self.check,
            "severity": self.severity,
            "found": self.found,
            "action": self.action,
        }


@dataclass(frozen=True)
class VaultView:
    """One region as the check sees it: configured SKU and what its management plane
    said (None with `unavailable` saying why: no resource_id, or an error)."""

    region: str
    configured_sku: str
    key_types: tuple[str, ...]
    properties: VaultProperties | None = None
    unavailable: str = ""

    @property
    def sku(self) -> str:
        return (
            self.properties.sku if self.properties and self.properties.sku else self.configured_sku
        )


@dataclass(frozen=True)
class CheckInputs:
    pair: str
    primary: VaultView
    target: VaultView
    rpo_objective_seconds: float
    # The target's lag as the daemon measured it; None with the reason when unknown.
    lag_seconds: float | None
    pending: int | None
    lag_unknown_because: str = ""
    mirrors_keys: bool = False
    fence: str = "none"
    kvdr_addresses: tuple[str, ...] = ()
    # `[failover] require_approvals`.
    require_approvals: int = 0


def findings(inputs: CheckInputs) -> list[Finding]:
    """Every finding for promoting `inputs.target`, in a fixed order."""
    return [
        _lag(inputs),
        _sku(inputs),
        *_sku_matches_configuration(inputs.primary, inputs.target),
        *_protection(inputs),
        _network(inputs),
        _fence(inputs),
        _approvals(inputs),
    ]


def blockers(found: Sequence[Finding]) -> list[Finding]:
    return [f for f in found if f.severity == "blocker"]


def _lag(i: CheckInputs) -> Finding:
    objective = f"{i.rpo_objective_seconds:g} s"
    if i.lag_seconds is None:
        return Finding(
            "lag",
            "warning",
            f"{i.target.region}'s replication lag is unknown: "
            f"{i.lag_unknown_because or 'not measured'}",
            "start `kvdr run` (the daemon measures the lag) or point --url at it, then check again",
        )
    pending = i.pending or 0
    found = (
        f"{i.target.region} lags {i.lag_seconds:g} s behind {i.primary.region} "
        f"({pending} changes pending); objective {objective}"
    )
    if i.lag_seconds > i.rpo_objective_seconds:
        return Finding(
            "lag",
            "blocker",
            found,
            "a promotion now loses more than the objective: wait for the replicator to "
            "catch up, or promote knowing the loss",
        )
    if pending:
        return Finding("lag", "ok", found, "within the objective; changes are still flowing")
    return Finding("lag", "ok", found)


def _sku(i: CheckInputs) -> Finding:
    if not i.mirrors_keys:
        return Finding("sku", "ok", f"pair {i.pair} does not mirror keys; any SKU holds its items")
    missing = [t for t in i.primary.key_types if t not in i.target.key_types]
    found = f"{i.primary.region} is {i.primary.sku}, {i.target.region} is {i.target.sku}"
    if missing:
        return Finding(
            "sku",
            "blocker",
            f"{found}: {i.target.region} cannot hold {', '.join(missing)} keys the pair mirrors",
            f"move {i.target.region}'s vault to the {i.primary.sku} tier, or stop "
            "mirroring keys of those types",
        )
    return Finding("sku", "ok", f"{found}: it holds every key type of the primary")


def _sku_matches_configuration(*views: VaultView) -> list[Finding]:
    out = []
    for view in views:
        props = view.properties
        if props and props.sku and props.sku != view.configured_sku:
            out.append(
                Finding(
                    "sku",
                    "warning",
                    f"{view.region}: the configuration says {view.configured_sku}, the "
                    f"management plane says {props.sku}",
                    f'set sku = "{props.sku}" in [regions.{view.region}]',
                )
            )
    return out


def _protection(i: CheckInputs) -> list[Finding]:
    p, t = i.primary.properties, i.target.properties
    if p is None or t is None:
        missing = [v for v in (i.primary, i.target) if v.properties is None]
        return [
            Finding(
                "soft-delete",
                "warning",
                "; ".join(f"{v.region}: could not be checked ({v.unavailable})" for v in missing),
                "give each region's resource_id (and a credential that may read it) so soft "
                "delete and purge protection can be compared",
            )
        ]
    out = []
    if p.soft_delete and not t.soft_delete:
        out.append(
            Finding(
                "soft-delete",
                "blocker",
                f"{i.target.region} has soft delete off, {i.primary.region} on",
                f"turn soft delete on for {i.target.region} before promoting it",
            )
        )
    elif p.soft_delete_retention_days != t.soft_delete_retention_days:
        out.append(
            Finding(
                "soft-delete",
                "warning",
                f"soft-delete retention: {i.primary.region} {p.soft_delete_retention_days} "
                f"days, {i.target.region} {t.soft_delete_retention_days} days",
                "retention is fixed when a vault is made; deleted items on the new primary "
                "are kept for its retention",
            )
        )
    else:
        out.append(
            Finding(
                "soft-delete", "ok", f"soft delete on in both, {t.soft_delete_retention_days} days"
            )
        )
    if p.purge_protection and not t.purge_protection:
        out.append(
            Finding(
                "purge-protection",
                "blocker",
                f"{i.primary.region} has purge protection, {i.target.region} does not",
                f"turn purge protection on for {i.target.region} (it cannot be turned off "
                "again): a promoted vault without it lets a deletion be purged for good",
            )
        )
    elif t.purge_protection and not p.purge_protection:
        out.append(
            Finding(
                "purge-protection",
                "warning",
                f"{i.target.region} has purge protection, {i.primary.region} does not",
                "the vaults differ; the new primary protects more than the old one did",
            )
        )
    else:
        state = "on" if p.purge_protection else "off"
        out.append(Finding("purge-protection", "ok", f"purge protection {state} in both"))
    return out


def _allowed(rules: NetworkRules, address: str) -> bool:
    try:
        net = ipaddress.ip_network(address, strict=False)
    except ValueError:
        return False
    for rule in rules.ip_rules:
        try:
            allowed = ipaddress.ip_network(rule, strict=False)
        except ValueError:
            continue
        if net.version == allowed.version and net.subnet_of(allowed):  # type: ignore[arg-type]
            return True
    return False


def _network(i: CheckInputs) -> Finding:
    t = i.target.properties
    region = i.target.region
    if t is None:
        return Finding(
            "network",
            "warning",
            f"{region}'s network rules could not be checked ({i.target.unavailable})",
            f"give [regions.{region}] resource_id",
        )
    rules = t.network_rules
    if t.public_network_access.lower() == "disabled":
        return Finding(
            "network",
            "warning",
            f"{region} has public network access disabled: only private endpoints reach it",
            "make sure kvdr and the applications reach it through a private endpoint",
        )
    if not rules.denies_by_default:
        return Finding("network", "ok", f"{region} allows every address (defaultAction Allow)")
    if not i.kvdr_addresses:
        return Finding(
            "network",
            "warning",
            f"{region} denies by default and kvdr's addresses are not configured",
            "list kvdr's addresses in [failover] fence_allow_ips so they can be checked",
        )
    denied = [a for a in i.kvdr_addresses if not _allowed(rules, a)]
    if denied:
        return Finding(
            "network",
            "blocker",
            f"{region} denies by default and does not allow kvdr's {', '.join(denied)}",
            f"add {', '.join(denied)} to {region}'s network rules",
        )
    return Finding(
        "network",
        "warning",
        f"{region} denies by default ({len(rules.ip_rules)} IP rules); kvdr is allowed",
        "applications must be in its rules too once it is promoted (lift its fence when it is one)",
    )


def _fence(i: CheckInputs) -> Finding:
    if i.fence == "none":
        return Finding(
            "fence",
            "warning",
            'no fence is configured ([failover] fence = "none")',
            "applications can keep writing to the old primary after a promotion: configure "
            "azure-network-deny (or emulator-readonly locally)",
        )
    return Finding("fence", "ok", f"fence {i.fence} is configured")


def _approvals(i: CheckInputs) -> Finding:
    if i.require_approvals <= 0:
        return Finding(
            "approvals",
            "warning",
            "require_approvals is 0: one person can promote",
            "set [failover] require_approvals to 2 or more",
        )
    return Finding("approvals", "ok", f"{i.require_approvals} approvals required")
