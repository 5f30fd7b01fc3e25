"""The drill metrics: the last drill's RPO, RTO, verdict and last success, per scenario
and pair. The daemon exports them on /metrics from the drill records in storage
(kvdr/drill_records.py: every drill against a configured environment leaves one) and
from its own scheduled drills; `kvdr drill run --report DIR` also writes them to
DIR/metrics.prom, for a textfile collector."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Gauge, generate_latest

if TYPE_CHECKING:
    from kvdr.drill_records import DrillRecord

LABELS = ["scenario", "pair"]


class DrillMetrics:
    """The four gauges in one registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        kw: dict[str, Any] = {"registry": registry} if registry is not None else {}
        self.rpo = Gauge(
            "kvdr_drill_rpo_seconds",
            "Age of the oldest acknowledged write the last drill lost (0: none lost).",
            LABELS,
            **kw,
        )
        self.rto = Gauge(
            "kvdr_drill_rto_seconds",
            "The last drill's RTO: first fault action to the first successful write.",
            LABELS,
            **kw,
        )
        self.passed = Gauge(
            "kvdr_drill_passed", "1 when the last drill passed, else 0.", LABELS, **kw
        )
        self.last_success = Gauge(
            "kvdr_drill_last_success_timestamp_seconds",
            "When a drill last passed (Unix seconds).",
            LABELS,
            **kw,
        )

    def record(self, doc: dict[str, Any], now: float | None = None) -> None:
        labels = (doc["scenario"], doc["target"]["pair"])
        measured = doc["measured"]
        self.rpo.labels(*labels).set(measured["rpo_seconds"])
        rto = measured["rto_seconds"]
        self.rto.labels(*labels).set(float("nan") if rto is None else rto)
        self.passed.labels(*labels).set(1 if doc["passed"] else 0)
        if doc["passed"]:
            self.last_success.labels(*labels).set(now if now is not None else time.time())

    def set_record(self, record: DrillRecord) -> None:
        """The gauges from a drill record in storage (kvdr/drill_records.py)."""
        labels = (record.scenario, record.pair)
        self.rpo.labels(*labels).set(record.rpo_seconds)
        rto = record.rto_seconds
        self.rto.labels(*labels).set(float("nan") if rto is None else rto)
        self.passed.labels(*labels).set(1 if record.passed else 0)
        if record.last_success_at is not None:
            self.last_success.labels(*labels).set(record.last_success_at)


_default: DrillMetrics | None = None


def default_metrics() -> DrillMetrics:
    """The gauges in the process's default registry (the daemon's /metrics)."""
    global _default
    if _default is None:
        _default = DrillMetrics()
    return _default


def record_result(doc: dict[str, Any], folder: Path | None = None) -> bytes:
    """The drill's metrics in Prometheus text, written to `folder`/metrics.prom if given."""
    registry = CollectorRegistry()
    DrillMetrics(registry).record(doc)
    text = generate_latest(registry)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "metrics.prom").write_bytes(text)
    return text
