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

from kvdr.commands._daemon_lag import drain, lag_of, read_daemon
from kvdr.commands._fence_steps import open_fencer
from kvdr.commands._promote_loss import promote_loss
from kvdr.commands._shared import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    config_option,
    emit_json,
    fail,
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
    open_vaults,
    probe,
    quiet_logs,
    report,
    transition_options,
    transition_setup,
)
from kvdr.commands.failover import command

if TYPE_CHECKING:
    from failover.control_record import ControlRecord
    from failover.promote import DivergentItem
    from kvdr.config import KvdrConfig
    from replicator.settings import PairSettings


@command.command("promote")
@transition_options(
    "The pair to promote a region of.",
    "The region to make active.",
    "the active region is unreachable",
    click.option(
        "--force",
        is_flag=True,
        help="Promote although the active region answers, or without a majority of control stores.",
    ),
    BREAK_GLASS,
)
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
    question = f"Promote {to} to active for pair {pair_name}? Writes not yet copied are lost."
    config = load_config_or_exit(config_path)
    pair = transition_setup(
        config,
        pair_name,
        to,
        (yes, question, "a promotion changes the active region and may lose writes"),
        break_glass,
        reason,
    )
    from kvdr.audit_trail import audited

    doc, code = asyncio.run(
        audited(
            config,
            "failover.promote",
            _promote(config, pair, to, reason, url, started, force, break_glass),
            pair=pair.name,
            detail={"to": to, "reason": reason, "force": force, "break_glass": break_glass},
        )
    )
    report(doc, code, as_json)


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
            health, errors = await probe(config, sorted({active, to}))
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
            daemon = await asyncio.to_thread(read_daemon, config, url)
            lag, why = lag_of(daemon, pair.name, to)
            # Whether the journal is durable, too, while the old primary did not answer:
            # then the daemon cannot journal more of it (forced past an answering one,
            # the journal is read again after the fence).
            settled = daemon if health.get(active) is not True else None
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
                loss.update(await promote_loss(config, pair, active, to, lag, why, url, settled))

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
    return await committed_doc(config, doc, result, fencer)


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


@command.command("failback")
@transition_options(
    "The pair to fail back.",
    "Default: the region promoted away from.",
    "failback",
    drain_timeout_option(60.0, "Seconds to wait for the old primary to catch up."),
    to_required=False,
)
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
    pair = transition_setup(
        config,
        pair_name,
        to,
        (yes, f"Fail pair {pair_name} back?", "a failback changes the active region"),
    )
    from kvdr.audit_trail import audited

    doc, code = asyncio.run(
        audited(
            config,
            "failover.failback",
            _failback(config, pair, to, reason, url, started, drain_timeout),
            pair=pair.name,
            detail={"to": to, "reason": reason},
        )
    )
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
            health, errors = await probe(config, sorted({active, to}))
            down = [r for r in (active, to) if health.get(r) is not True]
            if down:
                doc["refused"] = [
                    f"{r} does not answer ({errors.get(r, 'not probed')}): a failback needs "
                    "both regions"
                    for r in down
                ]
                return doc, EXIT_FAILED
            async with AsyncExitStack() as stack:
                vaults = await open_vaults(config, stack, [active, to])
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
    return await committed_doc(config, doc, result, fencer)


@command.command("approve")
@click.option("--pair", "pair_name", required=True, help="The pair the approval is for.")
@click.option("--operator", required=True, help="Who approves (one approval per operator).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@config_option()
def approve_command(pair_name: str, operator: str, as_json: bool, config_path: Path | None) -> None:
    """Approve the pair's next promote or switchover (`[failover] require_approvals`)."""
    config = load_config_or_exit(config_path)
    (pair,) = chosen_pairs(config, pair_name)
    if not operator.strip():
        fail("--operator: must name the person approving", EXIT_USAGE)
    quiet_logs(config)
    from kvdr.audit_trail import audited

    doc, code = asyncio.run(
        audited(
            config,
            "failover.approve",
            _approve(config, pair, operator.strip()),
            pair=pair.name,
            detail={"operator": operator.strip()},
        )
    )
    if as_json:
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
