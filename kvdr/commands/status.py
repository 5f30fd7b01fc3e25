"""`kvdr status [--json]`: pairs, RPO, lag, active region, health.

Asks the running daemon (its `/status`); when none answers, reads what the checkpoints
in blob storage say, so the command also works while the daemon is down.
"""

from __future__ import annotations

import asyncio
import json
import sys
import urllib.error
import urllib.request
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from kvdr.commands._shared import (
    EXIT_FAILED,
    EXIT_OK,
    config_option,
    emit_json,
    fail,
    load_config_or_exit,
)

if TYPE_CHECKING:
    from rich.console import Console

    from kvdr.config import KvdrConfig


class StatusRefused(Exception):
    """The daemon answered /status with 401 or 421: the token or the address is wrong."""


def daemon_status(
    url: str, timeout: float = 3.0, token: str | None = None
) -> dict[str, Any] | None:
    """The daemon's /status document, or None when no daemon answers there.

    `token` is sent as the bearer token the daemon asks for (daemon.status_token_*)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            doc: dict[str, Any] = json.loads(response.read())
            return doc
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            raise StatusRefused(
                f"the daemon at {url} asks for a bearer token: set daemon.status_token_env "
                "or daemon.status_token_file to the daemon's token"
                + (" (the one given was refused)" if token else "")
            ) from None
        if exc.code == 421:
            raise StatusRefused(
                f"the daemon at {url} does not answer to that host name: add it to its "
                "daemon.allowed_hosts, or use --url with 127.0.0.1"
            ) from None
        return None
    except (urllib.error.URLError, OSError, ValueError):
        return None


def local_url(host: str, port: int) -> str:
    """Where this host reaches a daemon listening on `host` (a wildcard address is
    reached on loopback)."""
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def checkpoint_status(config: KvdrConfig) -> dict[str, Any]:
    """What the checkpoints say, for when the daemon is not running."""
    from kvdr.wiring import state_sealer
    from replicator.checkpoint import CheckpointStore
    from replicator.guard import DeletionGuardStore
    from replicator.members import Members
    from replicator.pair_status import pair_shell
    from storage.lease import LeaseTiming
    from storage.open import open_store
    from vault.credentials import build_credential

    pairs = []
    async with AsyncExitStack() as stack:
        credential = build_credential(config.credential)
        await stack.enter_async_context(credential)
        blobs = await stack.enter_async_context(open_store(config.storage, credential))
        store = CheckpointStore(blobs, state_sealer(config))
        guards = DeletionGuardStore(blobs, store.sealer)
        # The daemons' heartbeats name each pair's owner (the last one, if none runs now).
        members = Members(
            blobs, "kvdr-status", LeaseTiming(config.replicator.lease_duration_seconds)
        )
        await members.refresh()
        for pair in config.replicator.pairs:
            doc = pair_shell(pair)
            for target in doc["targets"]:
                cp = await store.load(pair.name, target["region"])
                target["items"] = len(cp.items)
                target["last_success"] = cp.last_applied.isoformat() if cp.last_applied else None
            owner = members.owner(pair.name)
            doc.update(
                # Kept in blob storage: a tripped guard shows while no daemon runs.
                deletion_guard=(await guards.load(pair.name)).view(pair.hide_names),
                owner=owner.instance if owner else None,
                owner_since=owner.since if owner else None,
            )
            pairs.append(doc)
    return {
        "source": "checkpoints",
        "daemon": None,
        "at": datetime.now(UTC).isoformat(),
        "pairs": pairs,
    }


def status_console() -> Console:
    """Rich console; piped output gets a width that fits the tables instead of 80."""
    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=180)


def render(doc: dict[str, Any]) -> None:
    from rich.markup import escape
    from rich.table import Table

    console = status_console()
    if doc.get("source") == "checkpoints":
        console.print("[yellow]daemon not running[/]: showing the last checkpoints")
    else:
        console.print(f"daemon [bold]{doc.get('instance')}[/] (kvdr {doc.get('version')})")
    others = [i for i in doc.get("instances", []) if not i.get("self")]
    if others:
        # Several daemons share the pairs (docs/high-availability.md).
        console.print(
            "other daemons: "
            + ", ".join(
                f"{escape(i['instance'])} ({len(i['pairs'])} pairs)"
                if i["live"]
                else f"{escape(i['instance'])} [yellow](silent)[/]"
                for i in others
            )
        )
    if doc.get("regions"):
        regions = Table("region", "vault", "state", "last check", "error", title="Regions")
        for r in doc["regions"]:
            state = {True: "[green]up[/]", False: "[red]unreachable[/]"}.get(r["up"], "unknown")
            regions.add_row(r["region"], r["url"], state, r["last_check"] or "-", r["error"] or "")
        console.print(regions)
    pairs = Table(
        "pair",
        "owner",
        "primary",
        "target",
        "RPO s",
        "objective s",
        "lag s",
        "pending",
        "items",
        "conflicts",
        "last success",
        title="Pairs",
    )
    for p in doc.get("pairs", []):
        rpo = p.get("rpo_seconds")
        rpo_text = (
            "-"
            if rpo is None
            else (
                f"[green]{rpo:.1f}[/]"
                if p.get("rpo_ok")
                else f"[red]{rpo:.1f} (above objective)[/]"
            )
        )
        owner = p.get("owner") or "-"
        if p.get("leader"):
            owner = f"[bold]{owner}[/] (this daemon)"
        # The daemon's reading of the control record: the primary is the active region.
        control = p.get("control") or {}
        primary = p["primary"]
        if control.get("epoch"):
            primary = f"{primary} (epoch {control['epoch']})"
        if control and not control.get("confirmed"):
            primary += " [red](control record unconfirmed)[/]"
        for t in p["targets"]:
            lag = t.get("lag_seconds")
            pairs.add_row(
                p["name"],
                owner,
                primary,
                t["region"],
                rpo_text,
                str(p["rpo_objective_seconds"]),
                "-" if lag is None else f"{lag:.1f}",
                _or_dash(t.get("pending")),
                _or_dash(t.get("items")),
                str(len(t.get("conflicts", []))),
                t["last_success"] or "-",
            )
    console.print(pairs)
    for p in doc.get("pairs", []):
        for t in p["targets"]:
            for c in t.get("conflicts", []):
                console.print(f"[yellow]conflict[/] {p['name']} -> {t['region']}: {c['reason']}")
            for b in t.get("blocked", []):
                console.print(
                    f"[yellow]blocked[/] {p['name']} -> {t['region']}: {escape(b['reason'])}",
                    highlight=False,
                )
        if p.get("refused"):
            console.print(
                f"[bold red]pair refused to start[/] {p['name']}: {escape(p['refused'])}",
                highlight=False,
            )
    render_journal(doc)
    render_deletions(doc)


def render_journal(doc: dict[str, Any]) -> None:
    """The journal's open problems (storage down while segments or a snapshot are due)."""
    from rich.markup import escape

    health = doc.get("journal_health") or {}
    for problem in health.get("problems", []):
        pair = f" pair {problem['pair']}" if problem.get("pair") else ""
        status_console().print(
            f"[bold red]journal failing[/] ({problem['what']}{pair}) for "
            f"{problem['for_seconds']:.0f} s, {problem['attempts']} attempts: "
            f"{escape(problem['error'])}",
            highlight=False,
        )
    buffered = sum(int(j.get("buffered") or 0) for j in doc.get("journal", []))
    if health.get("problems") and buffered:
        status_console().print(f"journal: {buffered} changes held in memory until it recovers")


