"""`kvdr verify --pair P [--deep] [--json]`: does every target answer as the primary?

The primary is the pair's active region (the control record's, else the configured
one). Each kind the pair mirrors is listed once on every vault and compared item by item
(replicator/verify.py); `--deep` also compares, for every item enabled on both sides, a
digest of its current value: a secret's value, a key's public JWK, a certificate's
X.509 (two reads per item, through the adapter's throttle, so the vaults' read budget is
respected; no private key material is read). Exit 0 when nothing differs, 1 on any
difference or when a vault cannot be read, 2 on a usage error. Names only, never values.
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
    config_option,
    emit_json,
    load_config_or_exit,
)
from kvdr.commands._transition_steps import chosen_pairs, quiet_logs

if TYPE_CHECKING:
    from kvdr.config import KvdrConfig
    from replicator.settings import PairSettings
    from replicator.verify import Difference
    from vault.client import VaultClient
    from vault.models import ItemKind

# Items read at once per vault by --deep (the adapter's throttle paces them further).
DEEP_CONCURRENCY = 4


@click.command("verify")
@click.option("--pair", "pair_name", required=True, help="The pair to verify.")
@click.option(
    "--deep",
    is_flag=True,
    help="Also compare values: secrets' values, keys' and certificates' public "
    "material (by digest).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@config_option()
def command(pair_name: str, deep: bool, as_json: bool, config_path: Path | None) -> None:
    """Compare what each target answers with what the primary answers, item by item."""
    config = load_config_or_exit(config_path)
    (pair,) = chosen_pairs(config, pair_name)
    quiet_logs(config)
    doc = asyncio.run(_verify(config, pair, deep, show_progress=not as_json))
    if as_json:
        emit_json(doc)
    else:
        _render(doc)
    raise SystemExit(EXIT_OK if doc["ok"] else EXIT_FAILED)


async def _active_region(config: KvdrConfig, pair: PairSettings) -> tuple[str, str]:
    """The region applications use now, and where that was read."""
    from failover.switchover import current_record
    from kvdr.commands._transition_steps import open_control

    try:
        async with open_control(config) as control:
            record, written = await current_record(
                control, pair.name, pair.primary.region, pair.regions
            )
    except Exception as exc:
        return pair.primary.region, f"configured (the control record: {exc})"
    return record.active_region, "the control record" if written else "configured"


async def _verify(
    config: KvdrConfig, pair: PairSettings, deep: bool, show_progress: bool
) -> dict[str, Any]:
    from kvdr.commands._transition_steps import open_vaults
    from replicator.verify import compare_listings
    from vault.errors import VaultError

    primary, basis = await _active_region(config, pair)
    targets = [r for r in pair.regions if r != primary]
    differences: list[Difference] = []
    errors: list[str] = []
    compared = 0
    async with AsyncExitStack() as stack:
        vaults = await open_vaults(config, stack, [primary, *targets])
        deep_names: dict[tuple[ItemKind, str], list[str]] = {}
        for kind in sorted(pair.kinds, key=lambda k: k.value):
            try:
                mine = await vaults[primary].list_items(kind)
            except VaultError as exc:
                errors.append(f"{primary}: {kind.value}s could not be listed: {exc}")
                continue
            for region in targets:
                try:
                    theirs = await vaults[region].list_items(kind)
                except VaultError as exc:
                    errors.append(f"{region}: {kind.value}s could not be listed: {exc}")
                    continue
                found, both = compare_listings(region, kind.value, mine, theirs, pair.selects)
                differences += found
                compared += len({p.name for p in mine if not p.managed and pair.selects(p.name)})
                deep_names[kind, region] = both
        if deep:
            differences += await _deep(vaults, primary, deep_names, errors, show_progress)
    return {
        "ok": not differences and not errors,
        "pair": pair.name,
        "primary": primary,
        "primary_from": basis,
        "targets": targets,
        "deep": deep,
        "items_compared": compared,
        "differences": [d.to_dict() for d in differences],
        "errors": errors,
    }


async def _fingerprint(vault: VaultClient, kind: ItemKind, name: str) -> str | None:
    """A digest of the item's current value or public material (None: nothing to compare)."""
    from replicator.verify import digest
    from vault.models import ItemKind

    if kind is ItemKind.SECRET:
        return digest((await vault.get_secret(name)).value)
    return await vault.public_fingerprint(kind, name)


async def _deep(
    vaults: dict[str, VaultClient],
    primary: str,
    names: dict[tuple[ItemKind, str], list[str]],
    errors: list[str],
    show_progress: bool,
) -> list[Difference]:
    """The items whose current values (or public material) differ, by digest (never
    shown)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from replicator.verify import Difference
    from vault.errors import VaultError

    found: list[Difference] = []
    mine: dict[tuple[ItemKind, str], str | None] = {}
    limit = asyncio.Semaphore(DEEP_CONCURRENCY)
    wanted = sorted({(kind, n) for (kind, _), ns in names.items() for n in ns})
    total = sum(len(n) for n in names.values()) + len(wanted)
    progress = Progress(
        TextColumn("verifying values"),
        BarColumn(),
        MofNCompleteColumn(),
        disable=not (show_progress and sys.stderr.isatty()),
        console=None,
        transient=True,
    )

    async def read(region: str, kind: ItemKind, name: str) -> tuple[bool, str | None]:
        """(read, digest): read is False when the vault refused (the error is listed)."""
        async with limit:
            try:
                return True, await _fingerprint(vaults[region], kind, name)
            except VaultError as exc:
                errors.append(f"{region}: {kind.value} {name} could not be read: {exc}")
                return False, None
            finally:
                progress.advance(task)

    with progress:
        task = progress.add_task("values", total=total)
        read_here = await asyncio.gather(*(read(primary, k, n) for k, n in wanted))
        for item, (ok, value) in zip(wanted, read_here, strict=True):
            if ok:
                mine[item] = value
        for (kind, region), region_names in sorted(names.items()):
            values = await asyncio.gather(*(read(region, kind, n) for n in region_names))
            for name, (ok, value) in zip(region_names, values, strict=True):
                if not ok or (kind, name) not in mine:
                    continue
                if value != mine[kind, name]:
                    what = "value differs" if kind.value == "secret" else "key material differs"
                    found.append(Difference(region, kind.value, name, what))
    return found


def _render(doc: dict[str, Any]) -> None:
    depth = "attributes and values" if doc["deep"] else "attributes"
    click.echo(
        f"pair {doc['pair']}: primary {doc['primary']} ({doc['primary_from']}); "
        f"{doc['items_compared']} item comparisons of {depth} against "
        f"{', '.join(doc['targets']) or 'no target'}"
    )
    for d in doc["differences"]:
        click.echo(f"  {d['region']}: {d['kind']} {d['name']}: {d['what']}")
    for error in doc["errors"]:
        click.echo(f"  error: {error}", err=True)
    if doc["ok"]:
        click.echo("  every target answers as the primary")
