"""A virtual clock for asyncio tests: `sleep()` waits on virtual time, `drive()` advances it.

Time jumps straight to the next sleeper's wake-up once every task has run as far as it
can, so minutes of rate-limited traffic take milliseconds and timing is exact. Where
real I/O runs between the wake-ups (settling by loop turns cannot wait for it), the
test moves the clock itself with `advance` / `advance_to_next`, once the tasks it
drives wait on the clock (`sleeping`, `sleeps_in`).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable, Iterable
from typing import Any

# Event-loop turns that let every runnable task reach its next wait (conditions and
# locks take a few hops each).
_SETTLE_TURNS = 200


class VirtualClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        # The task waiting on each pending sleep.
        self._owners: dict[asyncio.Future[None], asyncio.Task[Any] | None] = {}

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + seconds, next(self._seq), fut))
        self._owners[fut] = asyncio.current_task()
        try:
            await fut
        finally:
            del self._owners[fut]

    @property
    def sleeping(self) -> int:
        """Sleeps waiting on this clock now (woken ones no longer count)."""
        return sum(not fut.done() for fut in self._owners)

    def sleeps_in(self, task: asyncio.Task[Any]) -> bool:
        """True while `task` itself waits on this clock (not on I/O or another task)."""
        return any(owner is task and not fut.done() for fut, owner in self._owners.items())

    def advance(self, seconds: float) -> None:
        """Move the clock on and wake every sleep that is due."""
        self.now += seconds
        self._wake_due()

    def advance_to_next(self) -> None:
        """Move the clock to the end of the earliest waiting sleep and wake it."""
        due = min(wake for wake, _, fut in self._sleepers if not fut.done())
        self.advance(max(0.0, due - self.now))

    def _wake_due(self) -> None:
        while self._sleepers and self._sleepers[0][0] <= self.now:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)

    async def _settle(self) -> None:
        for _ in range(_SETTLE_TURNS):
            await asyncio.sleep(0)

    async def drive(self, aws: Iterable[Awaitable[Any]]) -> list[Any]:
        """Run `aws` to completion under virtual time; returns their results in order."""
        tasks = [asyncio.ensure_future(a) for a in aws]
        while True:
            await self._settle()
            if all(t.done() for t in tasks):
                break
            if not self._sleepers:
                raise RuntimeError("deadlock: tasks wait on something other than the clock")
            wake = self._sleepers[0][0]
            self.now = max(self.now, wake)
            self._wake_due()
        return [t.result() for t in tasks]
