"""`kvdr restore --pair P --at TIME --target URL [--item KIND/NAME]... [--dry-run] [--force]
[--allow-gap] [--allow-unsigned] [--recovery-key FILE] [--json]`: restore a vault (or
some items) to a point in time from the encrypted, signed backups.

Every object read must be signed by a pinned signer; a generation that is not (forged,
or written before signing without `--allow-unsigned`) is skipped and listed with why.

Computes the state at TIME (newest snapshot at or before it, plus journal replay), diffs
it against the target vault and prints (`--dry-run`) or applies the plan. A target that
holds items of the pair needs `--force`; a journal gap before TIME is refused with its
range unless `--allow-gap`. Applying is idempotent and resumable (run it again after an
interruption), shows a progress bar on a terminal, keeps to the target's throttle budget,
and ends with a report. Exit 0 when everything was restored, 1 otherwise, 2 on bad input.
"""

from __future__ import annotations

import asyncio
import sys
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit

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
from kvdr.commands.snapshot import recovery_password

if TYPE_CHECKING:
    from backups.restore import RestoreScope
    from kvdr.config import KvdrConfig
    from vault.models import ItemRef, VaultRef


class Refused(Exception):
    """A restore that will not run; exits 1 with the message."""


def _error(message: str, as_json: bool, code: int) -> NoReturn:
    if as_json:
        emit_json({"ok": False, "error": message})
    fail(message, code)


def parse_items(values: tuple[str, ...]) -> frozenset[ItemRef]:
    """`KIND/NAME` options into item references; a bad one exits 2 naming it."""
    from vault.models import ItemKind, ItemRef

    refs = set()
    for value in values:
        kind, sep, name = value.partition("/")
        if not sep or kind not in {k.value for k in ItemKind} or not name:
            raise click.BadParameter(
                f"{value!r} is not KIND/NAME with KIND secret, key or certificate",
                param_hint="--item",
            )
        refs.add(ItemRef(ItemKind(kind), name))
    return frozenset(refs)


def target_ref(config: KvdrConfig, url: str) -> VaultRef:
    """The target vault: a configured region when the URL is one (its label in logs and
    metrics), else a vault of its own."""
    from vault.models import VaultRef

    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname or parts.query or parts.username:
        raise click.BadParameter(
            f"{parts.scheme}://{parts.hostname or ''} must be a vault's https:// base URL",
            param_hint="--target",
        )
    clean = url.rstrip("/")
    for ref in config.regions.values():
        if ref.url.lower() == clean.lower():
            return ref
    return VaultRef(region="restore-target", url=clean)


def scope_of(config: KvdrConfig, pair: str, items: frozenset[ItemRef]) -> RestoreScope:
    from backups.restore import RestoreScope
    from vault.models import ItemKind

    settings = next((p for p in config.replicator.pairs if p.name == pair), None)
    if settings is None:
        # A pair no longer configured (decommissioned, renamed): everything it recorded.
        return RestoreScope(frozenset(ItemKind), items=items)
    return RestoreScope(settings.kinds, settings.selects, items)


def _describe_plan(doc: dict[str, Any]) -> list[str]:
    lines = []
    for item in doc["items"]:
        if item.get("problem"):
            lines.append(f"  cannot restore {item['item']}: {item['problem']}")
        for step in item["steps"]:
            version = step.get("source_version") or step.get("target_version")
            suffix = f" (version {version})" if version else ""
            lines.append(f"  {step['op']} {item['item']}{suffix}")
        for note in item.get("notes", []):
            lines.append(f"    note: {note}")
    counts = doc["counts"]
    summary = ", ".join(f"{n} {op}" for op, n in counts.items() if n)
    lines.append(f"plan: {summary or 'nothing to do'}")
    return lines


