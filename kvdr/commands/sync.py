"""`kvdr sync --once [--pair NAME] [--json] [--confirm-deletions]`: one full pass, then exit.

A pass is a reconciliation followed by a deletion sweep, run under the pair's lease like
a daemon runs it; a pair whose lease a daemon holds is left to that daemon (exit 1, the
owner named). When the sweep finds the pair's
deletion guard tripped (or trips it), the withheld deletions are listed and the command
exits 1; `--confirm-deletions` (with `--pair`) applies them once and releases the guard.
"""

from __future__ import annotations

import asyncio
import sys
from contextlib import AsyncExitStack
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
    from collections.abc import Callable

    from kvdr.config import KvdrConfig
    from replicator.deletions import SweepReport
    from replicator.members import Members
    from replicator.pair import PairReplicator, SyncReport


class PairsRefused(Exception):
    """A pair cannot start (a configuration error found at start, such as an HSM key
    whose target's sku cannot hold it); nothing was synced."""


class LeaseLostMidPass(Exception):
    """The pair's lease could not be kept while this command synced it."""


async def sync_once(
    config: KvdrConfig, pair: str | None, show_progress: bool, confirm_deletions: bool = False
) -> list[dict[str, Any]]:
    """Reconcile and sweep every selected pair once and write the checkpoints.

    Each pair is synced under its lease, like a daemon runs it, so this command never
    writes to a pair's targets alongside the daemon that owns it. A pair whose lease is
    held elsewhere is left to its owner and reported with `run_by`; with
    `confirm_deletions` the withheld deletions are applied all the same (the guard and
    checkpoint protocol is safe beside a running owner, see replicator/guard.py).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from kvdr.wiring import open_parts
    from replicator.members import Members
    from storage import LeaseLost, LeaseTiming, PairLease, run_while_held

    results: list[dict[str, Any]] = []
    async with AsyncExitStack() as stack:
        parts = await open_parts(config, stack, only_pair=pair)
        problems = [p for r in parts.replicators for p in await r.check_start()]
        if problems:
            raise PairsRefused("\n".join(problems))
        timing = LeaseTiming(config.replicator.lease_duration_seconds)
        members = Members(parts.blobs, config.daemon.instance_id, timing)
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            disable=not show_progress,
            transient=True,
        )
        with progress:
            for replicator in parts.replicators:
                name = replicator.pair.name
                await replicator.load()
                lease = PairLease(parts.blobs, name, timing)
                if not await lease.acquire():
                    run_by = await _holder(members, name)
                    sweep = None
                    if confirm_deletions:
                        sweep = await replicator.sweep(confirm=True)
                        await replicator.flush()
                    results.append(_result(replicator, None, sweep, run_by))
                    continue
                task = progress.add_task(f"pair {name}", total=None)

                def advance(done: int, total: int, task: Any = task) -> None:
                    progress.update(task, completed=done, total=total)

                try:
                    # Renewed for the pass, released after it; the pass stops at once if
                    # the lease is lost.
                    report, sweep = await run_while_held(
                        lease, _pass(replicator, advance, confirm_deletions)
                    )
                except LeaseLost as exc:
                    raise LeaseLostMidPass(
                        f"lost the lease of pair {name} mid-pass ({exc}); "
                        "what was copied stays, the next pass finds the rest"
                    ) from exc
                results.append(_result(replicator, report, sweep, None))
    return results


async def _pass(
    replicator: PairReplicator, advance: Callable[[int, int], None], confirm: bool
) -> tuple[SyncReport, SweepReport]:
    report = await replicator.reconcile(progress=advance)
    await replicator.flush()
    sweep = await replicator.sweep(confirm=confirm)
    await replicator.flush()
    return report, sweep


async def _holder(members: Members, pair: str) -> str:
    """Who runs `pair`, as the daemons' heartbeats tell (best effort)."""
    from storage import StorageError

    try:
        await members.refresh()
    except StorageError:
        return "another process"
    owner = members.owner(pair)
    if owner is None:
        return "another process"
    return f"daemon {owner.instance}" if owner.live else f"daemon {owner.instance} (silent)"


