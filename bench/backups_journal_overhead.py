"""Journal overhead: replication throughput with the journal as a sink against without it,
same workload, same run.

Run from the repository root: `python -m bench.backups_journal_overhead [--secrets 1000]
[--rounds 3]`.

One primary emulator is seeded with N secrets. Each run copies all of them onto a FRESH
secondary emulator with `PairReplicator.reconcile()` (then `flush()`), in one of three
modes, interleaved round by round so drift in the machine's load hits all of them alike:

- off: no sinks;
- interval: the journal (`backups.journal.Journal`, default settings: durable within the
  2 s flush interval) as the sink, writing encrypted segments to a fresh Azurite
  container, its data keys wrapped by a vault key in the primary's region (RSA-OAEP-256),
  the offline recovery key and a local key file;
- sync: the same with `durability = "sync"` (record() returns once the segment is
  written; concurrent items share a write).

The journal's final flush is inside the measured time. The vault budgets are lifted far
above Azure's limits so that the run is bound by the engine, not by the 300 creates per
10 s (with the budget in force both modes run at the budget and the ratio says nothing).

Target (issue 5): throughput with the journal >= 90% of throughput without it.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from cryptography.hazmat.primitives.asymmetric import rsa

from backups.journal import Journal
from backups.keks import KekRing, LocalFileKek, RecoveryKek, VaultKek
from backups.settings import BackupSettings
from backups.signer_files import Ed25519FileSigner
from backups.signers import SignerRing
from backups.stores import BackupStores
from bench._report import at_least, header, table
from bench._world import BenchStack, live_secret_names, open_world, secret_names, seed_secrets
from replicator.pair import PairReplicator
from replicator.settings import ReplicatorSettings
from replicator.sink import version_fingerprint
from tests.fixtures.emulator import EmulatorProcess, aio_key_client

TARGET_RATIO = 0.90
MODES = ("off", "interval", "sync")
LIFTED_BUDGETS = {"secret_creates_per_10s": 1_000_000, "other_ops_per_10s": 1_000_000}


async def one_run(
    stack: BenchStack, primary: EmulatorProcess, mode: str, secrets: int, kek_file: str
) -> tuple[float, int]:
    """Seconds to copy everything onto a fresh secondary, and the journal's last sequence."""
    secondary = stack.emulator("westus")
    try:
        async with open_world(
            stack, {"eastus": primary, "westus": secondary}, **LIFTED_BUDGETS
        ) as world:
            pair = world.pair()
            journal = None
            sinks: tuple[Journal, ...] = ()
            if mode != "off":
                keks = KekRing(
                    [
                        VaultKek(world.vaults["eastus"], "kvdr-backup"),
                        RecoveryKek(
                            rsa.generate_private_key(
                                public_exponent=65537, key_size=2048
                            ).public_key()
                        ),
                        LocalFileKek.from_file(kek_file),
                    ],
                    SignerRing([Ed25519FileSigner.from_file(f"{kek_file}.signing")]),
                )
                journal = Journal(
                    BackupStores(world.blobs),
                    keks,
                    BackupSettings(durability=mode),
                    fingerprint=version_fingerprint,
                )
                await journal.__aenter__()
                sinks = (journal,)
            replicator = PairReplicator(
                pair,
                ReplicatorSettings(pairs=(pair,)),
                world.vaults["eastus"],
                {"westus": world.vaults["westus"]},
                world.checkpoints,
                sinks=sinks,
            )
            await replicator.load()
            started = time.perf_counter()
            report = await replicator.reconcile()
            await replicator.flush()
            last = 0
            if journal is not None:
                await journal.close()
                last = (await journal.position(pair.name)).sequence
            seconds = time.perf_counter() - started
            copied = len(await live_secret_names(world.vaults["westus"]))
            if report.errors or copied != secrets or (journal is not None and last != secrets):
                raise RuntimeError(
                    f"{mode}: {report.errors} errors, {copied}/{secrets} copied, journal at {last}"
                )
            return seconds, last
    finally:
        stack.stop(secondary)


async def run(args: argparse.Namespace) -> None:
    with BenchStack() as stack:
        primary = stack.emulator("eastus")
        names = secret_names(args.secrets)
        await seed_secrets(primary, names)
        async with aio_key_client(primary) as keys:
            await keys.create_rsa_key("kvdr-backup", size=2048)
        kek_file = str(stack.folder / "backup.key")
        LocalFileKek.create_key_file(kek_file)
        Ed25519FileSigner.create_key_file(f"{kek_file}.signing")
        seconds: dict[str, list[float]] = {m: [] for m in MODES}
        for round_no in range(args.rounds):
            order = MODES[round_no % 3 :] + MODES[: round_no % 3]
            for mode in order:
                took, _ = await one_run(stack, primary, mode, args.secrets, kek_file)
                seconds[mode].append(took)
                print(f"   round {round_no + 1} {mode:8s} {took:6.2f} s", flush=True)
    print(header("Journal overhead: replication with and without the journal"))
    base = statistics.median(seconds["off"])
    rows = []
    for mode in MODES:
        median = statistics.median(seconds[mode])
        rows.append(
            [
                mode,
                f"{median:.2f} s",
                f"{args.secrets / median:.0f}/s",
                f"{base / median:.1%}",
            ]
        )
    print(table(["journal", "median copy time", "throughput", "of journal off"], rows))
    print(f"{args.secrets} secrets, {args.rounds} rounds per mode, budgets lifted")
    for mode in ("interval", "sync"):
        ratio = base / statistics.median(seconds[mode])
        print(
            f"{mode}: "
            + at_least(
                ratio * 100, TARGET_RATIO * 100, "%", figure=f"throughput with the journal ({mode})"
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--secrets", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
