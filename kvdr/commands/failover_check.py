"""`kvdr failover check [--pair P] [--to REGION] [--json]`: is promoting a pair's
secondary safe right now? (failover/check.py decides; this module reads.)

What it reads: the target's lag from the running daemon's /status (as `switchover`
does), each region's properties from the management plane where a `resource_id` is
configured, and the fence and approval settings. Exit 0 when nothing blocks, 1 when a
finding is a blocker, 2 on a usage error.
"""

from __future__ import annotations

import asyncio
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
    from failover.check import CheckInputs, VaultView
    from kvdr.config import KvdrConfig
    from replicator.settings import PairSettings
    from vault.models import VaultRef


def _target(pair: PairSettings, to: str | None) -> str:
    secondaries = [t.region for t in pair.secondaries]
    if to is None:
        return secondaries[0]
    if to not in secondaries:
        fail(
            f"--to: {to!r} is not a secondary of pair {pair.name} "
            f"(secondaries: {', '.join(secondaries)})",
            EXIT_USAGE,
        )
    return to


async def _views(config: KvdrConfig, refs: list[VaultRef]) -> dict[str, VaultView]:
    from failover.check import VaultView
    from failover.management import ManagementError, VaultManagement, management_session
    from replicator.plan_keys import SKU_KEY_TYPES
    from vault.credentials import build_credential

    views: dict[str, VaultView] = {}
    wanted = [r for r in refs if r.resource_id is not None]
    async with AsyncExitStack() as stack:
        session = credential = None
        if wanted:
            credential = build_credential(config.credential)
            await stack.enter_async_context(credential)
            session = await stack.enter_async_context(management_session(config.vault.ca_file))
        for ref in refs:
            types = SKU_KEY_TYPES.get(ref.sku, ())
            if ref.resource_id is None or session is None or credential is None:
                views[ref.region] = VaultView(
                    ref.region, ref.sku, types, unavailable="no resource_id configured"
                )
                continue
            client = VaultManagement(
                ref.resource_id,
                credential,
                session,
                base_url=ref.management_url or config.failover.management_url,
            )
            try:
                props = await client.properties()
            except ManagementError as exc:
                views[ref.region] = VaultView(ref.region, ref.sku, types, unavailable=str(exc))
                continue
            views[ref.region] = VaultView(
                ref.region, ref.sku, SKU_KEY_TYPES.get(props.sku, types), props
            )
    return views


def _inputs(config: KvdrConfig, pair: PairSettings, to: str, url: str | None) -> CheckInputs:
    from failover.check import CheckInputs
    from kvdr.commands._daemon_lag import read_lag
    from vault.models import ItemKind

    target_ref = next(t for t in pair.secondaries if t.region == to)
    views = asyncio.run(_views(config, [pair.primary, target_ref]))
    lag, why = read_lag(config, pair.name, to, url)
    return CheckInputs(
        pair=pair.name,
        primary=views[pair.primary.region],
        target=views[to],
        rpo_objective_seconds=pair.rpo_objective_seconds,
        lag_seconds=None if lag is None else lag.lag_seconds,
        pending=None if lag is None else lag.pending,
        lag_unknown_because=why,
        mirrors_keys=ItemKind.KEY in pair.kinds,
        fence=config.failover.fence,
        kvdr_addresses=config.failover.fence_allow_ips,
        require_approvals=config.failover.require_approvals,
    )


def _render(doc: dict[str, Any]) -> None:
    for p in doc["pairs"]:
        counts = {
            s: sum(1 for f in p["findings"] if f["severity"] == s) for s in ("blocker", "warning")
        }
        verdict = "safe" if p["safe"] else "NOT safe"
        click.echo(
            f"{p['pair']}: promoting {p['to_region']} (from {p['from_region']}) is {verdict} "
            f"now: {counts['blocker']} blockers, {counts['warning']} warnings"
        )
        for f in p["findings"]:
            line = f"  [{f['severity']}] {f['check']}: {f['found']}"
            click.echo(line + (f"\n      -> {f['action']}" if f["action"] else ""))


@click.command("check")
@click.option("--pair", "pair_name", default=None, help="Only this pair (default: every pair).")
@click.option("--to", "to", default=None, help="The secondary to promote (default: the first).")
@click.option("--url", default=None, help="Daemon base URL, for the lag (default: config).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@config_option()
def check_command(
    pair_name: str | None, to: str | None, url: str | None, as_json: bool, config_path: Path | None
) -> None:
    """Is promoting the pair's secondary (or REGION) safe now? Lag against the RPO
    objective, SKU for the pair's keys, soft delete and purge protection, network rules,
    fence and approvals; each finding with what to do. Exit 1 when one blocks."""
    from failover.check import blockers, findings
    from kvdr.commands._transition_steps import chosen_pairs, quiet_logs

    config = load_config_or_exit(config_path)
    pairs = chosen_pairs(config, pair_name)
    if to is not None and len(pairs) > 1:
        fail("--to needs --pair when the configuration has more than one pair", EXIT_USAGE)
    targets = [(pair, _target(pair, to)) for pair in pairs]
    quiet_logs(config)
    out = []
    for pair, target in targets:
        found = findings(_inputs(config, pair, target, url))
        out.append(
            {
                "pair": pair.name,
                "from_region": pair.primary.region,
                "to_region": target,
                "safe": not blockers(found),
                "findings": [f.to_dict() for f in found],
            }
        )
    doc = {"ok": all(p["safe"] for p in out), "pairs": out}
    if as_json:
        emit_json(doc)
    else:
        _render(doc)
    raise SystemExit(EXIT_OK if doc["ok"] else EXIT_FAILED)
