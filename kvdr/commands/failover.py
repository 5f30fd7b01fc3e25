"""`kvdr failover status|switchover` (and, from failover_ops, promote|failback|approve):
the control record of each pair and its transitions (docs/failover.md).

Exit codes: 0 done, 1 the operation failed or was refused (the reason printed), 2 a
usage or configuration error naming the input.
"""

from __future__ import annotations

import asyncio
import getpass
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from kvdr.commands._fence_steps import open_fencer
from kvdr.commands._shared import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    config_option,
    emit_json,
    fail,
    load_config_or_exit,
)

if TYPE_CHECKING:
    from failover.control_record import ControlRecord
    from failover.control_stores import ControlStores, QuorumRead
    from failover.transition import TransitionResult
    from kvdr.commands._fence_steps import Fencer
    from kvdr.config import KvdrConfig
    from replicator.settings import PairSettings

# How many transitions `status` shows per pair.
LAST_TRANSITIONS = 5


@click.group("failover")
def command() -> None:
    """The control record: active region, epoch, switchover."""


def _pairs(config: KvdrConfig, name: str | None) -> list[PairSettings]:
    pairs = list(config.replicator.pairs)
    if name is None:
        return pairs
    chosen = [p for p in pairs if p.name == name]
    if not chosen:
        known = ", ".join(p.name for p in pairs) or "none"
        fail(f"--pair: no pair named {name!r} in the configuration (pairs: {known})", EXIT_USAGE)
    return chosen


@asynccontextmanager
async def open_control(config: KvdrConfig) -> AsyncIterator[ControlStores]:
    from kvdr.wiring import open_control_stores
    from vault.credentials import build_credential

    async with AsyncExitStack() as stack:
        credential = build_credential(config.credential)
        await stack.enter_async_context(credential)
        yield await open_control_stores(config, stack, credential)


def pair_view(pair: PairSettings, read: QuorumRead) -> dict[str, Any]:
    """One pair's part of `status`: the committed record, or the configured primary
    at epoch 0 when none was written."""
    record = read.committed
    regions = [pair.primary.region, *(t.region for t in pair.secondaries)]
    doc: dict[str, Any] = {
        "pair": pair.name,
        "configured_primary": pair.primary.region,
        "record": "committed" if record else ("undecided" if read.undecided else "none"),
        "active_region": record.active_region if record else pair.primary.region,
        "epoch": record.epoch if record else 0,
        "state": record.state if record else "normal",
        "fences": dict(record.fences) if record else {r: "none" for r in regions},
        "last_transitions": [t.to_dict() for t in (record.history if record else ())][
            -LAST_TRANSITIONS:
        ][::-1],
        "majority": read.majority,
        "stores": [v.to_dict() for v in read.views],
    }
    if read.undecided:
        doc["active_region"] = doc["epoch"] = doc["state"] = None
        doc["error"] = "no majority of control stores agrees on the record"
    return doc


async def _status(config: KvdrConfig, pairs: list[PairSettings]) -> dict[str, Any]:
    from failover.control_stores import NoMajority
    from storage.errors import StorageError

    out: list[dict[str, Any]] = []
    async with open_control(config) as control:
        for pair in pairs:
            try:
                read = await control.read(pair.name, split_ok=True)
            except (NoMajority, StorageError) as exc:
                out.append({"pair": pair.name, "record": "unreadable", "error": str(exc)})
                continue
            out.append(pair_view(pair, read))
    # Health (one probe per region) and each target's lag as the daemon measures it.
    regions = sorted({r for pair in pairs for r in pair.regions})
    health, errors = await _probe(config, regions)
    for doc in out:
        pair = next(p for p in pairs if p.name == doc["pair"])
        doc["health"] = {r: {"up": health.get(r), "error": errors.get(r)} for r in pair.regions}
        lags: dict[str, Any] = {}
        for region in pair.regions:
            if region == doc.get("active_region"):
                continue
            lag, why = await asyncio.to_thread(_lag, config, pair.name, region, None)
            lags[region] = (
                {"lag_seconds": lag.lag_seconds, "pending": lag.pending}
                if lag is not None
                else {"unknown": why}
            )
        doc["lag"] = lags
    ok = all(p["record"] in ("committed", "none") for p in out)
    return {"ok": ok, "pairs": out}


