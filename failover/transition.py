"""What every transition does once its checks passed: commit the new epoch, wait out
the old epoch's writers, record the measured RTO.

RTO is measured from the command's start (`started`, on `clock`) to the moment the new
primary can take writes: the new epoch committed on a majority of control stores, and
`validity` seconds after that, when every daemon still working in the old direction
has stopped writing (failover/epoch_watch.py). A second write in the same epoch stores
the RTO; if it fails, the transition stands and the result says why.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from failover.control_record import ControlRecord, Fence
from failover.control_stores import Committed, ControlStores, NoMajority, QuorumRead
from failover.control_transitions import finish_switchover

log = structlog.get_logger("kvdr.failover")


@dataclass(frozen=True)
class TransitionResult:
    before: ControlRecord
    committed: Committed
    rto_seconds: float
    # The record with the RTO written, or None when that write did not reach a
    # majority (the transition itself is committed either way).
    finished: ControlRecord | None
    finish_error: str = ""


async def commit(
    control: ControlStores,
    read: QuorumRead,
    before: ControlRecord,
    record: ControlRecord,
    *,
    validity: float,
    started: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    forced: bool = False,
    during_wait: Callable[[], Awaitable[None]] | None = None,
    after_wait: Callable[[], Awaitable[None]] | None = None,
    loss: Callable[[], tuple[int | None, str | None]] = lambda: (None, None),
    fences: Callable[[], Mapping[str, tuple[Fence, dict[str, Any] | None]]] = lambda: {},
) -> TransitionResult:
    """`during_wait` runs while the old epoch's readings expire (a promotion measures
    its loss then, outside the RTO); `after_wait` once they have (the new primary's
    fence is lifted then: part of the RTO); `loss` and `fences` are read afterwards for
    the record."""
    committed = await control.write(read, record, forced=forced)

    # Readings of the old epoch that started before the commit stay good this long.
    async def ready() -> float:
        await sleep(validity)
        return clock()

    waited = asyncio.create_task(ready())
    if during_wait is not None:
        try:
            await during_wait()
        except Exception as exc:
            log.warning("failover.measure_failed", pair=record.pair, error=str(exc))
    # The RTO ends when the old epoch's writers have stopped, not when a measurement
    # running meanwhile ends.
    ready_at = await waited
    if after_wait is not None:
        await after_wait()
        ready_at = clock()
    rto = ready_at - started
    loss_items, loss_basis = loss()
    try:
        after = await control.read(record.pair)
        current = after.committed
        if current is None or current.key != committed.record.key:
            raise NoMajority("superseded before the RTO could be recorded", {})
        done = await control.write(
            after,
            finish_switchover(
                current, rto, loss_items=loss_items, loss_basis=loss_basis, fences=fences()
            ),
            forced=forced,
        )
    except NoMajority as exc:
        log.warning("failover.rto_not_recorded", pair=record.pair, error=str(exc))
        return TransitionResult(before, committed, rto, None, str(exc))
    return TransitionResult(before, committed, rto, done.record)
