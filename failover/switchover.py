"""The planned switchover: checks, then the control record.

Pure planning, then I/O: `switchover_refusals()` says why a switchover may not happen
now (nothing when it may); `switchover()` takes the new epoch through the control
stores, waits out the old epoch's writers and records the measured RTO. The command
(kvdr/commands/failover.py) fences the old primary and drains the lag to zero first.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from failover.control_record import ControlRecord, Fence
from failover.control_stores import ControlStores
from failover.control_transitions import begin_switchover, initial_record, with_fence_updates
from failover.transition import TransitionResult, commit


@dataclass(frozen=True)
class LagReading:
    """Replication lag of one target as the replicator measured it."""

    lag_seconds: float
    pending: int
    source: str
    # Listings of the primary the daemon had compared, and begun, when this was read.
    passes: int = 0
    passes_begun: int = 0
    # Set when no listing that began after the fence was compared yet: lag 0 then
    # proves nothing about the last writes before it.
    unproven: bool = False
    # The oldest pending items as the daemon's status names them (`kind/name`, the
    # name hashed when the pair hides names) with the time each changed (epoch s).
    pending_items: tuple[tuple[str, float], ...] = ()

    @property
    def caught_up(self) -> bool:
        return self.lag_seconds == 0 and self.pending == 0 and not self.unproven


@dataclass(frozen=True)
class Checks:
    """What the preconditions found: region health (None: not probed or unknown) and
    the target's lag (None: nobody could say)."""

    health: Mapping[str, bool | None] = field(default_factory=dict)
    health_errors: Mapping[str, str] = field(default_factory=dict)
    lag: LagReading | None = None
    lag_unknown_because: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "health": dict(self.health),
            "health_errors": dict(self.health_errors),
            "lag": None
            if self.lag is None
            else {
                "lag_seconds": self.lag.lag_seconds,
                "pending": self.lag.pending,
                "source": self.lag.source,
            },
            "lag_unknown_because": self.lag_unknown_because or None,
        }


def approval_refusals(
    needed: int, approved: tuple[str, ...], break_glass: bool, window_seconds: float
) -> list[str]:
    """Change control: too few distinct approvals within the window, unless break-glass."""
    if break_glass or len(approved) >= needed:
        return []
    have = ", ".join(approved) if approved else "none"
    return [
        f"{needed} approvals needed within {window_seconds:g} s, {len(approved)} given "
        f"({have}): `kvdr failover approve --pair P --operator NAME`, or --break-glass "
        "--reason TEXT"
    ]


def switchover_refusals(record: ControlRecord, to: str, checks: Checks) -> list[str]:
    """Every reason a switchover of `record`'s pair to `to` may not happen now."""
    refusals: list[str] = []
    active = record.active_region
    if record.state != "normal":
        refusals.append(f"the pair is {record.state} at epoch {record.epoch}, not normal")
    if to == active:
        refusals.append(f"{to} is already the active region (epoch {record.epoch})")
    for region in (active, to):
        up = checks.health.get(region)
        if up is not True:
            why = checks.health_errors.get(region) or "not probed"
            refusals.append(f"region {region} is not healthy ({why}): a switchover needs both")
    if checks.lag is None:
        refusals.append(
            f"replication lag to {to} is unknown ({checks.lag_unknown_because or 'no reading'})"
        )
    elif checks.lag.unproven:
        refusals.append(
            f"{to} shows lag 0, but the daemon compared no listing of the primary that "
            f"began after the fence ({checks.lag.source}): the last writes may not be seen"
        )
    elif not checks.lag.caught_up:
        refusals.append(
            f"{to} is not caught up: lag {checks.lag.lag_seconds} s, "
            f"{checks.lag.pending} changes pending ({checks.lag.source})"
        )
    return refusals


class SwitchoverRefused(Exception):
    def __init__(self, refusals: Sequence[str], record: ControlRecord) -> None:
        super().__init__("; ".join(refusals))
        self.refusals = list(refusals)
        self.record = record


async def current_record(
    control: ControlStores, pair: str, primary: str, regions: Sequence[str]
) -> tuple[ControlRecord, bool]:
    """The pair's record to build on, and whether one was ever written."""
    read = await control.read(pair, split_ok=True)
    if read.base is not None:
        return read.base, True
    return initial_record(pair, primary, tuple(r for r in regions if r != primary)), False


async def switchover(
    control: ControlStores,
    *,
    pair: str,
    primary: str,
    regions: Sequence[str],
    to: str,
    by: str,
    reason: str,
    checks: Checks,
    started: float,
    validity: float,
    approvals: Callable[[ControlRecord], list[str]] = lambda record: [],
    approved_by: tuple[str, ...] = (),
    break_glass: bool = False,
    fencer: FenceSteps | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> TransitionResult:
    """Make `to` active under a new epoch, then wait `validity` (the old direction's
    writers stop); RTO is from `started` (the command's start, on `clock`) to then.

    Raises `SwitchoverRefused`, `NoMajority` (including `TransitionInProgress`) or, from
    the transition itself, `TransitionRefused`."""
    read = await control.read(pair, split_ok=True)
    base = read.base or initial_record(pair, primary, tuple(r for r in regions if r != primary))
    refusals = switchover_refusals(base, to, checks) + approvals(base)
    if refusals:
        raise SwitchoverRefused(refusals, base)
    lag = checks.lag
    assert lag is not None  # a refusal otherwise
    record = begin_switchover(
        base,
        to,
        by=by,
        reason=reason,
        highest_epoch=read.highest_epoch,
        loss_items=0,
        loss_basis=f"{to} lag 0 s and 0 pending before the switch ({lag.source})",
        approved_by=approved_by,
        break_glass=break_glass,
    )
    if fencer is not None:
        # The old primary's fence as the command applied it (or owed).
        record = with_fence_updates(record, fencer.updates)

    async def lift() -> None:
        if fencer is not None:
            await fencer.lift(to, record)

    return await commit(
        control,
        read,
        base,
        record,
        validity=validity,
        started=started,
        clock=clock,
        after_wait=lift if fencer is not None else None,
        fences=lambda: dict(fencer.updates) if fencer is not None else {},
    )


class FenceSteps(Protocol):
    """What a transition needs of the command's fencer (kvdr/commands/_fence_steps.py)."""

    updates: dict[str, tuple[Fence, dict[str, Any] | None]]

    async def lift(self, region: str, record: ControlRecord) -> bool: ...