def _render_status(doc: dict[str, Any]) -> None:
    for p in doc["pairs"]:
        if p["record"] in ("unreadable", "undecided"):
            click.echo(f"{p['pair']}: control record {p['record']}: {p.get('error')}")
            continue
        fences = ", ".join(f"{r} {f}" for r, f in sorted(p["fences"].items()))
        click.echo(
            f"{p['pair']}: active {p['active_region']}, epoch {p['epoch']}, {p['state']}"
            f" (configured primary {p['configured_primary']}; fences: {fences})"
        )
        health = ", ".join(
            f"{r} {'up' if h['up'] else 'DOWN'}" for r, h in sorted(p["health"].items())
        )
        lags = ", ".join(
            f"{r} {v['lag_seconds']} s / {v['pending']} pending"
            if "unknown" not in v
            else f"{r} unknown"
            for r, v in sorted(p["lag"].items())
        )
        click.echo(f"  health: {health}; lag: {lags or '-'}")
        if p["record"] == "none":
            click.echo("  no transition yet: the configured primary is active")
        for t in p["last_transitions"]:
            rto = "-" if t["rto_seconds"] is None else f"{t['rto_seconds']:.3f} s"
            loss = "-" if t["loss_items"] is None else str(t["loss_items"])
            click.echo(
                f"  epoch {t['epoch']} {t['kind']} {t['from_region']} -> {t['to_region']} "
                f"at {t['at']} by {t['by']}: RTO {rto}, loss {loss} ({t['reason']})"
            )
        missing = [s for s in p["stores"] if s["error"]]
        for s in missing:
            click.echo(f"  store {s['store']}: {s['error']}")


