"""The local stack the replication benchmarks run on, built from the test fixtures.

`BenchStack` owns a temporary folder, one Azurite and any number of emulator processes
(`tests.fixtures.emulator.EmulatorProcess`); `open_world()` opens kvdr's vault adapters
and a fresh checkpoint container over running emulators and hands back the tests'
`World` (`tests.fixtures.regions.World`), so `world.replicator(world.pair())` builds a
`PairReplicator` exactly as the replicator tests do. Unlike the tests' `WorldFactory`,
each region's emulator is started on its own here: a benchmark needs a far secondary
(`--latency 40`) next to a near primary, or a fresh secondary per run.

kvdr's logs go to `<folder>/kvdr.log` as JSON at INFO, as the daemon writes them, so the
replicator pays the same logging cost it pays in production.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from kvdr.log_setup import configure_logging
from replicator.checkpoint import CheckpointStore
from replicator.plan import SOURCE_VERSION_TAG
from tests.fixtures.azurite import Azurite, fresh_container
from tests.fixtures.emulator import AsyncStaticTokenCredential, EmulatorProcess, aio_secret_client
from tests.fixtures.regions import World, ca_bundle, vault_settings
from vault.adapter import KeyVaultAdapter
from vault.errors import ItemNotFound
from vault.models import ItemKind, VaultRef

# Concurrent set_secret calls when seeding a primary (not measured; throttle off).
SEED_CONCURRENCY = 32


class BenchStack:
    """A temporary folder with Azurite and emulators; everything stops on exit."""

    def __init__(self, keep: bool = False) -> None:
        self._keep = keep
        self.folder = Path(tempfile.mkdtemp(prefix="kvdr-bench-"))
        self.azurite = Azurite(self.folder / "azurite")
        self._emulators: list[EmulatorProcess] = []
        self._log: IO[str] | None = None

    def __enter__(self) -> BenchStack:
        self._log = (self.folder / "kvdr.log").open("a")
        configure_logging("json", "info", stream=self._log)
        self.azurite.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for emu in self._emulators:
            emu.stop()
        self.azurite.stop()
        if self._log is not None:
            self._log.close()
        if self._keep or exc is not None:
            print(f"(bench files kept in {self.folder})")
        else:
            shutil.rmtree(self.folder, ignore_errors=True)

    def emulator(self, region: str, **options: Any) -> EmulatorProcess:
        """Start a fresh emulator for `region` (options as `EmulatorProcess` takes them)."""
        state = self.folder / f"{region}-{uuid.uuid4().hex[:8]}" / "state"
        emu = EmulatorProcess(state, region=region, **options)
        self._emulators.append(emu)
        return emu.start()

    def stop(self, emu: EmulatorProcess) -> None:
        """Stop one emulator (e.g. a secondary that is replaced by a fresh one)."""
        emu.stop()
        if emu in self._emulators:
            self._emulators.remove(emu)


@contextlib.asynccontextmanager
async def open_world(
    stack: BenchStack, emulators: dict[str, EmulatorProcess], **vault_options: Any
) -> AsyncIterator[World]:
    """kvdr adapters on `emulators` (region -> process) plus a fresh checkpoint container.

    `vault_options` override `VaultSettings` fields (defaults otherwise, as the daemon's).
    """
    bundle = ca_bundle(list(emulators.values()), stack.folder / f"ca-{uuid.uuid4().hex[:8]}.pem")
    credential = AsyncStaticTokenCredential()
    settings = vault_settings(bundle, **vault_options)
    async with contextlib.AsyncExitStack() as exits:
        vaults = {
            region: await exits.enter_async_context(
                KeyVaultAdapter.open(VaultRef(region=region, url=emu.url), credential, settings)
            )
            for region, emu in emulators.items()
        }
        blobs = await exits.enter_async_context(fresh_container(stack.azurite))
        yield World(
            emulators=dict(emulators),
            vaults=vaults,
            blobs=blobs,
            checkpoints=CheckpointStore(blobs),
            ca_file=bundle,
            stack=exits,
            credential=credential,
            azurite=stack.azurite,
        )


def secret_names(count: int, prefix: str = "bench") -> list[str]:
    """`count` valid Key Vault names, in a stable order."""
    return [f"{prefix}-{i:05d}" for i in range(count)]


def seed_value(name: str) -> str:
    """The small value a seeded secret holds (benchmark data, not a secret)."""
    return f"seed-value-of-{name}"


async def seed_secrets(
    emu: EmulatorProcess, names: Sequence[str], value_of: Any = seed_value
) -> None:
    """Write one version of each name into `emu` through the aio SDK, concurrently."""
    gate = asyncio.Semaphore(SEED_CONCURRENCY)
    async with aio_secret_client(emu) as client:

        async def one(name: str) -> None:
            async with gate:
                await client.set_secret(name, value_of(name), content_type="text/plain")

        await asyncio.gather(*(one(n) for n in names))


async def live_secret_names(vault: KeyVaultAdapter) -> set[str]:
    """Names of every live secret in `vault` (one listing)."""
    return {p.name for p in await vault.list_items(ItemKind.SECRET)}


async def sample_mismatches(
    primary: KeyVaultAdapter,
    secondary: KeyVaultAdapter,
    names: Iterable[str],
    sample: int,
    *,
    kvdr_tag: bool = True,
    seed: int = 7,
) -> list[str]:
    """Names of a random sample whose secondary value differs from the primary's (or,
    with `kvdr_tag`, that lack kvdr's source-version tag there). Values are compared,
    never printed."""
    pool = sorted(names)
    picked = random.Random(seed).sample(pool, min(sample, len(pool)))
    bad = []
    for name in picked:
        try:
            want = await primary.get_secret(name)
            got = await secondary.get_secret(name)
        except ItemNotFound:
            bad.append(name)
            continue
        if got.value != want.value or (kvdr_tag and SOURCE_VERSION_TAG not in got.properties.tags):
            bad.append(name)
    return bad


def op_count(stats: dict[str, Any], op: str, status: str | None = None) -> int:
    """Requests of operation `op` in an emulator's stats (of one status, or all)."""
    by_status: dict[str, int] = stats.get("by_op", {}).get(op, {})
    if status is not None:
        return int(by_status.get(status, 0))
    return sum(by_status.values())
