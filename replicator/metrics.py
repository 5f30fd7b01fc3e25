"""Prometheus metrics of the replicator (names fixed by DESIGN.md)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

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
