"""Several `kvdr run` daemons share the pairs through blob leases: real daemon processes,
real emulators and Azurite (kvdr/daemon.py, replicator/ownership.py)."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from replicator.plan import SOURCE_VERSION_TAG
from tests.fixtures.daemon import DaemonProcess, free_port, write_shared_config
from tests.fixtures.regions import World, WorldFactory
from tests.fixtures.waiting import wait_for
from vault.errors import VaultError
from vault.models import Attributes, ItemKind

KVDR = (sys.executable, "-m", "kvdr")
LEASE_SECONDS = 15
# Secrets per pair: with two items at a time per pair and 40 ms per vault request, a
# pair's first sync takes a few seconds, long enough to kill its owner in the middle.
ITEMS = 40
LATENCY_MS = 40

# Six pairs over three vaults. Pairs that share a primary or a secondary split the names
# with include/exclude globs; westus is a secondary of some pairs and the primary of one.
PAIRS: dict[str, dict[str, Any]] = {
    "pa": {"primary": "eastus", "secondaries": ["westus"], "include": ["a-*"]},
    "pb": {"primary": "eastus", "secondaries": ["westus"], "include": ["b-*"]},
    "pc": {"primary": "eastus", "secondaries": ["centralus"], "include": ["c-*"]},
    "pd": {
        "primary": "eastus",
        "secondaries": ["westus", "centralus"],
        "include": ["d-*", "e-*"],
        "exclude": ["e-skip-*"],
    },
    "pe": {"primary": "westus", "secondaries": ["centralus"], "include": ["w-*"]},
    "pf": {
        "primary": "eastus",
        "secondaries": ["centralus"],
        "include": ["*"],
        "exclude": ["a-*", "b-*", "c-*", "d-*", "e-*", "w-*"],
    },
}
# The names each pair mirrors (pd takes two prefixes).
NAMES = {
    "pa": [f"a-{i}" for i in range(ITEMS)],
    "pb": [f"b-{i}" for i in range(ITEMS)],
    "pc": [f"c-{i}" for i in range(ITEMS)],
    "pd": [f"d-{i}" for i in range(ITEMS // 2)] + [f"e-{i}" for i in range(ITEMS // 2)],
    "pe": [f"w-{i}" for i in range(ITEMS)],
    "pf": [f"f-{i}" for i in range(ITEMS)],
}


def leaders(daemons: Sequence[DaemonProcess]) -> dict[str, list[str]]:
    """pair -> the instances that say they run it."""
    found: dict[str, list[str]] = {name: [] for name in PAIRS}
    for daemon in daemons:
        status = daemon.status()
        for pair in status["pairs"]:
            if pair["leader"]:
                found[pair["name"]].append(status["instance"])
    return found


def settled(daemons: Sequence[DaemonProcess], per_daemon: set[int]) -> dict[str, str] | None:
    """pair -> owner when every pair runs on exactly one daemon, every daemon runs a
    number of pairs in `per_daemon` and all daemons name the same owners; else None."""
    found = leaders(daemons)
    if any(len(owners) != 1 for owners in found.values()):
        return None
    owners = {pair: owners[0] for pair, owners in found.items()}
    counts = [list(owners.values()).count(d.status()["instance"]) for d in daemons]
    if not set(counts) <= per_daemon:
        return None
    for daemon in daemons:
        named = {p["name"]: p["owner"] for p in daemon.status()["pairs"]}
        if named != owners:
            return None
    return owners


async def names_on(world: World, region: str) -> set[str]:
    try:
        return {p.name for p in await world.vaults[region].list_items(ItemKind.SECRET)}
    except VaultError:
        return set()


def leader_metric(daemon: DaemonProcess, pair: str) -> float:
    code, body = daemon.get("/metrics")
    assert code == 200
    match = re.search(rf'^kvdr_leader{{pair="{pair}"}} (\S+)$', body.decode(), re.MULTILINE)
    assert match is not None, f"no kvdr_leader for {pair}"
    return float(match.group(1))


async def check_pair(world: World, pair: str, target: str) -> None:
    """Every item of `pair` is on `target` exactly once, as the source's latest version,
    and the target's checkpoint has an entry for each (no gap)."""
    names = NAMES[pair]
    source = world.vaults[PAIRS[pair]["primary"]]

    async def complete() -> bool:
        checkpoint = await world.checkpoints.load(pair, target)
        return set(checkpoint.items) == {f"secret/{n}" for n in names}

    await wait_for(complete, 20, f"{pair}'s checkpoint on {target}")
    checkpoint = await world.checkpoints.load(pair, target)

    async def check(name: str) -> None:
        latest = (await source.list_versions(ItemKind.SECRET, name))[-1].version
        assert checkpoint.items[f"secret/{name}"].source_version == latest
        versions = await world.vaults[target].list_versions(ItemKind.SECRET, name)
        tags = [v.tags.get(SOURCE_VERSION_TAG) for v in versions]
        assert tags == [latest], (pair, target, name, tags)

    await asyncio.gather(*(check(name) for name in names))


