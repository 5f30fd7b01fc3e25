"""A drill's journal: the timestamped events, measurements and verdict of one run.

Chaos Toolkit builds every report from its run journal; so does kvdr: `DrillResult` is
what `chaos.report` renders, what the metrics take and what decides pass or fail.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chaos.ledger import Ledger, LedgerEntry
from chaos.measure import Accounting, Loss, Recovery
from chaos.scenario import Scenario
from chaos.target import DrillTarget


@dataclass
class Event:
    at: float
    kind: str
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"at": round(self.at, 3), "kind": self.kind, **self.detail}


@dataclass
class DrillResult:
    """Everything the report shows; built from the timeline and the measurements."""

    scenario: Scenario
    source: str
    target: DrillTarget
    run_id: str
    started_at: float
    ended_at: float = 0.0
    status: str = "running"  # completed | failed | aborted | interrupted
    reason: str = ""
    events: list[Event] = field(default_factory=list)
    hypothesis: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    rollbacks: list[dict[str, Any]] = field(default_factory=list)
    left_behind: list[str] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    ledger: Ledger = field(default_factory=Ledger)
    losses: list[Loss] = field(default_factory=list)
    accounting: list[Accounting] = field(default_factory=list)
    recovery: Recovery | None = None
    fault_windows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rpo_items(self) -> int:
        return max((loss.items for loss in self.losses), default=0)

    @property
    def rpo_seconds(self) -> float:
        return max((loss.oldest_age_seconds for loss in self.losses), default=0.0)

    @property
    def rto_seconds(self) -> float | None:
        return self.recovery.rto_seconds if self.recovery else None

    def objective_failures(self) -> list[str]:
        objectives = self.scenario.objectives
        out = []
        if self.rpo_items > objectives.rpo_items:
            out.append(
                f"RPO: {self.rpo_items} acknowledged write(s) lost, objective at most "
                f"{objectives.rpo_items}"
            )
        if self.rpo_seconds > objectives.rpo_seconds:
            out.append(
                f"RPO: the oldest lost write was {self.rpo_seconds:.1f} s old, objective "
                f"{objectives.rpo_seconds:g} s"
            )
        rto = self.rto_seconds
        if rto is None:
            out.append("RTO: no write succeeded on the active region after the first fault")
        elif rto > objectives.rto_seconds:
            out.append(f"RTO: {rto:.1f} s, objective {objectives.rto_seconds:g} s")
        for acc in self.accounting:
            if acc.unaccounted:
                out.append(
                    f"accounting: {len(acc.unaccounted)} acknowledged write(s) missing from "
                    f"{acc.region} and not declared lost"
                )
            if acc.duplicates:
                out.append(f"accounting: {acc.duplicates} duplicate version(s) on {acc.region}")
        return out

    def hypothesis_failures(self) -> list[str]:
        return [
            f"hypothesis {r['probe']} failed {phase}: {r['detail']}"
            for phase, results in self.hypothesis.items()
            for r in results
            if not r["ok"]
        ]

    @property
    def passed(self) -> bool:
        return (
            self.status == "completed"
            and not self.left_behind
            and not self.objective_failures()
            and not self.hypothesis_failures()
        )

    def why_not(self) -> list[str]:
        out = []
        if self.status != "completed":
            out.append(f"drill {self.status}: {self.reason}")
        out.extend(self.hypothesis_failures())
        out.extend(self.objective_failures())
        out.extend(f"left behind: {what}" for what in self.left_behind)
        return out


def lost_entries(result: DrillResult) -> list[LedgerEntry]:
    return [e for loss in result.losses for e in loss.missing]
