"""`environment` and `[[drills]]`: what kind of environment a configuration describes,
and the drills the daemon runs on a schedule (docs/drills.md).

    environment = "drill"         # drill | staging | production
    [[drills]]
    scenario = "flaky-primary"    # a built-in or a scenario file
    cron = "0 3 * * 1"            # croniter syntax, UTC
    time_scale = 1.0              # optional
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kvdr._config_fields import Problems
from kvdr._config_lines import KeyPath

Environment = Literal["drill", "staging", "production"]
ENVIRONMENTS = ("drill", "staging", "production")


@dataclass(frozen=True)
class DrillSchedule:
    """One scheduled drill."""

    scenario: str
    cron: str
    time_scale: float = 1.0
    pair: str | None = None


class _DrillTable(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scenario: str = Field(min_length=1)
    cron: str = Field(min_length=1)
    time_scale: float = Field(1.0, ge=0.01, le=100)
    pair: str | None = None


def read_environment(raw: object, problems: Problems) -> str | None:
    if raw is None:
        return None
    if raw not in ENVIRONMENTS:
        problems.error(("environment",), 'must be "drill", "staging" or "production"')
        return None
    return str(raw)


def read_drills(raw: object, problems: Problems) -> tuple[DrillSchedule, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        problems.error(("drills",), "expected an array of tables: write each as [[drills]]")
        return ()
    out = []
    for index, table in enumerate(raw):
        path: KeyPath = ("drills", index)
        if not isinstance(table, dict):
            problems.error(path, "expected a table")
            continue
        try:
            entry = _DrillTable.model_validate(table)
        except ValidationError as exc:
            for error in exc.errors(include_input=False, include_url=False):
                loc = tuple(error["loc"])
                message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
                problems.error((*path, *loc), str(message))
            continue
        if not croniter.is_valid(entry.cron):
            problems.error((*path, "cron"), 'not a cron expression (five fields, e.g. "0 3 * * 1")')
            continue
        from chaos.scenario import builtin_scenarios

        if entry.scenario not in builtin_scenarios() and not entry.scenario.endswith(".toml"):
            known = ", ".join(builtin_scenarios())
            problems.error(
                (*path, "scenario"), f"no built-in scenario of that name (built-ins: {known})"
            )
            continue
        out.append(DrillSchedule(entry.scenario, entry.cron, entry.time_scale, entry.pair))
    return tuple(out)
