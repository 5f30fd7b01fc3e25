"""Compaction: a snapshot of 10,000 items plus 50,000 following journal changes into the
next snapshot; time and peak memory.

Run from the repository root: `python -m bench.backups_compaction [--items 10000]
[--changes 50000]`.

A journal is written into a fresh Azurite container through `backups.journal.Journal`
(a local key file as KEK): one new version for each of `--items` secrets (values of
`--value-bytes`), a first snapshot, then `--changes` changes spread over the items (60%
new versions, 30% attribute updates, 5% deletions, 5% recoveries), in segments of 500.
The compaction of that snapshot plus those segments (`backups.snapshot.create_snapshot`)
then runs in a child process of its own, so its peak resident memory is its own and not
the writer's: it reports wall time and peak resident memory (`ru_maxrss`, which
includes the interpreter and the Azure SDK, about 90 MB before any work).

Target (issue 5): peak under 300 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from backups.journal import Journal
from backups.keks import KekRing, LocalFileKek
from backups.settings import BackupSettings
from backups.signer_files import Ed25519FileSigner
from backups.signers import SignerRing
from backups.snapshot import create_snapshot
from backups.stores import BackupStores
from bench._report import at_most, header, table
from bench._world import BenchStack
from replicator.sink import version_fingerprint
from storage import AzureBlobSettings, AzureBlobStore
from tests.fixtures.azurite import fresh_container
from vault.models import Change, ChangeOp, ItemKind, ItemProperties, ItemRef

PAIR = "bench"
TARGET_PEAK_MB = 300.0
BATCH = 500


def change(
    name: str, op: ChangeOp, version: str, at: datetime, value: str | None, tags: dict[str, str]
) -> Change:
    props = None
    if op in (ChangeOp.NEW_VERSION, ChangeOp.UPDATE):
        props = ItemProperties(
            ItemKind.SECRET,
            name,
            version,
            created_on=at.replace(microsecond=0),
            updated_on=at.replace(microsecond=0),
            content_type="text/plain",
            tags=tags,
        )
    return Change(PAIR, ItemRef(ItemKind.SECRET, name), op, at, props, 0, value)


async def write_journal(store: AzureBlobStore, keks: KekRing, args: argparse.Namespace) -> float:
    """The journal and the first snapshot; returns seconds spent writing."""
    settings = BackupSettings(
        flush_max_changes=BATCH, max_buffered_changes=BATCH * 4, flush_interval_seconds=3600
    )
    journal = Journal(BackupStores(store), keks, settings, fingerprint=version_fingerprint)
    rng = random.Random(5)
    names = [f"item-{i:05d}" for i in range(args.items)]
    versions = {n: [f"{0:032x}"] for n in names}
    deleted: set[str] = set()
    start = datetime.now(UTC) - timedelta(days=1)
    started = time.perf_counter()

    def value() -> str:
        return rng.randbytes(args.value_bytes // 2).hex()

    batch: list[Change] = []

    async def push(c: Change) -> None:
        batch.append(c)
        if len(batch) >= BATCH:
            await journal.record(batch)
            batch.clear()
            await journal.flush()

    for i, name in enumerate(names):
        await push(
            change(name, ChangeOp.NEW_VERSION, versions[name][0], start, value(), {"i": str(i)})
        )
    await journal.record(batch)
    batch.clear()
    await journal.flush()
    await create_snapshot(BackupStores(store), keks, PAIR)
    for n in range(args.changes):
        at = start + timedelta(seconds=n)
        name = rng.choice(names)
        roll = rng.random()
        if name in deleted or roll > 0.95:
            op = ChangeOp.RECOVER if name in deleted else ChangeOp.DELETE
            (deleted.discard if name in deleted else deleted.add)(name)
            await push(change(name, op, "", at, None, {}))
        elif roll < 0.6:
            versions[name].append(f"{n + 1:032x}")
            await push(change(name, ChangeOp.NEW_VERSION, versions[name][-1], at, value(), {}))
        else:
            tags = {"rotation": str(n)}
            await push(change(name, ChangeOp.UPDATE, rng.choice(versions[name]), at, None, tags))
    await journal.record(batch)
    await journal.close()
    return time.perf_counter() - started


async def compact_only(connection_string: str, container: str, key_file: str) -> None:
    """Child process: one compaction, measured."""
    # The signing key lives next to the KEK file (written by `run`).
    signer = Ed25519FileSigner.from_file(Path(key_file).with_name("backup-signing.key"))
    keks = KekRing([LocalFileKek.from_file(key_file)], SignerRing([signer]))
    settings = AzureBlobSettings(container=container, connection_string=connection_string)
    async with AzureBlobStore(settings) as store:
        started = time.perf_counter()
        made = await create_snapshot(BackupStores(store), keks, PAIR)
        seconds = time.perf_counter() - started
    assert made is not None
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "items": made.items,
                "sequence": made.sequence,
                "segments_read": made.segments_read,
                "size": made.size,
            }
        )
    )


async def run(args: argparse.Namespace) -> None:
    with BenchStack() as stack:
        key_file = stack.folder / "backup.key"
        kek = LocalFileKek.create_key_file(key_file)
        signer = Ed25519FileSigner.create_key_file(key_file.with_name("backup-signing.key"))
        async with fresh_container(stack.azurite) as store:
            written = await write_journal(store, KekRing([kek], SignerRing([signer])), args)
            child = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "bench.backups_compaction",
                    "--compact-only",
                    stack.azurite.connection_string,
                    store.container_name,
                    str(key_file),
                ],
                capture_output=True,
                text=True,
                check=True,
                cwd=Path(__file__).resolve().parent.parent,
            )
            result = json.loads(child.stdout.strip().splitlines()[-1])
    print(header("Compaction: snapshot + journal -> next snapshot"))
    rows = [
        ["items in the state", result["items"]],
        ["journal changes compacted", args.changes],
        ["segments read", result["segments_read"]],
        ["new snapshot size", f"{result['size'] / 2**20:.1f} MB"],
        ["compaction time", f"{result['seconds']:.1f} s"],
        ["peak RSS (child process)", f"{result['peak_rss_mb']:.0f} MB"],
        ["journal writing (setup)", f"{written:.1f} s"],
    ]
    print(table(["", "value"], rows, align="lr"))
    print(at_most(result["peak_rss_mb"], TARGET_PEAK_MB, " MB", figure="compaction peak RSS"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--changes", type=int, default=50_000)
    parser.add_argument("--value-bytes", type=int, default=200)
    parser.add_argument("--compact-only", nargs=3, metavar=("CONN", "CONTAINER", "KEY"))
    args = parser.parse_args()
    if args.compact_only:
        os.environ.setdefault("PYTHONHASHSEED", "0")
        asyncio.run(compact_only(*args.compact_only))
        return
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
