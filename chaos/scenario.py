"""A drill scenario: objectives, steady-state hypothesis, method, abort conditions.

Scenarios are TOML (the built-ins live in `chaos/scenarios/`). The format is declared
here as pydantic models with `extra="forbid"`, so a misspelt key is an error, not a
silently ignored line. `validate_scenario()` returns every problem with its key path;
the command line turns paths into line numbers. See docs/drills.md for the reference.

Rollbacks are not written in the file: every step that changes something (a fault, a
stopped daemon, a switchover) registers its own undo before it acts, so a rollback can
never be forgotten in a scenario and always matches what actually happened.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

Phase = Literal["before", "during", "after"]
Stream = Literal["upstream", "downstream"]
# The Toxiproxy toxics kvdr's proxy and Shopify's server both know.
ToxicType = Literal[
    "latency", "bandwidth", "slow_close", "timeout", "reset_peer", "slicer", "limit_data"
]

Seconds = Annotated[float, Field(ge=0, le=86_400)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Objectives(_Model):
    """What the drill must show: at most `rpo_items` writes lost, the oldest of them at
    most `rpo_seconds` old, and writes succeeding again within `rto_seconds`."""

    rpo_items: int = Field(0, ge=0)
    rpo_seconds: Seconds = 0.0
    rto_seconds: Seconds = 60.0


class Load(_Model):
    """The write load: `rate` secret writes per second over `names` secret names."""

    rate: float = Field(5.0, gt=0, le=200)
    names: int = Field(8, ge=1, le=200)
    write_timeout_seconds: float = Field(5.0, gt=0, le=120)


class Probe(_Model):
    """A check of the stack. `lag_below`: the daemon's replication lag to `region` (every
    target when unset) is under `seconds`; `region_up` / `reads_answer`: the region's
    vault answers a read; `daemon_up`: the daemon's /status answers; `daemon_reports_error`:
    the daemon's status shows an error for the pair (an alert was raised);
    `backups_readable`: `kvdr snapshot list` lists the pair's backups (from the storage
    endpoint `endpoint` names: "secondary" holds only when the read-access secondary
    served it). It runs a command, so it suits an `await` step better than "during"."""

    probe: Literal[
        "lag_below",
        "region_up",
        "reads_answer",
        "daemon_up",
        "daemon_reports_error",
        "backups_readable",
    ]
    region: str | None = None
    seconds: Seconds = 30.0
    endpoint: Literal["any", "secondary"] = "any"
    # Hypothesis only: where it must hold (abort conditions are checked during the method).
    when: tuple[Phase, ...] = ("before", "after")
    # A probe that fails is retried this long before it counts as failed (lag falls,
    # a daemon takes a moment to start).
    within_seconds: Seconds = 0.0


class _Step(_Model):
    # Free text shown in the timeline.
    note: str = ""


class LoadStart(_Step):
    action: Literal["load_start"]


class LoadStop(_Step):
    action: Literal["load_stop"]


class Wait(_Step):
    action: Literal["wait"]
    seconds: Seconds


class ToxicFault(_Step):
    """A Toxiproxy toxic on a link; healed by `heal`, or after `duration_seconds`."""

    action: Literal["toxic"]
    id: str = Field(min_length=1, max_length=64)
    link: str = Field(min_length=1)
    type: ToxicType
    stream: Stream = "downstream"
    toxicity: float = Field(1.0, ge=0, le=1)
    attributes: dict[str, int] = Field(default_factory=dict)
    duration_seconds: Seconds | None = None


class LinkDown(_Step):
    """A link taken down: its listener refuses, open connections drop."""

    action: Literal["link_down"]
    id: str = Field(min_length=1, max_length=64)
    link: str = Field(min_length=1)
    duration_seconds: Seconds | None = None


class VaultErrors(_Step):
    """A share of a region's vault requests answered 429 Throttled or 503."""

    action: Literal["vault_errors"]
    id: str = Field(min_length=1, max_length=64)
    region: str
    status: Literal[429, 503] = 429
    share: float = Field(gt=0, le=1)
    retry_after_seconds: int = Field(1, ge=0, le=3600)
    duration_seconds: Seconds | None = None


class DenyAccess(_Step):
    """A region's vault refuses `principals` ("kvdr": the daemon's own; "*": everyone)."""

    action: Literal["deny_access"]
    id: str = Field(min_length=1, max_length=64)
    region: str
    principals: str | tuple[str, ...] = "kvdr"
    duration_seconds: Seconds | None = None


class ReadOnly(_Step):
    """A region's vault fenced read-only, as Azure does during its own failover."""

    action: Literal["read_only"]
    id: str = Field(min_length=1, max_length=64)
    region: str
    duration_seconds: Seconds | None = None


class DisableCertificate(_Step):
    """A certificate version disabled (Chaos Studio's Disable Certificate); re-enabled
    by `heal` or the rollback."""

    action: Literal["disable_certificate"]
    id: str = Field(min_length=1, max_length=64)
    certificate: str = Field(min_length=1, max_length=127)
    region: str | None = None  # default: the active region
    version: str | None = None  # default: the latest
    duration_seconds: Seconds | None = None


