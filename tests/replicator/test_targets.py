"""Several secondaries: each has its own checkpoint, lag and errors, and a dead one does
not hold the others back (replicator/pair.py)."""

from __future__ import annotations

import asyncio
import time

from tests.fixtures.regions import WorldFactory
from vault.errors import VaultError
from vault.models import Attributes, ItemKind


class TestIndependentTargets:
    async def test_stopped_target_does_not_hold_back_the_others(
        self, make_world: WorldFactory
    ) -> None:
        """With one of three secondaries stopped, the other two stay current; the stopped
        one catches up by itself when it returns."""
        regions = ("eastus", "westus", "centralus", "northeurope")
        world = await make_world(regions=regions)
        pair = world.pair(secondaries=regions[1:])
        replicator = world.replicator(pair, poll_interval_seconds=0.3, target_timeout_seconds=5)
        await replicator.load()
        stop = asyncio.Event()
        task = asyncio.create_task(replicator.run(stop))
        try:
            world.emulators["northeurope"].stop()
            names = [f"multi-{i}" for i in range(10)]
            for name in names:
                await world.vaults["eastus"].set_secret(name, f"value-{name}", Attributes())
            started = time.monotonic()
            while time.monotonic() - started < 20:
                counts = [
                    len(await world.vaults[r].list_items(ItemKind.SECRET))
                    for r in ("westus", "centralus")
                ]
                if counts == [10, 10]:
                    break
                await asyncio.sleep(0.2)
            assert counts == [10, 10]
            # The live targets are current although a dead one is still behind.
            await asyncio.sleep(1)
            assert replicator.lag.lag("westus") == 0.0
            assert replicator.lag.lag("centralus") == 0.0
            assert replicator.lag.pending("northeurope") == 10
            started = time.monotonic()
            while time.monotonic() - started < 15:
                status = {t["region"]: t for t in replicator.status()["targets"]}
                if status["northeurope"]["recent_errors"]:
                    break
                await asyncio.sleep(0.2)
            assert status["northeurope"]["recent_errors"]
            assert status["northeurope"]["lag_seconds"] > 0
            assert not status["westus"]["recent_errors"]

            world.emulators["northeurope"].restart()
            started = time.monotonic()
            listed: list[object] = []
            while time.monotonic() - started < 90:
                try:
                    listed = await world.vaults["northeurope"].list_items(ItemKind.SECRET)
                except VaultError:
                    listed = []
                if len(listed) == 10 and replicator.lag.pending("northeurope") == 0:
                    break
                await asyncio.sleep(0.5)
            assert len(listed) == 10
            assert replicator.lag.lag("northeurope") == 0.0
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
