"""A steady write load on a primary: one `set_secret` every 1/rate s, round robin.

Each write is started on schedule without waiting for the one before (an application
does not slow down because a vault is slow) and records when it was sent and
acknowledged, and the version the vault gave it. Values are unique and say which write
they are (benchmark data, not secrets).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from azure.keyvault.secrets.aio import SecretClient


def write_value(index: int) -> str:
    """The value of write `index`."""
    return f"w{index:07d}-steady-state"


def write_index(value: str) -> int:
    """The write index a value carries; -1 for any other value (a seeded one)."""
    if value.startswith("w") and "-" in value:
        try:
            return int(value[1 : value.index("-")])
        except ValueError:
            return -1
    return -1


@dataclass
class Write:
    """One write on the primary."""

    index: int
    name: str
    sent: float
    acked: float = math.nan
    source_version: str = ""


@dataclass
class WriteLog:
    """The writes of one load, in the order they were started."""

    writes: list[Write] = field(default_factory=list)
    seconds: float = math.nan

    @property
    def acked(self) -> list[Write]:
        return [w for w in self.writes if not math.isnan(w.acked)]


async def write_load(
    client: SecretClient, names: Sequence[str], rate: float, seconds: float, log: WriteLog
) -> None:
    """Write `rate` times per second for `seconds` onto `names` in turn, into `log`.

    `client` should have made one request already: the challenge round trip is set-up.
    """
    total = int(rate * seconds)

    async def one(index: int) -> None:
        write = Write(index=index, name=names[index % len(names)], sent=time.time())
        log.writes.append(write)
        secret = await client.set_secret(write.name, write_value(index))
        write.acked = time.time()
        write.source_version = secret.properties.version or ""

    started = time.perf_counter()
    tasks = []
    for index in range(total):
        delay = started + index / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(index)))
    await asyncio.gather(*tasks)
    log.seconds = time.perf_counter() - started
