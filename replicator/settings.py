"""Settings of the replicator: one `PairSettings` per pair, one `ReplicatorSettings`."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

from vault.models import ItemKind, VaultRef


@dataclass(frozen=True)
class PairSettings:
    """One primary vault and the secondaries that mirror it."""

    name: str
    primary: VaultRef
    secondaries: tuple[VaultRef, ...]
    kinds: frozenset[ItemKind] = frozenset({ItemKind.SECRET})
    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ()
    # Take over target items that kvdr did not write (they lack the kvdr tag).
    adopt: bool = False
    rpo_objective_seconds: float = 60.0

    def selects(self, name: str) -> bool:
        """True when an item name belongs to this pair (include, then exclude globs)."""
        return any(fnmatch.fnmatchcase(name, p) for p in self.include) and not any(
            fnmatch.fnmatchcase(name, p) for p in self.exclude
        )


@dataclass(frozen=True)
class ReplicatorSettings:
    """How often and how hard the replicator works."""

    pairs: tuple[PairSettings, ...] = ()
    # Cheap change detection: one list call per kind per interval.
    poll_interval_seconds: float = 10.0
    # Full pass that compares versions item by item and finds what events and polls missed.
    reconcile_interval_seconds: float = 600.0
    # Items mirrored at once per target; the vault adapter bounds requests on top.
    max_concurrent_items: int = 16
    # SIGTERM: how long in-flight changes may finish before they are abandoned.
    drain_seconds: float = 10.0
    # One target's share of one item may take this long; a slower or dead target fails
    # that item (retried later) instead of holding the other targets back.
    target_timeout_seconds: float = 15.0
    extra: dict[str, str] = field(default_factory=dict)
