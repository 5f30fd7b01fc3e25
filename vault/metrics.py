"""Prometheus metrics of the vault seam, on the default registry.

Every HTTP request the adapter sends is counted once, including each page of a listing
and each poll of a delete or recover, because that is what the vault's budget counts.
The `vault` label is the vault's region.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "kvdr_vault_requests",
    "HTTP requests sent to a vault, by operation and outcome (HTTP status or error class)",
    ["vault", "op", "code"],
)

REQUEST_DURATION = Histogram(
    "kvdr_vault_request_duration_seconds",
    "Time from sending a request to a vault until its answer (or failure)",
    ["vault", "op"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)

THROTTLED = Counter(
    "kvdr_throttled",
    "429 Throttled answers from a vault",
    ["vault"],
)

# Not in DESIGN.md's list (additive): shows the adaptive limit reacting to 429s.
CONCURRENCY_LIMIT = Gauge(
    "kvdr_vault_concurrency_limit",
    "Requests kvdr currently allows in flight to a vault (halved on 429, regrown on success)",
    ["vault"],
)
