"""RPO and RTO of a drill, computed from the ledger and what each vault holds (pure).

- RPO: the acknowledged writes missing from the new primary when it was promoted (or,
  without a promotion, missing from the replicas once replication had time to settle):
  how many, which, and the age of the oldest at that moment.
- RTO: from the first fault action to the first write the load saw succeed on the new
  primary. Without a promotion: to the first success after the last failed write that
  followed the first fault (0 when no write failed).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from chaos.ledger import Ledger, LedgerEntry


@dataclass(frozen=True)
class Holdings:
    """What one vault holds of one secret name: its versions, and for each version that
    kvdr mirrored there the source version it was copied from."""

    versions: frozenset[str] = frozenset()
    source_versions: tuple[str, ...] = ()

    def has(self, version: str) -> bool:
        return version in self.versions or version in self.source_versions

    def duplicates(self) -> int:
        """Source versions written more than once (a replay after a crash would do it)."""
        return sum(n - 1 for n in Counter(self.source_versions).values() if n > 1)


Inventory = Mapping[str, Holdings]


@dataclass(frozen=True)
class Loss:
    """Acknowledged writes missing from a vault at a moment."""

    region: str
    at: float
    missing: tuple[LedgerEntry, ...] = ()
    checked: int = 0

    @property
    def items(self) -> int:
        return len(self.missing)

    @property
    def oldest_age_seconds(self) -> float:
        if not self.missing:
            return 0.0
        return max(0.0, self.at - min(e.at for e in self.missing))

    def to_dict(self) -> dict[str, object]:
        return {
            "region": self.region,
            "at": self.at,
            "checked": self.checked,
            "items": self.items,
            "oldest_age_seconds": round(self.oldest_age_seconds, 3),
            "missing": [e.to_dict() for e in self.missing],
        }


def missing_from(
    region: str, inventory: Inventory, entries: Iterable[LedgerEntry], at: float
) -> Loss:
    """The entries acknowledged at or before `at` that `region` does not hold."""
    chosen = [e for e in entries if e.at <= at]
    missing = tuple(e for e in chosen if not inventory.get(e.name, Holdings()).has(e.version))
    return Loss(region, at, missing, len(chosen))


@dataclass(frozen=True)
class Accounting:
    """Every acknowledged write at the end: present, lost at a promotion, or neither."""

    region: str
    present: int
    lost_at_promotion: int
    unaccounted: tuple[LedgerEntry, ...] = ()
    duplicates: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            "region": self.region,
            "present": self.present,
            "lost_at_promotion": self.lost_at_promotion,
            "unaccounted": [e.to_dict() for e in self.unaccounted],
            "duplicates": self.duplicates,
        }


def account(
    region: str, inventory: Inventory, entries: Iterable[LedgerEntry], lost: Iterable[LedgerEntry]
) -> Accounting:
    """Check every entry against `region`; those missing must have been declared lost."""
    declared = {(e.name, e.version) for e in lost}
    present = lost_count = 0
    unaccounted = []
    for entry in entries:
        if inventory.get(entry.name, Holdings()).has(entry.version):
            present += 1
        elif (entry.name, entry.version) in declared:
            lost_count += 1
        else:
            unaccounted.append(entry)
    duplicates = sum(h.duplicates() for h in inventory.values())
    return Accounting(region, present, lost_count, tuple(unaccounted), duplicates)


@dataclass(frozen=True)
class Recovery:
    """The RTO measurement: when the clock started and stopped, and on which region."""

    started_at: float | None
    recovered_at: float | None
    region: str | None
    how: str
    failures: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def rto_seconds(self) -> float | None:
        if self.started_at is None:
            return 0.0
        if self.recovered_at is None:
            return None
        return max(0.0, self.recovered_at - self.started_at)

    def to_dict(self) -> dict[str, object]:
        rto = self.rto_seconds
        return {
            "started_at": self.started_at,
            "recovered_at": self.recovered_at,
            "region": self.region,
            "how": self.how,
            "failed_writes": self.failures,
            "rto_seconds": None if rto is None else round(rto, 3),
        }


def recovery(
    ledger: Ledger, first_fault: float | None, promoted_to: str | None, home: str
) -> Recovery:
    """RTO from the ledger's attempts (see the module's docstring)."""
    if first_fault is None:
        return Recovery(None, None, None, "no fault was injected")
    if promoted_to is not None:
        at = ledger.first_success(promoted_to, first_fault)
        return Recovery(
            first_fault,
            at,
            promoted_to,
            f"first write acknowledged by the new primary {promoted_to}",
            sum(1 for a in ledger.attempts if not a.ok and a.at >= first_fault),
        )
    after = [a for a in ledger.attempts if a.at >= first_fault]
    failed = [a for a in after if not a.ok]
    if not failed:
        return Recovery(first_fault, first_fault, home, "no write failed after the first fault")
    last_failure = failed[-1].at
    back = next((a.at for a in after if a.ok and a.at >= last_failure), None)
    return Recovery(
        first_fault,
        back,
        home,
        f"first write acknowledged by {home} after the last failed one",
        len(failed),
    )