async def run_restore(
    config: KvdrConfig,
    *,
    pair: str,
    at: datetime,
    target_url: str,
    items: frozenset[ItemRef],
    dry_run: bool,
    force: bool,
    allow_gap: bool,
    recovery_key: Path | None,
    show_progress: bool,
    allow_unsigned: bool = False,
) -> dict[str, Any]:
    """Everything `kvdr restore` does, as one JSON-ready document."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from backups.errors import RestoreRefused
    from backups.restore import apply_plan, check_target, read_target, scoped, state_at
    from backups.restore_plan import plan_restore
    from kvdr.audit_trail import command_audit
    from kvdr.audit_vault import AuditedVault
    from kvdr.wiring import open_backup_session
    from vault.adapter import KeyVaultAdapter

    ref = target_ref(config, target_url)
    scope = scope_of(config, pair, items)
    async with AsyncExitStack() as stack:
        session = await open_backup_session(
            config,
            stack,
            recovery_key=recovery_key,
            recovery_password=recovery_password(),
            allow_unsigned=allow_unsigned,
        )
        point = await state_at(
            session.blobs,
            session.backups.keks,
            pair,
            at,
            now=datetime.now(UTC),
            allow_gap=allow_gap,
        )
        target = await stack.enter_async_context(
            KeyVaultAdapter.open(ref, session.credential, config.vault)
        )
        plan = plan_restore(pair, scoped(point.state, scope), await read_target(target, scope))
        doc: dict[str, Any] = {
            "pair": pair,
            "at": at.isoformat(),
            "target": ref.url,
            "dry_run": dry_run,
            "allow_unsigned": allow_unsigned,
            "point": point.as_dict(),
            "plan": plan.as_dict(),
            "report": None,
        }
        if dry_run:
            doc["needs_force"] = bool(plan.target_items)
            doc["ok"] = True
            return doc
        audit = await stack.enter_async_context(command_audit(config))
        summary = {"at": doc["at"], "target": ref.url, "force": force, "items": len(items)}
        try:
            check_target(plan, force)
        except RestoreRefused as exc:
            audit.record("restore.apply", "refused", pair=pair, detail=summary)
            raise Refused(str(exc)) from exc
        # Each write to the target is an entry of its own, as mirror writes are.
        writer = AuditedVault.wrap(target, audit, pair=pair, region=ref.region, prefix="restore")
        progress = Progress(
            TextColumn("restoring"),
            BarColumn(),
            MofNCompleteColumn(),
            disable=not show_progress,
            transient=True,
        )
        with progress:
            task = progress.add_task("restore", total=sum(1 for p in plan.items if p.steps))

            def advance(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            report = await apply_plan(plan, point.state, writer, progress=advance)
        doc["report"] = report.as_dict()
        # The report says what the restored state rests on, not only the plan.
        doc["report"]["from_unsigned_objects"] = point.unsigned
        doc["report"]["generations_skipped"] = point.skipped_generations
        doc["ok"] = report.ok
        restored = {"restored": report.restored, **summary}
        audit.record("restore.apply", "ok" if report.ok else "failed", pair=pair, detail=restored)
        return doc


@click.command("restore")
@click.option("--pair", required=True, help="The pair whose backups to restore from.")
@click.option("--at", "at_text", required=True, help='TIME: ISO-8601 with offset or Z, or "-15m".')
@click.option("--target", "target_url", required=True, help="URL of the vault to restore into.")
@click.option("--item", "items", multiple=True, help="Only this item, as KIND/NAME (repeatable).")
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
@click.option("--force", is_flag=True, help="Restore over items the target already holds.")
@click.option(
    "--allow-gap", is_flag=True, help="Restore across a journal gap (named in the report)."
)
@click.option(
    "--allow-unsigned",
    is_flag=True,
    help="Use objects written before signing (said so in the output and the report).",
)
@click.option(
    "--recovery-key",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="The offline recovery key's private half (PEM), for break-glass recovery.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@config_option()
def command(
    pair: str,
    at_text: str,
    target_url: str,
    items: tuple[str, ...],
    dry_run: bool,
    force: bool,
    allow_gap: bool,
    allow_unsigned: bool,
    recovery_key: Path | None,
    as_json: bool,
    config_path: Path | None,
) -> None:
    """Restore a vault, or some items, to a point in time."""
    from backups.errors import BackupError
    from kvdr.log_setup import configure_logging
    from kvdr.timegrammar import TimeSpecError, parse_time
    from kvdr.wiring import BackupsNotConfigured
    from storage.errors import StorageError
    from vault.errors import VaultError

    config = load_config_or_exit(config_path)
    configure_logging(config.daemon.log_format, "warning")
    try:
        at = parse_time(at_text, datetime.now(UTC))
    except TimeSpecError as exc:
        _error(str(exc), as_json, EXIT_USAGE)
    refs = parse_items(items)
    target_ref(config, target_url)  # bad URLs exit 2 before anything is opened
    show_progress = not as_json and sys.stderr.isatty()
    try:
        doc = asyncio.run(
            run_restore(
                config,
                pair=pair,
                at=at,
                target_url=target_url,
                items=refs,
                dry_run=dry_run,
                force=force,
                allow_gap=allow_gap,
                recovery_key=recovery_key,
                show_progress=show_progress,
                allow_unsigned=allow_unsigned,
            )
        )
    except BackupsNotConfigured as exc:
        _error(str(exc), as_json, EXIT_USAGE)
    except (Refused, BackupError, StorageError, VaultError) as exc:
        _error(str(exc), as_json, EXIT_FAILED)
    if as_json:
        emit_json(doc)
    else:
        _print(doc)
    sys.exit(EXIT_OK if doc["ok"] else EXIT_FAILED)


def _print(doc: dict[str, Any]) -> None:
    point = doc["point"]
    click.echo(
        f"pair {doc['pair']} at {doc['at']}: generation {point['generation']}, sequence "
        f"{point['sequence']} (snapshot {point['snapshot'] or 'none'}, "
        f"{point['segments_read']} segments replayed)"
    )
    for skipped in point["generations_skipped"]:
        click.echo(f"  generation {skipped['generation']} skipped: {skipped['reason']}")
    if point["unsigned"]:
        click.echo("  restoring from UNSIGNED objects (written before signing; --allow-unsigned)")
    if point["head_problem"]:
        click.echo(f"  {point['head_problem']} (restoring anyway: --allow-gap)")
    for gap in point["gaps_skipped"]:
        click.echo(f"  gap skipped (--allow-gap): {gap}")
    for blob in point["unreadable_skipped"]:
        click.echo(f"  passed over (refused or unreadable): {blob}")
    for lines in _describe_plan(doc["plan"]):
        click.echo(lines)
    if doc["dry_run"]:
        if doc.get("needs_force"):
            click.echo(
                f"the target holds {doc['plan']['target_items']} item(s) of the pair: "
                "applying needs --force"
            )
        return
    report = doc["report"]
    applied = ", ".join(f"{n} {op}" for op, n in report["applied"].items() if n)
    click.echo(
        f"restored {report['items_restored']} item(s) in {report['seconds']} s"
        f"{': ' + applied if applied else ''}"
    )
    if report["from_unsigned_objects"]:
        click.echo("  the restored state rests on unsigned objects (--allow-unsigned)")
    for failure in report["failed"]:
        click.echo(f"  failed {failure['item']}: {failure['reason']}")
    for item in report["unrestorable"]:
        click.echo(f"  not restorable {item['item']}: {item['reason']}")
