"""Rate control per vault: bounded adaptive concurrency, request budgets and retry.

Key Vault throttles per vault per region per 10 s (secret create 300, other transactions
4,000) and answers 429 `Throttled` beyond that. kvdr shares vaults with the applications
that use them, so it keeps its own budget below those limits (`VaultSettings`) instead of
probing for the limit with 429s. When a 429 arrives anyway (someone else spent the
budget), the allowed concurrency halves and every request to that vault waits out the
`Retry-After`; after a run of successes the concurrency grows back by one.

The pieces are pure and take the time as an argument (`WindowBudget`, `AdaptiveLimit`,
`backoff_delay`); `RateController` glues them together over asyncio with an injectable
clock and sleep so the whole thing runs under a fake clock in tests.

Two places use a controller: the adapter's pipeline policy wraps every HTTP request in
`RateController.request()` (concurrency, budget, 429 bookkeeping: every page of a listing
and every poll of a delete counts), and the adapter wraps every SDK call in
`RateController.run()` (retry with backoff). The SDK's own retry policy is switched off,
so retry and accounting live here only.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

import structlog

from vault.errors import Throttled, VaultError
from vault.settings import VaultSettings

T = TypeVar("T")

log = structlog.get_logger("kvdr.vault.rate")

# Key Vault's service limits are counted per 10 s window.
WINDOW_SECONDS = 10.0
# Successes in a row before the allowed concurrency grows by one again after a 429.
GROW_AFTER_SUCCESSES = 20


class Budget(StrEnum):
    """Which of the vault's two request budgets a request spends."""

    SECRET_CREATE = "secret_create"
    OTHER = "other"


class WindowBudget:
    """At most `limit` grants in any interval of `window` seconds.

    A token bucket of `limit` tokens where each spent token comes back exactly `window`
    seconds after it was spent: unlike a bucket that refills at a steady rate, this one
    can never let through more than `limit` in ANY window, which is how Key Vault counts.
    `reserve()` hands out grant times in non-decreasing order, so for the grants g sorted
    in time, g[i + limit] >= g[i] + window always holds.
    """

    def __init__(self, limit: int, window: float = WINDOW_SECONDS) -> None:
        if limit < 1:
            raise ValueError(f"budget limit must be at least 1, got {limit}")
        if window <= 0:
            raise ValueError(f"budget window must be positive, got {window}")
        self.limit = limit
        self.window = window
        # Grant times, oldest first; those a window old or more are dropped as we go.
        self._grants: deque[float] = deque()

    def reserve(self, now: float) -> float:
        """Reserve one grant; returns when it may be used (never earlier than `now`).

        The grant is recorded at the returned time at once, so a caller that is cancelled
        while waiting leaves its slot spent: conservative, never over budget.
        """
        while self._grants and self._grants[0] <= now - self.window:
            self._grants.popleft()
        at = now
        if len(self._grants) >= self.limit:
            # The grant `limit` places back must be at least one window old.
            at = max(now, self._grants[-self.limit] + self.window)
        self._grants.append(at)
        return at

    def used(self, now: float) -> int:
        """Grants at or before `now` within the last window (for status and metrics)."""
        return sum(1 for g in self._grants if now - self.window < g <= now)


class AdaptiveLimit:
    """How many requests may be in flight: halves on 429, grows by one after successes.

    One burst of 429s must shrink the limit once, not once per request that was already
    in flight: each request remembers the `epoch` it started in, and only a 429 for a
    request started in the current epoch shrinks the limit (and starts a new epoch).
    """

    def __init__(self, maximum: int, grow_after: int = GROW_AFTER_SUCCESSES) -> None:
        if maximum < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {maximum}")
        if grow_after < 1:
            raise ValueError(f"grow_after must be at least 1, got {grow_after}")
        self.maximum = maximum
        self.grow_after = grow_after
        self.limit = maximum
        self.epoch = 0
        self.lowest = maximum
        self._streak = 0

    def on_success(self) -> bool:
        """Count one success; True when the limit grew."""
        self._streak += 1
        if self._streak >= self.grow_after and self.limit < self.maximum:
            self.limit += 1
            self._streak = 0
            return True
        return False

    def on_throttled(self, started_epoch: int) -> bool:
        """Count one 429 of a request started in `started_epoch`; True when the limit shrank."""
        self._streak = 0
        if started_epoch != self.epoch:
            return False
        self.epoch += 1
        self.limit = max(1, self.limit // 2)
        self.lowest = min(self.lowest, self.limit)
        return True


def backoff_delay(attempt: int, base: float, cap: float, rand: Callable[[], float]) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base * 2**(attempt-1))).

    Microsoft's guidance for 429 is 1-2-4-8-16 s; full jitter spreads the retries of many
    workers so they do not come back at the same instant.
    """
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, got {attempt}")
    ceiling = min(cap, base * 2.0 ** (attempt - 1))
    return rand() * ceiling


@dataclass(frozen=True)
class RateStats:
    """A snapshot of one vault's rate control, for status pages and tests."""

    vault: str
    concurrency_limit: int
    max_concurrency: int
    lowest_concurrency_limit: int
    in_flight: int
    throttled: int
    retries: int
    secret_creates_in_window: int
    other_in_window: int


