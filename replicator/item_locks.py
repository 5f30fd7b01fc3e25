"""One lock per item being synced, kept only while someone holds or awaits it.

An event and a poll for the same item must not write the same version twice, so a
pair syncs each item under its lock. A lock kept for every item ever named would grow
with every name an event made up; these are dropped when the last user leaves, so
their number is bounded by the items in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from vault.models import ItemRef


class ItemLocks:
    """Per-item mutual exclusion with no memory of items nobody syncs."""

    def __init__(self) -> None:
        # ref -> (lock, holders and waiters)
        self._locks: dict[ItemRef, tuple[asyncio.Lock, int]] = {}

    def __len__(self) -> int:
        return len(self._locks)

    @asynccontextmanager
    async def hold(self, ref: ItemRef) -> AsyncIterator[None]:
        lock, users = self._locks.get(ref, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[ref] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            _, users = self._locks[ref]
            if users <= 1:
                del self._locks[ref]
            else:
                self._locks[ref] = (lock, users - 1)
