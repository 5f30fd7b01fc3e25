"""The drill's write load and its ledger of acknowledged writes.

The load writes random secret values at a steady rate to the region that is active,
the way an application would, and records every write the vault acknowledged: name,
version, region and time. The values are random, are never kept and never written
anywhere: the ledger is what RPO is measured against, and it holds no secret.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from vault.errors import VaultError
from vault.models import Attributes, ItemProperties

log = structlog.get_logger("chaos.ledger")


class SecretWriter(Protocol):
    """What the load needs of a vault (the vault adapter has it)."""

    async def set_secret(self, name: str, value: str, attributes: Attributes) -> ItemProperties:
        """Write a new version of `name`; return its properties (its version)."""
        ...


@dataclass(frozen=True)
class LedgerEntry:
    """One acknowledged write: never its value."""

    name: str
    version: str
    region: str
    at: float  # wall clock, Unix seconds, when the vault's answer arrived

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "version": self.version, "region": self.region, "at": self.at}


@dataclass(frozen=True)
class WriteAttempt:
    """One write the load tried, for the write-rate chart and RTO."""

    at: float
    region: str
    ok: bool
    error: str = ""


@dataclass
class Ledger:
    """Every write the load attempted, and the acknowledged ones."""

    entries: list[LedgerEntry] = field(default_factory=list)
    attempts: list[WriteAttempt] = field(default_factory=list)

    def acknowledged(self, until: float | None = None) -> list[LedgerEntry]:
        return [e for e in self.entries if until is None or e.at <= until]

    def first_success(self, region: str, after: float) -> float | None:
        """When the first write acknowledged by `region` at or after `after` arrived."""
        for attempt in self.attempts:
            if attempt.ok and attempt.region == region and attempt.at >= after:
                return attempt.at
        return None

    def failures(self) -> int:
        return sum(1 for a in self.attempts if not a.ok)


@dataclass
class WriteLoad:
    """Writes `rate` secrets per second over `names` names to `writers[active()]`."""

    prefix: str
    rate: float
    names: int
    writers: dict[str, SecretWriter]
    active: Callable[[], str]
    ledger: Ledger = field(default_factory=Ledger)
    write_timeout_seconds: float = 5.0
    clock: Callable[[], float] = time.time
    _task: asyncio.Task[None] | None = None
    _count: int = 0

    def name_of(self, index: int) -> str:
        return f"{self.prefix}-{index % self.names:03d}"

    @property
    def all_names(self) -> list[str]:
        return [self.name_of(i) for i in range(self.names)]

    async def write_one(self) -> None:
        region = self.active()
        name = self.name_of(self._count)
        self._count += 1
        # Random, never stored: only the version the vault gives back is kept.
        value = secrets.token_urlsafe(24)
        try:
            async with asyncio.timeout(self.write_timeout_seconds):
                props = await self.writers[region].set_secret(
                    name, value, Attributes(tags={"kvdr-drill": self.prefix})
                )
        except (VaultError, TimeoutError, OSError) as exc:
            reason = type(exc).__name__
            self.ledger.attempts.append(WriteAttempt(self.clock(), region, False, reason))
            return
        at = self.clock()
        self.ledger.entries.append(LedgerEntry(name, props.version, region, at))
        self.ledger.attempts.append(WriteAttempt(at, region, True))

    async def _run(self) -> None:
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        while True:
            await self.write_one()
            next_at += interval
            # A write slower than the interval does not make the load burst afterwards.
            next_at = max(next_at, time.monotonic())
            await asyncio.sleep(next_at - time.monotonic())

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="drill-load")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            # Our own cancellation (Ctrl-C) must go on; the load's is expected.
            if current is not None and current.cancelling():
                raise

    @property
    def running(self) -> bool:
        return self._task is not None