class AddCertificateVersion(_Step):
    """A new version of a certificate, the same material re-imported (Chaos Studio's
    Increment Certificate Version). Discrete: there is nothing to roll back."""

    action: Literal["add_certificate_version"]
    certificate: str = Field(min_length=1, max_length=127)
    region: str | None = None


class KillRegion(_Step):
    """A whole region gone: its vault's process killed (the local stack's emulator),
    started again by `heal` or the rollback."""

    action: Literal["kill_region"]
    id: str = Field(min_length=1, max_length=64)
    region: str
    duration_seconds: Seconds | None = None


class Heal(_Step):
    """End the fault `fault`, or every fault still on when `fault` is "*"."""

    action: Literal["heal"]
    fault: str


class Await(_Step):
    """Wait until `condition` holds, failing the drill after `timeout_seconds`."""

    action: Literal["await"]
    condition: Probe
    timeout_seconds: Seconds = 60.0


class KillDaemon(_Step):
    """SIGKILL the daemon (no drain, no last checkpoint), optionally mid-sync."""

    action: Literal["kill_daemon"]


class StartDaemon(_Step):
    action: Literal["start_daemon"]


class Switchover(_Step):
    """`kvdr failover switchover --to REGION`: planned, fenced, drained, loss 0."""

    action: Literal["switchover"]
    to: str


class Promote(_Step):
    """`kvdr failover promote --to REGION`: the primary is gone; loss is measured."""

    action: Literal["promote"]
    to: str
    force: bool = False


class Failback(_Step):
    """`kvdr failover failback`: back to the configured primary after a promotion."""

    action: Literal["failback"]


class Verify(_Step):
    """Account for every acknowledged write on the active region (RPO, duplicates)."""

    action: Literal["verify"]
    # How long replication may take to deliver the last writes before they count as lost.
    settle_seconds: Seconds = 30.0


Step = Annotated[
    LoadStart
    | LoadStop
    | Wait
    | ToxicFault
    | LinkDown
    | VaultErrors
    | DenyAccess
    | ReadOnly
    | DisableCertificate
    | AddCertificateVersion
    | KillRegion
    | Heal
    | Await
    | KillDaemon
    | StartDaemon
    | Switchover
    | Promote
    | Failback
    | Verify,
    Field(discriminator="action"),
]

FAULT_ACTIONS = (
    "toxic",
    "link_down",
    "vault_errors",
    "deny_access",
    "read_only",
    "disable_certificate",
    "kill_region",
)
# Steps that cut links or change the active region: refused on a production environment
# without --i-know-this-is-production.
DISRUPTIVE_ACTIONS = (
    "toxic",
    "link_down",
    "kill_region",
    "kill_daemon",
    "switchover",
    "promote",
    "failback",
)


