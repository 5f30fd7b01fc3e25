"""Stepping a lease's time in tests: a virtual clock the test moves from one wake-up
of the lease's keeper to the next, and a count of its renewals.

A lease renews against real storage (Azurite) while its own clock is virtual, so a
15 s lease period passes in the time its requests take. The test moves the clock only
when the keeper waits on it alone (no renewal in flight, unless the fault swallows
them), so every interval of the protocol is exact and nothing waits on the real clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from storage import BlobStore
from tests.fixtures.waiting import wait_for
from tests.vault.virtual_clock import VirtualClock


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
    clock: VirtualClock,
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
