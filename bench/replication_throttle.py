"""kvdr's initial sync against vaults that throttle like Azure: creates per 10 s vs 300.

Run from the repository root: `python -m bench.replication_throttle [--secrets 2000]`.

Both emulators enforce Key Vault's limits (`--throttle azure`: 300 secret creates and
4,000 other transactions per vault per 10 s, 429 + Retry-After above them).

Seeding: the primary is started WITHOUT throttling, seeded with N small secrets, then
restarted on the same state folder with `--throttle azure` before kvdr starts. Pacing the
seed under the primary's own create budget would only add N/30 s of waiting and measure
nothing; the restart also means no window of the primary's budget is spent at start.

kvdr then runs its initial sync with default settings (`PairReplicator.load()`,
`reconcile()`, `flush()`). The secondary reports each create's commit time through its
Event Grid events (`bench._event_sink`), so creates per 10 s are counted exactly,
without asking the secondary anything. Reported: creates in every full 10 s window
(a grid of windows 0.1 s apart between the first and the last create), mean / min / max,
against the budget of 300 (target: sustained >= 90%, i.e. 270), 429s seen on each vault,
and that nothing was lost (count on the secondary, duplicates, values of a sample).

A second run (`--compare-items 64`, 0 skips it) repeats the sync onto another fresh
secondary with `max_concurrent_items=64`, to tell whether the 16 items in flight by
default limit how fully each budget window is used (an item holds its slot while its
create waits for budget, and the next creates need their items' reads first).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import time
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass, field

from bench._event_sink import EventSink
from bench._report import at_least, header, table
from bench._world import (
    BenchStack,
    live_secret_names,
    op_count,
    open_world,
    sample_mismatches,
    secret_names,
    seed_secrets,
)
from replicator.pair import SyncReport
from tests.fixtures.emulator import EmulatorProcess
from vault.settings import VaultSettings

# `python -m bench` (quick mode) runs this with these arguments.
QUICK_ARGS = ["--secrets", "600", "--compare-items", "0"]

AZURE_SECRET_CREATES_PER_10S = 300
TARGET_SHARE = 0.90
WINDOW_SECONDS = 10.0
GRID_STEP_SECONDS = 0.1
VERIFY_SAMPLE = 50
EVENTS_SETTLE_SECONDS = 15.0


def windows(times: list[float], step: float = GRID_STEP_SECONDS) -> list[int]:
    """Creates in each full 10 s window [t, t + 10) for t on a grid from the first create
    while the window ends by the last one (pure)."""
    ordered = sorted(times)
    if not ordered or ordered[-1] - ordered[0] < WINDOW_SECONDS:
        return []
    counts = []
    start = ordered[0]
    while start + WINDOW_SECONDS <= ordered[-1]:
        counts.append(bisect_left(ordered, start + WINDOW_SECONDS) - bisect_left(ordered, start))
        start += step
    return counts


@dataclass
class Variant:
    """One initial sync onto a fresh throttled secondary, and what it achieved."""

    label: str
    max_concurrent_items: int | None
    seconds: float = math.nan
    report: SyncReport = field(default_factory=SyncReport)
    present: int = 0
    mismatches: int = 0
    lowest_concurrency: int = 0
    creates: list[float] = field(default_factory=list)
    throttled_primary: int = 0
    throttled_secondary: int = 0
    set_ok: int = 0

    @property
    def windows(self) -> list[int]:
        return windows(self.creates)

    @property
    def sustained(self) -> float:
        counts = self.windows
        return statistics.fmean(counts) if counts else math.nan


async def sync(
    stack: BenchStack, primary: EmulatorProcess, secondary: EmulatorProcess, variant: Variant
) -> None:
    """kvdr's initial sync (default settings unless the variant says otherwise)."""
    async with open_world(stack, {"eastus": primary, "westus": secondary}) as world:
        settings = {}
        if variant.max_concurrent_items is not None:
            settings["max_concurrent_items"] = variant.max_concurrent_items
        replicator = world.replicator(world.pair(), **settings)
        started = time.perf_counter()
        await replicator.load()
        variant.report = await replicator.reconcile()
        await replicator.flush()
        variant.seconds = time.perf_counter() - started
        present = await live_secret_names(world.vaults["westus"])
        bad = await sample_mismatches(
            world.vaults["eastus"], world.vaults["westus"], present, VERIFY_SAMPLE
        )
        variant.present, variant.mismatches = len(present), len(bad)
        variant.lowest_concurrency = world.vaults["westus"].rate.stats().lowest_concurrency_limit


