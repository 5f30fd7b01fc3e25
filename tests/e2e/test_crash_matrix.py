"""SIGKILL at seeded random points of each phase kvdr goes through (issue 14): initial
sync, steady replication under a write load, snapshot compaction, a restore and a
promotion. Real processes throughout: emulators, Azurite, `kvdr run` with a journal and
three local-folder control stores, and the command line killed mid-way.

After the restart (or the rerun of the killed command) every case asserts what a user
relies on: `kvdr verify --deep` is clean, no target item holds two kvdr copies of one
source version, the checkpoint blob parses and claims only versions the target holds,
the journal has no gap and `snapshot verify` passes, and every control store holds the
one epoch. All of it runs in the slow suite (~25-45 s a case): four seeds of every
phase."""

from __future__ import annotations

import asyncio
import contextlib
import random
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.backups.test_commands import backups_toml
from tests.e2e.crash_checks import (
    SHORT_LEASE,
    checkpoint_holds,
    journal_whole,
    journaled_through,
    kill_after,
    kill_when,
    kvdr_json,
    no_duplicate_copies,
    seeded,
    single_epoch,
    start_kvdr,
    synced,
    verify_deep,
)
from tests.fixtures.daemon import DaemonProcess, free_port, write_config
from tests.fixtures.regions import World, WorldFactory
from tests.fixtures.waiting import wait_for, wait_for_sync
from tests.kvdr.test_cli_failover import control_stores, holds
from vault.models import Attributes, ItemKind

DEFAULT_SEEDS = [1]
SLOW_SEEDS = [2, 3, 4]
# Each emulator call waits this long, so a phase lasts long enough (seconds) for a kill
# at a random point to land inside it rather than after it.
LATENCY_MS = 15
ITEMS = 30


def seeds(default: bool = True) -> list[pytest.ParameterSet]:
    """The seeds of one phase: the first in the default suite when `default`, the rest
    in the slow suite."""
    first = () if default else (pytest.mark.slow,)
    return [pytest.param(s, id=f"seed{s}", marks=first) for s in DEFAULT_SEEDS] + [
        pytest.param(s, id=f"seed{s}", marks=pytest.mark.slow) for s in SLOW_SEEDS
    ]


def names(count: int = ITEMS) -> list[str]:
    return [f"crash-{i:03d}" for i in range(count)]


async def crash_world(make_world: WorldFactory, *regions: str) -> World:
    return await make_world(regions=("eastus", "westus", *regions), latency_ms=LATENCY_MS)


def crash_config(world: World, tmp_path: Path, port: int, **options: str) -> Path:
    return write_config(
        world,
        tmp_path / "kvdr.toml",
        port=port,
        extra=backups_toml(tmp_path, vault_kek=False) + control_stores(tmp_path),
        **options,
    )


async def fill(world: World, count: int = ITEMS, value: str = "v1") -> list[str]:
    eastus = world.vaults["eastus"]
    for name in names(count):
        await eastus.set_secret(name, f"{name}={value}", Attributes())
    return names(count)


def restart_until_caught_up(daemon: DaemonProcess, label: str) -> None:
    daemon.start()
    wait_for_sync(lambda: synced(daemon), 90, f"{label}: westus caught up after restart")


async def consistent(label: str, world: World, config: Path, items: list[str]) -> None:
    """Everything a crash must not break, for the pair eastus -> westus."""
    verify_deep(label, config)
    westus = world.vaults["westus"]
    await no_duplicate_copies(label, westus, items)
    recorded = await checkpoint_holds(label, world.checkpoints, world.vaults["eastus"], westus)
    assert recorded >= len(items), f"{label}: the checkpoint records {recorded} items"
    wait_for_sync(lambda: journaled_through(config, len(items)), 30, f"{label}: journaled")
    journal_whole(label, config, len(items))
    single_epoch(label, config, 0, "eastus")


def started(daemon: DaemonProcess) -> subprocess.Popen[bytes]:
    process = daemon.start().process
    assert process is not None
    return process