@command.command("status")
@click.option("--pair", "pair_name", default=None, help="Only this pair.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@config_option()
def status(pair_name: str | None, as_json: bool, config_path: Path | None) -> None:
    """Active region, epoch, state, fences and the last transitions of each pair."""
    config = load_config_or_exit(config_path)
    pairs = _pairs(config, pair_name)
    _quiet_logs(config)
    doc = asyncio.run(_status(config, pairs))
    if as_json:
        emit_json(doc)
    else:
        _render_status(doc)
    raise SystemExit(EXIT_OK if doc["ok"] else EXIT_FAILED)


def _quiet_logs(config: KvdrConfig) -> None:
    from kvdr.log_setup import configure_logging

    configure_logging(config.daemon.log_format, "warning")


async def _probe(config: KvdrConfig, regions: list[str]) -> tuple[dict[str, Any], dict[str, str]]:
    from failover.health import RegionProber
    from vault.adapter import KeyVaultAdapter
    from vault.client import VaultItems
    from vault.credentials import build_credential

    async with AsyncExitStack() as stack:
        credential = build_credential(config.credential)
        await stack.enter_async_context(credential)
        vaults: dict[str, VaultItems] = {}
        for region in regions:
            vaults[region] = await stack.enter_async_context(
                KeyVaultAdapter.open(config.regions[region], credential, config.vault)
            )
        prober = RegionProber(vaults, failures_to_down=1, timeout_seconds=5.0)
        await prober.probe_all()
        health = {r: h.up for r, h in prober.health.items()}
        errors = {r: h.error for r, h in prober.health.items() if h.error}
        return health, errors


def _lag(config: KvdrConfig, pair: str, to: str, url: str | None) -> tuple[Any, str]:
    """The daemon's lag for `pair` -> `to`, from its /status (the only place it is
    measured while changes flow)."""
    from failover.switchover import LagReading
    from kvdr.commands.status import StatusRefused, daemon_status, local_url

    base = url or local_url(config.daemon.listen_host, config.daemon.listen_port)
    where = base.rstrip("/") + "/status"
    try:
        doc = daemon_status(where, token=config.daemon.status_token)
    except StatusRefused as exc:
        return None, str(exc)
    if doc is None:
        return None, f"no daemon answers at {where}; lag is measured by `kvdr run`"
    for p in doc.get("pairs", []):
        if p.get("name") != pair:
            continue
        for t in p.get("targets", []):
            if t.get("region") == to:
                lag, pending = t.get("lag_seconds"), t.get("pending")
                if lag is None or pending is None:
                    owner = p.get("owner") or "another daemon"
                    return None, f"the daemon at {where} does not run the pair ({owner} does)"
                passes = int(p.get("passes") or 0)
                begun = int(p.get("passes_begun") or passes)
                source = f"daemon {where}"
                items = tuple(_pending_items(t.get("pending_items")))
                reading = LagReading(float(lag), int(pending), source, passes, begun)
                return replace(reading, pending_items=items), ""
        return None, f"{to} is not a target of pair {pair} at the daemon {where}"
    return None, f"the daemon at {where} does not know pair {pair}"


def _pending_items(raw: object) -> list[tuple[str, float]]:
    """The daemon's named pending items (`kind/name`, ISO time); what does not parse
    is left out (an older daemon sends none)."""
    items: list[tuple[str, float]] = []
    for entry in raw if isinstance(raw, list) else []:
        try:
            items.append((str(entry["item"]), datetime.fromisoformat(entry["since"]).timestamp()))
        except (KeyError, TypeError, ValueError):
            continue
    return items


def by_whom() -> str:
    """Who runs the command, for the history."""
    return f"{getpass.getuser()}@{socket.gethostname()}"


def confirm_or_exit(yes: bool, question: str, what: str) -> None:
    """Without --yes: ask on a terminal, refuse without one (exit 2)."""
    if yes:
        return
    if not sys.stdin.isatty():
        fail(f"--yes is required when not on a terminal: {what}", EXIT_USAGE)
    click.confirm(question, abort=True, err=True)


def region_of(pair: PairSettings, option: str, region: str) -> str:
    if region not in pair.regions:
        fail(
            f"{option}: {region!r} is not a region of pair {pair.name} "
            f"(regions: {', '.join(pair.regions)})",
            EXIT_USAGE,
        )
    return region


def approval_check(
    config: KvdrConfig, break_glass: bool
) -> Callable[[ControlRecord], tuple[list[str], tuple[str, ...]]]:
    """Refusals for too few approvals, and the operators whose approvals count."""
    from datetime import UTC, datetime

    from failover.control_transitions import valid_approvals
    from failover.switchover import approval_refusals

    settings = config.failover

    def check(record: ControlRecord) -> tuple[list[str], tuple[str, ...]]:
        if settings.require_approvals == 0:
            return [], ()
        approved = valid_approvals(record, datetime.now(UTC), settings.approval_window_seconds)
        return (
            approval_refusals(
                settings.require_approvals,
                approved,
                break_glass,
                settings.approval_window_seconds,
            ),
            approved,
        )

    return check


def break_glass_or_exit(break_glass: bool, reason: str | None) -> None:
    if break_glass and not (reason and reason.strip()):
        fail("--break-glass needs --reason TEXT: the bypass is recorded with it", EXIT_USAGE)


async def drain(
    config: KvdrConfig, pair: str, to: str, url: str | None, seconds: float
) -> tuple[Any, str]:
    """Poll the daemon's lag for `pair` -> `to` until it is 0 with nothing pending, or
    `seconds` pass; the last reading (None: unknown) and why it is unknown.

    Lag 0 proves only what the daemon has seen. A write acknowledged just before the
    fence may not be in any listing yet, so the drain also waits for the daemon to
    finish a listing that began after the first reading (which came after the fence):
    one more than the passes begun at that reading. No clocks of two hosts are
    compared."""
    from dataclasses import replace

    deadline = time.monotonic() + seconds
    first: int | None = None
    while True:
        lag, why = await asyncio.to_thread(_lag, config, pair, to, url)
        if lag is not None and first is None:
            first = lag.passes_begun
        fresh = lag is not None and first is not None and lag.passes >= first + 1
        if lag is None or (lag.caught_up and fresh):
            return lag, why
        if time.monotonic() >= deadline:
            return replace(lag, unproven=not fresh), why
        await asyncio.sleep(0.1)


@command.command("switchover")
@click.option("--pair", "pair_name", required=True, help="The pair to switch.")
@click.option("--to", "to", required=True, help="The region to make active.")
@click.option("--reason", default="planned switchover", show_default=True)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--break-glass", is_flag=True, help="Bypass required approvals (recorded).")
@click.option(
    "--drain-timeout",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="Seconds to wait for REGION's lag to reach 0.",
)
@click.option("--url", default=None, help="Daemon base URL, for the lag (default: config).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@config_option()
def switchover_command(
    pair_name: str,
    to: str,
    reason: str,
    yes: bool,
    break_glass: bool,
    drain_timeout: float,
    url: str | None,
    as_json: bool,
    config_path: Path | None,
) -> None:
    """Planned switchover of PAIR to REGION: both regions healthy, REGION's lag drained
    to 0, a new epoch in the control record; the daemon then mirrors from REGION."""
    started = time.monotonic()
    config = load_config_or_exit(config_path)
    (pair,) = _pairs(config, pair_name)
    region_of(pair, "--to", to)
    break_glass_or_exit(break_glass, reason if break_glass else None)
    confirm_or_exit(
        yes,
        f"Make {to} the active region of pair {pair.name}?",
        "a switchover changes the active region",
    )
    _quiet_logs(config)
    doc, code = asyncio.run(
        _switchover(config, pair, to, reason, url, started, break_glass, drain_timeout)
    )
    report(doc, code, as_json)


def report(doc: dict[str, Any], code: int, as_json: bool) -> NoReturn:
    """Print a transition's outcome and exit with `code`."""
    if as_json:
        emit_json(doc)
    elif code == EXIT_OK:
        click.echo(
            f"{doc['pair']}: {doc['to_region']} is active at epoch {doc['epoch']} "
            f"(from {doc['from_region']}); RTO {doc['rto_seconds']:.3f} s, "
            f"loss {doc.get('loss_items', 0)} items"
        )
        for item in doc.get("lost", []):
            click.echo(
                f"  lost: {item['kind']} {item['name']} versions {', '.join(item['versions'])} "
                f"(oldest {item['oldest_age_seconds']} s old)"
            )
        for item in doc.get("divergent", []):
            state = (
                "resynchronised from the active region"
                if item["resynced"]
                else ("kept: only this region has it" if item["kept"] else item["error"])
            )
            click.echo(
                f"  divergent: {item['kind']} {item['name']} versions "
                f"{', '.join(item['versions'])}: {state}"
            )
        for warning in doc.get("warnings", []):
            click.echo(f"warning: {warning}", err=True)
    else:
        for why in doc.get("refused", []):
            click.echo(f"kvdr: refused: {why}", err=True)
        if doc.get("error"):
            click.echo(f"kvdr: {doc['error']}", err=True)
    raise SystemExit(code)


def transition_doc(doc: dict[str, Any], result: TransitionResult) -> dict[str, Any]:
    record = result.committed.record
    doc.update(
        ok=True,
        from_region=result.before.active_region,
        epoch=record.epoch,
        state=(result.finished or record).state,
        rto_seconds=round(result.rto_seconds, 3),
        written=list(result.committed.written),
        missed=result.committed.missed,
        fences=dict((result.finished or record).fences),
    )
    if result.finished is None:
        doc.setdefault("warnings", []).append(
            f"the transition is committed but its RTO was not recorded: {result.finish_error}"
        )
    return doc


async def _switchover(
    config: KvdrConfig,
    pair: PairSettings,
    to: str,
    reason: str,
    url: str | None,
    started: float,
    break_glass: bool,
    drain_timeout: float,
) -> tuple[dict[str, Any], int]:
    from failover.control_record import MalformedControlRecord
    from failover.control_stores import NoMajority
    from failover.control_transitions import TransitionRefused
    from failover.switchover import Checks, SwitchoverRefused, current_record, switchover
    from storage.errors import StorageError

    doc: dict[str, Any] = {"ok": False, "pair": pair.name, "to_region": to}
    approvals = approval_check(config, break_glass)
    async with open_control(config) as control, open_fencer(config, pair.regions) as fencer:
        fenced: str | None = None
        try:
            record, _ = await current_record(control, pair.name, pair.primary.region, pair.regions)
            active = record.active_region
            health, errors = await _probe(config, sorted({active, to}))
            lag, why = (None, "not read: a region is not healthy")
            if all(health.get(r) for r in (active, to)) and not approvals(record)[0]:
                # Applications stop writing to the old primary, then what they wrote
                # before drains to REGION: loss 0 by construction.
                if await fencer.apply(active):
                    fenced = active if fencer.enabled else None
                    lag, why = await drain(config, pair.name, to, url, drain_timeout)
                else:
                    why = f"{active} could not be fenced, so its writes would not stop"
            checks = Checks(health=health, health_errors=errors, lag=lag, lag_unknown_because=why)
            doc["checks"] = checks.to_dict()
            result = await switchover(
                control,
                pair=pair.name,
                primary=pair.primary.region,
                regions=pair.regions,
                to=to,
                by=by_whom(),
                reason=reason,
                checks=checks,
                started=started,
                validity=config.failover.epoch_validity_seconds,
                approvals=lambda r: approvals(r)[0],
                approved_by=approvals(record)[1],
                break_glass=break_glass,
                fencer=fencer,
            )
        except SwitchoverRefused as exc:
            await _unfence(fencer, fenced, record)
            doc.update(refused=exc.refusals, epoch=exc.record.epoch, fence=fencer.doc())
            return doc, EXIT_FAILED
        except (NoMajority, TransitionRefused, MalformedControlRecord, StorageError) as exc:
            await _unfence(fencer, fenced, record)
            doc.update(error=str(exc), fence=fencer.doc())
            return doc, EXIT_FAILED
    doc["loss_items"] = 0
    doc["fence"] = fencer.doc()
    doc.setdefault("warnings", []).extend(fencer.warnings)
    doc["hooks"] = await run_transition_hooks(config, result)
    return transition_doc(doc, result), EXIT_OK


async def _unfence(fencer: Fencer, region: str | None, record: ControlRecord) -> None:
    """A switch that did not happen leaves the old primary as it found it."""
    from failover.control_transitions import with_fence_updates

    if region is not None:
        await fencer.lift(region, with_fence_updates(record, fencer.updates))


async def run_transition_hooks(config: KvdrConfig, result: TransitionResult) -> list[Any]:
    """The configured hooks, told of a committed transition; their results (a failing
    hook never undoes it)."""
    from failover.hooks import TransitionEvent, run_hooks

    if not config.failover.hooks:
        return []
    record = result.finished or result.committed.record
    entry = record.history[-1]
    event = TransitionEvent(
        pair=record.pair,
        kind=entry.kind,
        from_region=entry.from_region,
        to_region=entry.to_region,
        epoch=record.epoch,
        active_vault_url=config.regions[record.active_region].url,
        at=entry.at,
        by=entry.by,
        reason=entry.reason,
        rto_seconds=round(result.rto_seconds, 3),
        loss_items=entry.loss_items,
    )
    return [r.to_dict() for r in await run_hooks(config.failover.hooks, event)]


# promote, failback, approve and check (registered on `command` when imported).
from kvdr.commands import failover_ops  # noqa: E402, F401
from kvdr.commands.failover_check import check_command  # noqa: E402

command.add_command(check_command)
