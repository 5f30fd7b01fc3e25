"""`[replication]` and `[vault]`: the timing and limits of the replicator and the vault
adapter, declared as models whose defaults are the settings dataclasses' own."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from kvdr._config_fields import (
    Invalid,
    Problems,
    duration,
    integer,
)
from kvdr._config_model import (
    Check,
    Duration,
    DurationOrZero,
    EnvName,
    Flag,
    Fraction,
    Section,
    Text,
    build,
    read_section,
    setting,
)
from kvdr._config_secrets import read_secret, secret_refusal
from replicator.settings import DEFAULT_RPO_SECONDS, ReplicatorSettings
from storage.lease import MAX_LEASE_SECONDS, MIN_LEASE_SECONDS
from vault.settings import VaultSettings


def _lease_duration(value: object) -> int:
    seconds = duration()(value)
    # Azure Blob leases last 15-60 whole seconds (infinite ones would outlive a crash).
    if not seconds.is_integer() or not MIN_LEASE_SECONDS <= seconds <= MAX_LEASE_SECONDS:
        raise Invalid(
            f"must be whole seconds from {MIN_LEASE_SECONDS}s to {MAX_LEASE_SECONDS}s "
            f"(Azure's lease limits), got {value!r}"
        )
    return int(seconds)


_R = ReplicatorSettings
_V = VaultSettings


class ReplicationSection(Section):
    section = "replication"
    refused = {"state_key": secret_refusal("state_key")}
    joined = {"state_key_env": (" / ", "state_key_file")}

    poll_interval_seconds: Duration = setting(
        _R.poll_interval_seconds,
        "one listing of the primary per kind per interval, compared with the checkpoint",
    )
    poll_read_share: Fraction = setting(
        _R.poll_read_share,
        "while events are healthy (one received, and the last poll found nothing they "
        "missed), the most of a primary's request budget (`vault.other_ops_per_10s`) "
        "polling may spend: a vault of 100,000 items (4,001 requests a poll) is then "
        "polled every 200 s instead of every `poll_interval`; see "
        "[replication.md](replication.md#polling-while-events-arrive)",
    )
    reconcile_interval_seconds: Duration = setting(
        _R.reconcile_interval_seconds,
        "full item-by-item comparison; shorter than `poll_interval` is a warning",
    )
    deep_reconcile_interval_seconds: Duration = setting(
        _R.deep_reconcile_interval_seconds,
        "at most this long between deep reconciliations, which read every item on every "
        "target instead of trusting the target's listing (the first pass of every process "
        "is deep too); see [replication.md](replication.md#the-change-feed)",
    )
    max_concurrent_items: Annotated[int, Check(integer(1, 1024), "integer")] = setting(
        _R.max_concurrent_items,
        "items mirrored at once per target, per kind (1-1024): secrets waiting on the "
        "create budget do not hold keys and certificates back",
    )
    drain_seconds: DurationOrZero = setting(
        _R.drain_seconds,
        "on SIGTERM, how long in-flight changes may finish (0 allowed)",
        alias="drain_timeout",
    )
    rpo_objective_seconds: Duration = setting(
        DEFAULT_RPO_SECONDS,
        "default RPO objective of every pair; above it is a warning in logs, status and dashboard",
    )
    deletion_sweep_interval_seconds: Duration = setting(
        _R.deletion_sweep_interval_seconds,
        "how often the deletion sweep compares the primary's live and deleted items with "
        "the checkpoints (and refreshes the expiry watch); see "
        "[replication.md](replication.md#deletions)",
    )
    deletion_guard_min_items: Annotated[int, Check(integer(0), "integer")] = setting(
        _R.deletion_guard_min_items,
        "the deletion guard trips when one sweep finds more than "
        "`max(deletion_guard_min_items, deletion_guard_fraction \N{MULTIPLICATION SIGN} "
        "items)` deleted (0 or more); pairs may override",
    )
    deletion_guard_fraction: Fraction = setting(
        _R.deletion_guard_fraction,
        'see `deletion_guard_min_items` (above 0, at most 1, or `"25%"`); pairs may override',
    )
    expiry_horizon_seconds: Duration = setting(
        _R.expiry_horizon_seconds,
        "items expiring within this long in any region are listed and exported; pairs may override",
    )
    event_queue_limit: Annotated[int, Check(integer(1, 1_000_000), "integer")] = setting(
        _R.event_queue_limit,
        "items announced by Event Grid and not yet synced, per pair (1-1,000,000); further "
        'events are dropped (`kvdr_events_dropped_total{reason="queue_full"}`) and left to '
        "polling",
    )
    event_read_share: Fraction = setting(
        _R.event_read_share,
        "share of a primary's request budget (`vault.other_ops_per_10s`) that events may "
        "spend, at 2 requests per event: 450 events per 10 s by default, above the 300 "
        "secret creates per 10 s a vault allows; further events are dropped "
        '(`reason="rate_limited"`) and left to polling; see '
        "[replication.md](replication.md#the-change-feed)",
    )
    state_key_env: EnvName | None = setting(
        None,
        "the state key (at least 16 characters, the same on every daemon) that seals the "
        "checkpoints and deletion guards in blob storage, which name every mirrored item; "
        "from this environment variable or this file (first line, mode 0600). Without it "
        "they are written in the clear (the daemon logs `state.names_in_clear`); "
        "`state_key` itself is refused",
    )
    state_key_file: Text | None = None
    lease_duration_seconds: Annotated[int, Check(_lease_duration, "duration")] = setting(
        _R.lease_duration_seconds,
        "each pair is run by the daemon holding its blob lease of this period (whole "
        "seconds, 15-60); a dead daemon's pairs move within about one period; the same on "
        "every daemon; see [high-availability.md](high-availability.md)",
    )


class VaultSection(Section):
    section = "vault"

    max_concurrency: Annotated[int, Check(integer(1, 1024), "integer")] = setting(
        _V.max_concurrency,
        "requests in flight per vault (1-1024); halved on 429, grown back after successes",
    )
    # Key Vault's published limits per vault per region per 10 s: secret create 300,
    # all other transactions 4,000. Above them every extra request only earns a 429.
    secret_creates_per_10s: Annotated[int, Check(integer(1, 300), "integer")] = setting(
        _V.secret_creates_per_10s,
        "secret create budget per 10 s (1-300; Key Vault allows 300)",
    )
    other_ops_per_10s: Annotated[int, Check(integer(1, 4000), "integer")] = setting(
        _V.other_ops_per_10s,
        "budget for all other transactions per 10 s (1-4000; Key Vault allows 4,000)",
    )
    max_attempts: Annotated[int, Check(integer(1, 100), "integer")] = setting(
        _V.max_attempts, "attempts per request for transient faults and 429s (1-100)"
    )
    request_timeout_seconds: Duration = setting(_V.request_timeout_seconds, "per request")
    backoff_base_seconds: Duration = setting(
        _V.backoff_base_seconds,
        "first retry delay (exponential with jitter)",
    )
    backoff_max_seconds: Duration = setting(
        _V.backoff_max_seconds,
        "longest retry delay; not shorter than `backoff_base`",
    )
    verify_challenge_resource: Flag = setting(
        _V.verify_challenge_resource,
        "the SDK checks that the auth challenge's resource matches the vault's domain; "
        "`false` only for the emulator",
    )
    ca_file: Text | None = setting(
        None, "CA bundle to trust for vault HTTPS (the emulator's CA)", shown="system trust"
    )


def read_replication(
    raw: object, problems: Problems, env: Mapping[str, str] | None = None
) -> tuple[ReplicatorSettings, float] | None:
    """Replicator timing and limits, the state key, and the default RPO objective of
    every pair."""
    path = ("replication",)
    section = read_section(ReplicationSection, raw, path, problems)
    if section is None:
        return None
    state_key = read_secret("state_key", section, path, env or {}, problems)
    settings = build(ReplicatorSettings, section, state_key=state_key)
    if settings.reconcile_interval_seconds < settings.poll_interval_seconds:
        problems.warning(
            (*path, "reconcile_interval"),
            "shorter than poll_interval: every reconciliation pass lists all items, "
            "so it should run less often than the cheap poll",
        )
    return settings, section.rpo_objective_seconds


def read_vault(raw: object, problems: Problems) -> VaultSettings | None:
    section = read_section(VaultSection, raw, ("vault",), problems)
    if section is None:
        return None
    if section.backoff_max_seconds < section.backoff_base_seconds:
        problems.error(("vault", "backoff_max"), "must not be shorter than backoff_base")
    return build(VaultSettings, section)
