"""`[[drills]]` and `environment` in the configuration, and the daemon's drill schedule."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from kvdr._config_drills import DrillSchedule
from kvdr.config import ConfigError, load_config, write_local_config
from kvdr.drill_metrics import DrillMetrics
from kvdr.drill_schedule import DrillScheduler, next_run


def config_with(tmp_path: Path, head: str, tail: str = "") -> Path:
    path = tmp_path / "kvdr.toml"
    write_local_config(path)
    path.write_text(head + path.read_text() + tail)
    return path


class TestConfiguration:
    def test_environment_and_drills_read(self, tmp_path: Path) -> None:
        path = config_with(
            tmp_path,
            'environment = "staging"\n',
            '\n[[drills]]\nscenario = "flaky-primary"\ncron = "0 3 * * 1"\ntime_scale = 0.5\n',
        )
        config = load_config(path)
        assert config.environment == "staging"
        assert config.drills == (DrillSchedule("flaky-primary", "0 3 * * 1", 0.5),)

    def test_bad_entries_named_with_lines(self, tmp_path: Path) -> None:
        """A wrong environment, a bad cron and an unknown scenario: each with its line."""
        path = config_with(
            tmp_path,
            'environment = "prod"\n',
            '\n[[drills]]\nscenario = "flaky-primary"\ncron = "every monday"\n'
            '\n[[drills]]\nscenario = "no-such"\ncron = "0 3 * * *"\n',
        )
        with pytest.raises(ConfigError) as caught:
            load_config(path)
        text = str(caught.value)
        lines = path.read_text().splitlines()
        assert f"{path}:1: environment:" in text
        cron_line = lines.index('cron = "every monday"') + 1
        assert f"{path}:{cron_line}: drills[0].cron: not a cron expression" in text
        assert "drills[1].scenario: no built-in scenario" in text


class TestSchedule:
    def test_next_run_follows_cron(self) -> None:
        # 2026-01-05 is a Monday; "0 3 * * 1" is 03:00 UTC on Mondays.
        monday_1am = 1767574800.0
        assert next_run("0 3 * * 1", monday_1am) == monday_1am + 2 * 3600

    async def test_a_due_drill_runs_and_sets_the_metrics(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The scheduler runs the drill's command and reads its report into the metrics
        (the drill here is a stand-in process printing a report: the real command is
        covered end to end in tests/chaos)."""
        report = {
            "scenario": "flaky-primary",
            "target": {"pair": "demo"},
            "verdict": "pass",
            "passed": True,
            "ended_at": "2026-01-05T03:00:30+00:00",
            "measured": {"rpo_items": 0, "rpo_seconds": 0.0, "rto_seconds": 1.5},
        }
        registry = CollectorRegistry()
        scheduler = DrillScheduler(
            (DrillSchedule("flaky-primary", "* * * * *"),),
            tmp_path / "kvdr.toml",
            tmp_path / "drills",
            metrics=DrillMetrics(registry),
        )
        monkeypatch.setattr(
            scheduler,
            "argv",
            lambda schedule, folder: [sys.executable, "-c", f"print({json.dumps(report)!r})"],
        )
        doc = await scheduler.run_one(scheduler.schedules[0])
        assert doc is not None
        labels = {"scenario": "flaky-primary", "pair": "demo"}
        assert registry.get_sample_value("kvdr_drill_passed", labels) == 1
        assert registry.get_sample_value("kvdr_drill_rto_seconds", labels) == 1.5
        assert registry.get_sample_value("kvdr_drill_last_success_timestamp_seconds", labels)
        assert scheduler.last["flaky-primary"]["verdict"] == "pass"

    def test_argv_is_the_user_command(self, tmp_path: Path) -> None:
        scheduler = DrillScheduler((), tmp_path / "kvdr.toml", tmp_path)
        argv = scheduler.argv(DrillSchedule("deny-access", "* * * * *", 0.5, "app"), tmp_path)
        assert argv[3:9] == ["drill", "run", "deny-access", "--stack", "config", "--config"]
        assert argv[-4:] == ["--time-scale", "0.5", "--pair", "app"]

    async def test_stop_ends_the_wait(self, tmp_path: Path) -> None:
        stop = asyncio.Event()
        scheduler = DrillScheduler(
            (DrillSchedule("flaky-primary", "0 3 1 1 *"),), tmp_path / "k.toml", tmp_path
        )
        task = asyncio.create_task(scheduler.run(stop))
        stop.set()
        await asyncio.wait_for(task, 2)