def render_deletions(doc: dict[str, Any]) -> None:
    """Tripped deletion guards and the items that expire within each pair's horizon."""
    from rich.table import Table

    console = status_console()
    for p in doc.get("pairs", []):
        guard = p.get("deletion_guard") or {}
        if guard.get("tripped"):
            console.print(
                f"[bold red]deletion guard tripped[/] {p['name']} since {guard['since']}: "
                f"{guard['withheld_count']} deletions withheld "
                f"({', '.join(guard['withheld'][:10])}); review, then run: "
                f"{guard['release_with']}",
                markup=True,
                highlight=False,
            )
    rows = [(p["name"], e) for p in doc.get("pairs", []) for e in p.get("expiring") or []]
    if not rows:
        return
    table = Table("pair", "region", "kind", "name", "expires", "days left", title="Expiring items")
    for pair, e in rows:
        days = "[red]expired[/]" if e["expired"] else f"{e['days_left']:.1f}"
        table.add_row(pair, e["region"], e["kind"], e["name"], e["expires_on"], days)
    console.print(table)


def _or_dash(value: object) -> str:
    # None: a figure only the pair's owner knows (another daemon runs the pair).
    return "-" if value is None else str(value)


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option("--url", default=None, help="Daemon base URL (default: from the configuration).")
@config_option()
def command(as_json: bool, url: str | None, config_path: Path | None) -> None:
    """Show pairs, RPO, lag, regions and conflicts."""
    config = load_config_or_exit(config_path)
    if url is None:
        url = local_url(config.daemon.listen_host, config.daemon.listen_port)
    try:
        doc = daemon_status(url.rstrip("/") + "/status", token=config.daemon.status_token)
    except StatusRefused as exc:
        fail(str(exc), EXIT_FAILED)
    if doc is not None:
        doc["source"] = "daemon"
    else:
        from kvdr.log_setup import configure_logging

        configure_logging(config.daemon.log_format, "warning")
        doc = asyncio.run(checkpoint_status(config))
    if as_json:
        emit_json(doc)
    else:
        render(doc)
    raise SystemExit(EXIT_OK)
