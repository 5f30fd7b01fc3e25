"""The planned switchover, as far as it is built: checks, then the control record.

Pure planning, then I/O: `switchover_refusals()` says why a switchover may not happen
now (nothing when it may); `switchover()` takes the new epoch through the control
stores and records the measured RTO. What is not built yet, and so not done here:
fencing the old primary against application writes, and the replicator reacting to the
new epoch (reversing direction). The record says the old primary's fence is owed
(`required`), and docs/failover.md says what that means for applications.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from failover.control_record import (
    ControlRecord,
    begin_switchover,
    finish_switchover,
    initial_record,
)
from failover.control_stores import Committed, ControlStores, NoMajority


@dataclass(frozen=True)
class LagReading:
    """Replication lag of one target as the replicator measured it."""

    lag_seconds: float
    pending: int
    source: str

    @property
    def caught_up(self) -> bool:
        return self.lag_seconds == 0 and self.pending == 0


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


def switchover_refusals(record: ControlRecord, primary: str, to: str, checks: Checks) -> list[str]:
    """Every reason a switchover of `record`'s pair to `to` may not happen now.

    `primary` is the pair's configured primary: the replicator's source. The replicator
    does not reverse direction yet, so only a switch away from it can be made with zero
    loss: any other region is fed from the configured primary, not from the region
    that was made active."""
    refusals: list[str] = []
    active = record.active_region
    if record.state != "normal":
        refusals.append(f"the pair is {record.state} at epoch {record.epoch}, not normal")
    if to == active:
        refusals.append(f"{to} is already the active region (epoch {record.epoch})")
    elif active != primary:
        refusals.append(
            f"the active region {active} is not the configured primary {primary}: the "
            "replicator does not mirror from a switched-to region yet (reversing the "
            f"direction is not built), so {to} cannot be shown to hold every write"
        )
    for region in (active, to):
        up = checks.health.get(region)
        if up is not True:
            why = checks.health_errors.get(region) or "not probed"
            refusals.append(f"region {region} is not healthy ({why}): a switchover needs both")
    if checks.lag is None:
        refusals.append(
            f"replication lag to {to} is unknown ({checks.lag_unknown_because or 'no reading'})"
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


@dataclass(frozen=True)
class SwitchoverResult:
    before: ControlRecord
    committed: Committed
    rto_seconds: float
    # The record with the RTO written (state normal), or None when that second write
    # did not reach a majority (the switch itself is committed either way).
    finished: ControlRecord | None
    finish_error: str = ""


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
    clock: Callable[[], float] = time.monotonic,
) -> SwitchoverResult:
    """Make `to` active under a new epoch; RTO is from `started` (the command's start,
    on `clock`) to the record committed on a majority of stores.

    Raises `SwitchoverRefused`, `NoMajority` (including `TransitionInProgress`) or, from
    the transition itself, `TransitionRefused`."""
    read = await control.read(pair, split_ok=True)
    base = read.base or initial_record(pair, primary, tuple(r for r in regions if r != primary))
    refusals = switchover_refusals(base, primary, to, checks)
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
    )
    committed = await control.write(read, record)
    rto = clock() - started
    try:
        after = await control.read(pair)
        current = after.committed
        if current is None or current.key != committed.record.key:
            raise NoMajority("superseded before the RTO could be recorded", {})
        done = await control.write(after, finish_switchover(current, rto))
    except NoMajority as exc:
        return SwitchoverResult(base, committed, rto, None, str(exc))
    return SwitchoverResult(base, committed, rto, done.record)
