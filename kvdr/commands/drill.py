"""`kvdr drill list|validate|run`: disaster-recovery drills (docs/drills.md).

Exit codes: 0 the drill passed (or the file is valid), 1 the drill failed (the report
says why), 2 a usage error or an invalid scenario (every error with its line).
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from kvdr.commands._shared import EXIT_FAILED, EXIT_OK, EXIT_USAGE, emit_json, fail

if TYPE_CHECKING:
    from chaos.journal import DrillResult
    from chaos.scenario import Scenario, ScenarioError
    from chaos.target import DrillTarget

ENVIRONMENTS = ("drill", "staging", "production")


@click.group("drill")
def command() -> None:
    """Disaster-recovery drills: scenarios under injected faults, measured RPO and RTO."""


def issue_lines(error: ScenarioError) -> list[str]:
    """`FILE:LINE: key: message` for every issue (the line of the key, or of its table)."""
    from kvdr._config_lines import line_of, locate_keys

    lines = locate_keys(error.text) if error.text else {}
    out = []
    for issue in error.issues:
        line = line_of(lines, issue.path) if issue.path else None
        if line is None and "line" in issue.message:
            where = error.source
        else:
            where = f"{error.source}:{line or 1}"
        out.append(f"{where}: {issue.key + ': ' if issue.key else ''}{issue.message}")
    return out


def _load(name_or_path: str) -> tuple[Scenario, str]:
    from chaos.scenario import ScenarioError, load_scenario

    try:
        return load_scenario(name_or_path)
    except ScenarioError as exc:
        for line in issue_lines(exc):
            click.echo(line, err=True)
        sys.exit(EXIT_USAGE)


@command.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def list_command(as_json: bool) -> None:
    """The built-in scenarios (chaos/scenarios/)."""
    from chaos.scenario import builtin_scenarios, parse_scenario

    rows: list[dict[str, Any]] = []
    for name, path in builtin_scenarios().items():
        scenario = parse_scenario(path.read_text(encoding="utf-8"), str(path))
        rows.append(
            {
                "name": name,
                "description": scenario.description,
                "disruptive": scenario.disruptive,
                "objectives": scenario.objectives.model_dump(),
                "path": str(path),
            }
        )
    if as_json:
        emit_json({"scenarios": rows})
        return
    for row in rows:
        o = row["objectives"]
        click.echo(
            f"{row['name']:<20} RPO<={o['rpo_items']} writes/{o['rpo_seconds']:g}s "
            f"RTO<={o['rto_seconds']:g}s  {row['description']}"
        )


@command.command("validate")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
def validate_command(file: Path) -> None:
    """Check a scenario file; every error is printed with its line (exit 2)."""
    from chaos.scenario import ScenarioError, parse_scenario

    if not file.is_file():
        fail(f"scenario file {file} does not exist", EXIT_USAGE)
    try:
        scenario = parse_scenario(file.read_text(encoding="utf-8"), str(file))
    except ScenarioError as exc:
        for line in issue_lines(exc):
            click.echo(line, err=True)
        click.echo(f"{len(exc.issues)} error(s) in {file}", err=True)
        sys.exit(EXIT_USAGE)
    click.echo(f"{file}: scenario {scenario.name} is valid ({len(scenario.steps)} steps)")


def guard_environment(
    scenario: Scenario, environment: str, production_ok: bool, approvals: tuple[str, ...]
) -> str | None:
    """Why this scenario must not run on this environment, or None."""
    if environment not in ENVIRONMENTS:
        return (
            f"environment {environment!r}: mark the configuration with environment = "
            '"drill" or "staging" to drill it'
        )
    if environment == "production" and scenario.disruptive:
        if not production_ok:
            return (
                f"scenario {scenario.name} cuts links or changes the active region and the "
                "configuration is a production environment: refused without "
                "--i-know-this-is-production"
            )
        if not approvals:
            return "--i-know-this-is-production needs at least one --approved-by NAME"
    return None


@command.command("run")
@click.argument("scenario_name")
@click.option(
    "--stack",
    type=click.Choice(["local", "config"]),
    default=None,
    help="local: a throwaway local stack on free ports (the default without --config); "
    "config: the environment of --config.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Drill the environment of this configuration (environment = drill|staging).",
)
@click.option("--report", "report_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the report document.")
@click.option("--pair", "pair_name", default=None, help="The pair to drill.")
@click.option(
    "--time-scale",
    type=click.FloatRange(min=0.01, max=100),
    default=1.0,
    show_default=True,
    help="Multiply the scenario's waits and fault durations (quick runs, tests).",
)
@click.option("--keep-stack", is_flag=True, help="Keep the local stack's folder (its logs).")
@click.option(
    "--proxy-api",
    default="127.0.0.1:8474",
    show_default=True,
    help="--stack config: the Toxiproxy API of the environment's links.",
)
@click.option(
    "--emulator-api",
    "emulator_apis",
    multiple=True,
    metavar="REGION=URL",
    help="--stack config: a region's emulator management URL (vault faults).",
)
@click.option("--i-know-this-is-production", "production_ok", is_flag=True)
@click.option("--approved-by", "approvals", multiple=True, help="Who approved a production drill.")
def run_command(
    scenario_name: str,
    stack: str | None,
    config_path: Path | None,
    report_dir: Path | None,
    as_json: bool,
    pair_name: str | None,
    time_scale: float,
    keep_stack: bool,
    proxy_api: str,
    emulator_apis: tuple[str, ...],
    production_ok: bool,
    approvals: tuple[str, ...],
) -> None:
    """Run a drill: SCENARIO_NAME is a built-in (`kvdr drill list`) or a file."""
    scenario, source = _load(scenario_name)
    if time_scale != 1.0:
        scenario = scenario.scaled(time_scale)
    where = stack or ("config" if config_path is not None else "local")
    if where == "config" and config_path is None:
        fail("--stack config needs --config FILE", EXIT_USAGE)
    if where == "local" and config_path is not None:
        fail(
            "--config and --stack local exclude each other: the local stack has its own", EXIT_USAGE
        )
    from kvdr.log_setup import configure_logging

    configure_logging("console", "warning")
    if where == "local":
        result = _run_local(scenario, source, pair_name, keep_stack)
    else:
        assert config_path is not None
        result = _run_configured(
            scenario,
            source,
            config_path,
            pair_name,
            proxy_api,
            emulator_apis,
            production_ok,
            approvals,
        )
    _finish(result, report_dir, as_json, config_path if where == "config" else None)


def _install_signals(drill: Any) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, drill.interrupt, sig.name)


async def _drill_on(scenario: Scenario, source: str, target: DrillTarget) -> DrillResult:
    """Run the drill on `target`, Ctrl-C and SIGTERM interrupting it (rollbacks run)."""
    from chaos.drill import Drill

    drill = Drill(scenario, source, target)
    _install_signals(drill)
    return await drill.run()


def _run_local(scenario: Scenario, source: str, pair_name: str | None, keep: bool) -> DrillResult:
    from kvdr.drill_stack import LocalDrillStack, local_links, open_target

    project_root = Path(__file__).resolve().parents[2]
    local = LocalDrillStack.in_temporary_folder(keep=keep, project_root=project_root)
    click.echo(f"kvdr: drill {scenario.name}: starting a local stack in {local.root}", err=True)

    async def go() -> DrillResult:
        config = local.start()
        assert local.daemon is not None and local.config_path is not None
        await local.daemon.start()
        async with open_target(
            config,
            kind="local",
            environment="drill",
            pair_name=pair_name or scenario.pair,
            faults=local.faults(),
            links=local_links(),
            emulators=local.emulators(),
            daemon=local.daemon,
            config_path=local.config_path,
            cwd=local.root,
            region_processes=local.region_processes(),
        ) as target:
            return await _drill_on(scenario, source, target)

    from kvdr.local_stack import StackError

    try:
        return asyncio.run(go())
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)
    except StackError as exc:
        where = f"logs in {local.root}" if keep else "--keep-stack keeps its logs"
        fail(f"the drill's local stack did not start: {exc} ({where})", EXIT_FAILED)
    finally:
        local.stop()
        if keep:
            click.echo(f"kvdr: the drill stack's folder is kept: {local.root}", err=True)


class RemoteDaemon:
    """A daemon this drill did not start: it can be asked, not killed."""

    def __init__(self, url: str, token: str | None) -> None:
        self.url, self.token = url, token

    @property
    def running(self) -> bool:
        return True

    async def status(self) -> dict[str, Any] | None:
        from kvdr.commands.status import StatusRefused, daemon_status

        try:
            return await asyncio.to_thread(daemon_status, self.url + "/status", 3.0, self.token)
        except StatusRefused:
            return None

    async def kill(self) -> None:
        from chaos.errors import FaultError

        raise FaultError("kill_daemon needs a daemon the drill started (--stack local)")

    async def start(self) -> None:
        return None


def _run_configured(
    scenario: Scenario,
    source: str,
    config_path: Path,
    pair_name: str | None,
    proxy_api: str,
    emulator_apis: tuple[str, ...],
    production_ok: bool,
    approvals: tuple[str, ...],
) -> DrillResult:
    from chaos.faults import Faults
    from kvdr.commands._shared import load_config_or_exit
    from kvdr.commands.status import local_url
    from kvdr.drill_stack import open_target

    config = load_config_or_exit(config_path)
    refused = guard_environment(scenario, config.environment or "", production_ok, approvals)
    if refused:
        fail(refused, EXIT_USAGE)
    host, _, port = proxy_api.rpartition(":")
    if not host or not port.isdigit():
        fail(f"--proxy-api: {proxy_api!r} is not HOST:PORT", EXIT_USAGE)
    faults = Faults(host, int(port))
    absolute_config = config_path.resolve()
    here = Path.cwd()
    from chaos.target import EmulatorControl

    emulators = {}
    for spec in emulator_apis:
        region, _, url = spec.partition("=")
        if region not in config.regions or not url.startswith("https://"):
            fail(
                f"--emulator-api: {spec!r} must be REGION=https://HOST:PORT with a region of "
                f"the configuration ({', '.join(config.regions)})",
                EXIT_USAGE,
            )
        emulators[region] = EmulatorControl(region, url.rstrip("/"), config.vault.ca_file)

    async def go() -> DrillResult:
        from chaos.errors import FaultApiUnreachable

        try:
            links = sorted((await faults.links()).keys())
        except FaultApiUnreachable as exc:
            # A scenario without link faults needs no fault proxy; one with them fails
            # at its first link step, naming it.
            click.echo(f"kvdr: drill: {exc}; link faults cannot be injected", err=True)
            links = []
        daemon = RemoteDaemon(
            local_url(config.daemon.listen_host, config.daemon.listen_port),
            config.daemon.status_token,
        )
        async with open_target(
            config,
            kind="configured",
            environment=config.environment or "",
            pair_name=pair_name or scenario.pair,
            faults=faults,
            links=links,
            emulators=emulators,
            daemon=daemon,
            config_path=absolute_config,
            cwd=here,
        ) as target:
            return await _drill_on(scenario, source, target)

    try:
        return asyncio.run(go())
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)


async def _publish_record(config_path: Path, doc: dict[str, Any]) -> dict[str, str]:
    """Leave the drill's record in the configuration's storage, where every daemon
    exports it as `kvdr_drill_*` (kvdr/drill_records.py). A failure is reported, not
    fatal: the drill's verdict stands."""
    from kvdr.config import load_config
    from kvdr.drill_records import publish
    from storage.open import open_store
    from vault.credentials import build_credential

    try:
        config = load_config(config_path)
        credential = build_credential(config.credential)
        async with credential, open_store(config.storage, credential) as store:
            return {"blob": await publish(store, doc), "store": store.description}
    except Exception as exc:
        return {"error": f"the drill record was not written ({type(exc).__name__}: {exc})"}