class TestSharedPairs:
    async def test_sigkill_of_an_owner_hands_its_pairs_to_the_survivors(
        self, make_world: WorldFactory, tmp_path: Path
    ) -> None:
        """Three daemons, six pairs: every pair is run by exactly one daemon, two each.
        SIGKILL the owner of two pairs in the middle of their first sync: the survivors
        finish both within one lease period plus a margin, with no version written twice
        and a checkpoint entry for every item; status and kvdr_leader show the new
        owners."""
        world = await make_world(regions=("eastus", "westus", "centralus"), latency_ms=LATENCY_MS)
        daemons = []
        for index in range(3):
            port = free_port()
            config = write_shared_config(
                world,
                tmp_path / f"kvdr-{index}.toml",
                port=port,
                instance=f"kvdr-{index}",
                pairs=PAIRS,
                lease_seconds=LEASE_SECONDS,
                max_concurrent_items=2,
            )
            daemons.append(DaemonProcess(config, port))

        try:
            await asyncio.gather(*(asyncio.to_thread(d.start) for d in daemons))
            owners = await wait_for(lambda: settled(daemons, {2}), 60, "two pairs per daemon")

            sources = {name: PAIRS[name]["primary"] for name in PAIRS}
            writes = [
                world.vaults[sources[pair]].set_secret(name, f"value-{name}", Attributes())
                for pair, names in NAMES.items()
                for name in names
            ]
            writes.append(world.vaults["eastus"].set_secret("e-skip-1", "x", Attributes()))
            await asyncio.gather(*writes)

            victim = daemons[0]
            victim_id = victim.status()["instance"]
            victim_pairs = sorted(p for p, owner in owners.items() if owner == victim_id)
            assert len(victim_pairs) == 2

            async def partly_copied() -> dict[str, int] | None:
                counts = {}
                for pair in victim_pairs:
                    target = PAIRS[pair]["secondaries"][0]
                    on_target = await names_on(world, target)
                    counts[pair] = len(on_target & set(NAMES[pair]))
                if any(0 < n < len(NAMES[p]) for p, n in counts.items()):
                    return counts
                return None

            at_kill = await wait_for(partly_copied, 30, "the victim's pairs in mid-sync")
            victim.kill()
            killed = time.monotonic()
            survivors = daemons[1:]

            async def victim_pairs_done() -> bool:
                for pair in victim_pairs:
                    for target in PAIRS[pair]["secondaries"]:
                        if not set(NAMES[pair]) <= await names_on(world, target):
                            return False
                return True

            await wait_for(victim_pairs_done, LEASE_SECONDS + 30, "the survivors to finish")
            handed_over = time.monotonic() - killed
            assert handed_over < LEASE_SECONDS + 15, (handed_over, at_kill)
            assert any(0 < n < len(NAMES[p]) for p, n in at_kill.items()), at_kill

            new_owners = await wait_for(
                lambda: settled(survivors, {3}), 40, "three pairs per survivor"
            )
            survivor_ids = {d.status()["instance"] for d in survivors}
            assert set(new_owners.values()) == survivor_ids
            for pair in victim_pairs:
                assert new_owners[pair] in survivor_ids
            for daemon in survivors:
                instance = daemon.status()["instance"]
                for pair in PAIRS:
                    expected = 1.0 if new_owners[pair] == instance else 0.0
                    assert leader_metric(daemon, pair) == expected, (instance, pair)

            # Every pair complete, nothing twice, nothing excluded copied, checkpoints
            # without gaps.
            await asyncio.gather(
                *(
                    check_pair(world, pair, target)
                    for pair in PAIRS
                    for target in PAIRS[pair]["secondaries"]
                )
            )
            for target in ("westus", "centralus"):
                assert "e-skip-1" not in await names_on(world, target)

            # `kvdr status` names the owner of every pair, also of those another runs.
            result = subprocess.run(
                [*KVDR, "status", "--json", "--config", str(survivors[0].config)],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert result.returncode == 0, result.stderr
            doc = json.loads(result.stdout)
            assert {p["name"]: p["owner"] for p in doc["pairs"]} == new_owners
            assert {i["instance"] for i in doc["instances"] if i["live"]} == survivor_ids
        finally:
            daemons[0].kill()
            survivors = [d for d in daemons[1:] if d.process is not None]
            for daemon in survivors:
                # Both at once, so neither takes over the other's pairs on the way out.
                if daemon.process is not None and daemon.process.poll() is None:
                    daemon.process.send_signal(signal.SIGTERM)
            # Wait, do not signal again: a second SIGTERM that lands after the daemon has
            # finished and dropped its handlers would end the process with -15.
            codes = [d.process.wait(30) for d in survivors if d.process is not None]
        assert codes == [0, 0]
