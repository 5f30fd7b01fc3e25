"""Faults under a running daemon (issue 14), real processes throughout: a target emulator
SIGKILLed while the daemon copies a batch into it, and blob storage answering 500s.

What must hold: the checkpoint never records as applied a version the target does not
hold (read straight after the crash, before the daemon repairs anything), the daemon
names the problem in /status and its log, the checkpoint blob still parses, and once the
fault heals the daemon converges (`kvdr verify --deep` clean, nothing skipped)."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from tests.backups.test_commands import backups_toml
from tests.e2e.crash_checks import (
    SHORT_LEASE,
    checkpoint_holds,
    journal_whole,
    journaled_through,
    no_duplicate_copies,
    synced,
    verify_deep,
)
from tests.e2e.storage_faults import failing_storage
from tests.fixtures.daemon import DaemonProcess, free_port, write_config
from tests.fixtures.regions import World, WorldFactory
from tests.fixtures.waiting import wait_for, wait_for_sync
from tests.kvdr.test_cli_failover import control_stores, holds
from vault.models import Attributes

ITEMS = 60
# westus answers slowly, so the batch is still being copied when the test, polling the
# daemon's log, sees the seeded number of copies and kills it.
WESTUS_LATENCY_MS = 150


async def recorded(world: World) -> bool:
    return bool((await world.checkpoints.load("app", "westus")).items)


@pytest.mark.parametrize(
    "seed",
    # All slow (~37 s each): the default suite stays under 15 minutes.
    [pytest.param(s, id=f"seed{s}", marks=pytest.mark.slow) for s in range(1, 5)],
)
async def test_target_emulator_killed_mid_write(
    make_world: WorldFactory, tmp_path: Path, seed: int
) -> None:
    """westus's emulator is SIGKILLed after a seeded number of copies while the daemon
    copies 60 items into it, then the daemon too (freezing its checkpoint); westus
    restarts on its state folder and port. The checkpoint claims only versions westus
    persisted; the restarted daemon copies the rest."""
    label = f"emulator killed mid-write, seed {seed}"
    world = await make_world(
        regions=("eastus", "westus"), per_region={"westus": {"latency_ms": WESTUS_LATENCY_MS}}
    )
    eastus, westus = world.vaults["eastus"], world.vaults["westus"]
    items = [f"batch-{i:03d}" for i in range(ITEMS)]
    for name in items:
        await eastus.set_secret(name, f"{name}=v1", Attributes())
    port = free_port()
    config = write_config(world, tmp_path / "kvdr.toml", port=port)
    daemon = DaemonProcess(config, port, env=SHORT_LEASE)
    emulator = world.emulators["westus"]
    assert emulator.process is not None
    try:
        daemon.start()
        # The kill point is a count of copies the daemon has logged, not a delay: the
        # batch's speed varies with the machine's load, its order does not matter.
        after = random.Random(seed).randint(3, ITEMS // 2)
        await asyncio.to_thread(
            wait_for_sync, lambda: daemon.logs().count('"secret.mirrored"') >= after, 60, label
        )
        emulator.kill()
        # The pass ends once westus's retries give up, and writes the checkpoint of what
        # it copied: that is the record under test.
        await wait_for(lambda: recorded(world), 60, f"{label}: a checkpoint written")
        daemon.kill()
        # Back at full speed: the slowness was only there to widen the kill window.
        emulator.latency_ms = 0
        emulator.start()
        count = await checkpoint_holds(label, world.checkpoints, eastus, westus)
        assert 0 < count < ITEMS, f"{label}: {count} of {ITEMS} recorded before the kill"
        daemon.start()
        wait_for_sync(lambda: synced(daemon), 90, f"{label}: westus caught up")
        for name in items:
            assert await holds(westus, name, f"{name}=v1"), f"{label}: {name} skipped"
        verify_deep(label, config)
        await no_duplicate_copies(label, westus, items)
        assert await checkpoint_holds(label, world.checkpoints, eastus, westus) >= ITEMS
    finally:
        daemon.kill()


def storage_failure_shown(daemon: DaemonProcess) -> bool:
    """/status names the failing storage request (the journal's last error)."""
    journals = daemon.status()["journal"]
    return any("HTTP 500" in (j.get("last_error") or "") for j in journals)


@pytest.mark.slow
async def test_storage_answering_500s(make_world: WorldFactory, tmp_path: Path) -> None:
    """Blob storage answers 500 to everything for a while (until /status shows it, ~20 s):
    the daemon stays up, /status and the log name the storage failure, no checkpoint is
    corrupted, and once storage heals the items written meanwhile are copied and
    journaled."""
    world = await make_world(regions=("eastus", "westus"))
    eastus, westus = world.vaults["eastus"], world.vaults["westus"]
    before = [f"before-{i}" for i in range(5)]
    during = [f"during-{i}" for i in range(5)]
    for name in before:
        await eastus.set_secret(name, name, Attributes())
    async with failing_storage(world.azurite.port) as storage:
        port = free_port()
        config = write_config(
            world,
            tmp_path / "kvdr.toml",
            port=port,
            extra=backups_toml(tmp_path, vault_kek=False) + control_stores(tmp_path),
        )
        text = config.read_text().replace(f":{world.azurite.port}/", f":{storage.port}/")
        config.write_text(text)
        daemon = DaemonProcess(config, port, env=SHORT_LEASE)
        try:
            await asyncio.to_thread(daemon.start)
            await wait_for(lambda: asyncio.to_thread(synced, daemon), 60, "first sync")
            storage.failing = True
            for name in during:
                await eastus.set_secret(name, name, Attributes())
            # The daemon's storage requests retry (3 times, ~17 s) before they fail.
            await wait_for(lambda: storage_failure_shown(daemon), 60, "the failure in /status")
            assert storage.refused > 0 and daemon.process is not None
            assert daemon.process.poll() is None, "the daemon exited under storage 500s"
            assert "storage could not serve (HTTP 500" in daemon.logs()
            storage.failing = False
            for name in during:
                await wait_for(lambda n=name: holds(westus, n, n), 60, f"{name} on westus")
            await wait_for(lambda: asyncio.to_thread(synced, daemon), 60, "after healing")
            await checkpoint_holds("storage 500s", world.checkpoints, eastus, westus)
            await asyncio.to_thread(verify_deep, "storage 500s", config)
            count = len(before) + len(during)
            await asyncio.to_thread(
                wait_for_sync, lambda: journaled_through(config, count), 30, "journaled"
            )
            await asyncio.to_thread(journal_whole, "storage 500s", config, count)
        finally:
            daemon.kill()
