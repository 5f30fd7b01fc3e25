"""What a hostile POST to the daemon's /events costs: memory, primary requests, and
whether a cross-site content type is taken (issue 9).

Run from the repository root: `python -m bench.events_webhook [--bogus 44000]
[--real 2000] [--source DIR]`. A real `kvdr run` daemon (loopback listener, no secret:
the one configuration every version of kvdr accepts, and the one a local attacker
page meets) runs over two emulators and Azurite. Three measurements:

1. a `text/plain` POST of one valid event: the status code (a browser page on any
   site can send text/plain without a CORS preflight);
2. `--bogus` event names (Event Grid batches of 2,000) the primary has never held,
   half of them names Key Vault cannot hold (`bogus_00001`) and half valid ones
   (`bogus-00001`): the daemon's resident memory (VmRSS) before and after, once the
   primary has answered for every name the daemon asks about;
3. one POST of `--real` events naming secrets the pair already mirrored (about 140 bytes
   each, 280 KB for 2,000): every request the primary answers because of it, counted
   by the primary emulator (`/_emulator/stats`, reset just before).

`--source DIR` runs the daemon from another checkout (e.g. `git archive main | tar -x
-C DIR`) for the before figures; the benchmark itself only speaks HTTP to it. Target
(DESIGN.md): an event never makes kvdr read more than a bounded share of a vault's
budget (default 25% of 3,600 requests per 10 s: 450 events per 10 s).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench._report import header, table
from bench._world import BenchStack, open_world, secret_names, seed_secrets
from tests.fixtures.daemon import DaemonProcess, free_port, write_config
from tests.fixtures.emulator import EmulatorProcess
from tests.fixtures.event_receiver import new_version_events
from vault.rate import WINDOW_SECONDS

QUICK_ARGS = ["--bogus", "4400", "--real", "400"]
BATCH = 2000
# The primary is settled when its request count has not moved for this long: longer
# than the 10 s window in which kvdr's own request budget may hold requests back.
SETTLED_SECONDS = 12.0
SETTLE_TIMEOUT_SECONDS = 600.0


def post(url: str, body: bytes, content_type: str = "application/json") -> int:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": content_type}
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


# What the daemon's region probe asks every few seconds, whatever events arrive.
PROBE_OPS = frozenset({"GetSecrets"})


def requests_answered(emu: EmulatorProcess) -> int:
    """Requests of `emu` other than the region probe's."""
    return sum(n for op, n in by_op(emu).items() if op not in PROBE_OPS)


def by_op(emu: EmulatorProcess) -> dict[str, int]:
    ops: dict[str, dict[str, int]] = emu.stats().get("by_op", {})
    return {op: sum(statuses.values()) for op, statuses in sorted(ops.items())}


def settle(count: Callable[[], int]) -> float:
    """Wait until `count()` stops moving; the seconds it took."""
    began = time.monotonic()
    last, since = count(), time.monotonic()
    while time.monotonic() - began < SETTLE_TIMEOUT_SECONDS:
        time.sleep(0.5)
        now = count()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= SETTLED_SECONDS:
            break
    return time.monotonic() - began - SETTLED_SECONDS


def mirrored(daemon: DaemonProcess, items: int) -> None:
    """Wait until the daemon's first full pass has copied `items` secrets."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        pair = daemon.status()["pairs"][0]
        if pair["last_reconcile"] and pair["targets"][0]["items"] >= items:
            return
        time.sleep(0.5)
    raise RuntimeError(f"the first pass did not copy {items} secrets in time")


def start_daemon(config: Path, port: int, source: Path | None) -> DaemonProcess:
    env: dict[str, str] = {}
    if source is not None:
        # `python -m kvdr` from that checkout: its folder first, not this one.
        env = {"PYTHONSAFEPATH": "1", "PYTHONPATH": str(source)}
    return DaemonProcess(config, port, env=env).start(timeout=120)


async def measure(args: argparse.Namespace) -> list[list[Any]]:
    rows: list[list[Any]] = []
    with BenchStack() as stack:
        primary = stack.emulator("eastus")
        secondary = stack.emulator("westus")
        real = secret_names(args.real, "real")
        await seed_secrets(primary, real)
        async with open_world(stack, {"eastus": primary, "westus": secondary}) as world:
            port = free_port()
            config = write_config(
                world,
                stack.folder / "kvdr.toml",
                port=port,
                poll_interval="1h",
                reconcile_interval="1h",
                rpo_objective="1h",
            )
            daemon = start_daemon(config, port, args.source)
            try:
                pid = daemon.process.pid if daemon.process else 0
                mirrored(daemon, args.real)
                url = daemon.url + "/events"

                code = post(url, new_version_events(real[:1]), "text/plain")
                rows.append(["text/plain POST of one event", f"HTTP {code}", ""])

                settle(lambda: requests_answered(primary))
                before = rss_kib(pid)
                half = args.bogus // 2
                bogus = [f"bogus_{i:05d}" for i in range(half)]
                bogus += [f"bogus-{i:05d}" for i in range(args.bogus - half)]
                began = time.monotonic()
                codes = {
                    post(url, new_version_events(bogus[i : i + BATCH]))
                    for i in range(0, len(bogus), BATCH)
                }
                took = settle(lambda: requests_answered(primary)) + time.monotonic() - began
                after = rss_kib(pid)
                rows.append(
                    [
                        f"memory after {args.bogus:,} bogus names",
                        f"+{(after - before) / 1024:.1f} MB",
                        f"RSS {before / 1024:.1f} -> {after / 1024:.1f} MB, HTTP {sorted(codes)}, "
                        f"settled in {took:.0f} s",
                    ]
                )
                pair = daemon.status()["pairs"][0]
                rows.append(
                    [
                        "RPO after the bogus names settled",
                        f"{pair['rpo_seconds']:g} s",
                        f"{pair['targets'][0]['pending']} pending marks, primary error: "
                        f"{'yes' if pair['source_error'] else 'no'}",
                    ]
                )

                # A fresh window of the primary's event budget, as a flood on its own meets.
                time.sleep(WINDOW_SECONDS + 1)
                primary.reset_stats()
                body = new_version_events(real)
                code = post(url, body)
                settle(lambda: requests_answered(primary))
                ops = {op: n for op, n in by_op(primary).items() if op not in PROBE_OPS}
                rows.append(
                    [
                        f"primary requests for one POST of {args.real:,} real names",
                        sum(ops.values()),
                        f"{len(body) / 1024:.0f} KB body, HTTP {code}, {ops} "
                        "(region probes left out)",
                    ]
                )
            finally:
                daemon.terminate()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bogus", type=int, default=44_000, help="bogus event names")
    parser.add_argument("--real", type=int, default=2_000, help="real names in one POST")
    parser.add_argument(
        "--source", type=Path, default=None, help="run the daemon from this checkout"
    )
    args = parser.parse_args()
    if args.source is not None and not (args.source / "kvdr" / "__main__.py").is_file():
        parser.error(f"--source {args.source}: no kvdr package there")
    print(header("events webhook: what a hostile POST costs"))
    print(f"daemon from: {args.source or Path.cwd()} (pid of this run: {os.getpid()})")
    rows = asyncio.run(measure(args))
    print(table(["measurement", "result", "detail"], rows, align="lrl"))


if __name__ == "__main__":
    main()
