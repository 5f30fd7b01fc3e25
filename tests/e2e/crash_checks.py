"""What must hold after any crash, read as a user and an auditor would: the command
line's own checks (`kvdr verify --deep`, `kvdr snapshot list|verify`, `kvdr failover
status`) plus the vaults' version histories and the checkpoint blobs themselves.

Every assertion message starts with the case's label (phase and seed) so a failure names
the run that reproduces it."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from replicator.checkpoint import CheckpointStore, checkpoint_blob_name
from replicator.plan import SOURCE_VERSION_TAG
from tests.fixtures.cli import run_kvdr
from tests.fixtures.daemon import DaemonProcess
from tests.kvdr.test_cli_failover import caught_up
from vault.adapter import KeyVaultAdapter
from vault.models import ItemKind

_SECRET = ItemKind.SECRET

# A SIGKILLed daemon leaves its pair lease behind; the restarted one takes the pair when
# it expires. Azure's shortest lease (15 s) keeps each restart short.
SHORT_LEASE = {"KVDR__REPLICATION__LEASE_DURATION": "15s"}


def kvdr_json(label: str, *args: str) -> tuple[int, dict[str, Any]]:
    """`kvdr ARGS --json`: the exit code and the document (the output when it is none)."""
    result = run_kvdr(*args, "--json", timeout=180)
    try:
        return result.returncode, json.loads(result.stdout)
    except ValueError:
        raise AssertionError(f"{label}: not JSON: {result.stdout}{result.stderr}") from None


def start_kvdr(*args: str, log: Path) -> subprocess.Popen[bytes]:
    """`kvdr ARGS` running in the background (to be killed mid-way), its output in `log`."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "kvdr", *args],
            stdout=out,
            stderr=out,
            stdin=subprocess.DEVNULL,
        )


def kill_after(process: subprocess.Popen[bytes], delay: float) -> bool:
    """SIGKILL `process` `delay` seconds from now; False when it had finished first
    (the case then proves less, and says so through the caller's counters)."""
    deadline = time.monotonic() + delay
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        time.sleep(0.01)
    if process.poll() is not None:
        return False
    process.kill()
    process.wait()
    return True


async def kill_when(
    process: subprocess.Popen[bytes], reached: Callable[[], Awaitable[bool]], timeout: float = 60
) -> None:
    """SIGKILL `process` as soon as `reached()` holds: a point inside its work, where a
    delay would land in the interpreter's start-up on a slow machine or after the end on
    a fast one. Fails when the process finished first (the kill proved nothing)."""
    deadline = time.monotonic() + timeout
    while not await reached():
        assert process.poll() is None, f"finished (exit {process.returncode}) before the kill"
        assert time.monotonic() < deadline, "the kill point was never reached"
        await asyncio.sleep(0.005)
    process.kill()
    process.wait()


def seeded(seed: int, low: float, high: float) -> float:
    """The kill delay of one seed: the same seed kills at the same point every run."""
    return random.Random(seed).uniform(low, high)


def synced(daemon: DaemonProcess, region: str = "westus") -> bool:
    """`region` caught up after at least one whole pass of this daemon process: before
    its first pass a fresh daemon reports no lag because it has measured none."""
    pairs = daemon.status()["pairs"]
    return bool(pairs and int(pairs[0].get("passes") or 0) >= 1 and caught_up(daemon, region))


def verify_deep(label: str, config: Path) -> None:
    code, doc = kvdr_json(label, "verify", "--pair", "app", "--deep", "--config", str(config))
    assert code == 0 and doc["ok"], f"{label}: verify --deep: {json.dumps(doc)[:2000]}"


async def no_duplicate_copies(label: str, target: KeyVaultAdapter, names: list[str]) -> None:
    """No item on `target` holds two kvdr copies of one source version."""
    for name in names:
        versions = await target.list_versions(_SECRET, name)
        tags = Counter(v.tags[SOURCE_VERSION_TAG] for v in versions if SOURCE_VERSION_TAG in v.tags)
        twice = sorted(v for v, n in tags.items() if n > 1)
        assert not twice, f"{label}: {name} on {target.ref.region} copied twice: {twice}"


async def checkpoint_holds(
    label: str,
    checkpoints: CheckpointStore,
    source: KeyVaultAdapter,
    target: KeyVaultAdapter,
    pair: str = "app",
) -> int:
    """The checkpoint blob parses, and every version it records as applied is on the
    target: the target holds its `target_version`, and holds `source_version`'s value (a
    kvdr copy tagged with it, the same version id, or, after a failover reversed the
    pair, the origin the source version was itself copied from). Returns how many items
    it records."""
    region = target.ref.region
    blob = checkpoint_blob_name(pair, region)
    checkpoint = await checkpoints.load(pair, region)
    for key, entry in checkpoint.items.items():
        kind, _, name = key.partition("/")
        if kind != _SECRET.value or entry.deleted_at is not None:
            continue
        versions = await target.list_versions(_SECRET, name)
        held = {v.version for v in versions}
        origins = {
            v.tags.get(SOURCE_VERSION_TAG)
            for v in await source.list_versions(_SECRET, name)
            if v.version == entry.source_version
        }
        holding = held | {v.tags.get(SOURCE_VERSION_TAG) for v in versions}
        claim = f"{label}: {blob} records {name} at {entry.source_version}"
        assert entry.target_version is None or entry.target_version in held, (
            f"{claim}, target version {entry.target_version}, which {region} does not hold"
        )
        assert entry.source_version in holding or origins & held, (
            f"{claim}, which {region} holds no copy of"
        )
    return len(checkpoint.items)


def journal_whole(label: str, config: Path, at_least: int) -> None:
    """Every generation of the journal is gap-free, `snapshot verify` is clean and the
    journal reaches sequence `at_least`."""
    code, listed = kvdr_json(label, "snapshot", "list", "--config", str(config))
    assert code == 0, f"{label}: snapshot list: {listed}"
    (pair,) = listed["pairs"]
    for generation in pair["generations"]:
        assert not generation["gaps"], f"{label}: journal gap: {json.dumps(generation)}"
    last = pair["generations"][-1]["last_sequence"] if pair["generations"] else 0
    assert last >= at_least, f"{label}: journal ends at {last}, wanted {at_least}"
    code, checked = kvdr_json(label, "snapshot", "verify", "--config", str(config))
    assert code == 0 and checked["ok"], f"{label}: snapshot verify: {json.dumps(checked)[:2000]}"


def journaled_through(config: Path, sequence: int) -> bool:
    """True once the newest generation's last sequence is at least `sequence`."""
    result = run_kvdr("snapshot", "list", "--json", "--config", str(config), timeout=60)
    if result.returncode != 0:
        return False
    pairs = json.loads(result.stdout)["pairs"]
    generations = pairs[0]["generations"] if pairs else []
    return bool(generations) and generations[-1]["last_sequence"] >= sequence


def single_epoch(label: str, config: Path, epoch: int, active: str) -> None:
    """Every control store holds the record at `epoch` (none at all for epoch 0: no
    transition), and the majority reads `active`."""
    code, doc = kvdr_json(label, "failover", "status", "--config", str(config))
    (pair,) = doc["pairs"]
    epochs = [s["epoch"] for s in pair["stores"]]
    wanted = epoch or None
    assert code == 0 and epochs == [wanted] * len(epochs), f"{label}: store epochs {epochs}"
    assert (pair["epoch"], pair["active_region"]) == (epoch, active), f"{label}: {pair}"
