"""The emulator holding 1,000 / 10,000 / 100,000 secrets: the official SDK's listing
(every page), a page near the end and a version read, against the same at 1,000.

Run from the repository root: `python -m bench.emulator_scale [--sizes 1000,10000,100000]`.
For each size an emulator's state folder is filled directly (one secret written through
the SDK, its stored document copied under the other names: writing 100,000 through
HTTPS would measure the write path, not the vault's size), then the emulator starts and
`list_properties_of_secrets` walks every page (25 per page) through HTTPS. The figure is
the time per page at the largest size over the time per page at the smallest (issue 15:
the emulator must hold 100,000 items without slowing down; target at most 1.5x).
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from bench._report import header, no_more_than, table
from tests.fixtures.emulator import EmulatorProcess, aio_secret_client

QUICK_ARGS = ["--sizes", "1000,20000"]
TARGET_RATIO = 1.5


async def _seed(emu: EmulatorProcess) -> None:
    async with aio_secret_client(emu) as client:
        await client.set_secret("s-0000000", "a value of the usual size, forty-odd bytes")


def _fill(db: Path, size: int) -> None:
    """Copy the one stored secret under `size - 1` more names (same document)."""
    with sqlite3.connect(db) as conn:
        kind, doc = conn.execute("SELECT kind, doc FROM versions LIMIT 1").fetchone()
        conn.executemany(
            "INSERT INTO versions (kind, name_key, name, version, doc) VALUES (?, ?, ?, ?, ?)",
            ((kind, f"s-{i:07d}", f"s-{i:07d}", f"{i:032x}", doc) for i in range(1, size)),
        )


async def _measure(emu: EmulatorProcess, size: int) -> dict[str, float]:
    async with aio_secret_client(emu) as client:
        started = time.perf_counter()
        pages = client.list_properties_of_secrets().by_page()
        count = page_count = 0
        async for page in pages:
            page_count += 1
            count += len([p async for p in page])
        listing = time.perf_counter() - started
        assert count == size, (count, size)
        reads = []
        for i in range(50):
            started = time.perf_counter()
            await client.get_secret(f"s-{(i * 7919) % size:07d}")
            reads.append(time.perf_counter() - started)
    return {
        "listing_s": listing,
        "ms_per_page": listing / page_count * 1000,
        "read_ms": statistics.median(reads) * 1000,
    }


def run(size: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        state = Path(folder) / "state"
        with EmulatorProcess(state) as emu:
            asyncio.run(_seed(emu))
        _fill(state / "vault.db", size)
        with EmulatorProcess(state) as emu:
            return asyncio.run(_measure(emu, size))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="comma-separated sizes")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    results = {size: run(size) for size in sizes}
    print(header("emulator: listing and reading as the vault grows"))
    rows = [
        [f"{size:,}", r["listing_s"], r["ms_per_page"], r["read_ms"]] for size, r in results.items()
    ]
    print(table(["secrets", "full listing (s)", "ms per page", "read (ms, median)"], rows))
    small, large = results[sizes[0]], results[sizes[-1]]
    ratio = large["ms_per_page"] / small["ms_per_page"]
    verdict = no_more_than(
        ratio, TARGET_RATIO, "x", figure=f"emulator page time at {sizes[-1]:,} vs {sizes[0]:,}"
    )
    print(f"per page at {sizes[-1]:,} against {sizes[0]:,}: {ratio:.2f}x; {verdict}")


if __name__ == "__main__":
    main()
