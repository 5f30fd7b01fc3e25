"""Requests kvdr makes against the PRIMARY vault per replicated change.

Run from the repository root: `python -m bench.replication_read_cost [--secrets 1000]`.

Counted by the primary emulator itself (`/_emulator/stats`, reset before each phase);
a change is one version written or one attribute update applied on the secondary
(its `SetSecret` + `UpdateSecret` 200s). The writer's own `SetSecret`s on the primary
are left out (kvdr never writes to a primary); everything else is kvdr's, including
401 challenge round trips (the SDK caches challenges per vault, so few). Phases, on N
seeded secrets:

1. initial sync: `load()`, `reconcile()`, `flush()` onto an empty secondary;
2. idle passes: one `poll()`, one `reconcile()` and one deletion `sweep()` with nothing
   to do (the fixed costs of change detection: listing pages, one version listing per
   item, the deleted-items listing);
3. steady state, polls only: `PairReplicator.run()` (what the daemon runs) polling every
   `--poll-interval` (default 10 s, the daemon's default) while `--rate` writes per
   second (20) go to `--names` (200) of the secrets for `--seconds` (45); counted from
   the end of `run()`'s start-up reconciliation, with no other reconciliation due;
4. steady state with reconciliation: the same, reconciling every `--reconcile-interval`
   (default 20 s, so the window holds real passes), counted from the start of `run()`
   (its start-up reconciliation included).

Then, from the measured parts, the average over one reconciliation interval at the
daemon's defaults (poll 10 s, reconcile 10 min) and at other intervals: cost per change
on the change path (phase 3 without the listings of its polls and sweeps) + (polls x
poll pass + one reconciliation pass + sweeps x sweep pass) / changes in the interval,
where a reconciliation takes the place of the poll due with it and a sweep runs every
5 min (the daemon's default). Phase 4's interval is projected too, next
to its measured figure, as a check of that arithmetic.
Target (issue 3): at most 3 requests on the primary per change, reconciliation included.
The secondary's requests per phase are shown too (a reconciliation lists the secondary
once and reads per item only what that listing cannot prove in sync).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench._report import header, no_more_than, table
from bench._world import BenchStack, op_count, open_world, secret_names, seed_secrets
from bench._write_load import WriteLog, write_load
from replicator.deletions import SweepReport
from replicator.pair import PairReplicator, SyncReport
from replicator.settings import ReplicatorSettings
from tests.fixtures.emulator import EmulatorProcess, aio_secret_client
from tests.fixtures.regions import World

# `python -m bench` (quick mode) runs this with these arguments.
QUICK_ARGS = [
    "--secrets",
    "200",
    "--seconds",
    "10",
    "--poll-interval",
    "2",
    "--reconcile-interval",
    "5",
]

TARGET = 3.0
BUDGET_WINDOW_SECONDS = 10.0
CATCH_UP_TIMEOUT_SECONDS = 60.0
DAEMON_POLL_SECONDS = ReplicatorSettings().poll_interval_seconds
DAEMON_RECONCILE_SECONDS = ReplicatorSettings().reconcile_interval_seconds
DAEMON_SWEEP_SECONDS = ReplicatorSettings().deletion_sweep_interval_seconds
# "Never" within a benchmark: the change path alone.
NO_RECONCILE = 86_400.0


class CountingReplicator(PairReplicator):
    """A `PairReplicator` that counts its passes (the bench needs to know how many ran)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.polls = 0
        self.reconciles = 0
        self.sweeps = 0

    async def poll(self) -> SyncReport:
        self.polls += 1
        return await super().poll()

    async def reconcile(self, progress: Callable[[int, int], None] | None = None) -> SyncReport:
        self.reconciles += 1
        return await super().reconcile(progress)

    async def sweep(self, confirm: bool = False) -> SweepReport:
        self.sweeps += 1
        return await super().sweep(confirm)


def build_replicator(world: World, settings: ReplicatorSettings) -> CountingReplicator:
    """The replicator `world.replicator()` would build, counting its passes."""
    pair = world.pair()
    return CountingReplicator(
        pair,
        ReplicatorSettings(
            pairs=(pair,),
            poll_interval_seconds=settings.poll_interval_seconds,
            reconcile_interval_seconds=settings.reconcile_interval_seconds,
        ),
        world.vaults["eastus"],
        {"westus": world.vaults["westus"]},
        world.checkpoints,
    )


