"""Fences owed to regions that were gone: applied as soon as the region answers.

A promotion cannot fence a primary that does not answer; the record says its fence is
`required`. The daemon that leads the pair checks every probe interval: once such a
region answers again, it applies the fence and writes `applied` (with what lifting it
needs) into the record, in the same epoch. Until then the write gate refuses kvdr's
own writes to that region (failover/epoch_watch.py, `enforce_fences`), so nothing is
written to it before applications are fenced out.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable

import structlog

from failover.control_record import MalformedControlRecord
from failover.control_stores import ControlStores, NoMajority
from failover.control_transitions import with_fences
from failover.epoch_watch import EpochWatch
from failover.fencing import FenceAction, FenceError
from storage.errors import StorageError, WriteConflict

log = structlog.get_logger("kvdr.fence")


class FenceKeeper:
    def __init__(
        self,
        watch: EpochWatch,
        stores: ControlStores,
        action: FenceAction,
        pairs: Iterable[str],
        region_up: Callable[[str], bool],
        leads: Callable[[str], bool],
        interval_seconds: float,
    ) -> None:
        self._watch = watch
        self._stores = stores
        self._action = action
        self.action = action
        self._pairs = tuple(pairs)
        self._region_up = region_up
        self._leads = leads
        self._interval = interval_seconds

    async def tick(self) -> list[str]:
        """Fence every owed region that answers now; the regions fenced."""
        done: list[str] = []
        for pair in self._pairs:
            if not self._leads(pair):
                continue
            record = self._watch.record(pair)
            for region, fence in sorted(record.fences.items()):
                if fence != "required" or region == record.active_region:
                    continue
                if not self._region_up(region):
                    continue
                if await self._fence(pair, region, record.epoch):
                    done.append(f"{pair}:{region}")
        return done

    async def _fence(self, pair: str, region: str, epoch: int) -> bool:
        try:
            result = await self._action.apply(region)
        except FenceError as exc:
            log.warning("fence.apply_failed", pair=pair, region=region, error=str(exc))
            return False
        try:
            read = await self._stores.read(pair)
            current = read.committed
            if current is None or current.epoch != epoch:
                return False  # moved on meanwhile: the next tick sees the new record
            await self._stores.write(
                read, with_fences(current, {region: ("applied", result.saved or {})})
            )
        except (NoMajority, MalformedControlRecord, StorageError, WriteConflict) as exc:
            log.warning("fence.record_failed", pair=pair, region=region, error=str(exc))
            return False
        log.info("fence.applied", pair=pair, region=region, done=result.done)
        await self._watch.refresh(pair)
        return True

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.tick()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._interval)
