"""Requests per second the emulator serves for get_secret and set_secret via the aio SDK.

Run from the repository root: `python -m bench.emulator_rps [--sets N] [--gets N]`.
It starts one emulator (throttle off) in a temporary folder, drives it with 32
concurrent tasks through `azure.keyvault.secrets.aio.SecretClient`, and prints the rates
next to Azure's per-vault budgets (300 sets / 4,000 other operations per 10 s) as ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from tests.fixtures.emulator import EmulatorProcess, aio_secret_client

CONCURRENCY = 32
AZURE_SETS_PER_SECOND = 300 / 10
AZURE_OTHER_PER_SECOND = 4000 / 10


async def _drive(emu: EmulatorProcess, sets: int, gets: int) -> tuple[float, float]:
    names = [f"bench-{i:03d}" for i in range(200)]
    gate = asyncio.Semaphore(CONCURRENCY)
    async with aio_secret_client(emu) as client:
        # Warm-up: the challenge round trip and TLS connections are not what we measure.
        await asyncio.gather(*(client.set_secret(n, "warm") for n in names[:CONCURRENCY]))

        async def one_set(i: int) -> None:
            async with gate:
                await client.set_secret(names[i % len(names)], f"value-{i}")

        async def one_get(i: int) -> None:
            async with gate:
                await client.get_secret(names[i % CONCURRENCY])

        start = time.perf_counter()
        await asyncio.gather(*(one_set(i) for i in range(sets)))
        set_rps = sets / (time.perf_counter() - start)
        start = time.perf_counter()
        await asyncio.gather(*(one_get(i) for i in range(gets)))
        get_rps = gets / (time.perf_counter() - start)
    return set_rps, get_rps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", type=int, default=2000, help="set_secret calls (default 2000)")
    parser.add_argument("--gets", type=int, default=5000, help="get_secret calls (default 5000)")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as folder,
        EmulatorProcess(Path(folder) / "state") as emu,
    ):
        set_rps, get_rps = asyncio.run(_drive(emu, args.sets, args.gets))
        stats = emu.stats()
    print(f"concurrency            {CONCURRENCY} aio tasks, one SecretClient")
    print(f"set_secret             {set_rps:8.0f} req/s  ({args.sets} calls)")
    print(f"get_secret             {get_rps:8.0f} req/s  ({args.gets} calls)")
    print(
        f"set vs Azure budget    {set_rps / AZURE_SETS_PER_SECOND:8.1f}x  (Azure: 30/s per vault)"
    )
    print(
        f"get vs Azure budget    {get_rps / AZURE_OTHER_PER_SECOND:8.1f}x  (Azure: 400/s per vault)"
    )
    print(f"requests counted       {stats['total']}  (incl. warm-up and the 401 challenge)")


if __name__ == "__main__":
    main()