@dataclass
class Phase:
    """Requests on the primary during one phase, and changes applied on the secondary."""

    label: str
    primary: dict[str, Any] = field(default_factory=dict)
    secondary: dict[str, Any] = field(default_factory=dict)
    changes: int = 0
    polls: int = 0
    reconciles: int = 0
    sweeps: int = 0
    seconds: float = math.nan

    @property
    def requests(self) -> int:
        # The writer's sets (and their challenge) are not kvdr's: kvdr never sets on a primary.
        return int(self.primary.get("total", 0)) - op_count(self.primary, "SetSecret")

    @property
    def per_change(self) -> float:
        return self.requests / self.changes if self.changes else math.nan

    def by_op(self) -> str:
        parts = []
        for op, statuses in sorted(self.primary.get("by_op", {}).items()):
            if op == "SetSecret":
                continue
            for status, count in sorted(statuses.items()):
                parts.append(f"{op} {status}: {count}")
        return ", ".join(parts)


def changes_applied(secondary: dict[str, Any]) -> int:
    return op_count(secondary, "SetSecret", "200") + op_count(secondary, "UpdateSecret", "200")


def begin(*emulators: EmulatorProcess) -> None:
    for emu in emulators:
        emu.reset_stats()


def finish(phase: Phase, primary: EmulatorProcess, secondary: EmulatorProcess) -> Phase:
    phase.primary = primary.stats()
    phase.secondary = secondary.stats()
    phase.changes = changes_applied(phase.secondary)
    return phase


async def steady_state(
    world: World,
    args: argparse.Namespace,
    names: list[str],
    label: str,
    reconcile_interval: float,
    *,
    count_startup: bool,
) -> Phase:
    """`run()` under the write load; requests counted from the start (with its start-up
    reconciliation) or from the end of that reconciliation (`count_startup=False`)."""
    primary, secondary = world.emulators["eastus"], world.emulators["westus"]
    replicator = build_replicator(
        world,
        ReplicatorSettings(
            poll_interval_seconds=args.poll_interval,
            reconcile_interval_seconds=reconcile_interval,
        ),
    )
    await replicator.load()
    written = names[: args.names]
    async with aio_secret_client(primary) as client:
        await client.get_secret(written[0])  # the challenge round trip is set-up
        stop = asyncio.Event()
        begin(primary, secondary)
        started = time.perf_counter()
        running = asyncio.create_task(replicator.run(stop))
        if not count_startup:
            while replicator.last_reconcile is None:
                await asyncio.sleep(0.01)
            replicator.polls = replicator.reconciles = replicator.sweeps = 0
            begin(primary, secondary)
            started = time.perf_counter()
        load = WriteLog()
        await write_load(client, written, args.rate, args.seconds, load)
        deadline = time.monotonic() + CATCH_UP_TIMEOUT_SECONDS
        while time.monotonic() < deadline and changes_applied(secondary.stats()) < len(load.acked):
            await asyncio.sleep(0.2)
        stop.set()
        await running
    phase = finish(Phase(label), primary, secondary)
    phase.seconds = time.perf_counter() - started
    phase.polls, phase.reconciles = replicator.polls, replicator.reconciles
    phase.sweeps = replicator.sweeps
    return phase


async def measure(
    stack: BenchStack,
    primary: EmulatorProcess,
    secondary: EmulatorProcess,
    args: argparse.Namespace,
    names: list[str],
) -> list[Phase]:
    """The phases, in order: initial sync, idle poll, idle reconcile, the two steady states."""
    phases = []
    async with open_world(stack, {"eastus": primary, "westus": secondary}) as world:
        replicator = build_replicator(world, ReplicatorSettings())

        begin(primary, secondary)
        started = time.perf_counter()
        await replicator.load()
        await replicator.reconcile()
        await replicator.flush()
        phase = finish(Phase("initial sync"), primary, secondary)
        phase.seconds, phase.reconciles = time.perf_counter() - started, 1
        phases.append(phase)

        begin(primary, secondary)
        await replicator.poll()
        phases.append(finish(Phase("idle poll pass", polls=1), primary, secondary))
        begin(primary, secondary)
        await replicator.reconcile()
        phases.append(finish(Phase("idle reconcile pass", reconciles=1), primary, secondary))
        begin(primary, secondary)
        await replicator.sweep()
        phases.append(finish(Phase("idle deletion sweep", sweeps=1), primary, secondary))

        # The initial copy spent the secondary's create budget for this window.
        await asyncio.sleep(BUDGET_WINDOW_SECONDS + 1)
        phases.append(
            await steady_state(
                world, args, names, "steady, polls only", NO_RECONCILE, count_startup=False
            )
        )
        phases.append(
            await steady_state(
                world,
                args,
                names,
                "steady, with reconciliation",
                args.reconcile_interval,
                count_startup=True,
            )
        )
    return phases


@dataclass(frozen=True)
class Costs:
    """Requests of one idle pass of each kind (what a pass costs with nothing to copy)."""

    poll: float
    reconcile: float
    sweep: float


