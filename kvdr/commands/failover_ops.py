"""`kvdr failover promote|failback|approve` (the group is kvdr/commands/failover.py).

Exit codes: 0 done, 1 refused or failed (each reason printed), 2 a usage error.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from kvdr.commands._fence_steps import open_fencer
from kvdr.commands._shared import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    config_option,
    fail,
    load_config_or_exit,
)
from kvdr.commands.failover import (
    _lag,
    _pairs,
    _probe,
    _quiet_logs,
    approval_check,
    break_glass_or_exit,
    by_whom,
    command,
    confirm_or_exit,
    drain,
    open_control,
    region_of,
    report,
    run_transition_hooks,
    transition_doc,
)

if TYPE_CHECKING:
    from failover.control_record import ControlRecord
    from failover.promote import DivergentItem, LostItem
    from kvdr.config import KvdrConfig
    from replicator.settings import PairSettings
    from vault.client import VaultClient


@command.command("promote")
@click.option("--pair", "pair_name", required=True, help="The pair to promote a region of.")
@click.option("--to", "to", required=True, help="The region to make active.")
@click.option("--reason", default="the active region is unreachable", show_default=True)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--force",
    is_flag=True,
    help="Promote although the active region answers, or without a majority of control stores.",
)
@click.option("--break-glass", is_flag=True, help="Bypass required approvals (recorded).")
@click.option("--url", default=None, help="Daemon base URL, for the lag (default: config).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@config_option()
def promote_command(
    pair_name: str,
    to: str,
    reason: str,
    yes: bool,
    force: bool,
    break_glass: bool,
    url: str | None,
    as_json: bool,
    config_path: Path | None,
) -> None:
    """Make REGION active while the active region is gone: a new epoch, the old primary
    fenced when it answers again, the loss reported item by item."""
    started = time.monotonic()
    config = load_config_or_exit(config_path)
    (pair,) = _pairs(config, pair_name)
    region_of(pair, "--to", to)
    break_glass_or_exit(break_glass, reason if break_glass else None)
    confirm_or_exit(
        yes,
        f"Promote {to} to active for pair {pair.name}? Writes not yet copied are lost.",
        "a promotion changes the active region and may lose writes",
    )
    _quiet_logs(config)
    doc, code = asyncio.run(_promote(config, pair, to, reason, url, started, force, break_glass))
    report(doc, code, as_json)


async def _open_vaults(
    config: KvdrConfig, stack: AsyncExitStack, regions: list[str]
) -> dict[str, VaultClient]:
    from vault.adapter import KeyVaultAdapter
    from vault.credentials import build_credential

    credential = build_credential(config.credential)
    await stack.enter_async_context(credential)
    return {
        r: await stack.enter_async_context(
            KeyVaultAdapter.open(config.regions[r], credential, config.vault)
        )
        for r in regions
    }


async def _promote(
    config: KvdrConfig,
    pair: PairSettings,
    to: str,
    reason: str,
    url: str | None,
    started: float,
    force: bool,
    break_glass: bool,
) -> tuple[dict[str, Any], int]:
    from failover.control_record import MalformedControlRecord
    from failover.control_stores import NoMajority
    from failover.control_transitions import TransitionRefused, begin_promote, initial_record
    from failover.promote import promote_refusals
    from failover.transition import commit
    from storage.errors import StorageError

    doc: dict[str, Any] = {"ok": False, "pair": pair.name, "to_region": to, "forced": force}
    approvals = approval_check(config, break_glass)
    initial = initial_record(pair.name, pair.primary.region, pair.regions[1:])
    base = initial
    async with open_control(config) as control, open_fencer(config, pair.regions) as fencer:
        try:
            try:
                read = await control.read(pair.name, split_ok=True)
            except NoMajority as exc:
                if not force:
                    raise
                doc.setdefault("warnings", []).append(
                    f"FORCED without a majority of control stores ({exc}): another "
                    "process that reaches the others may promote too; fix the stores and "
                    "check `kvdr failover status` at once"
                )
                read = await control.read_forced(pair.name)
            base = read.base or initial
            active = base.active_region
            health, errors = await _probe(config, sorted({active, to}))
            refusals = [
                _named(r, base) if r.startswith(f"{to} is already") else r
                for r in promote_refusals(active, to, health, errors)
            ]
            if force:
                answered = [r for r in refusals if "answers: use" in r]
                for why in answered:
                    doc.setdefault("warnings", []).append(f"forced: {why}")
                refusals = [r for r in refusals if r not in answered]
            refused, approved = approvals(base)
            refusals += refused
            if refusals:
                doc.update(refused=refusals, epoch=base.epoch)
                return doc, EXIT_FAILED
            # What the daemon last measured for `to` (it may be unreachable with the
            # primary's region): the loss estimate if the journal cannot tell.
            lag, why = await asyncio.to_thread(_lag, config, pair.name, to, url)
            record = begin_promote(
                base,
                to,
                by=by_whom(),
                reason=reason,
                highest_epoch=read.highest_epoch,
                approved_by=approved,
                break_glass=break_glass,
                forced=force and not _has_majority(read),
            )
            loss: dict[str, Any] = {}

            async def measure_loss() -> None:
                # Fence what answers of the old primary (owed otherwise: the daemon
                # fences it when it is back), and count what it lost, off the RTO.
                await fencer.apply(active)
                loss.update(await _loss(config, pair, active, to, lag, why, url))

            async def lift() -> None:
                await fencer.lift(to, record)

            result = await commit(
                control,
                read,
                base,
                record,
                validity=config.failover.epoch_validity_seconds,
                started=started,
                forced=force,
                during_wait=measure_loss,
                after_wait=lift,
                loss=lambda: (loss.get("loss_items"), loss.get("loss_basis")),
                fences=lambda: dict(fencer.updates),
            )
        except NoMajority as exc:
            doc["error"] = await _lost_to(control, pair.name, base.epoch, exc)
            return doc, EXIT_FAILED
        except (TransitionRefused, MalformedControlRecord, StorageError) as exc:
            doc["error"] = str(exc)
            return doc, EXIT_FAILED
    doc.update(loss)
    doc["fence"] = fencer.doc()
    doc.setdefault("warnings", []).extend(fencer.warnings)
    doc["hooks"] = await run_transition_hooks(config, result)
    return transition_doc(doc, result), EXIT_OK


async def _lost_to(control: Any, pair: str, epoch: int, exc: Exception) -> str:
    """Why a transition did not commit; names the transition that won when one did."""
    from failover.control_stores import NoMajority

    try:
        read = await control.read(pair, repair=False)
    except NoMajority:
        return str(exc)
    won = read.committed
    if won is None or won.epoch <= epoch or not won.history:
        return str(exc)
    entry = won.history[-1]
    return (
        f"another {entry.kind} won: epoch {won.epoch} made {won.active_region} active "
        f"({entry.by} at {entry.at}); nothing was changed by this one ({exc})"
    )


def _named(refusal: str, record: ControlRecord) -> str:
    """ "already active" with the transition that made it so."""
    if not record.history:
        return refusal
    entry = record.history[-1]
    return f"{refusal} (epoch {record.epoch}, {entry.kind} by {entry.by} at {entry.at})"


def _has_majority(read: Any) -> bool:
    answered = sum(1 for v in read.views if v.error is None)
    return bool(answered >= read.majority)


async def _loss(
    config: KvdrConfig,
    pair: PairSettings,
    old: str,
    to: str,
    lag: Any,
    why: str,
    url: str | None = None,
) -> dict[str, Any]:
    """The promotion's loss, item by item: the versions the journal recorded on the old
    primary that `to` lacks (where there is a journal), and the items the daemon's lag
    tracker held as pending for `to` that the journal never saw (the old primary went
    before the replicator read them), unless `to` received them after the reading."""
    from failover.promote import pending_loss, pending_refs, vault_versions
    from vault.errors import VaultError

    pending = list(lag.pending_items) if lag is not None else []
    now = datetime.now(UTC)
    lost: list[LostItem] = []
    bases: list[str] = []
    problems: list[str] = []
    async with AsyncExitStack() as stack:
        vault = (await _open_vaults(config, stack, [to]))[to]
        if config.backups is None:
            problems.append("no [backups] journal to compare with")
        else:
            try:
                await _journal_settled(config, pair.name, url)
                lost = await _journal_loss(config, stack, vault, pair, now)
            except Exception as exc:
                problems.append(f"the journal could not be read ({type(exc).__name__}: {exc})")
            else:
                bases.append(f"the journal's record of {old} compared with {to}'s versions")
        present: dict[tuple[str, str], Any] = {}
        try:
            present = await vault_versions(vault, pending_refs(pending))
        except VaultError as exc:
            # Every pending item counted as lost: an upper bound, and said so.
            problems.append(f"{to}'s versions of the pending items could not be read ({exc})")
    if lag is None:
        if not bases:
            return {
                "loss_items": None,
                "lost": [],
                "loss_basis": f"unknown: {'; '.join(problems)}; {why}",
            }
        return {
            "loss_items": len(lost),
            "lost": [i.to_dict() for i in lost],
            "loss_basis": bases[0],
        }
    lost += pending_loss(pending, present, [(i.kind, i.name) for i in lost], now)
    unnamed = max(0, lag.pending - len(pending))
    bases.append(
        f"the daemon's pending items for {to} ({lag.pending} pending, lag "
        f"{lag.lag_seconds} s at its last reading, {lag.source})"
        + (f"; {unnamed} more pending that its status does not name" if unnamed else "")
    )
    return {
        "loss_items": len(lost) + unnamed,
        "lost": [item.to_dict() for item in lost],
        "loss_basis": "; ".join(bases + problems),
    }


async def _journal_settled(config: KvdrConfig, pair: str, url: str | None) -> None:
    """Give a running daemon up to 10 s to make its buffered journal changes of `pair`
    durable: the loss is measured against what the journal holds in storage."""
    from kvdr.commands.status import StatusRefused, daemon_status, local_url

    base = url or local_url(config.daemon.listen_host, config.daemon.listen_port)
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        try:
            doc = await asyncio.to_thread(
                daemon_status, base.rstrip("/") + "/status", token=config.daemon.status_token
            )
        except StatusRefused:
            return
        logs = [j for j in (doc or {}).get("journal", []) if j.get("pair") == pair]
        if not logs or (
            logs[0].get("buffered") == 0
            and logs[0].get("durable_sequence") == logs[0].get("last_sequence")
        ):
            return
        await asyncio.sleep(0.2)


async def _journal_loss(
    config: KvdrConfig, stack: AsyncExitStack, vault: Any, pair: PairSettings, now: datetime
) -> list[LostItem]:
    from backups.point_in_time import state_at
    from failover.promote import missing_versions, vault_versions
    from kvdr.wiring import open_backup_session

    session = await open_backup_session(config, stack)
    point = await state_at(
        session.backups.stores.primary, session.backups.keks, pair.name, now, now=now
    )
    recorded = {
        (ref.kind.value, ref.name): [v.props for v in item.versions.values()]
        for ref, item in point.state.items.items()
        if not item.deleted
    }
    refs = [(ref.kind, ref.name) for ref, item in point.state.items.items() if not item.deleted]
    present = await vault_versions(vault, refs)
    return missing_versions(recorded, present, now)


@command.command("failback")
@click.option("--pair", "pair_name", required=True, help="The pair to fail back.")
@click.option("--to", "to", default=None, help="Default: the region promoted away from.")
@click.option("--reason", default="failback", show_default=True)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--drain-timeout",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="Seconds to wait for the old primary to catch up.",
)
@click.option("--url", default=None, help="Daemon base URL, for the lag (default: config).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@config_option()
def failback_command(
    pair_name: str,
    to: str | None,
    reason: str,
    yes: bool,
    drain_timeout: float,
    url: str | None,
    as_json: bool,
    config_path: Path | None,
) -> None:
    """Once the old primary answers: list what was written on it after the promotion
    (kept in its history, resynchronised from the active region), wait until it caught
    up, then switch back to it as a planned switchover."""
    started = time.monotonic()
    config = load_config_or_exit(config_path)
    (pair,) = _pairs(config, pair_name)
    if to is not None:
        region_of(pair, "--to", to)
    confirm_or_exit(
        yes,
        f"Fail pair {pair.name} back?",
        "a failback changes the active region",
    )
    _quiet_logs(config)
    doc, code = asyncio.run(_failback(config, pair, to, reason, url, started, drain_timeout))
    report(doc, code, as_json)


def _promotion(record: ControlRecord) -> tuple[str, datetime] | None:
    for entry in reversed(record.history):
        if entry.kind == "promote":
            return entry.from_region, datetime.fromisoformat(entry.at)
    return None


async def _failback(
    config: KvdrConfig,
    pair: PairSettings,
    to: str | None,
    reason: str,
    url: str | None,
    started: float,
    drain_timeout: float,
) -> tuple[dict[str, Any], int]:
    from failover.control_record import MalformedControlRecord
    from failover.control_stores import NoMajority
    from failover.control_transitions import TransitionRefused, begin_failback, with_fence_updates
    from failover.promote import divergent_writes, resync_secrets
    from failover.transition import commit
    from storage.errors import StorageError
    from vault.errors import VaultError

    doc: dict[str, Any] = {"ok": False, "pair": pair.name, "to_region": to}
    async with open_control(config) as control, open_fencer(config, pair.regions) as fencer:
        try:
            read = await control.read(pair.name, split_ok=True)
            base = read.base
            promotion = _promotion(base) if base is not None else None
            if base is None or base.state != "failed-over" or promotion is None:
                state = base.state if base is not None else "normal (never failed over)"
                doc["refused"] = [f"the pair is {state}, not failed-over: nothing to fail back"]
                return doc, EXIT_FAILED
            old, since = promotion
            to = to or old
            doc["to_region"] = to
            active = base.active_region
            health, errors = await _probe(config, sorted({active, to}))
            down = [r for r in (active, to) if health.get(r) is not True]
            if down:
                doc["refused"] = [
                    f"{r} does not answer ({errors.get(r, 'not probed')}): a failback needs "
                    "both regions"
                    for r in down
                ]
                return doc, EXIT_FAILED
            async with AsyncExitStack() as stack:
                vaults = await _open_vaults(config, stack, [active, to])
                found = await divergent_writes(
                    vaults[to], vaults[active], pair.kinds, pair.selects, since
                )
                divergent: list[DivergentItem] = await resync_secrets(
                    vaults[to], vaults[active], found
                )
            doc["divergent"] = [d.to_dict() for d in divergent]
            unresolved = [d for d in divergent if d.error]
            if unresolved:
                doc["refused"] = [
                    f"{d.kind} {d.name} on {to} diverged and was not resynchronised: {d.error}"
                    for d in unresolved
                ]
                return doc, EXIT_FAILED
            # From here applications stop writing to the active region; what they wrote
            # drains to `to`, then `to` takes over.
            if not await fencer.apply(active):
                doc["refused"] = [f"{active} could not be fenced: {fencer.warnings[-1]}"]
                return doc, EXIT_FAILED
            lag, why = await drain(config, pair.name, to, url, drain_timeout)
            if lag is None or not lag.caught_up:
                await fencer.lift(active, with_fence_updates(base, fencer.updates))
                doc["refused"] = [
                    f"{to} has not caught up with {active}: "
                    + (
                        why
                        if lag is None
                        else f"lag {lag.lag_seconds} s, {lag.pending} pending after "
                        f"{drain_timeout:g} s"
                    )
                ]
                return doc, EXIT_FAILED
            read = await control.read(pair.name, split_ok=True)
            current = read.base or base
            record = begin_failback(
                current,
                to,
                by=by_whom(),
                reason=reason,
                highest_epoch=read.highest_epoch,
                loss_items=0,
                loss_basis=f"{to} lag 0 s and 0 pending before the switch ({lag.source}); "
                f"{len(divergent)} divergent items kept in {to}'s history",
            )
            record = with_fence_updates(record, fencer.updates)

            async def lift() -> None:
                await fencer.lift(to, record)

            result = await commit(
                control,
                read,
                current,
                record,
                validity=config.failover.epoch_validity_seconds,
                started=started,
                after_wait=lift,
                fences=lambda: dict(fencer.updates),
            )
        except (NoMajority, TransitionRefused, MalformedControlRecord, StorageError) as exc:
            doc["error"] = str(exc)
            return doc, EXIT_FAILED
        except VaultError as exc:
            doc["error"] = f"reading the vaults for divergent writes failed: {exc}"
            return doc, EXIT_FAILED
    doc["loss_items"] = 0
    doc["fence"] = fencer.doc()
    doc.setdefault("warnings", []).extend(fencer.warnings)
    doc["hooks"] = await run_transition_hooks(config, result)
    return transition_doc(doc, result), EXIT_OK


@command.command("approve")
@click.option("--pair", "pair_name", required=True, help="The pair the approval is for.")
@click.option("--operator", required=True, help="Who approves (one approval per operator).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@config_option()
def approve_command(pair_name: str, operator: str, as_json: bool, config_path: Path | None) -> None:
    """Approve the pair's next promote or switchover (`[failover] require_approvals`)."""
    config = load_config_or_exit(config_path)
    (pair,) = _pairs(config, pair_name)
    if not operator.strip():
        fail("--operator: must name the person approving", EXIT_USAGE)
    _quiet_logs(config)
    doc, code = asyncio.run(_approve(config, pair, operator.strip()))
    if as_json:
        from kvdr.commands._shared import emit_json

        emit_json(doc)
    elif code == EXIT_OK:
        click.echo(
            f"{pair.name}: approved by {operator}; {len(doc['approved'])} of "
            f"{doc['required']} approvals valid ({', '.join(doc['approved'])})"
        )
    else:
        click.echo(f"kvdr: {doc['error']}", err=True)
    raise SystemExit(code)


async def _approve(
    config: KvdrConfig, pair: PairSettings, operator: str
) -> tuple[dict[str, Any], int]:
    from failover.control_record import MalformedControlRecord
    from failover.control_stores import NoMajority
    from failover.control_transitions import approve, initial_record, valid_approvals
    from storage.errors import StorageError

    doc: dict[str, Any] = {"ok": False, "pair": pair.name, "operator": operator}
    async with open_control(config) as control:
        try:
            read = await control.read(pair.name, split_ok=True)
            base = read.base or initial_record(pair.name, pair.primary.region, pair.regions[1:])
            record = approve(
                base, operator, written=read.base is not None, highest_epoch=read.highest_epoch
            )
            committed = await control.write(read, record)
        except (NoMajority, MalformedControlRecord, StorageError) as exc:
            doc["error"] = str(exc)
            return doc, EXIT_FAILED
    approved = valid_approvals(
        committed.record, datetime.now(UTC), config.failover.approval_window_seconds
    )
    doc.update(
        ok=True,
        epoch=committed.record.epoch,
        approved=list(approved),
        required=config.failover.require_approvals,
    )
    return doc, EXIT_OK
