"""`kvdr sync --once [--pair NAME] [--json] [--confirm-deletions]`: one full pass, then exit.

A pass is a reconciliation followed by a deletion sweep. When the sweep finds the pair's
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
    from kvdr.config import KvdrConfig


class PairsRefused(Exception):
    """A pair cannot start (a configuration error found at start, such as an HSM key
    whose target's sku cannot hold it); nothing was synced."""


async def sync_once(
    config: KvdrConfig, pair: str | None, show_progress: bool, confirm_deletions: bool = False
) -> list[dict[str, Any]]:
    """Reconcile and sweep every selected pair once and write the checkpoints."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from kvdr.wiring import open_parts

    results: list[dict[str, Any]] = []
    async with AsyncExitStack() as stack:
        parts = await open_parts(config, stack, only_pair=pair)
        problems = [p for r in parts.replicators for p in await r.check_start()]
        if problems:
            raise PairsRefused("\n".join(problems))
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            disable=not show_progress,
            transient=True,
        )
        with progress:
            for replicator in parts.replicators:
                await replicator.load()
                task = progress.add_task(f"pair {replicator.pair.name}", total=None)

                def advance(done: int, total: int, task: Any = task) -> None:
                    progress.update(task, completed=done, total=total)

                report = await replicator.reconcile(progress=advance)
                await replicator.flush()
                sweep = await replicator.sweep(confirm=confirm_deletions)
                await replicator.flush()
                status = replicator.status()
                targets = [
                    {k: t[k] for k in ("region", "conflicts", "blocked", "recent_errors")}
                    for t in status["targets"]
                ]
                results.append(
                    {
                        "pair": replicator.pair.name,
                        **report.as_dict(),
                        "targets": targets,
                        "deletions": sweep.as_dict(),
                        "deletion_guard": status["deletion_guard"],
                    }
                )
    return results


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
    errors = sum(r["errors"] + r["deletions"]["errors"] for r in results)
    # Withheld deletions fail the run: a script must notice that a pair stopped
    # propagating deletions.
    guarded = [r["pair"] for r in results if r["deletion_guard"]["tripped"]]
    if as_json:
        emit_json({"pairs": results, "ok": errors == 0 and not guarded})
    else:
        for r in results:
            click.echo(
                f"pair {r['pair']}: {r['items']} items, copied {r['copied']}, "
                f"updated {r['updated']}, unchanged {r['unchanged']}, skipped {r['skipped']}, "
                f"conflicts {r['conflicts']}, errors {r['errors']}"
            )
            d = r["deletions"]
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
                    click.echo(
                        f"  blocked on {target['region']}: {blocked['item']}: {blocked['reason']}"
                    )
                for error in target["recent_errors"]:
                    click.echo(
                        f"  error on {target['region']}: {error['item']}: {error['message']}"
                    )
    sys.exit(EXIT_FAILED if errors or guarded else EXIT_OK)