def run_variant(stack: BenchStack, primary: EmulatorProcess, variant: Variant) -> None:
    """Copy the primary onto a fresh throttled secondary whose creates a sink records."""
    with EventSink() as sink:
        secondary = stack.emulator("westus", throttle="azure", events_to=[sink.url])
        primary.reset_stats()
        asyncio.run(sync(stack, primary, secondary, variant))
        deadline = time.monotonic() + EVENTS_SETTLE_SECONDS
        while time.monotonic() < deadline and len(sink.events()) < variant.report.copied:
            time.sleep(0.1)
        variant.creates = [
            e.event_time for e in sink.events() if e.event_type.endswith("NewVersionCreated")
        ]
        stats = secondary.stats()
        variant.throttled_primary = int(primary.stats()["throttled"])
        variant.throttled_secondary = int(stats["throttled"])
        variant.set_ok = op_count(stats, "SetSecret", "200")
        stack.stop(secondary)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--secrets", type=int, default=2000, help="secrets to copy (default 2000)")
    parser.add_argument(
        "--compare-items",
        type=int,
        default=64,
        help="also run with this max_concurrent_items (default 64; 0 skips that run)",
    )
    args = parser.parse_args()
    if args.secrets < 1:
        parser.error(f"--secrets: {args.secrets} must be at least 1")
    if args.compare_items < 0:
        parser.error(f"--compare-items: {args.compare_items} must be 0 or more")

    names = secret_names(args.secrets)
    variants = [Variant("kvdr (defaults)", None)]
    if args.compare_items:
        variants.append(
            Variant(f"kvdr, max_concurrent_items={args.compare_items}", args.compare_items)
        )
    with BenchStack() as stack:
        primary = stack.emulator("eastus")
        started = time.perf_counter()
        asyncio.run(seed_secrets(primary, names))
        seeded = time.perf_counter() - started
        primary.throttle = "azure"
        primary.restart()
        print(f"seeded {len(names)} secrets in {seeded:.1f} s, primary restarted throttled")
        for variant in variants:
            run_variant(stack, primary, variant)
            print(f"  {variant.label}: {variant.seconds:.1f} s", flush=True)

    budget = AZURE_SECRET_CREATES_PER_10S
    print()
    print(header(f"initial sync of {args.secrets} secrets, both vaults --throttle azure"))
    measures: list[tuple[str, Callable[[Variant], object]]] = [
        ("sync time (load + reconcile + flush)", lambda v: f"{v.seconds:.1f} s"),
        ("creates per 10 s, mean of full windows", lambda v: f"{v.sustained:.1f}"),
        ("  share of Azure's budget of 300", lambda v: f"{v.sustained / budget:.1%}"),
        (
            "creates per 10 s, min / max window",
            lambda v: f"{min(v.windows, default=0)} / {max(v.windows, default=0)}",
        ),
        ("overall: N / sync time, per 10 s", lambda v: f"{args.secrets / v.seconds * 10:.1f}"),
        ("429s: primary / secondary", lambda v: f"{v.throttled_primary} / {v.throttled_secondary}"),
        ("secondary concurrency limit, lowest", lambda v: v.lowest_concurrency),
        ("secrets on the secondary", lambda v: f"{v.present}/{args.secrets}"),
        ("SetSecret 200s (duplicates)", lambda v: f"{v.set_ok} ({v.set_ok - args.secrets})"),
        (
            "sample values compared / mismatched",
            lambda v: f"{min(VERIFY_SAMPLE, v.present)} / {v.mismatches}",
        ),
        ("report: copied / errors", lambda v: f"{v.report.copied} / {v.report.errors}"),
    ]
    rows = [[label, *(fn(v) for v in variants)] for label, fn in measures]
    print(table(["measure", *(v.label for v in variants)], rows))
    print(
        f"kvdr's own budget: {VaultSettings().secret_creates_per_10s} creates per 10 s per vault "
        "(VaultSettings.secret_creates_per_10s, 90% of Azure's limit): the ceiling of the share"
    )
    for variant in variants:
        share = variant.sustained / budget * 100
        lost = args.secrets - variant.present
        intact = "yes" if lost == 0 and variant.mismatches == 0 else "NO"
        verdict = at_least(
            share, TARGET_SHARE * 100, "%", figure=f"sustained budget share ({variant.label})"
        )
        print(
            f"{variant.label}: sustained share {verdict}; "
            f"nothing lost: {intact} ({lost} missing, {variant.mismatches} bad values)"
        )


if __name__ == "__main__":
    main()
