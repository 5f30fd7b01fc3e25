"""`kvdr snapshot create|list|verify|export`: the encrypted backups of every pair.

    kvdr snapshot create [--pair P] [--json]
    kvdr snapshot list   [--pair P] [--json]
    kvdr snapshot verify [--pair P] [--sample PCT] [--restore-test] [--recovery-key FILE]
                         [--allow-unsigned] [--json]
    kvdr snapshot export DIR [--pair P] [--json]

They read and write blob storage directly (no daemon needed). `verify` exits 1 on any
finding, naming the blob (an object or head not signed by a pinned signer is one; an
object older than signing is one unless `--allow-unsigned`); `--restore-test` restores
into a scratch emulator vault that it starts and stops itself. `export` also writes the
offline recovery kit: the pinned signers' public halves (`recovery-kit/` in DIR).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

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

# An encrypted recovery key's passphrase comes from the environment, never the command line
# (which other users of the host can read).
RECOVERY_PASSWORD_ENV = "KVDR_RECOVERY_KEY_PASSWORD"


def recovery_password() -> bytes | None:
    value = os.environ.get(RECOVERY_PASSWORD_ENV)
    return value.encode() if value else None


if TYPE_CHECKING:
    from kvdr.config import KvdrConfig
    from kvdr.wiring import BackupSession
    from vault.client import VaultClient

T = TypeVar("T")
SCRATCH_START_SECONDS = 30.0


SECONDARY_NOTE = (
    "storage's primary endpoint did not answer: read from its secondary (read-access) "
    "endpoint, which replicates asynchronously and may lack the newest objects"
)


def read_from(blobs: object) -> str:
    """Which endpoint served the reads of a store: "secondary" when any read fell back
    to the read-access secondary, else "primary"."""
    return "secondary" if getattr(blobs, "secondary_reads", 0) else "primary"


def _pairs(config: KvdrConfig, only: str | None, stored: list[str]) -> list[str]:
    """Pairs to work on: the configured ones plus any with backups in storage."""
    known = sorted({p.name for p in config.replicator.pairs} | set(stored))
    if only is None:
        return known
    if only not in known:
        fail(f"no pair named {only!r} in the configuration or in the backups", EXIT_USAGE)
    return [only]


def _run(
    config: KvdrConfig,
    work: Callable[[BackupSession], Awaitable[T]],
    as_json: bool,
    recovery_key: Path | None = None,
    allow_unsigned: bool = False,
) -> T:
    """Open the backups session, run `work`, map errors to exit codes."""
    from backups.errors import BackupError
    from kvdr.wiring import BackupsNotConfigured, open_backup_session
    from storage.errors import StorageError

    async def main() -> T:
        async with AsyncExitStack() as stack:
            session = await open_backup_session(
                config,
                stack,
                recovery_key=recovery_key,
                recovery_password=recovery_password(),
                allow_unsigned=allow_unsigned,
            )
            return await work(session)

    try:
        return asyncio.run(main())
    except BackupsNotConfigured as exc:
        _error(str(exc), as_json, EXIT_USAGE)
    except (BackupError, StorageError, ValueError) as exc:
        _error(str(exc), as_json, EXIT_FAILED)


def _error(message: str, as_json: bool, code: int) -> NoReturn:
    if as_json:
        emit_json({"ok": False, "error": message})
    fail(message, code)


def _size(n: int) -> str:
    """Bytes for people: 512 B, 3.4 KB, 12.0 MB."""
    value = float(n)
    for unit in ("B", "KB", "MB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


@click.group("snapshot")
def command() -> None:
    """Snapshots, listing, verification and export of the encrypted backups."""


def _setup(config_path: Path | None) -> KvdrConfig:
    from kvdr.log_setup import configure_logging

    config = load_config_or_exit(config_path)
    configure_logging(config.daemon.log_format, "warning")
    return config


@command.command("create")
@click.option("--pair", default=None, help="Only this pair.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@config_option()
def create(pair: str | None, as_json: bool, config_path: Path | None) -> None:
    """Compact each pair's journal into a snapshot now."""
    from backups.catalog import list_backup_pairs
    from backups.snapshot import create_snapshot

    config = _setup(config_path)

    async def work(session: BackupSession) -> list[dict[str, Any]]:
        out = []
        for name in _pairs(config, pair, await list_backup_pairs(session.blobs)):
            made = await create_snapshot(session.backups.stores, session.backups.keks, name)
            if made is None:
                out.append({"pair": name, "created": False, "reason": "nothing new to snapshot"})
            else:
                out.append(
                    {
                        "pair": name,
                        "created": made.written,
                        "generation": made.generation,
                        "sequence": made.sequence,
                        "items": made.items,
                        "size": made.size,
                        "blob": made.blob,
                        "segments_read": made.segments_read,
                        "seconds": round(made.seconds, 3),
                    }
                )
        return out

    results = _run(config, work, as_json)
    if as_json:
        emit_json({"ok": True, "snapshots": results})
    else:
        for r in results:
            if "sequence" not in r:
                click.echo(f"pair {r['pair']}: {r['reason']}")
            else:
                click.echo(
                    f"pair {r['pair']}: snapshot at sequence {r['sequence']} of generation "
                    f"{r['generation']}: {r['items']} items, {_size(r['size'])}, "
                    f"{r['segments_read']} segments compacted in {r['seconds']} s"
                )
    sys.exit(EXIT_OK)


