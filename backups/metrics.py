"""Prometheus metrics of the backups part (the first two names are fixed by DESIGN.md)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

JOURNAL_LAST_SEQUENCE = Gauge(
    "kvdr_journal_last_sequence",
    "Newest sequence number of a pair's journal that is durable in blob storage",
    ["pair"],
)
SNAPSHOT_LAST_SUCCESS = Gauge(
    "kvdr_snapshot_last_success_timestamp_seconds",
    "When the newest snapshot of a pair was written (Unix time)",
    ["pair"],
)
# Additive: what the journal holds in memory, and why generations began.
JOURNAL_BUFFERED = Gauge(
    "kvdr_journal_buffered_changes",
    "Changes of a pair accepted by the journal and not yet durable",
    ["pair"],
)
JOURNAL_FLUSH_ERRORS = Counter(
    "kvdr_journal_flush_errors_total",
    "Failed attempts to write a journal segment",
    ["pair"],
)
NEW_GENERATIONS = Counter(
    "kvdr_journal_generations_started_total",
    "Generations started because continuity could not be proven (or a first start)",
    ["pair"],
)
