"""The running daemon's /status as the failover commands read it: each target's lag
(the only place it is measured while changes flow), its named pending items, and
whether the pair's journal is durable.

`read_daemon()` fetches the document once; `lag_of()` and `journal_durable()` read it,
so a command that needs several targets' lags, or a lag and then the journal, fetches
it once. `drain()` and `wait_journal_durable()` poll: they wait for the daemon to move.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from failover.switchover import LagReading
    from kvdr.config import KvdrConfig


@dataclass(frozen=True)
class DaemonStatus:
    """One reading of the daemon's /status at `where`; `doc` None: none could be read
    (`why`: refused, or no daemon answers)."""

    where: str
    doc: dict[str, Any] | None
    why: str = ""


def read_daemon(config: KvdrConfig, url: str | None) -> DaemonStatus:
    """The daemon's /status, at `url` or where the configuration says it listens."""
    from kvdr.commands.status import StatusRefused, daemon_status, local_url

    base = url or local_url(config.daemon.listen_host, config.daemon.listen_port)
    where = base.rstrip("/") + "/status"
    try:
        doc = daemon_status(where, token=config.daemon.status_token)
    except StatusRefused as exc:
        return DaemonStatus(where, None, str(exc))
    if doc is None:
        return DaemonStatus(
            where, None, f"no daemon answers at {where}; lag is measured by `kvdr run`"
        )
    return DaemonStatus(where, doc)


def lag_of(status: DaemonStatus, pair: str, to: str) -> tuple[LagReading | None, str]:
    """The daemon's lag for `pair` -> `to` (None: unknown) and why it is unknown."""
    from failover.switchover import LagReading

    doc, where = status.doc, status.where
    if doc is None:
        return None, status.why
    for p in doc.get("pairs", []):
        if p.get("name") != pair:
            continue
        for t in p.get("targets", []):
            if t.get("region") == to:
                lag, pending = t.get("lag_seconds"), t.get("pending")
                if lag is None or pending is None:
                    owner = p.get("owner") or "another daemon"
                    return None, f"the daemon at {where} does not run the pair ({owner} does)"
                passes = int(p.get("passes") or 0)
                begun = int(p.get("passes_begun") or passes)
                source = f"daemon {where}"
                items = tuple(_pending_items(t.get("pending_items")))
                reading = LagReading(float(lag), int(pending), source, passes, begun)
                return replace(reading, pending_items=items), ""
        return None, f"{to} is not a target of pair {pair} at the daemon {where}"
    return None, f"the daemon at {where} does not know pair {pair}"


def read_lag(
    config: KvdrConfig, pair: str, to: str, url: str | None
) -> tuple[LagReading | None, str]:
    """A fresh reading of the daemon's lag for `pair` -> `to`."""
    return lag_of(read_daemon(config, url), pair, to)


def _pending_items(raw: object) -> list[tuple[str, float]]:
    """The daemon's named pending items (`kind/name`, ISO time); what does not parse
    is left out (an older daemon sends none)."""
    items: list[tuple[str, float]] = []
    for entry in raw if isinstance(raw, list) else []:
        try:
            items.append((str(entry["item"]), datetime.fromisoformat(entry["since"]).timestamp()))
        except (KeyError, TypeError, ValueError):
            continue
    return items


async def drain(
    config: KvdrConfig, pair: str, to: str, url: str | None, seconds: float
) -> tuple[LagReading | None, str]:
    """Poll the daemon's lag for `pair` -> `to` until it is 0 with nothing pending, or
    `seconds` pass; the last reading (None: unknown) and why it is unknown.

    Lag 0 proves only what the daemon has seen. A write acknowledged just before the
    fence may not be in any listing yet, so the drain also waits for the daemon to
    finish a listing that began after the first reading (which came after the fence):
    one more than the passes begun at that reading. No clocks of two hosts are
    compared."""
    deadline = time.monotonic() + seconds
    first: int | None = None
    while True:
        lag, why = await asyncio.to_thread(read_lag, config, pair, to, url)
        if lag is not None and first is None:
            first = lag.passes_begun
        fresh = lag is not None and first is not None and lag.passes >= first + 1
        if lag is None or (lag.caught_up and fresh):
            return lag, why
        if time.monotonic() >= deadline:
            return replace(lag, unproven=not fresh), why
        await asyncio.sleep(0.1)


def journal_durable(status: DaemonStatus, pair: str) -> bool:
    """Has the daemon no journal changes of `pair` buffered (or no journal, or no
    daemon that could say)?"""
    logs = [j for j in (status.doc or {}).get("journal", []) if j.get("pair") == pair]
    return not logs or (
        logs[0].get("buffered") == 0
        and logs[0].get("durable_sequence") == logs[0].get("last_sequence")
    )


async def wait_journal_durable(
    config: KvdrConfig, pair: str, url: str | None, first: DaemonStatus | None = None
) -> None:
    """Give a running daemon up to 10 s to make its buffered journal changes of `pair`
    durable: the loss is measured against what the journal holds in storage. `first`:
    a reading already taken that still tells (none: read one now)."""
    deadline = time.monotonic() + 10.0
    status = first if first is not None else await asyncio.to_thread(read_daemon, config, url)
    while not journal_durable(status, pair):
        await asyncio.sleep(0.2)
        if time.monotonic() >= deadline:
            return
        status = await asyncio.to_thread(read_daemon, config, url)
