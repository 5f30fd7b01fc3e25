"""Scheduled drills inside the daemon: each `[[drills]]` entry runs on its cron schedule.

A scheduled drill runs as `kvdr drill run SCENARIO --stack config --config <the
daemon's own configuration>` in a child process, exactly as a person or the
Kubernetes CronJob would run it: the same environment guard (only `drill` or
`staging`), the same rollbacks, the same reports (under `<state_dir>/drills/`). The
daemon reads the report back into its `kvdr_drill_*` metrics. One drill at a time: a
drill that is still running when the next is due makes the next one skip (logged).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from croniter import croniter

from kvdr._config_drills import DrillSchedule
from kvdr.drill_metrics import DrillMetrics, default_metrics

log = structlog.get_logger("kvdr.drills")


def next_run(cron: str, after: float) -> float:
    """The first time at or after `after` (Unix seconds, UTC) that `cron` names."""
    base = datetime.fromtimestamp(after, UTC)
    return float(croniter(cron, base).get_next(float))


@dataclass
class DrillScheduler:
    """Runs the configuration's `[[drills]]` on their schedules until `stop` is set."""

    schedules: tuple[DrillSchedule, ...]
    config_path: Path
    reports: Path
    metrics: DrillMetrics = field(default_factory=default_metrics)
    clock: Callable[[], float] = time.time
    last: dict[str, dict[str, Any]] = field(default_factory=dict)

    def argv(self, schedule: DrillSchedule, report: Path) -> list[str]:
        args = [
            sys.executable,
            "-m",
            "kvdr",
            "drill",
            "run",
            schedule.scenario,
            "--stack",
            "config",
            "--config",
            str(self.config_path),
            "--report",
            str(report),
            "--json",
        ]
        if schedule.time_scale != 1.0:
            args += ["--time-scale", str(schedule.time_scale)]
        if schedule.pair:
            args += ["--pair", schedule.pair]
        return args

    async def run_one(self, schedule: DrillSchedule) -> dict[str, Any] | None:
        stamp = datetime.fromtimestamp(self.clock(), UTC).strftime("%Y%m%dT%H%M%SZ")
        report = self.reports / schedule.scenario.replace("/", "_") / stamp
        log.info("drill.scheduled_start", scenario=schedule.scenario, report=str(report))
        process = await asyncio.create_subprocess_exec(
            *self.argv(schedule, report),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await process.communicate()
        except asyncio.CancelledError:
            # The daemon stops: the drill gets SIGTERM, which rolls it back.
            process.terminate()
            await process.wait()
            raise
        try:
            doc: dict[str, Any] = json.loads(out)
        except ValueError:
            log.error(
                "drill.scheduled_failed",
                scenario=schedule.scenario,
                exit_code=process.returncode,
                error=err.decode("utf-8", "replace")[-400:],
            )
            return None
        self.metrics.record(doc)
        self.last[schedule.scenario] = {
            "scenario": doc["scenario"],
            "pair": doc["target"]["pair"],
            "verdict": doc["verdict"],
            "ended_at": doc["ended_at"],
            "report": str(report),
        }
        log.info(
            "drill.scheduled_end",
            scenario=schedule.scenario,
            verdict=doc["verdict"],
            rpo_items=doc["measured"]["rpo_items"],
            rto_seconds=doc["measured"]["rto_seconds"],
        )
        return doc

    async def run(self, stop: asyncio.Event) -> None:
        if not self.schedules:
            await stop.wait()
            return
        due = {i: next_run(s.cron, self.clock()) for i, s in enumerate(self.schedules)}
        while not stop.is_set():
            index = min(due, key=due.__getitem__)
            wait = max(0.0, due[index] - self.clock())
            try:
                await asyncio.wait_for(stop.wait(), timeout=wait)
                return
            except TimeoutError:
                pass
            schedule = self.schedules[index]
            await self.run_one(schedule)
            now = self.clock()
            for i, s in enumerate(self.schedules):
                if due[i] <= now:
                    if i != index:
                        log.warning("drill.skipped", scenario=s.scenario, reason="a drill ran")
                    due[i] = next_run(s.cron, now)
