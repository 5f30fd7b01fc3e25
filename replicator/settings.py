"""Settings of the replicator: one `PairSettings` per pair, one `ReplicatorSettings`."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field, replace

from vault.models import ItemKind, VaultRef

# A pair's RPO objective unless the configuration sets one: above it is a warning in
# logs, status and the dashboard.
DEFAULT_RPO_SECONDS = 60.0


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
    rpo_objective_seconds: float = DEFAULT_RPO_SECONDS
    # Deletion guard and expiry watch (replicator/sweep.py, guard.py, expiry.py); None
    # takes the value of ReplicatorSettings.
    deletion_guard_min_items: int | None = None
    deletion_guard_fraction: float | None = None
    expiry_horizon_seconds: float | None = None
    # Status, dashboard and metrics show a short hash instead of item names where the
    # deletion guard and the expiry watch list items.
    hide_names: bool = False
    # Targets that were the active region before a failover: their own versions were
    # written while they were primary (and, if not mirrored, reported lost by the
    # promotion), so kvdr writes the active region's newer versions on top of them
    # (the older ones stay in the version history) instead of refusing them.
    adopt_regions: frozenset[str] = frozenset()

    def adopts(self, region: str) -> bool:
        """True when kvdr may write over `region`'s versions that it did not write."""
        return self.adopt or region in self.adopt_regions

    @property
    def regions(self) -> tuple[str, ...]:
        """Every region of the pair, the configured primary first."""
        return (self.primary.region, *(s.region for s in self.secondaries))

    def directed(self, active: str) -> PairSettings:
        """The pair as it runs while `active` is its active region (the control record
        says so after a failover): `active` is the source, every other region a target."""
        vaults = (self.primary, *self.secondaries)
        chosen = [v for v in vaults if v.region == active]
        if not chosen:
            raise ValueError(
                f"pair {self.name!r} has no region {active!r} (regions: {', '.join(self.regions)})"
            )
        if chosen[0] == self.primary:
            return self
        return replace(
            self, primary=chosen[0], secondaries=tuple(v for v in vaults if v.region != active)
        )

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
    # While events are healthy (replicator/poll_pacing.py), polling spends at most this
    # share of the primary's read budget: a large vault is polled less often.
    poll_read_share: float = 0.05
    # Full pass that compares versions item by item and finds what events and polls missed.
    reconcile_interval_seconds: float = 600.0
    # A full pass trusts a target's listing for items it proves in sync (older versions
    # are then not read on the target). At most this long apart, and in the first pass
    # of every process, a deep pass reads every item on every target instead, so a
    # change made on a target behind kvdr's back is repaired too.
    deep_reconcile_interval_seconds: float = 86400.0
    # Items mirrored at once per target, per kind (a kind waiting on its own budget,
    # secret creates at 300 per 10 s, does not hold the others back); the vault adapter
    # bounds requests on top.
    max_concurrent_items: int = 16
    # SIGTERM: how long in-flight changes may finish before they are abandoned.
    drain_seconds: float = 10.0
    # One target's share of one item may take this long; a slower or dead target fails
    # that item (retried later) instead of holding the other targets back.
    target_timeout_seconds: float = 15.0
    # Deletions are found by comparing listings (Event Grid sends no delete events); each
    # sweep lists the primary's live and deleted items of every kind of the pair.
    deletion_sweep_interval_seconds: float = 300.0
    # One sweep finding more than max(min_items, fraction * items) deleted stops deletion
    # propagation for the pair until confirmed (pairs may override both).
    deletion_guard_min_items: int = 10
    deletion_guard_fraction: float = 0.25
    # Items expiring within this long in any region are listed and exported.
    expiry_horizon_seconds: float = 30 * 86400.0
    # Several daemons share the pairs: each pair is run by the holder of its blob lease
    # (storage/lease.py), of this many seconds (Azure allows 15-60).
    lease_duration_seconds: int = 30
    # Items announced by Event Grid and not yet synced, per pair; events beyond it are
    # dropped (counted) and left to polling. Event Grid batches at most 5,000 events.
    event_queue_limit: int = 5000
    # Events may make kvdr read at most this share of a primary's request budget
    # (`vault.other_ops_per_10s`); the default, 900 of 3,600 requests per 10 s, covers
    # the 300 secret creates per 10 s a vault allows (two reads each), so only a flood
    # is refused.
    event_read_share: float = 0.25
    # Seals the checkpoints and deletion guards in blob storage, which name every item
    # (replicator/state_seal.py); the same on every daemon. None: written in the clear.
    state_key: str | None = field(default=None, repr=False)
    extra: dict[str, str] = field(default_factory=dict)
