"""A circuit breaker per region, for the failover client.

Closed: requests go through. After `failures` failures in a row it opens: the region is
skipped, so a dead region costs nothing on each read (the SDK would otherwise spend a
connect timeout per request). After `cooldown_seconds` it is half-open: one request is
let through as a probe; its success closes the breaker, its failure opens it again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

BreakerState = Literal["closed", "open", "half-open"]


@dataclass
class CircuitBreaker:
    failures: int
    cooldown_seconds: float
    clock: Callable[[], float]
    state: BreakerState = "closed"
    failed_in_a_row: int = 0
    opened_at: float = 0.0
    probing: bool = False

    def allow(self) -> bool:
        """May a request go to this region now? Half-open lets one probe through."""
        if self.state == "closed":
            return True
        if self.state == "open":
            if self.clock() - self.opened_at < self.cooldown_seconds:
                return False
            self.state = "half-open"
            self.probing = False
        if self.probing:
            return False
        self.probing = True
        return True

    def succeeded(self) -> None:
        self.state = "closed"
        self.failed_in_a_row = 0
        self.probing = False

    def failed(self) -> None:
        self.failed_in_a_row += 1
        self.probing = False
        if self.state == "half-open" or self.failed_in_a_row >= self.failures:
            self.state = "open"
            self.opened_at = self.clock()