def projected(per_change: float, costs: Costs, rate: float, poll: float, every: float) -> float:
    """Average requests per change over one reconciliation interval (pure)."""
    changes = rate * every
    # `run()` restarts the poll timer after each reconciliation, so the poll that would
    # coincide with the next reconciliation never runs.
    polls = max(0, math.ceil(every / poll) - 1)
    sweeps = every / DAEMON_SWEEP_SECONDS
    fixed = polls * costs.poll + costs.reconcile + sweeps * costs.sweep
    return (changes * per_change + fixed) / changes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--secrets", type=int, default=1000, help="seeded secrets (1000)")
    parser.add_argument("--names", type=int, default=200, help="of them, written in steady state")
    parser.add_argument("--rate", type=float, default=20.0, help="writes per second (20)")
    parser.add_argument("--seconds", type=float, default=45.0, help="each steady state (45)")
    parser.add_argument("--poll-interval", type=float, default=DAEMON_POLL_SECONDS)
    parser.add_argument("--reconcile-interval", type=float, default=20.0)
    args = parser.parse_args()
    if args.secrets < 1 or not 1 <= args.names <= args.secrets:
        parser.error("--secrets must be at least 1 and --names between 1 and --secrets")
    for flag, value in (
        ("--rate", args.rate),
        ("--seconds", args.seconds),
        ("--poll-interval", args.poll_interval),
        ("--reconcile-interval", args.reconcile_interval),
    ):
        if value <= 0:
            parser.error(f"{flag}: {value} must be positive")

    names = secret_names(args.secrets)
    with BenchStack() as stack:
        primary = stack.emulator("eastus")
        secondary = stack.emulator("westus")
        asyncio.run(seed_secrets(primary, names))
        phases = asyncio.run(measure(stack, primary, secondary, args, names))

    initial, idle_poll, idle_reconcile, idle_sweep, polls_only, with_reconcile = phases
    print()
    print(header(f"requests on the primary per replicated change ({args.secrets} secrets)"))
    rows = [
        [
            p.label,
            f"{p.seconds:.1f} s" if not math.isnan(p.seconds) else "",
            p.polls,
            p.reconciles,
            p.sweeps,
            p.requests,
            p.changes,
            p.per_change,
            int(p.secondary.get("total", 0)),
        ]
        for p in phases
    ]
    print(
        table(
            [
                "phase",
                "time",
                "polls",
                "reconciles",
                "sweeps",
                "requests",
                "changes",
                "per change",
                "on secondary",
            ],
            rows,
        )
    )
    for p in phases:
        print(f"  {p.label}: {p.by_op()}")
    print(
        f"steady states: {args.rate:g} writes/s for {args.seconds:g} s over {args.names} of the "
        f"secrets, poll every {args.poll_interval:g} s; with reconciliation every "
        f"{args.reconcile_interval:g} s (plus the one at start)"
    )

    # The change path: what a change costs beyond the listings of the passes around it.
    fixed = polls_only.polls * idle_poll.requests + polls_only.sweeps * idle_sweep.requests
    change_path = (
        (polls_only.requests - fixed) / polls_only.changes if polls_only.changes else math.nan
    )
    print(
        f"per change on the change path (listings of polls and sweeps taken out): "
        f"{change_path:.2f}; fixed: a poll pass {idle_poll.requests}, a reconciliation pass "
        f"{idle_reconcile.requests}, a deletion sweep {idle_sweep.requests} requests"
    )
    print()
    print(
        f"average per change over one reconciliation interval at {args.rate:g} writes/s, "
        f"{args.secrets} secrets (from the measured parts):"
    )
    intervals = [
        (DAEMON_POLL_SECONDS, DAEMON_RECONCILE_SECONDS, "the daemon's defaults"),
        (DAEMON_POLL_SECONDS, 60.0, ""),
        (2.0, DAEMON_RECONCILE_SECONDS, ""),
        (
            args.poll_interval,
            args.reconcile_interval,
            f"measured: {with_reconcile.per_change:.2f} (incl. the start-up pass)",
        ),
    ]
    projection_rows = []
    for poll, every, note in intervals:
        value = projected(
            change_path,
            Costs(idle_poll.requests, idle_reconcile.requests, idle_sweep.requests),
            args.rate,
            poll,
            every,
        )
        projection_rows.append(
            [
                f"poll {poll:g} s, reconcile {every:g} s",
                value,
                no_more_than(
                    value,
                    TARGET,
                    figure=f"primary reads per change, poll {poll:g} s, reconcile {every:g} s",
                ),
                note,
            ]
        )
    print(table(["intervals", "per change", "verdict", ""], projection_rows, align="lrll"))
    print()
    for phase in (initial, polls_only, with_reconcile):
        verdict = no_more_than(
            phase.per_change, TARGET, figure=f"primary reads per change ({phase.label})"
        )
        print(f"{phase.label}: {phase.per_change:.2f} per change; {verdict}")


if __name__ == "__main__":
    main()
