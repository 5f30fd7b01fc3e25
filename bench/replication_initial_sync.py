"""Initial sync of N secrets, primary -> one secondary: kvdr against a sequential SDK loop.

Run from the repository root: `python -m bench.replication_initial_sync [--secrets 2000]`.

One primary emulator (no added latency) is seeded with N small secrets. For each
secondary latency (`--latencies 40,0`: a far region, then a near one) three runs copy
them onto a FRESH secondary emulator started with `--latency MS`:

- baseline: a plain sequential loop with the sync SDK (`list_properties_of_secrets`,
  then `get_secret` on the primary and `set_secret` on the secondary per secret);
- kvdr: `PairReplicator.load()`, `reconcile()`, `flush()` with default settings
  (`ReplicatorSettings()`, `VaultSettings()`): the checkpoint write is included;
- kvdr, budget lifted: the same with the per-vault request budgets raised far above
  Azure's limits, to show what the replicator's concurrency alone achieves. Not a safe
  setting against Azure (it would draw 429s); it separates "limited by the budget" from
  "limited by the engine".

Target (issue 3): kvdr at least 10x faster than the baseline with `--latency 40`.
Every run is checked: the secondary holds N secrets and a sample of values matches.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import time
from dataclasses import dataclass, field

from bench._report import at_least, header, ratio, table
from bench._world import (
    BenchStack,
    live_secret_names,
    open_world,
    sample_mismatches,
    secret_names,
    seed_secrets,
)
from tests.fixtures.emulator import EmulatorProcess, secret_client
from vault.settings import VaultSettings

# `python -m bench` (quick mode) runs this with these arguments.
QUICK_ARGS = ["--secrets", "200"]

TARGET_RATIO = 10.0
VERIFY_SAMPLE = 25
# Far above any Azure limit: the run is then bounded by concurrency and latency only.
LIFTED_BUDGETS = {"secret_creates_per_10s": 1_000_000, "other_ops_per_10s": 1_000_000}


@dataclass
class Run:
    """One copy of the primary onto a fresh secondary."""

    label: str
    latency_ms: int
    seconds: float
    # CPU this process spent copying: less sensitive than `seconds` to other load.
    cpu_seconds: float
    copied: int
    on_secondary: int
    mismatches: int
    # The machine's 1-minute load average when the copy ended.
    load: float = field(default_factory=lambda: os.getloadavg()[0])


def sequential_sdk_copy(
    primary: EmulatorProcess, secondary: EmulatorProcess
) -> tuple[float, float, int]:
    """The baseline: list, then get + set one secret at a time with the sync SDK;
    returns seconds, CPU seconds and the count copied."""
    with secret_client(primary) as source, secret_client(secondary) as target:
        started, cpu = time.perf_counter(), time.process_time()
        copied = 0
        for props in source.list_properties_of_secrets():
            name = props.name or ""
            secret = source.get_secret(name)
            target.set_secret(
                name,
                secret.value or "",
                content_type=props.content_type,
                tags=props.tags,
                enabled=props.enabled,
                not_before=props.not_before,
                expires_on=props.expires_on,
            )
            copied += 1
        return time.perf_counter() - started, time.process_time() - cpu, copied


async def kvdr_copy(
    stack: BenchStack, primary: EmulatorProcess, secondary: EmulatorProcess, **vault_options: int
) -> tuple[float, float, int, int, int]:
    """kvdr's initial sync; returns seconds, CPU seconds, copied, count on the secondary
    and sample mismatches."""
    async with open_world(
        stack, {"eastus": primary, "westus": secondary}, **vault_options
    ) as world:
        replicator = world.replicator(world.pair())
        started, cpu = time.perf_counter(), time.process_time()
        await replicator.load()
        report = await replicator.reconcile()
        await replicator.flush()
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        present = await live_secret_names(world.vaults["westus"])
        bad = await sample_mismatches(
            world.vaults["eastus"], world.vaults["westus"], present, VERIFY_SAMPLE
        )
        return seconds, cpu, report.copied, len(present), len(bad)


async def verify_copy(
    stack: BenchStack, primary: EmulatorProcess, secondary: EmulatorProcess
) -> tuple[int, int]:
    """Count and sample-check what a baseline run left on the secondary."""
    async with open_world(stack, {"eastus": primary, "westus": secondary}) as world:
        present = await live_secret_names(world.vaults["westus"])
        # The baseline writes no kvdr tag: compare values only.
        bad = await sample_mismatches(
            world.vaults["eastus"], world.vaults["westus"], present, VERIFY_SAMPLE, kvdr_tag=False
        )
        return len(present), len(bad)


def budget_floor_seconds(creates: int, per_10s: int) -> float:
    """Least time `creates` set_secret calls take under a budget of `per_10s` per 10 s:
    the last grant comes floor((n - 1) / limit) windows after the first."""
    return math.floor(max(0, creates - 1) / per_10s) * 10.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--secrets", type=int, default=2000, help="secrets to copy (default 2000)")
    parser.add_argument(
        "--latencies",
        default="40,0",
        help="secondary --latency values in ms, comma-separated (default 40,0)",
    )
    parser.add_argument(
        "--skip-lifted", action="store_true", help="leave out the budget-lifted kvdr runs"
    )
    args = parser.parse_args()
    try:
        latencies = [int(x) for x in args.latencies.split(",") if x.strip()]
    except ValueError:
        parser.error(f"--latencies: {args.latencies!r} is not a comma-separated list of ms")
    if args.secrets < 1:
        parser.error(f"--secrets: {args.secrets} must be at least 1")

    runs: list[Run] = []
    with BenchStack() as stack:
        primary = stack.emulator("eastus")
        names = secret_names(args.secrets)
        started = time.perf_counter()
        asyncio.run(seed_secrets(primary, names))
        print(f"seeded {len(names)} secrets in {time.perf_counter() - started:.1f} s")

        for latency in latencies:
            secondary = stack.emulator("westus", latency_ms=latency)
            seconds, cpu, copied = sequential_sdk_copy(primary, secondary)
            load = os.getloadavg()[0]
            present, bad = asyncio.run(verify_copy(stack, primary, secondary))
            runs.append(
                Run("sequential sync SDK", latency, seconds, cpu, copied, present, bad, load)
            )
            stack.stop(secondary)
            print(f"  latency {latency} ms: baseline {seconds:.1f} s", flush=True)

            variants: list[tuple[str, dict[str, int]]] = [("kvdr (defaults)", {})]
            if not args.skip_lifted:
                variants.append(("kvdr, budget lifted", LIFTED_BUDGETS))
            for label, options in variants:
                secondary = stack.emulator("westus", latency_ms=latency)
                seconds, cpu, copied, present, bad = asyncio.run(
                    kvdr_copy(stack, primary, secondary, **options)
                )
                runs.append(Run(label, latency, seconds, cpu, copied, present, bad))
                stack.stop(secondary)
                print(f"  latency {latency} ms: {label} {seconds:.1f} s", flush=True)

    defaults = VaultSettings()
    print()
    print(header(f"initial sync of {args.secrets} secrets, primary -> one fresh secondary"))
    rows = []
    for run in runs:
        base = next(r for r in runs if r.latency_ms == run.latency_ms and r.label.startswith("seq"))
        rows.append(
            [
                run.label,
                f"{run.latency_ms} ms",
                run.seconds,
                run.copied / run.seconds if run.seconds else math.nan,
                ratio(base.seconds, run.seconds),
                run.cpu_seconds / run.copied * 1000 if run.copied else math.nan,
                run.load,
                f"{run.on_secondary}/{args.secrets}",
                run.mismatches,
            ]
        )
    print(
        table(
            [
                "run",
                "secondary latency",
                "seconds",
                "secrets/s",
                "vs baseline",
                "client CPU ms/secret",
                "load",
                "on secondary",
                "bad values",
            ],
            rows,
        )
    )
    print(
        "client CPU: this process (SDK loop, or kvdr with its adapters); load: the machine's "
        "1-minute load average as the copy ended (2 cores; the emulators run beside it)"
    )
    floor = budget_floor_seconds(args.secrets, defaults.secret_creates_per_10s)
    wait = f"at least {floor:.0f} s" if floor else "no wait"
    print(
        f"kvdr's default budget: {defaults.secret_creates_per_10s} secret creates per 10 s per "
        f"vault (90% of Azure's 300) -> {wait} for {args.secrets} creates"
    )
    for latency in latencies:
        base = next(r for r in runs if r.latency_ms == latency and r.label.startswith("seq"))
        kvdr = next(r for r in runs if r.latency_ms == latency and r.label == "kvdr (defaults)")
        value = base.seconds / kvdr.seconds if kvdr.seconds else math.nan
        verdict = at_least(
            value, TARGET_RATIO, "x", figure=f"initial sync vs sequential SDK at {latency} ms"
        )
        print(f"latency {latency} ms: kvdr (defaults) {value:.1f}x the baseline; {verdict}")


if __name__ == "__main__":
    main()