def _result(
    replicator: PairReplicator,
    report: SyncReport | None,
    sweep: SweepReport | None,
    run_by: str | None,
) -> dict[str, Any]:
    status = replicator.status()
    targets = [
        {k: t[k] for k in ("region", "conflicts", "blocked", "recent_errors")}
        for t in status["targets"]
    ]
    return {
        "pair": replicator.pair.name,
        # Not synced by this command when another process holds the pair's lease.
        "run_by": run_by,
        **(report or _empty_report()).as_dict(),
        "targets": targets,
        "deletions": sweep.as_dict() if sweep is not None else None,
        "deletion_guard": status["deletion_guard"],
    }


def _empty_report() -> SyncReport:
    from replicator.pair import SyncReport

    return SyncReport()


@click.command("sync")
@click.option("--once", is_flag=True, required=True, help="One full pass, then exit.")
@click.option("--pair", default=None, help="Only this pair.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option(
    "--confirm-deletions",
    is_flag=True,
    help="Apply the deletions the pair's tripped deletion guard withheld, once, and "
    "release the guard (needs --pair).",
)
@config_option()
def command(
    once: bool, pair: str | None, as_json: bool, confirm_deletions: bool, config_path: Path | None
) -> None:
    """Run one full reconciliation pass and deletion sweep and print what they did."""
    from kvdr.log_setup import configure_logging
    from kvdr.wiring import UnknownPair

    if confirm_deletions and pair is None:
        # Confirming a mass deletion is a decision about one pair, never all at once.
        fail("--confirm-deletions needs --pair NAME: the pair whose deletions to apply", EXIT_USAGE)
    config = load_config_or_exit(config_path)
    configure_logging(config.daemon.log_format, "warning")
    show_progress = not as_json and sys.stderr.isatty()
    try:
        results = asyncio.run(sync_once(config, pair, show_progress, confirm_deletions))
    except UnknownPair as exc:
        fail(str(exc), EXIT_USAGE)
    except PairsRefused as exc:
        fail(f"refusing to sync:\n{exc}", EXIT_USAGE)
    except LeaseLostMidPass as exc:
        fail(str(exc), EXIT_FAILED)
    errors = sum(r["errors"] + (r["deletions"] or {"errors": 0})["errors"] for r in results)
    # Withheld deletions fail the run: a script must notice that a pair stopped
    # propagating deletions. So does a pair this command left to its owner: the pass it
    # asked for did not happen here.
    guarded = [r["pair"] for r in results if r["deletion_guard"]["tripped"]]
    elsewhere = [r["pair"] for r in results if r["run_by"] and not confirm_deletions]
    if as_json:
        emit_json({"pairs": results, "ok": errors == 0 and not guarded and not elsewhere})
    else:
        for r in results:
            _print_pair(r, confirm_deletions)
    sys.exit(EXIT_FAILED if errors or guarded or elsewhere else EXIT_OK)


def _print_pair(r: dict[str, Any], confirm_deletions: bool) -> None:
    if r["run_by"]:
        click.echo(
            f"pair {r['pair']}: run by {r['run_by']}, which holds its lease; not synced by "
            "this command (the owner replicates it; `kvdr status` shows how far it is)"
        )
    else:
        click.echo(
            f"pair {r['pair']}: {r['items']} items, copied {r['copied']}, "
            f"updated {r['updated']}, unchanged {r['unchanged']}, skipped {r['skipped']}, "
            f"conflicts {r['conflicts']}, errors {r['errors']}"
        )
    d = r["deletions"]
    if d is not None:
        click.echo(
            f"  deletions: deleted {d['deleted']}, recovered {d['recovered']}, "
            f"withheld {d['withheld']}, errors {d['errors']}"
        )
    guard = r["deletion_guard"]
    if guard["tripped"]:
        click.echo(
            f"  deletion guard TRIPPED since {guard['since']}: {guard['deleted']} of "
            f"{guard['items']} items deleted on the primary (more than "
            f"{guard['threshold']:g}); withheld: {', '.join(guard['withheld'])}"
        )
        click.echo(f"  review them, then run: {guard['release_with']}")
    elif guard["released_by"] and confirm_deletions:
        click.echo(f"  deletion guard released ({guard['released_by']})")
    for target in r["targets"]:
        for conflict in target["conflicts"]:
            click.echo(f"  conflict on {target['region']}: {conflict['reason']}")
        for blocked in target["blocked"]:
            click.echo(f"  blocked on {target['region']}: {blocked['item']}: {blocked['reason']}")
        for error in target["recent_errors"]:
            click.echo(f"  error on {target['region']}: {error['item']}: {error['message']}")
