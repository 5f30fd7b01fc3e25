"""`kvdr failover status|switchover` (and, from failover_ops, promote|failback|approve):
the control record of each pair and its transitions (docs/failover.md).

Exit codes: 0 done, 1 the operation failed or was refused (the reason printed), 2 a
usage or configuration error naming the input.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from kvdr.commands._daemon_lag import DaemonStatus, drain, lag_of, read_daemon
from kvdr.commands._fence_steps import open_fencer
from kvdr.commands._shared import (
    EXIT_FAILED,
    EXIT_OK,
    config_option,
    emit_json,
    load_config_or_exit,
)
from kvdr.commands._transition_steps import (
    BREAK_GLASS,
    approval_check,
    by_whom,
    chosen_pairs,
    committed_doc,
    drain_timeout_option,
    open_control,
    probe,
    quiet_logs,
    report,
    transition_options,
    transition_setup,
)

if TYPE_CHECKING:
    from failover.control_record import ControlRecord
    from failover.control_stores import QuorumRead
    from kvdr.commands._fence_steps import Fencer
    from kvdr.config import KvdrConfig
    from replicator.settings import PairSettings

# How many transitions `status` shows per pair.
LAST_TRANSITIONS = 5


@click.group("failover")
def command() -> None:
    """The control record: active region, epoch, switchover."""


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
    health, errors = await probe(config, regions)
    # One reading of the daemon's /status serves every target's lag.
    daemon: DaemonStatus | None = None
    for doc in out:
        pair = next(p for p in pairs if p.name == doc["pair"])
        doc["health"] = {r: {"up": health.get(r), "error": errors.get(r)} for r in pair.regions}
        lags: dict[str, Any] = {}
        for region in pair.regions:
            if region == doc.get("active_region"):
                continue
            if daemon is None:
                daemon = await asyncio.to_thread(read_daemon, config, None)
            lag, why = lag_of(daemon, pair.name, region)
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
    pairs = chosen_pairs(config, pair_name)
    quiet_logs(config)
    doc = asyncio.run(_status(config, pairs))
    if as_json:
        emit_json(doc)
    else:
        _render_status(doc)
    raise SystemExit(EXIT_OK if doc["ok"] else EXIT_FAILED)


@command.command("switchover")
@transition_options(
    "The pair to switch.",
    "The region to make active.",
    "planned switchover",
    BREAK_GLASS,
    drain_timeout_option(30.0, "Seconds to wait for REGION's lag to reach 0."),
)
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
    question = f"Make {to} the active region of pair {pair_name}?"
    config = load_config_or_exit(config_path)
    pair = transition_setup(
        config,
        pair_name,
        to,
        (yes, question, "a switchover changes the active region"),
        break_glass,
        reason,
    )
    from kvdr.audit_trail import audited

    doc, code = asyncio.run(
        audited(
            config,
            "failover.switchover",
            _switchover(config, pair, to, reason, url, started, break_glass, drain_timeout),
            pair=pair.name,
            detail={"to": to, "reason": reason, "break_glass": break_glass},
        )
    )
    report(doc, code, as_json)


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
        record: ControlRecord | None = None
        try:
            record, _ = await current_record(control, pair.name, pair.primary.region, pair.regions)
            active = record.active_region
            health, errors = await probe(config, sorted({active, to}))
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
    return await committed_doc(config, doc, result, fencer)


async def _unfence(fencer: Fencer, region: str | None, record: ControlRecord | None) -> None:
    """A switch that did not happen leaves the old primary as it found it (nothing was
    fenced when the record could not even be read)."""
    from failover.control_transitions import with_fence_updates

    if region is not None and record is not None:
        await fencer.lift(region, with_fence_updates(record, fencer.updates))


# promote, failback, approve and check (registered on `command` when imported).
from kvdr.commands import failover_ops  # noqa: E402, F401
from kvdr.commands.failover_check import check_command  # noqa: E402

command.add_command(check_command)