@contextlib.asynccontextmanager
async def running(daemon: DaemonProcess) -> AsyncIterator[DaemonProcess]:
    try:
        yield daemon
    finally:
        daemon.kill()


@pytest.mark.parametrize("seed", seeds(default=False))
async def test_kill_during_initial_sync(
    make_world: WorldFactory, tmp_path: Path, seed: int
) -> None:
    """The daemon is killed while it copies a fresh vault of items for the first time."""
    label = f"initial sync, seed {seed}"
    world = await crash_world(make_world)
    items = await fill(world)
    port = free_port()
    config = crash_config(world, tmp_path, port)
    daemon = DaemonProcess(config, port, env=SHORT_LEASE)
    async with running(daemon):
        await asyncio.to_thread(kill_after, started(daemon), seeded(seed, 0.0, 2.5))
        restart_until_caught_up(daemon, label)
        await consistent(label, world, config, items)


async def write_load(world: World, items: list[str], seconds: float) -> int:
    """Updates round-robin over `items` for `seconds`; returns how many it wrote."""
    eastus = world.vaults["eastus"]
    written = 0
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        name = items[written % len(items)]
        await eastus.set_secret(name, f"{name}=load-{written}", Attributes())
        written += 1
    return written


@pytest.mark.parametrize("seed", seeds(default=False))
async def test_kill_during_steady_replication(
    make_world: WorldFactory, tmp_path: Path, seed: int
) -> None:
    """The daemon is killed while a write load runs on the primary; the load goes on
    through the crash and the restart."""
    label = f"steady replication, seed {seed}"
    world = await crash_world(make_world)
    items = await fill(world, 10)
    port = free_port()
    config = crash_config(world, tmp_path, port)
    daemon = DaemonProcess(config, port, env=SHORT_LEASE)
    async with running(daemon):
        process = started(daemon)
        wait_for_sync(lambda: synced(daemon), 60, f"{label}: first sync")
        load = asyncio.create_task(write_load(world, items, 4.0))
        await asyncio.to_thread(kill_after, process, seeded(seed, 0.2, 3.0))
        written = await load
        assert written > len(items), f"{label}: the load wrote only {written}"
        restart_until_caught_up(daemon, label)
        last = items[(written - 1) % len(items)]
        assert await holds(world.vaults["westus"], last, f"{last}=load-{written - 1}"), label
        await consistent(label, world, config, items)


@pytest.mark.parametrize("seed", seeds(default=False))
async def test_kill_during_snapshot_compaction(
    make_world: WorldFactory, tmp_path: Path, seed: int
) -> None:
    """`kvdr snapshot create` and the daemon are both killed while the snapshot is
    written; the rerun completes it and the journal stays whole."""
    label = f"snapshot compaction, seed {seed}"
    world = await crash_world(make_world)
    items = await fill(world)
    port = free_port()
    config = crash_config(world, tmp_path, port)
    daemon = DaemonProcess(config, port, env=SHORT_LEASE)
    async with running(daemon):
        daemon.start()
        wait_for_sync(lambda: synced(daemon), 60, f"{label}: first sync")
        wait_for_sync(lambda: journaled_through(config, len(items)), 30, f"{label}: journaled")
        await fill(world, 5, "v2")
        snapshot = start_kvdr(
            "snapshot", "create", "--pair", "app", "--config", str(config),
            log=tmp_path / "snapshot.log",
        )  # fmt: skip
        await asyncio.to_thread(kill_after, snapshot, seeded(seed, 0.0, 1.5))
        daemon.kill()
        restart_until_caught_up(daemon, label)
        code, doc = kvdr_json(label, "snapshot", "create", "--pair", "app", "--config", str(config))
        assert code == 0 and doc["ok"], f"{label}: snapshot create after the kill: {doc}"
        await consistent(label, world, config, items)


