"""Failover on the local stack: switchover under load, manual promote, automatic promote.

Run from the repository root:
`python -m bench.failover_rto [--promotes 10] [--rate 20] [--skip-automatic]`.

One local stack on free ports (two emulators behind kvdr's fault proxy, Azurite, the
daemon as a process, the emulator read-only fence), the `kvdr failover` commands run as
processes, as an operator runs them. Measured:

- **switchover** under a steady load of `--rate` writes/s: RPO = acknowledged writes
  missing from the new primary afterwards (target 0), RTO as the command reports it
  (command start to the new primary ready) and the longest gap between two
  acknowledged writes (what an application sees); target RTO < 10 s. Then back.
- **manual promote**, `--promotes` times, alternating regions: the active region's
  proxy link is cut, `kvdr failover promote` runs; RTO from the command's start to the
  first write an application (writing every 50 ms to the new primary from the command's
  start) saw succeed after the command returned the new epoch (the new primary is
  fenced from the round before, so it takes application writes only once kvdr lifted
  its fence). Target p50 and p99 < 5 s.
- **automatic**: `mode = "automatic"` at the defaults; from the moment the active
  region's link is cut to the first successful application write on the region the
  daemon promoted. Target < 20 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from azure.core.exceptions import HttpResponseError

from bench._report import at_most, header, percentile, table
from chaos.faults import Faults
from kvdr.local_stack import LocalStack
from tests.e2e.stack_clients import stack_secret_client
from tests.fixtures.daemon import DaemonProcess
from tests.fixtures.stack_failover import (
    WriteLoad,
    kvdr_json,
    pair_doc,
    port_of,
    source_is,
)
from tests.fixtures.waiting import wait_for

QUICK_ARGS = ["--promotes", "3", "--skip-automatic"]
ROOT = Path(__file__).resolve().parents[1]
PAIR = "demo"
OTHER = {"eastus": "westus", "westus": "eastus"}


async def first_write(local: LocalStack, region: str, name: str) -> float:
    """Writes to `region` every 50 ms until one succeeds; the time it did (monotonic)."""
    async with stack_secret_client(local.state_dir, port_of(local, region)) as client:
        while True:
            try:
                await client.set_secret(name, "probe")
            except HttpResponseError:
                await asyncio.sleep(0.05)
                continue
            return time.monotonic()


async def switchover_round(
    local: LocalStack, daemon: DaemonProcess, to: str, rate: float
) -> list[Any]:
    load = WriteLoad(local, f"bench-switch-{to}", active=OTHER[to], interval=1.0 / rate)
    writer = asyncio.create_task(load.run())
    await asyncio.sleep(3.0)
    code, doc = await kvdr_json(local, daemon, "switchover", "--pair", PAIR, "--to", to, "--yes")
    load.active = to
    await asyncio.sleep(3.0)
    load.stop.set()
    await writer
    if code != 0:
        return [f"switchover to {to}", "refused", "-", "-", "-", str(doc.get("refused"))]
    missing = 0
    async with stack_secret_client(local.state_dir, port_of(local, to)) as client:
        for name, value, _ in load.ledger:
            try:
                got = (await client.get_secret(name)).value
            except HttpResponseError:
                got = None
            missing += got != value
    gaps = [b - a for a, b in itertools.pairwise(load.acknowledged_at)]
    return [
        f"switchover to {to}",
        len(load.ledger),
        missing,
        doc["rto_seconds"],
        max(gaps) if gaps else float("nan"),
        at_most(doc["rto_seconds"], 10.0, " s", figure=f"switchover to {to} RTO")
        + ("" if missing == 0 else "; RPO not 0"),
    ]


async def promote_round(
    local: LocalStack, daemon: DaemonProcess, faults: Faults, index: int
) -> tuple[float, float]:
    active = pair_doc(daemon)["control"]["active_region"]
    to = OTHER[active]
    await faults.set_down(f"{active}-vault")
    started = time.monotonic()
    writer = asyncio.create_task(first_write(local, to, f"bench-promote-{index}"))
    code, doc = await kvdr_json(local, daemon, "promote", "--pair", PAIR, "--to", to, "--yes")
    if code != 0:
        writer.cancel()
        raise RuntimeError(f"promote refused: {doc}")
    wrote = await writer
    await faults.set_up(f"{active}-vault")
    # Settled: the daemon runs the new direction and has fenced the old primary.
    await wait_for(
        lambda: (
            source_is(daemon, to) and pair_doc(daemon)["control"]["fences"].get(active) == "applied"
        ),
        60,
        "the old primary fenced and the daemon reversed",
    )
    return float(doc["rto_seconds"]), wrote - started


async def automatic_round(local: LocalStack, daemon: DaemonProcess, faults: Faults) -> float:
    active = pair_doc(daemon)["control"]["active_region"]
    to = OTHER[active]
    cut = time.monotonic()
    await faults.set_down(f"{active}-vault")
    await wait_for(
        lambda: pair_doc(daemon).get("control", {}).get("active_region") == to,
        120,
        "the automatic promotion",
        interval=0.05,
    )
    wrote = await first_write(local, to, "bench-automatic")
    await faults.set_up(f"{active}-vault")
    return wrote - cut


async def promotes(local: LocalStack, daemon: DaemonProcess, faults: Faults, count: int) -> None:
    print(header(f"failover: manual promote x{count}"))
    reported, seen = [], []
    for index in range(count):
        rto, first = await promote_round(local, daemon, faults, index)
        reported.append(rto)
        seen.append(first)
    rows = [
        [
            what,
            statistics.median(values),
            percentile(values, 99),
            max(values),
            at_most(percentile(values, 99), 5.0, " s", figure=f"promote: {what} p99"),
        ]
        for what, values in (
            ("RTO reported by promote", reported),
            ("first application write", seen),
        )
    ]
    print(table(["measure", "p50 s", "p99 s", "max s", "verdict (p99)"], rows))


async def measure(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="kvdr-bench-failover-") as tmp:
        state = Path(tmp) / ".kvdr"
        local = LocalStack.start_on_free_ports(state, ROOT)
        ports = local.ports
        config = state / "kvdr.toml"
        local.write_config(config)
        daemon = DaemonProcess(config, ports.daemon)
        faults = Faults(port=ports.proxy_api)
        try:
            daemon.start()
            await wait_for(lambda: pair_doc(daemon).get("last_reconcile"), 120, "the first pass")
            if not args.skip_switchover:
                print(header("failover: switchover under load"))
                rows = [
                    await switchover_round(local, daemon, "westus", args.rate),
                    await switchover_round(local, daemon, "eastus", args.rate),
                ]
                heads = ["round", "writes", "lost", "RTO s", "longest write gap s", "verdict"]
                print(table(heads, rows))
            if args.promotes:
                await promotes(local, daemon, faults, args.promotes)
            if not args.skip_automatic:
                daemon.terminate()
                text = config.read_text().replace(
                    'fence = "emulator-readonly"', 'fence = "emulator-readonly"\nmode = "automatic"'
                )
                config.write_text(text)
                daemon = DaemonProcess(config, ports.daemon)
                daemon.start()
                # Automatic promotion needs the target's lag at the last contact: the
                # daemon must have run the pair (and sampled it) before the outage.
                await wait_for(lambda: (pair_doc(daemon).get("passes") or 0) > 0, 60, "a pass")
                await asyncio.sleep(5.0)
                took = await automatic_round(local, daemon, faults)
                print(header("failover: automatic promote (defaults)"))
                print(
                    table(
                        ["measure", "seconds", "verdict"],
                        [
                            [
                                "link cut -> first write on the new primary",
                                took,
                                at_most(
                                    took,
                                    20.0,
                                    " s",
                                    figure="automatic promotion to the first write",
                                ),
                            ]
                        ],
                    )
                )
        finally:
            with contextlib.suppress(Exception):
                await faults.reset()
            try:
                daemon.terminate()
            finally:
                daemon.kill()
                local.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--promotes", type=int, default=10)
    parser.add_argument("--rate", type=float, default=20.0, help="writes/s during switchover")
    parser.add_argument("--skip-automatic", action="store_true")
    parser.add_argument("--skip-switchover", action="store_true")
    asyncio.run(measure(parser.parse_args()))


if __name__ == "__main__":
    main()