class Scenario(_Model):
    """One drill scenario file."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9-]*$")
    description: str = ""
    # The pair the drill runs on; the configuration's first pair when unset.
    pair: str | None = None
    # The whole drill is aborted (rollbacks run) when it takes longer than this.
    max_duration_seconds: Seconds = 600.0
    objectives: Objectives = Field(default_factory=Objectives)
    load: Load = Field(default_factory=Load)
    hypothesis: tuple[Probe, ...] = ()
    abort: tuple[Probe, ...] = ()
    steps: tuple[Step, ...] = Field(min_length=1)

    @property
    def disruptive(self) -> bool:
        return any(step.action in DISRUPTIVE_ACTIONS for step in self.steps)

    @property
    def regions_named(self) -> set[str]:
        out: set[str] = set()
        for step in self.steps:
            for attr in ("region", "to"):
                value = getattr(step, attr, None)
                if isinstance(value, str):
                    out.add(value)
        return out

    def scaled(self, factor: float) -> Scenario:
        """The scenario with every wait and fault duration multiplied by `factor` (tests
        and quick demos); timeouts and objectives stay as written."""
        steps: list[Any] = []
        for step in self.steps:
            update: dict[str, float] = {}
            if isinstance(step, Wait):
                update["seconds"] = step.seconds * factor
            duration = getattr(step, "duration_seconds", None)
            if duration is not None:
                update["duration_seconds"] = duration * factor
            steps.append(step.model_copy(update=update))
        return self.model_copy(update={"steps": tuple(steps)})


@dataclass(frozen=True)
class ScenarioIssue:
    """One problem in a scenario: its key path (as in the file) and what is wrong."""

    path: tuple[str | int, ...]
    message: str

    @property
    def key(self) -> str:
        out = ""
        for part in self.path:
            out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
        return out


class ScenarioError(Exception):
    """A scenario that cannot run; `issues` lists every problem (`lines` their lines)."""

    def __init__(self, source: str, issues: Sequence[ScenarioIssue], text: str = "") -> None:
        self.source = source
        self.issues = list(issues)
        self.text = text
        super().__init__(
            f"{source}: {len(self.issues)} error{'s' if len(self.issues) != 1 else ''}: "
            + "; ".join(f"{i.key or '(file)'}: {i.message}" for i in self.issues)
        )


def _pydantic_issues(exc: ValidationError) -> list[ScenarioIssue]:
    issues = []
    for error in exc.errors(include_input=False, include_url=False):
        # A discriminated union puts the tag's value into the path: drop it, the line is
        # the step's.
        path = tuple(
            p
            for p in error["loc"]
            if not (isinstance(p, str) and p in _STEP_TAGS and error["loc"][0] == "steps")
        )
        message = str(error["msg"])
        if error["type"] == "union_tag_invalid":
            message = f"unknown action; expected one of {', '.join(sorted(_STEP_TAGS))}"
        elif error["type"] == "extra_forbidden":
            message = "unknown key"
        issues.append(ScenarioIssue(path, message))
    return issues


_STEP_TAGS = frozenset(
    {
        "load_start",
        "load_stop",
        "wait",
        "toxic",
        "link_down",
        "vault_errors",
        "deny_access",
        "read_only",
        "disable_certificate",
        "add_certificate_version",
        "kill_region",
        "heal",
        "await",
        "kill_daemon",
        "start_daemon",
        "switchover",
        "promote",
        "failback",
        "verify",
    }
)


def _method_issues(scenario: Scenario) -> list[ScenarioIssue]:
    """What a schema cannot say: fault ids unique and healed only once they exist, the
    load started before it is stopped, failback only after a promotion."""
    issues: list[ScenarioIssue] = []
    seen: set[str] = set()
    active: set[str] = set()
    loading = False
    promoted = False
    daemon_down = False
    for index, step in enumerate(scenario.steps):
        at: tuple[str | int, ...] = ("steps", index)
        if step.action in FAULT_ACTIONS:
            fid = str(getattr(step, "id"))  # noqa: B009 - every fault step has an id
            if fid in seen:
                issues.append(ScenarioIssue((*at, "id"), f"fault id {fid!r} is used twice"))
            seen.add(fid)
            if getattr(step, "duration_seconds", None) is None:
                active.add(fid)
        elif isinstance(step, Heal):
            if step.fault != "*" and step.fault not in active:
                issues.append(
                    ScenarioIssue(
                        (*at, "fault"),
                        f"no fault {step.fault!r} is on here (faults on: "
                        f"{', '.join(sorted(active)) or 'none'})",
                    )
                )
            active = set() if step.fault == "*" else active - {step.fault}
        elif isinstance(step, LoadStart):
            if loading:
                issues.append(ScenarioIssue(at, "the write load is already running"))
            loading = True
        elif isinstance(step, LoadStop):
            if not loading:
                issues.append(ScenarioIssue(at, "the write load is not running"))
            loading = False
        elif isinstance(step, Promote | Switchover):
            promoted = True
        elif isinstance(step, Failback) and not promoted:
            issues.append(ScenarioIssue(at, "failback without an earlier promote or switchover"))
        elif isinstance(step, KillDaemon):
            if daemon_down:
                issues.append(ScenarioIssue(at, "the daemon is already stopped"))
            daemon_down = True
        elif isinstance(step, StartDaemon):
            if not daemon_down:
                issues.append(ScenarioIssue(at, "the daemon is not stopped"))
            daemon_down = False
    for index, probe in enumerate(scenario.abort):
        if probe.when != ("before", "after"):
            issues.append(
                ScenarioIssue(
                    ("abort", index, "when"),
                    "abort conditions are checked during the method; drop `when`",
                )
            )
    return issues


def parse_scenario(text: str, source: str) -> Scenario:
    """The scenario in `text`; `ScenarioError` lists every problem found."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(source, [ScenarioIssue((), f"not valid TOML: {exc}")], text) from None
    try:
        scenario = Scenario.model_validate(raw)
    except ValidationError as exc:
        raise ScenarioError(source, _pydantic_issues(exc), text) from None
    issues = _method_issues(scenario)
    if issues:
        raise ScenarioError(source, issues, text)
    return scenario


BUILTIN_DIR = Path(__file__).resolve().parent / "scenarios"


def builtin_scenarios() -> dict[str, Path]:
    """Built-in scenario name -> its file."""
    return {path.stem: path for path in sorted(BUILTIN_DIR.glob("*.toml"))}


def load_scenario(name_or_path: str) -> tuple[Scenario, str]:
    """A built-in by name, or a file by path; returns the scenario and its source."""
    builtins = builtin_scenarios()
    path = builtins.get(name_or_path) or Path(name_or_path)
    if not path.is_file():
        known = ", ".join(builtins) or "none"
        raise ScenarioError(
            name_or_path,
            [ScenarioIssue((), f"no built-in scenario or file of that name (built-ins: {known})")],
        )
    text = path.read_text(encoding="utf-8")
    return parse_scenario(text, str(path)), str(path)
