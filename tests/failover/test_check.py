"""failover/check.py: the findings of `kvdr failover check`, as properties and tables."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from failover.check import CheckInputs, Finding, VaultView, blockers, findings
from failover.management import NetworkRules, VaultProperties

TYPES = {
    "standard": ("RSA", "EC"),
    "premium": ("RSA", "EC", "RSA-HSM", "EC-HSM"),
    "managed-hsm": ("RSA-HSM", "EC-HSM", "oct-HSM"),
}


def props(
    sku: str = "standard",
    purge: bool = False,
    retention: int = 90,
    rules: NetworkRules | None = None,
    public: str = "Enabled",
) -> VaultProperties:
    return VaultProperties(
        resource_id="/subscriptions/0/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/v",
        location="x",
        sku=sku,
        soft_delete=True,
        soft_delete_retention_days=retention,
        purge_protection=purge,
        public_network_access=public,
        network_rules=rules or NetworkRules(),
    )


def view(region: str, sku: str = "standard", **kw: object) -> VaultView:
    return VaultView(region, sku, TYPES[sku], props(sku, **kw))  # type: ignore[arg-type]


def inputs(**kw: object) -> CheckInputs:
    base = CheckInputs(
        pair="app",
        primary=view("eastus"),
        target=view("westus"),
        rpo_objective_seconds=60,
        lag_seconds=0,
        pending=0,
        fence="azure-network-deny",
        kvdr_addresses=("203.0.113.7",),
        require_approvals=2,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def one(found: list[Finding], check: str) -> Finding:
    (finding,) = [f for f in found if f.check == check]
    return finding


class TestAllOk:
    def test_equal_vaults_caught_up(self) -> None:
        """Equal vaults, lag 0, a fence and approvals: every finding ok, no blocker."""
        found = findings(inputs())
        assert {f.severity for f in found} == {"ok"} and not blockers(found)


class TestProperties:
    @given(lag=st.floats(0, 10_000), objective=st.floats(1, 3600), pending=st.integers(0, 99))
    def test_lag_blocks_exactly_beyond_the_objective(
        self, lag: float, objective: float, pending: int
    ) -> None:
        """A known lag blocks when, and only when, it is beyond the RPO objective."""
        found = one(
            findings(inputs(lag_seconds=lag, pending=pending, rpo_objective_seconds=objective)),
            "lag",
        )
        assert (found.severity == "blocker") == (lag > objective)

    @given(
        primary=st.sampled_from(sorted(TYPES)),
        target=st.sampled_from(sorted(TYPES)),
        keys=st.booleans(),
    )
    def test_sku_blocks_when_the_target_cannot_hold_the_primarys_keys(
        self, primary: str, target: str, keys: bool
    ) -> None:
        """With keys mirrored, a target lacking a key type of the primary's SKU blocks
        (premium -> standard does); without keys, no SKU blocks."""
        found = findings(
            inputs(
                primary=view("eastus", primary), target=view("westus", target), mirrors_keys=keys
            )
        )
        missing = set(TYPES[primary]) - set(TYPES[target])
        assert (one(found, "sku").severity == "blocker") == (keys and bool(missing))

    @given(primary=st.booleans(), target=st.booleans())
    def test_purge_protection_blocks_only_when_weaker(self, primary: bool, target: bool) -> None:
        """The target without purge protection that the primary has blocks; the other
        way round is a warning; equal is ok."""
        found = one(
            findings(
                inputs(primary=view("eastus", purge=primary), target=view("westus", purge=target))
            ),
            "purge-protection",
        )
        expected = "blocker" if primary and not target else "warning" if target != primary else "ok"
        assert found.severity == expected

    @given(st.data())
    def test_safe_means_no_blocker(self, data: st.DataObject) -> None:
        """Whatever the inputs, every finding has a known severity, a blocker always
        says what to do, and the verdict is 'no blocker'."""
        found = findings(
            inputs(
                lag_seconds=data.draw(st.none() | st.floats(0, 500)),
                mirrors_keys=data.draw(st.booleans()),
                primary=view("eastus", data.draw(st.sampled_from(sorted(TYPES)))),
                fence=data.draw(st.sampled_from(["none", "emulator-readonly"])),
                require_approvals=data.draw(st.integers(0, 3)),
            )
        )
        assert all(f.severity in ("blocker", "warning", "ok") for f in found)
        assert all(f.action for f in blockers(found))


ALLOW = NetworkRules()
DENY_ALL = NetworkRules(default_action="Deny")
DENY_BUT_KVDR = NetworkRules(default_action="Deny", ip_rules=("203.0.113.0/24",))


class TestNetwork:
    @pytest.mark.parametrize(
        ("rules", "addresses", "severity", "words"),
        [
            (ALLOW, ("203.0.113.7",), "ok", "allows every address"),
            (DENY_ALL, ("203.0.113.7",), "blocker", "does not allow kvdr's 203.0.113.7"),
            (DENY_BUT_KVDR, ("203.0.113.7",), "warning", "kvdr is allowed"),
            (DENY_BUT_KVDR, ("203.0.113.7", "198.51.100.1"), "blocker", "198.51.100.1"),
            (DENY_ALL, (), "warning", "not configured"),
        ],
    )
    def test_rules_against_kvdrs_addresses(
        self, rules: NetworkRules, addresses: tuple[str, ...], severity: str, words: str
    ) -> None:
        """A secondary that denies kvdr's addresses blocks; one that allows kvdr but
        denies by default warns that applications must be allowed too."""
        found = one(
            findings(inputs(target=view("westus", rules=rules), kvdr_addresses=addresses)),
            "network",
        )
        assert found.severity == severity and words in found.found

    def test_private_only_vault_warns(self) -> None:
        found = one(findings(inputs(target=view("westus", public="Disabled"))), "network")
        assert found.severity == "warning" and "private endpoints" in found.found


class TestUnknowns:
    def test_no_management_plane_says_what_was_not_checked(self) -> None:
        """Without properties, protection and network findings are warnings naming why."""
        bare = VaultView(
            "westus", "standard", TYPES["standard"], unavailable="no resource_id configured"
        )
        found = findings(inputs(target=bare))
        assert one(found, "soft-delete").severity == "warning"
        assert (
            "westus: could not be checked (no resource_id configured)"
            in one(found, "soft-delete").found
        )
        assert one(found, "network").severity == "warning"
        assert not blockers(found)

    @pytest.mark.parametrize(
        ("fence", "approvals", "fence_severity", "approval_severity"),
        [
            ("none", 0, "warning", "warning"),
            ("azure-network-deny", 0, "ok", "warning"),
            ("emulator-readonly", 2, "ok", "ok"),
        ],
    )
    def test_fence_and_approvals(
        self, fence: str, approvals: int, fence_severity: str, approval_severity: str
    ) -> None:
        found = findings(inputs(fence=fence, require_approvals=approvals))
        assert one(found, "fence").severity == fence_severity
        assert one(found, "approvals").severity == approval_severity

    def test_unknown_lag_warns_with_the_reason(self) -> None:
        found = one(findings(inputs(lag_seconds=None, lag_unknown_because="no daemon")), "lag")
        assert found.severity == "warning" and "no daemon" in found.found