@command.command("list")
@click.option("--pair", default=None, help="Only this pair.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@config_option()
def list_command(pair: str | None, as_json: bool, config_path: Path | None) -> None:
    """Generations, snapshots, journal coverage and sizes of each pair."""
    from backups.catalog import list_backup_pairs, load_catalog

    config = _setup(config_path)

    async def work(session: BackupSession) -> tuple[list[dict[str, Any]], str]:
        names = _pairs(config, pair, await list_backup_pairs(session.blobs))
        summaries = [(await load_catalog(session.blobs, name)).summary() for name in names]
        return summaries, read_from(session.blobs)

    summaries, where = _run(config, work, as_json)
    if as_json:
        emit_json({"ok": True, "read_from": where, "pairs": summaries})
        sys.exit(EXIT_OK)
    if where == "secondary":
        click.echo(SECONDARY_NOTE)
    for s in summaries:
        if not s["generations"]:
            click.echo(f"pair {s['pair']}: no backups")
            continue
        click.echo(
            f"pair {s['pair']}: restorable {s['earliest_restorable']} .. "
            f"{s['latest_restorable']}, {len(s['generations'])} generation(s), {_size(s['size'])}"
        )
        for g in s["generations"]:
            click.echo(
                f"  generation {g['generation']} (started {g['started']}): sequences up to "
                f"{g['last_sequence']}, {g['segments']} segments, {len(g['snapshots'])} "
                f"snapshots, restorable {g['earliest_restorable']} .. {g['latest_restorable']}"
                f", {_signed_text(g)}"
            )
            for snap in g["snapshots"]:
                click.echo(
                    f"    snapshot {snap['sequence']} at {snap['at']} ({_size(snap['size'])})"
                )
            for gap in g["gaps"]:
                click.echo(f"    gap: {gap}")
    sys.exit(EXIT_OK)


def _signed_text(generation: dict[str, Any]) -> str:
    """What a listing says of a generation's signatures (claimed by metadata; `verify`
    checks them)."""
    unsigned = generation["unsigned"]
    signers = sorted(k for k in generation["signers"] if k != "unsigned")
    if unsigned and not signers:
        return "unsigned (restorable only with --allow-unsigned)"
    text = f"signed by {', '.join(signers)}" if signers else "no objects"
    if unsigned:
        text += f", {unsigned} unsigned object(s)"
    return text


@asynccontextmanager
async def scratch_vault() -> AsyncIterator[VaultClient]:
    """A throwaway emulator vault (its own process and folder), removed afterwards."""
    from vault.adapter import KeyVaultAdapter
    from vault.credentials import build_credential, read_endpoint_file
    from vault.models import VaultRef
    from vault.settings import CredentialSettings, VaultSettings

    with tempfile.TemporaryDirectory(prefix="kvdr-restore-test-") as folder:
        state = Path(folder) / "state"
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "kvdr", "emulator", "--port", "0"),
            *("--state-dir", str(state), "--region", "restore-test"),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + SCRATCH_START_SECONDS
            endpoint: dict[str, str] = {}
            while endpoint.get("pid") != str(process.pid):
                if process.returncode is not None or time.monotonic() > deadline:
                    raise ValueError("the scratch emulator for --restore-test did not start")
                await asyncio.sleep(0.05)
                with contextlib.suppress(Exception):
                    endpoint = read_endpoint_file(state)
            credential = build_credential(
                CredentialSettings(kind="emulator", emulator_state_dir=str(state))
            )
            settings = VaultSettings(ca_file=endpoint["ca"], verify_challenge_resource=False)
            async with (
                credential,
                KeyVaultAdapter.open(
                    VaultRef("restore-test", endpoint["url"]), credential, settings
                ) as vault,
            ):
                yield vault
        finally:
            if process.returncode is None:
                process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), 10)
                except TimeoutError:
                    process.kill()
                    await process.wait()