async def _audit_drill(config_path: Path, doc: dict[str, Any]) -> None:
    """One `drill.run` entry in the audit trail: the scenario, verdict and measures."""
    from kvdr.audit_trail import command_audit, outline
    from kvdr.config import ConfigError, load_config

    try:
        config = load_config(config_path)
    except ConfigError:
        return  # loaded once already by the drill; nothing changed it since
    async with command_audit(config) as audit:
        audit.record(
            "drill.run",
            "ok" if doc.get("passed") else "failed",
            pair=doc.get("pair") if isinstance(doc.get("pair"), str) else None,
            detail=outline(doc),
        )


def _finish(
    result: DrillResult, report_dir: Path | None, as_json: bool, config_path: Path | None = None
) -> None:
    from chaos.report import report_document, write_reports
    from kvdr.drill_metrics import record_result

    doc = write_reports(result, report_dir) if report_dir else report_document(result)
    record_result(doc, report_dir)
    if config_path is not None:
        doc["record"] = asyncio.run(_publish_record(config_path, doc))
        asyncio.run(_audit_drill(config_path, doc))
    if as_json:
        emit_json(doc)
    else:
        m = doc["measured"]
        rto = "-" if m["rto_seconds"] is None else f"{m['rto_seconds']:.2f} s"
        click.echo(
            f"drill {doc['scenario']}: {doc['verdict'].upper()} ({doc['status']}); RPO "
            f"{m['rpo_items']} writes / {m['rpo_seconds']:.2f} s, RTO {rto}; "
            f"{m['writes_acknowledged']} writes acknowledged, {m['writes_failed']} failed"
        )
        for why in doc["why_not"]:
            click.echo(f"  {why}")
        if report_dir:
            click.echo(f"  reports in {report_dir}")
        record = doc.get("record", {})
        if "blob" in record:
            click.echo(f"  record {record['blob']} in {record['store']} (the daemons export it)")
        elif "error" in record:
            click.echo(f"  warning: {record['error']}", err=True)
    raise SystemExit(EXIT_OK if doc["passed"] else EXIT_FAILED)
