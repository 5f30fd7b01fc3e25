"""`DrillState`: what the parts of one drill run share.

The scenario and the target, the timeline (`DrillResult`, which every report, metric
and verdict is built from), the write load, and where the pair stands: its active
region, when the RTO clock started, where it was promoted to. `Drill` (chaos.drill)
owns one; the probes, the fault steps, the failover steps, the verification and the
rollbacks all read and write that one.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import structlog

from chaos.journal import DrillResult, Event
from chaos.ledger import WriteLoad
from chaos.scenario import Scenario
from chaos.target import DrillTarget

# Every part of a drill logs as the drill: one logger name, whichever module logs.
log = structlog.get_logger("chaos.drill")


class DrillState:
    """One run's shared state; the timeline is appended to through `event()` only."""

    def __init__(self, scenario: Scenario, source: str, target: DrillTarget) -> None:
        self.scenario = scenario
        self.target = target
        self.run_id = uuid.uuid4().hex[:8]
        self.result = DrillResult(scenario, source, target, self.run_id, time.time())
        self.active_region = target.primary
        self.load = WriteLoad(
            prefix=f"drill-{scenario.name}-{self.run_id}",
            rate=scenario.load.rate,
            names=scenario.load.names,
            writers=dict(target.writers),
            active=lambda: self.active_region,
            ledger=self.result.ledger,
            write_timeout_seconds=scenario.load.write_timeout_seconds,
        )
        # When the RTO clock started: the first fault, switch or new certificate version.
        self.first_fault: float | None = None
        self.promoted_to: str | None = None

    def event(self, kind: str, **detail: Any) -> None:
        self.result.events.append(Event(time.time(), kind, detail))
        log.info(f"drill.{kind}", drill=self.scenario.name, **detail)

    def start_clock(self, at: float) -> bool:
        """Start the RTO clock at `at` unless it runs already; whether this started it."""
        if self.first_fault is not None:
            return False
        self.first_fault = at
        return True
