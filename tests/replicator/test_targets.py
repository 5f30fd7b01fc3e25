"""Several secondaries: each has its own checkpoint, lag and errors, and a dead one does
not hold the others back (replicator/pair.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.fixtures.regions import WorldFactory
from tests.fixtures.waiting import wait_for
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
            live = ("westus", "centralus")

            async def live_targets_current() -> bool:
                counts = [len(await world.vaults[r].list_items(ItemKind.SECRET)) for r in live]
                return counts == [10, 10] and all(replicator.lag.lag(r) == 0.0 for r in live)

            # The live targets are current although a dead one is still behind.
            await wait_for(live_targets_current, 20, "westus and centralus current")
            assert replicator.lag.pending("northeurope") == 10

            def failing_target() -> dict[str, Any] | None:
                status = {t["region"]: t for t in replicator.status()["targets"]}
                return status if status["northeurope"]["recent_errors"] else None

            status = await wait_for(failing_target, 15, "northeurope's first error")
            assert status["northeurope"]["lag_seconds"] > 0
            assert not status["westus"]["recent_errors"]

            world.emulators["northeurope"].restart()

            async def caught_up() -> bool:
                try:
                    listed = await world.vaults["northeurope"].list_items(ItemKind.SECRET)
                except VaultError:
                    return False
                return len(listed) == 10 and replicator.lag.pending("northeurope") == 0

            await wait_for(caught_up, 90, "northeurope caught up", interval=0.5)
            assert replicator.lag.lag("northeurope") == 0.0
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