class Ticket:
    """One admitted HTTP request; the caller reports how it ended."""

    def __init__(self, controller: RateController, epoch: int) -> None:
        self._controller = controller
        self._epoch = epoch
        self._reported = False

    def succeeded(self) -> None:
        """The vault answered (any status but 429 and 5xx)."""
        if not self._reported:
            self._reported = True
            self._controller._on_success()

    def throttled(self, retry_after: float | None) -> None:
        """The vault answered 429."""
        if not self._reported:
            self._reported = True
            self._controller._on_throttled(self._epoch, retry_after)

    def failed(self) -> None:
        """No usable answer (5xx, connection error, timeout): neither grows nor shrinks."""
        self._reported = True


class RateController:
    """Rate control and retry for one vault."""

    def __init__(
        self,
        settings: VaultSettings,
        *,
        vault: str,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
        grow_after: int = GROW_AFTER_SUCCESSES,
    ) -> None:
        if settings.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {settings.max_attempts}")
        self.vault = vault
        self._settings = settings
        self._clock = clock
        self._sleep = sleep
        self._rand = rand
        self._limit = AdaptiveLimit(settings.max_concurrency, grow_after)
        self._budgets = {
            Budget.SECRET_CREATE: WindowBudget(settings.secret_creates_per_10s),
            Budget.OTHER: WindowBudget(settings.other_ops_per_10s),
        }
        self._in_flight = 0
        self._slots = asyncio.Condition()
        # A 429's Retry-After holds back every request to the vault, not only the one
        # that got it: the others would only collect more 429s.
        self._paused_until = 0.0
        self._throttled = 0
        self._retries = 0
        self._listeners: list[Callable[[RateStats], None]] = []

    @property
    def concurrency_limit(self) -> int:
        return self._limit.limit

    def stats(self) -> RateStats:
        now = self._clock()
        return RateStats(
            vault=self.vault,
            concurrency_limit=self._limit.limit,
            max_concurrency=self._limit.maximum,
            lowest_concurrency_limit=self._limit.lowest,
            in_flight=self._in_flight,
            throttled=self._throttled,
            retries=self._retries,
            secret_creates_in_window=self._budgets[Budget.SECRET_CREATE].used(now),
            other_in_window=self._budgets[Budget.OTHER].used(now),
        )

    def on_change(self, listener: Callable[[RateStats], None]) -> None:
        """Call `listener` whenever the concurrency limit changes (metrics hook)."""
        self._listeners.append(listener)

    @asynccontextmanager
    async def request(self, budget: Budget) -> AsyncIterator[Ticket]:
        """Admit one HTTP request: a concurrency slot, then the pause, then the budget.

        The slot is taken first and the budget last, right before the request is sent:
        a grant used later than its reserved time could crowd a later window.
        """
        async with self._slots:
            await self._slots.wait_for(lambda: self._in_flight < self._limit.limit)
            self._in_flight += 1
        try:
            while (pause := self._paused_until - self._clock()) > 0:
                await self._sleep(pause)
            at = self._budgets[budget].reserve(self._clock())
            if (wait := at - self._clock()) > 0:
                await self._sleep(wait)
            yield Ticket(self, self._limit.epoch)
        finally:
            async with self._slots:
                self._in_flight -= 1
                self._slots.notify_all()

    def _on_success(self) -> None:
        # A grown limit admits waiters at the next release, which follows right after.
        if self._limit.on_success():
            self._changed()

    def _on_throttled(self, epoch: int, retry_after: float | None) -> None:
        self._throttled += 1
        if retry_after is not None and retry_after > 0:
            self._paused_until = max(self._paused_until, self._clock() + retry_after)
        if self._limit.on_throttled(epoch):
            log.warning(
                "vault.concurrency_reduced",
                vault=self.vault,
                limit=self._limit.limit,
                retry_after=retry_after,
            )
            self._changed()

    def _changed(self) -> None:
        stats = self.stats()
        for listener in self._listeners:
            listener(stats)

    async def run(
        self,
        op: str,
        fn: Callable[[], Awaitable[T]],
        *,
        item: str = "",
        max_attempts: int | None = None,
        also_retry: Callable[[VaultError], bool] | None = None,
    ) -> T:
        """Run `fn`, retrying transient `VaultError`s with backoff; raise after the last.

        `fn` must raise only `VaultError` for vault faults (the adapter maps SDK errors
        before they reach here). A 429 with Retry-After waits that long; everything else
        waits a full-jitter exponential backoff. `also_retry` marks more errors as worth
        retrying in the caller's context (a 409 right after a purge).
        """
        attempts = max_attempts or self._settings.max_attempts
        attempt = 1
        while True:
            try:
                return await fn()
            except VaultError as exc:
                retryable = exc.transient or (also_retry is not None and also_retry(exc))
                if not retryable or attempt >= attempts:
                    raise
                retry_after = exc.retry_after if isinstance(exc, Throttled) else None
                delay = (
                    retry_after
                    if retry_after is not None
                    else backoff_delay(
                        attempt,
                        self._settings.backoff_base_seconds,
                        self._settings.backoff_max_seconds,
                        self._rand,
                    )
                )
                self._retries += 1
                log.info(
                    "vault.retry",
                    vault=self.vault,
                    op=op,
                    item=item,
                    attempt=attempt,
                    reason=exc.reason,
                    delay_s=round(delay, 3),
                )
                await self._sleep(delay)
                attempt += 1
