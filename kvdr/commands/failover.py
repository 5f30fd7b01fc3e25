"""`kvdr failover status|switchover`: the control record of each pair, and the planned
switchover (docs/failover.md says what is built and what is not).

Exit codes: 0 done, 1 the operation failed or was refused (the reason printed), 2 a
usage or configuration error naming the input.
"""

from __future__ import annotations

import asyncio
import getpass
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

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
    from failover.control_stores import ControlStores, QuorumRead
    from failover.switchover import Checks
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
    from failover.control_stores import ControlStores
    from storage.open import open_store
    from vault.credentials import build_credential

    settings = config.failover.control_stores or (config.storage,)
    async with AsyncExitStack() as stack:
        credential = build_credential(config.credential)
        await stack.enter_async_context(credential)
        stores = [await stack.enter_async_context(open_store(one, credential)) for one in settings]
        yield ControlStores(stores, timeout_seconds=config.failover.store_timeout_seconds)


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

    out = []
    async with open_control(config) as control:
        for pair in pairs:
            try:
                read = await control.read(pair.name, split_ok=True)
            except (NoMajority, StorageError) as exc:
                out.append({"pair": pair.name, "record": "unreadable", "error": str(exc)})
                continue
            out.append(pair_view(pair, read))
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
                return LagReading(float(lag), int(pending), f"daemon {where}"), ""
        return None, f"{to} is not a target of pair {pair} at the daemon {where}"
    return None, f"the daemon at {where} does not know pair {pair}"


async def _checks(
    config: KvdrConfig, pair: PairSettings, active: str, to: str, url: str | None
) -> Checks:
    from failover.switchover import Checks

    health, errors = await _probe(config, sorted({active, to}))
    lag, why = _lag(config, pair.name, to, url)
    return Checks(health=health, health_errors=errors, lag=lag, lag_unknown_because=why)


@command.command("switchover")
@click.option("--pair", "pair_name", required=True, help="The pair to switch.")
@click.option("--to", "to", required=True, help="The region to make active.")
@click.option("--reason", default="planned switchover", show_default=True)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--url", default=None, help="Daemon base URL, for the lag (default: config).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@config_option()
def switchover_command(
    pair_name: str,
    to: str,
    reason: str,
    yes: bool,
    url: str | None,
    as_json: bool,
    config_path: Path | None,
) -> None:
    """Planned switchover of PAIR to REGION: both regions healthy, REGION's lag 0, then
    a new epoch in the control record. Fencing and reversing replication are not built
    (docs/failover.md)."""
    started = time.monotonic()
    config = load_config_or_exit(config_path)
    (pair,) = _pairs(config, pair_name)
    regions = [pair.primary.region, *(t.region for t in pair.secondaries)]
    if to not in regions:
        fail(
            f"--to: {to!r} is not a region of pair {pair.name} (regions: {', '.join(regions)})",
            EXIT_USAGE,
        )
    if not yes:
        if not sys.stdin.isatty():
            fail(
                "--yes is required when not on a terminal: a switchover changes the active region",
                EXIT_USAGE,
            )
        click.confirm(f"Make {to} the active region of pair {pair.name}?", abort=True, err=True)
    _quiet_logs(config)
    doc, code = asyncio.run(_switchover(config, pair, regions, to, reason, url, started))
    if as_json:
        emit_json(doc)
    elif code == EXIT_OK:
        click.echo(
            f"{pair.name}: {to} is active at epoch {doc['epoch']} "
            f"(from {doc['from_region']}); RTO {doc['rto_seconds']:.3f} s"
        )
        if doc.get("warning"):
            click.echo(f"warning: {doc['warning']}", err=True)
    else:
        for why in doc.get("refused", []):
            click.echo(f"kvdr: refused: {why}", err=True)
        if doc.get("error"):
            click.echo(f"kvdr: {doc['error']}", err=True)
    raise SystemExit(code)


async def _switchover(
    config: KvdrConfig,
    pair: PairSettings,
    regions: list[str],
    to: str,
    reason: str,
    url: str | None,
    started: float,
) -> tuple[dict[str, Any], int]:
    from failover.control_record import MalformedControlRecord, TransitionRefused
    from failover.control_stores import NoMajority
    from failover.switchover import SwitchoverRefused, current_record, switchover
    from storage.errors import StorageError

    by = f"{getpass.getuser()}@{socket.gethostname()}"
    doc: dict[str, Any] = {"ok": False, "pair": pair.name, "to_region": to}
    async with open_control(config) as control:
        try:
            record, _ = await current_record(control, pair.name, pair.primary.region, regions)
            checks = await _checks(config, pair, record.active_region, to, url)
            doc["checks"] = checks.to_dict()
            result = await switchover(
                control,
                pair=pair.name,
                primary=pair.primary.region,
                regions=regions,
                to=to,
                by=by,
                reason=reason,
                checks=checks,
                started=started,
            )
        except SwitchoverRefused as exc:
            doc.update(refused=exc.refusals, epoch=exc.record.epoch)
            return doc, EXIT_FAILED
        except (NoMajority, TransitionRefused, MalformedControlRecord, StorageError) as exc:
            doc["error"] = str(exc)
            return doc, EXIT_FAILED
    record = result.committed.record
    doc.update(
        ok=True,
        from_region=result.before.active_region,
        epoch=record.epoch,
        state=(result.finished or record).state,
        rto_seconds=round(result.rto_seconds, 3),
        loss_items=0,
        written=list(result.committed.written),
        missed=result.committed.missed,
        fences=dict(record.fences),
        not_built=[
            f"fencing {result.before.active_region} against application writes",
            "the replicator reacting to the epoch (reversing the direction)",
        ],
    )
    if result.finished is None:
        doc["warning"] = (
            f"the switch is committed but its RTO was not recorded: {result.finish_error}"
        )
    return doc, EXIT_OK


from kvdr.commands.failover_check import check_command  # noqa: E402 - registered last

command.add_command(check_command)
