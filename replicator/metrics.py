"""Prometheus metrics of the replicator (names fixed by DESIGN.md)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RPO_SECONDS = Gauge(
    "kvdr_rpo_seconds",
    "Age of the oldest change seen on the primary and not yet applied on every secondary",
    ["pair"],
)
REPLICATION_LAG_SECONDS = Gauge(
    "kvdr_replication_lag_seconds",
    "Age of the oldest change not yet applied on this target",
    ["pair", "target"],
)
CHANGES_APPLIED = Counter(
    "kvdr_changes_applied_total",
    "Changes applied on a target",
    ["pair", "target", "kind", "op"],
)
REPLICATION_ERRORS = Counter(
    "kvdr_replication_errors_total",
    "Errors while applying changes on a target",
    ["pair", "target", "reason"],
)
CONFLICTS = Gauge(
    "kvdr_replication_conflicts",
    "Target items kvdr refuses to overwrite because it did not write them",
    ["pair", "target"],
)
DELETION_GUARD_TRIPPED = Gauge(
    "kvdr_deletion_guard_tripped",
    "1 while the pair's deletion guard withholds deletions (a mass deletion on the primary)",
    ["pair"],
)
ITEM_EXPIRY_TIMESTAMP = Gauge(
    "kvdr_item_expiry_timestamp_seconds",
    "Earliest expiry (epoch seconds) among the items of this pair, region and kind that "
    "expire within the pair's expiry horizon",
    ["pair", "region", "kind"],
)
LEADER = Gauge(
    "kvdr_leader",
    "1 on the daemon that holds the pair's lease and runs it, 0 on the others",
    ["pair"],
)
BLOCKED = Gauge(
    "kvdr_replication_blocked",
    "Items whose new versions this target cannot take (purge protection, key type its "
    "SKU does not hold); status names each with the reason and the remedy",
    ["pair", "target", "kind"],
)
REPLACE_ABSENCE_SECONDS = Histogram(
    "kvdr_replace_absence_seconds",
    "How long a key or certificate was absent on a target while kvdr replaced its copy "
    "(delete, purge, restore of the newer backup)",
    ["pair", "target", "kind"],
    buckets=(0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128),
)
EVENTS_DROPPED = Counter(
    "kvdr_events_dropped_total",
    "Event Grid events refused before any vault request (invalid name or event, item "
    "already queued, pair's event queue full, primary's event budget spent); polling "
    "finds their changes",
    ["reason"],
)
EVENTS_UNMATCHED = Counter(
    "kvdr_events_unmatched_total",
    "Key Vault events for no pair this daemon runs (another vault, another daemon's pair, "
    "an item no pair selects)",
)
