"""Stepping a lease's time in tests: a clock the test moves, and a count of renewals.

A lease renews against real storage (Azurite) while its own clock is virtual, so a
15 s lease period passes in the time its requests take. The test moves the clock only
when the keeper waits on it alone (no renewal in flight, unless the fault swallows
them), so every interval of the protocol is exact and nothing waits on the real clock.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable, Coroutine
from typing import Any

from storage import BlobStore
from tests.fixtures.waiting import wait_for
from tests.vault.virtual_clock import VirtualClock


class SteppedClock(VirtualClock):
    """A `VirtualClock` moved by the test (`advance`, `advance_to_next`), not by `drive`:
    real I/O runs between the steps, which settling by loop turns cannot wait for."""

    def __init__(self, start: float = 1000.0) -> None:
        super().__init__(start)
        # The task waiting on each pending sleep.
        self._owners: dict[asyncio.Future[None], asyncio.Task[Any] | None] = {}

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
        """Sleeps waiting on this clock now."""
        return sum(not fut.done() for fut in self._owners)

    def sleeps_in(self, task: asyncio.Task[Any]) -> bool:
        """True while `task` itself waits on this clock (not on I/O or another task)."""
        return any(owner is task and not fut.done() for fut, owner in self._owners.items())

    def advance(self, seconds: float) -> None:
        """Move the clock on and wake every sleep that is due."""
        self.now += seconds
        while self._sleepers and self._sleepers[0][0] <= self.now:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)

    def advance_to_next(self) -> None:
        """Move the clock to the end of the earliest waiting sleep and wake it."""
        due = min(wake for wake, _, fut in self._sleepers if not fut.done())
        self.advance(max(0.0, due - self.now))


class CountedRenewals:
    """A real store whose lease renewals are counted: sent, and come back (answered,
    failed or cancelled). Everything else goes straight to the store."""

    def __init__(self, store: BlobStore) -> None:
        self.store = store
        self.sent = 0
        self.back = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    @property
    def in_flight(self) -> int:
        return self.sent - self.back

    def renew_lease(self, name: str, lease_id: str) -> Coroutine[Any, Any, None]:
        # Counted when the call is made, before the lease starts its own timer, so
        # `in_flight` is never 0 while a renewal is about to go out.
        self.sent += 1
        return self._renew(name, lease_id)

    async def _renew(self, name: str, lease_id: str) -> None:
        try:
            await self.store.renew_lease(name, lease_id)
        finally:
            self.back += 1


def keeper_task(pair: str) -> asyncio.Task[Any]:
    """The task renewing `pair`'s lease (`storage.lease` names it `lease-<pair>`)."""
    return next(t for t in asyncio.all_tasks() if t.get_name() == f"lease-{pair}")


async def step_until(
    clock: SteppedClock,
    keeper: asyncio.Task[Any],
    renewals: CountedRenewals,
    done: Callable[[], bool],
    *,
    until: float,
    swallowed: bool = False,
) -> None:
    """Move `clock` from wake-up to wake-up of the keeper until `done()`, or until it
    reaches `until` (the last step may pass it); returns with the keeper waiting on the
    clock again (or done).

    The clock moves only when the keeper waits on it alone: asleep itself, or, where the
    fault swallows requests (`swallowed`), waiting on a renewal that will never answer
    while its timeout runs on this clock.
    """

    def waits_on_clock() -> bool:
        if done() or keeper.done() or clock.sleeps_in(keeper):
            return True
        return swallowed and renewals.in_flight > 0 and clock.sleeping > 0

    while True:
        await wait_for(waits_on_clock, 30, "the lease keeper waiting on its clock")
        if done() or keeper.done():
            await wait_for(done, 30, "the work to end with the lease")
            return
        if clock.now >= until:
            return
        clock.advance_to_next()
