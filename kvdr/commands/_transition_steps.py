"""What the transition commands (`kvdr failover switchover|promote|failback`, in
failover.py and failover_ops.py) share: their options, the checks before a
transition, the stores and vaults they open, and the output of one that committed."""

from __future__ import annotations

import getpass
import socket
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from kvdr.commands._shared import EXIT_OK, EXIT_USAGE, config_option, emit_json, fail

if TYPE_CHECKING:
    from failover.control_record import ControlRecord
    from failover.control_stores import ControlStores
    from failover.transition import TransitionResult
    from kvdr.commands._fence_steps import Fencer
    from kvdr.config import KvdrConfig
    from replicator.settings import PairSettings
    from vault.client import VaultClient

F = TypeVar("F", bound=Callable[..., Any])

BREAK_GLASS = click.option(
    "--break-glass", is_flag=True, help="Bypass required approvals (recorded)."
)


def drain_timeout_option(default: float, help_text: str) -> Callable[[F], F]:
    return click.option(
        "--drain-timeout",
        type=click.FloatRange(min=0),
        default=default,
        show_default=True,
        help=help_text,
    )


def transition_options(
    pair_help: str,
    to_help: str,
    reason: str,
    *middle: Callable[[F], F],
    to_required: bool = True,
) -> Callable[[F], F]:
    """--pair, --to, --reason, --yes, then `middle` (the command's own), then --url,
    --json and --config: the options every transition takes, in that order."""
    options: list[Callable[[Any], Any]] = [
        click.option("--pair", "pair_name", required=True, help=pair_help),
        # No `default=None` with `required`: click (8.5) takes an explicit None default
        # as given and stops refusing a missing --to.
        click.option("--to", "to", required=True, help=to_help)
        if to_required
        else click.option("--to", "to", default=None, help=to_help),
        click.option("--reason", default=reason, show_default=True),
        click.option("--yes", is_flag=True, help="Do not ask for confirmation."),
        *middle,
        click.option("--url", default=None, help="Daemon base URL, for the lag (default: config)."),
        click.option("--json", "as_json", is_flag=True, help="Print one JSON document."),
        config_option(),
    ]

    def apply(function: F) -> F:
        for option in reversed(options):
            function = option(function)
        return function

    return apply


def chosen_pairs(config: KvdrConfig, name: str | None) -> list[PairSettings]:
    """Every configured pair, or the one `--pair` names (exit 2 when none is)."""
    pairs = list(config.replicator.pairs)
    if name is None:
        return pairs
    chosen = [p for p in pairs if p.name == name]
    if not chosen:
        known = ", ".join(p.name for p in pairs) or "none"
        fail(f"--pair: no pair named {name!r} in the configuration (pairs: {known})", EXIT_USAGE)
    return chosen


def quiet_logs(config: KvdrConfig) -> None:
    from kvdr.log_setup import configure_logging

    configure_logging(config.daemon.log_format, "warning")


def by_whom() -> str:
    """Who runs the command, for the history."""
    return f"{getpass.getuser()}@{socket.gethostname()}"


def transition_setup(
    config: KvdrConfig,
    pair_name: str,
    to: str | None,
    confirm: tuple[bool, str, str],
    break_glass: bool = False,
    reason: str = "",
) -> PairSettings:
    """What a transition command settles before it starts: the pair and its --to
    region (exit 2 on a usage error), a reason for --break-glass, the confirmation
    (`confirm`: --yes, the question, what the command does); then the logs are
    quietened to warnings."""
    (pair,) = chosen_pairs(config, pair_name)
    if to is not None and to not in pair.regions:
        fail(
            f"--to: {to!r} is not a region of pair {pair.name} "
            f"(regions: {', '.join(pair.regions)})",
            EXIT_USAGE,
        )
    if break_glass and not reason.strip():
        fail("--break-glass needs --reason TEXT: the bypass is recorded with it", EXIT_USAGE)
    _confirm_or_exit(*confirm)
    quiet_logs(config)
    return pair


def _confirm_or_exit(yes: bool, question: str, what: str) -> None:
    """Without --yes: ask on a terminal, refuse without one (exit 2)."""
    if yes:
        return
    if not sys.stdin.isatty():
        fail(f"--yes is required when not on a terminal: {what}", EXIT_USAGE)
    click.confirm(question, abort=True, err=True)


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


@asynccontextmanager
async def open_control(config: KvdrConfig) -> AsyncIterator[ControlStores]:
    from kvdr.wiring import open_control_stores
    from vault.credentials import build_credential

    async with AsyncExitStack() as stack:
        credential = build_credential(config.credential)
        await stack.enter_async_context(credential)
        yield await open_control_stores(config, stack, credential)


async def open_vaults(
    config: KvdrConfig, stack: AsyncExitStack, regions: Sequence[str]
) -> dict[str, VaultClient]:
    """A vault client per region, open until `stack` closes."""
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


async def probe(config: KvdrConfig, regions: list[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """One health probe per region: up or not, and the error of each that is not."""
    from failover.health import RegionProber

    async with AsyncExitStack() as stack:
        vaults = await open_vaults(config, stack, regions)
        prober = RegionProber(vaults, failures_to_down=1, timeout_seconds=5.0)
        await prober.probe_all()
        health = {r: h.up for r, h in prober.health.items()}
        errors = {r: h.error for r, h in prober.health.items() if h.error}
        return health, errors


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


async def committed_doc(
    config: KvdrConfig, doc: dict[str, Any], result: TransitionResult, fencer: Fencer
) -> tuple[dict[str, Any], int]:
    """The output of a committed transition (exit 0): what the fencer did, the hooks'
    results, the new epoch and its RTO, and a warning when the RTO was not recorded."""
    doc["fence"] = fencer.doc()
    doc.setdefault("warnings", []).extend(fencer.warnings)
    doc["hooks"] = await run_transition_hooks(config, result)
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
    return doc, EXIT_OK


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
