"""`kvdr sync --once [--pair NAME] [--json]`: one full reconciliation pass, then exit."""

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


async def sync_once(
    config: KvdrConfig, pair: str | None, show_progress: bool
) -> list[dict[str, Any]]:
    """Reconcile every selected pair once and write the checkpoints."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from kvdr.wiring import open_parts

    results: list[dict[str, Any]] = []
    async with AsyncExitStack() as stack:
        parts = await open_parts(config, stack, only_pair=pair)
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
                targets = [
                    {k: t[k] for k in ("region", "conflicts", "recent_errors")}
                    for t in replicator.status()["targets"]
                ]
                results.append(
                    {"pair": replicator.pair.name, **report.as_dict(), "targets": targets}
                )
    return results


@click.command("sync")
@click.option("--once", is_flag=True, required=True, help="One full pass, then exit.")
@click.option("--pair", default=None, help="Only this pair.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@config_option()
def command(once: bool, pair: str | None, as_json: bool, config_path: Path | None) -> None:
    """Run one full reconciliation pass and print what it did."""
    from kvdr.log_setup import configure_logging
    from kvdr.wiring import UnknownPair

    config = load_config_or_exit(config_path)
    configure_logging(config.daemon.log_format, "warning")
    show_progress = not as_json and sys.stderr.isatty()
    try:
        results = asyncio.run(sync_once(config, pair, show_progress))
    except UnknownPair as exc:
        fail(str(exc), EXIT_USAGE)
    errors = sum(r["errors"] for r in results)
    if as_json:
        emit_json({"pairs": results, "ok": errors == 0})
    else:
        for r in results:
            click.echo(
                f"pair {r['pair']}: {r['items']} items, copied {r['copied']}, "
                f"updated {r['updated']}, unchanged {r['unchanged']}, skipped {r['skipped']}, "
                f"conflicts {r['conflicts']}, errors {r['errors']}"
            )
            for target in r["targets"]:
                for conflict in target["conflicts"]:
                    click.echo(f"  conflict on {target['region']}: {conflict['reason']}")
                for error in target["recent_errors"]:
                    click.echo(
                        f"  error on {target['region']}: {error['item']}: {error['message']}"
                    )
    sys.exit(EXIT_FAILED if errors else EXIT_OK)
