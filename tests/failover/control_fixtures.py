"""Control stores for tests: real local-folder stores, one of which can be taken down or
slowed, and the transitions tests race."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from failover.control_record import ControlRecord
from failover.control_stores import ControlStores, QuorumRead
from failover.control_transitions import begin_switchover, initial_record
from storage import BlobInfo, LocalFolderSettings, LocalFolderStore, StorageUnavailable
from storage.store import Blob, BlobStore


class Unplugged:
    """A real store that can be cut (every call raises StorageUnavailable) or slowed
    (each call first waits what `delay()` says)."""

    def __init__(self, inner: BlobStore, delay: Callable[[], float] = lambda: 0.0) -> None:
        self.inner = inner
        self.down = False
        self.delay = delay

    @property
    def description(self) -> str:
        return self.inner.description

    async def _gate(self) -> None:
        wait = self.delay()
        if wait:
            await asyncio.sleep(wait)
        if self.down:
            raise StorageUnavailable(f"{self.inner.description} is cut off")

    async def get(self, name: str) -> Blob:
        await self._gate()
        return await self.inner.get(name)

    async def put_if_absent(
        self, name: str, data: bytes, metadata: dict[str, str] | None = None
    ) -> BlobInfo:
        await self._gate()
        return await self.inner.put_if_absent(name, data, metadata)

    async def put(
        self,
        name: str,
        data: bytes,
        *,
        if_match: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> BlobInfo:
        await self._gate()
        return await self.inner.put(name, data, if_match=if_match, metadata=metadata)

    async def list(self, prefix: str = "") -> list[BlobInfo]:
        await self._gate()
        return await self.inner.list(prefix)

    async def delete(self, name: str, *, if_match: str | None = None) -> None:
        await self._gate()
        await self.inner.delete(name, if_match=if_match)

    async def acquire_lease(self, name: str, lease_id: str, seconds: int) -> None:
        await self._gate()
        await self.inner.acquire_lease(name, lease_id, seconds)

    async def renew_lease(self, name: str, lease_id: str) -> None:
        await self._gate()
        await self.inner.renew_lease(name, lease_id)

    async def release_lease(self, name: str, lease_id: str) -> None:
        await self._gate()
        await self.inner.release_lease(name, lease_id)

    async def close(self) -> None:
        await self.inner.close()


@asynccontextmanager
async def local_stores(
    root: Path, count: int, delay: Callable[[], float] = lambda: 0.0
) -> AsyncIterator[list[Unplugged]]:
    async with AsyncExitStack() as stack:
        stores = []
        for i in range(count):
            folder = LocalFolderStore(LocalFolderSettings(str(root / f"region-{i}")))
            stores.append(Unplugged(await stack.enter_async_context(folder), delay))
        yield stores


def switch_to(region: str, by: str = "test") -> Callable[[QuorumRead], ControlRecord]:
    """A transition's `make`: a switchover of the committed record (or of the initial
    one, eastus active) to `region`."""

    def make(read: QuorumRead) -> ControlRecord:
        base = read.base or initial_record(read.pair, "eastus", ("westus", "centralus"))
        return begin_switchover(
            base, region, by=by, reason="test", highest_epoch=read.highest_epoch
        )

    return make


def bump(writer: str) -> Callable[[QuorumRead], ControlRecord]:
    """A transition's `make` that takes any state: a switchover between eastus and
    westus at the next epoch, by `writer`."""

    def make(read: QuorumRead) -> ControlRecord:
        base = read.base or initial_record(read.pair, "eastus", ("westus",))
        other = "westus" if base.active_region == "eastus" else "eastus"
        new = begin_switchover(
            replace(base, state="normal"),
            other,
            by=writer,
            reason="race",
            highest_epoch=read.highest_epoch,
        )
        # `previous` is the record read, as it was (the state was only lifted above).
        return replace(new, previous=replace(base, previous=None) if base.epoch else None)

    return make


class MovableClock:
    """Wall-clock time that a test can move forward (past the in-flight window)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.offset)

    def advance(self, seconds: float) -> None:
        self.offset += seconds


def control(
    stores: Sequence[BlobStore], timeout: float = 2.0, clock: MovableClock | None = None
) -> ControlStores:
    return ControlStores(stores, timeout_seconds=timeout, clock=clock or MovableClock())