@pytest.mark.parametrize("seed", seeds(default=False))
async def test_kill_during_restore(make_world: WorldFactory, tmp_path: Path, seed: int) -> None:
    """`kvdr restore --force` into a third vault is killed once it has restored a seeded
    number of the items; run again it completes, every item holds its value and nothing
    was restored twice."""
    label = f"restore, seed {seed}"
    world = await crash_world(make_world, "centralus")
    items = await fill(world)
    port = free_port()
    config = crash_config(world, tmp_path, port)
    daemon = DaemonProcess(config, port, env=SHORT_LEASE)
    async with running(daemon):
        daemon.start()
        wait_for_sync(lambda: synced(daemon), 60, f"{label}: first sync")
        wait_for_sync(lambda: journaled_through(config, len(items)), 30, f"{label}: journaled")
        target = world.emulators["centralus"].url
        restore = ("restore", "--pair", "app", "--at", "-0s", "--target", target, "--force")
        centralus = world.vaults["centralus"]
        some = random.Random(seed).randint(1, ITEMS - 1)

        async def restored_some() -> bool:
            return len(await centralus.list_items(ItemKind.SECRET)) >= some

        first = start_kvdr(*restore, "--config", str(config), log=tmp_path / "restore.log")
        await kill_when(first, restored_some)
        code, doc = kvdr_json(label, *restore, "--config", str(config))
        assert code == 0 and doc["ok"], f"{label}: restore after the kill: {doc}"
        for name in items:
            assert await holds(centralus, name, f"{name}=v1"), f"{label}: {name} restored"
        await no_duplicate_copies(label, centralus, items)
        await consistent(label, world, config, items)


@pytest.mark.parametrize("seed", seeds(default=False))
async def test_kill_during_promotion(make_world: WorldFactory, tmp_path: Path, seed: int) -> None:
    """eastus is down; `kvdr failover promote` is killed once a seeded number of the
    three control stores (one or two: no majority yet) hold its record, and run again: every
    control store holds epoch 1 with westus active, and once eastus is back the daemon
    mirrors westus onto it and verify --deep is clean."""
    label = f"promotion, seed {seed}"
    world = await crash_world(make_world)
    items = await fill(world, 10)
    port = free_port()
    config = crash_config(world, tmp_path, port, credential_region="westus")
    daemon = DaemonProcess(config, port, env=SHORT_LEASE)
    async with running(daemon):
        daemon.start()
        wait_for_sync(lambda: synced(daemon), 60, f"{label}: first sync")
        world.emulators["eastus"].stop()
        promote = ("failover", "promote", "--pair", "app", "--to", "westus", "--yes")
        stores = random.Random(seed).randint(1, 2)

        async def recorded_in_some() -> bool:
            return len(list(tmp_path.glob("control-*/failover/app/control.json"))) >= stores

        first = start_kvdr(*promote, "--config", str(config), log=tmp_path / "promote.log")
        await kill_when(first, recorded_in_some)
        code, doc = kvdr_json(label, *promote, "--config", str(config))
        # The killed run may have gone far enough to count: then the rerun finds westus
        # active already and says so (exit 1) instead of promoting twice.
        refused = doc.get("refused", [])
        done = any("westus is already the active region (epoch 1" in r for r in refused)
        assert code == 0 or done, f"{label}: promote after the kill: {doc}"
        single_epoch(label, config, 1, "westus")
        world.emulators["eastus"].restart()
        await world.vaults["westus"].set_secret("after-promotion", "w", Attributes())
        await wait_for(
            lambda: holds(world.vaults["eastus"], "after-promotion", "w"), 60, f"{label}: back"
        )
        wait_for_sync(lambda: synced(daemon, "eastus"), 60, f"{label}: eastus caught up")
        verify_deep(label, config)
        await no_duplicate_copies(label, world.vaults["eastus"], [*items, "after-promotion"])
        await checkpoint_holds(
            label, world.checkpoints, world.vaults["westus"], world.vaults["eastus"]
        )
        single_epoch(label, config, 1, "westus")