@command.command("verify")
@click.option("--pair", default=None, help="Only this pair.")
@click.option(
    "--sample",
    "sample",
    type=click.FloatRange(0, 100),
    default=100.0,
    show_default=True,
    help="Percentage of objects to decrypt and check (names and contiguity: always all).",
)
@click.option(
    "--restore-test", is_flag=True, help="Restore into a scratch emulator vault and compare."
)
@click.option(
    "--recovery-key",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="The offline recovery key's private half (PEM), to check with it.",
)
@click.option(
    "--allow-unsigned",
    is_flag=True,
    help="Objects written before signing are reported, not findings.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@config_option()
def verify(
    pair: str | None,
    sample: float,
    restore_test: bool,
    recovery_key: Path | None,
    allow_unsigned: bool,
    as_json: bool,
    config_path: Path | None,
) -> None:
    """Decrypt and check digests, chain and contiguity; exit 1 on any finding."""
    from backups.catalog import list_backup_pairs
    from backups.restore import RestoreScope
    from backups.verify import restore_test as run_restore_test
    from backups.verify import verify_pair
    from vault.models import ItemKind

    config = _setup(config_path)
    pairs_by_name = {p.name: p for p in config.replicator.pairs}

    async def work(session: BackupSession) -> list[dict[str, Any]]:
        out = []
        for name in _pairs(config, pair, await list_backup_pairs(session.blobs)):
            keks = session.backups.keks
            report = await verify_pair(session.blobs, keks, name, sample_percent=sample)
            if restore_test and report.generations:
                settings = pairs_by_name.get(name)
                scope = (
                    RestoreScope(settings.kinds, settings.selects)
                    if settings
                    else RestoreScope(frozenset(ItemKind))
                )
                async with scratch_vault() as scratch:
                    await run_restore_test(session.blobs, keks, name, scratch, scope, report)
            out.append(report.as_dict())
        return out

    reports = _run(config, work, as_json, recovery_key, allow_unsigned)
    ok = all(r["ok"] for r in reports)
    if as_json:
        emit_json({"ok": ok, "allow_unsigned": allow_unsigned, "pairs": reports})
    else:
        for r in reports:
            state = "ok" if r["ok"] else f"{len(r['findings'])} finding(s)"
            unsigned = f", {r['unsigned']} unsigned (--allow-unsigned)" if r["unsigned"] else ""
            head = {True: "signed", False: "unsigned", None: "not trusted"}[r["head_signed"]]
            click.echo(
                f"pair {r['pair']}: {state}: {r['objects']} objects, {r['decrypted']} decrypted, "
                f"{r['signed']} signed by a pinned signer{unsigned}; journal head {head}"
            )
            for generation, status in r["generation_signatures"].items():
                click.echo(f"  generation {generation}: {status}")
            for skipped in r["generations_skipped"]:
                click.echo(
                    f"  a restore skips generation {skipped['generation']}: {skipped['reason']}"
                )
            for f in r["findings"]:
                click.echo(f"  {f['blob']}: {f['problem']}")
            if r["restore_test"]:
                t = r["restore_test"]
                click.echo(
                    f"  restore test at {t['at']}: {t['items_compared']} items compared, "
                    f"{t['not_tested']} not testable here"
                )
            for item in r["not_tested"]:
                click.echo(f"  not tested: {item['item']}: {item['reason']}")
    sys.exit(EXIT_OK if ok else EXIT_FAILED)


@command.command("export")
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@click.option("--pair", default=None, help="Only this pair.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@config_option()
def export(directory: Path, pair: str | None, as_json: bool, config_path: Path | None) -> None:
    """Copy every backup object (still encrypted) into DIR: a full offline copy, with the
    recovery kit (the pinned signers' public halves)."""
    from backups.catalog import list_backup_pairs
    from backups.export import export_pair, write_recovery_kit
    from storage.local_folder import LocalFolderStore
    from storage.settings import LocalFolderSettings

    config = _setup(config_path)

    async def work(session: BackupSession) -> list[dict[str, object]]:
        out = []
        async with LocalFolderStore(LocalFolderSettings(str(directory))) as folder:
            for name in _pairs(config, pair, await list_backup_pairs(session.blobs)):
                out.append((await export_pair(session.blobs, folder, name)).as_dict())
            kit_folder = str((directory / "recovery-kit").absolute())
            await write_recovery_kit(folder, session.backups.keks, kit_folder)
        return out

    results = _run(config, work, as_json)
    kit = str(directory / "recovery-kit")
    if as_json:
        emit_json({"ok": True, "directory": str(directory), "recovery_kit": kit, "pairs": results})
    else:
        click.echo(f"recovery kit (pinned signers' public halves): {kit}")
        for r in results:
            click.echo(
                f"pair {r['pair']}: {r['copied']} objects copied ({_size(int(str(r['bytes'])))}), "
                f"{r['already_there']} already in {directory}"
            )
    sys.exit(EXIT_OK)
