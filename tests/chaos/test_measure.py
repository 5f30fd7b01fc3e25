"""RPO and RTO from the ledger and the vaults' holdings (pure)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from chaos.ledger import Ledger, LedgerEntry, WriteAttempt
from chaos.measure import Holdings, account, missing_from, recovery


def entry(name: str, version: str, at: float, region: str = "eastus") -> LedgerEntry:
    return LedgerEntry(name, version, region, at)


class TestRpo:
    def test_missing_counts_only_writes_acknowledged_before_the_promotion(self) -> None:
        """Mirrored versions count through their source tag; later writes are not lost."""
        entries = [
            entry("a", "v1", 10),
            entry("a", "v2", 12),
            entry("b", "v3", 13),
            entry("b", "v9", 30),
        ]
        held = {"a": Holdings(frozenset({"t1"}), ("v1",)), "b": Holdings()}
        loss = missing_from("westus", held, entries, at=20)
        assert [e.version for e in loss.missing] == ["v2", "v3"]
        assert loss.checked == 3
        assert loss.oldest_age_seconds == 8

    def test_nothing_missing_is_age_zero(self) -> None:
        loss = missing_from(
            "westus", {"a": Holdings(frozenset(), ("v1",))}, [entry("a", "v1", 1)], 5
        )
        assert loss.items == 0 and loss.oldest_age_seconds == 0

    @given(st.lists(st.booleans(), max_size=30))
    def test_every_entry_is_present_lost_or_unaccounted(self, flags: list[bool]) -> None:
        """Accounting partitions the ledger: present + declared lost + unaccounted = all."""
        entries = [entry("n", f"v{i}", i) for i in range(len(flags))]
        held = {
            "n": Holdings(frozenset(e.version for e, f in zip(entries, flags, strict=True) if f))
        }
        declared = [e for e, f in zip(entries, flags, strict=True) if not f][::2]
        result = account("eastus", held, entries, declared)
        assert result.present + result.lost_at_promotion + len(result.unaccounted) == len(entries)
        assert result.lost_at_promotion == len(declared)

    def test_duplicates_are_source_versions_mirrored_twice(self) -> None:
        held = {"a": Holdings(frozenset({"t1", "t2", "t3"}), ("v1", "v1", "v2"))}
        assert account("westus", held, [], []).duplicates == 1


class TestRto:
    def ledger(self, *attempts: tuple[float, str, bool]) -> Ledger:
        return Ledger(attempts=[WriteAttempt(at, region, ok) for at, region, ok in attempts])

    def test_promotion_first_success_on_the_new_primary(self) -> None:
        """From the first fault to the first write the new primary acknowledged."""
        ledger = self.ledger(
            (9, "eastus", True),
            (11, "eastus", False),
            (14, "westus", False),
            (16, "westus", True),
            (17, "westus", True),
        )
        rto = recovery(ledger, first_fault=10, promoted_to="westus", home="eastus")
        assert rto.rto_seconds == 6 and rto.failures == 2

    def test_without_promotion_first_success_after_the_last_failure(self) -> None:
        ledger = self.ledger(
            (11, "eastus", False),
            (12, "eastus", True),
            (13, "eastus", False),
            (15.5, "eastus", True),
        )
        assert recovery(ledger, 10, None, "eastus").rto_seconds == 5.5

    def test_no_failure_is_zero_and_no_recovery_is_none(self) -> None:
        assert recovery(self.ledger((11, "eastus", True)), 10, None, "eastus").rto_seconds == 0
        never = recovery(self.ledger((11, "westus", False)), 10, "westus", "eastus")
        assert never.rto_seconds is None
