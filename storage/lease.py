"""A pair's blob lease on `leases/<pair>`, and running work only while it is held.

Whoever holds the lease runs the pair (the replicator's daemons, `kvdr sync --once`,
failover); everybody else waits for it to come free. The holder renews every third of
the lease period, so two renewals can fail before the lease is in danger.

Loss is decided on our own clock, not only on what the service answers: a renewal
that hangs on a dead network says nothing at all. Time is counted on a monotonic clock
from the moment the last successful acquire or renewal was *sent* (the service cannot
have started the new period earlier than that), and the holder gives up `margin`
seconds before the lease could have expired. So by the time another daemon can take
the pair, this one has stopped writing to it: its in-flight requests were cancelled
with a margin to spare, and its checkpoint is not flushed (the ETag condition would
refuse it anyway once the new owner writes).

`keeping(lease)` renews an acquired lease for the length of a block and releases it at
the end; its `run(work)` (and `run_while_held(lease, work)`, both in one call) runs a
coroutine that is cancelled the moment the lease can no longer be proven held.

Time is injected (`clock`, `sleep`), so tests can step a lease period without waiting it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog

from storage.errors import LeaseHeld, LeaseLost, StorageError
from storage.store import BlobStore

log = structlog.get_logger("kvdr.lease")
T = TypeVar("T")

LEASE_PREFIX = "leases/"
# Azure takes lease durations of 15-60 s (or infinite, which a crashed holder would keep
# forever).
MIN_LEASE_SECONDS = 15
MAX_LEASE_SECONDS = 60
DEFAULT_LEASE_SECONDS = 30


def lease_blob_name(pair: str) -> str:
    """Blob path of a pair's lease (pure; `parse_lease_blob_name` is its inverse)."""
    return f"{LEASE_PREFIX}{pair}"


def parse_lease_blob_name(name: str) -> str:
    pair = name.removeprefix(LEASE_PREFIX)
    if not name.startswith(LEASE_PREFIX) or not pair or "/" in pair:
        raise ValueError(f"not a lease blob name: {name!r}")
    return pair


@dataclass(frozen=True)
class LeaseTiming:
    """Every interval of the lease protocol, derived from the lease period.

    `seconds`: the lease period (15-60). `renew_every`: a third of it. `margin`: how long
    before the lease could expire the holder stops (a sixth: 5 s of a 30 s lease).
    `retry_every`: pause between renewals that failed for a transient reason. `tick`:
    how often a daemon tries to take free leases and writes its heartbeat (a tenth, so a
    pair whose holder died is taken within about one tick after its lease expires).
    """

    seconds: int = DEFAULT_LEASE_SECONDS

    def __post_init__(self) -> None:
        if (
            isinstance(self.seconds, bool)
            or not isinstance(self.seconds, int)
            or not MIN_LEASE_SECONDS <= self.seconds <= MAX_LEASE_SECONDS
        ):
            raise ValueError(
                f"lease duration must be a whole number of seconds from {MIN_LEASE_SECONDS} "
                f"to {MAX_LEASE_SECONDS}, got {self.seconds!r}"
            )

    @property
    def renew_every(self) -> float:
        return self.seconds / 3

    @property
    def margin(self) -> float:
        return self.seconds / 6

    @property
    def retry_every(self) -> float:
        return min(1.0, self.seconds / 15)

    @property
    def tick(self) -> float:
        return self.seconds / 10


class PairLease:
    """This process's claim on one pair; `acquire()`, then `keep()` until it is lost.

    The lease id is random per process: two daemons can never share it, even when they
    were given the same instance id.
    """

    def __init__(
        self,
        blobs: BlobStore,
        pair: str,
        timing: LeaseTiming,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.pair = pair
        self.blob = lease_blob_name(pair)
        self.timing = timing
        self.lease_id = str(uuid.uuid4())
        self._blobs = blobs
        self._clock = clock
        self._sleep = sleep
        # Monotonic instant until which the lease is certainly ours; 0 when not held.
        self._valid_until = 0.0
        self._last_sent = 0.0
        self._log = log.bind(pair=pair)

    @property
    def held(self) -> bool:
        """True while the lease is certainly ours (and will be for `margin` seconds more)."""
        return self._clock() < self._valid_until

    def remaining(self) -> float:
        """Seconds until this holder must stop (0 when not held)."""
        return max(0.0, self._valid_until - self._clock())

    def _granted(self, sent: float) -> None:
        self._last_sent = sent
        self._valid_until = sent + self.timing.seconds - self.timing.margin

    def drop(self) -> None:
        """Forget the lease locally (it is lost, or about to be released)."""
        self._valid_until = 0.0

    async def acquire(self) -> bool:
        """Take the lease when it is free (or renew it when it is ours).

        False when another holder has it; other storage errors propagate.
        """
        sent = self._clock()
        try:
            await self._blobs.acquire_lease(self.blob, self.lease_id, self.timing.seconds)
        except LeaseHeld:
            return False
        self._granted(sent)
        return True

    async def keep(self) -> str:
        """Renew until the lease is lost; returns why it was lost.

        Returns (never raises, except when cancelled) as soon as the service says the lease
        is someone else's, or when no renewal succeeded in time to be sure of it for
        `margin` more seconds.
        """
        while True:
            wait = self._last_sent + self.timing.renew_every - self._clock()
            if wait > 0:
                await self._sleep(min(wait, self.remaining()))
            reason = await self._renew_in_time()
            if reason is not None:
                self.drop()
                self._log.warning("lease.lost", reason=reason)
                return reason

    async def _renew_in_time(self) -> str | None:
        """One renewal, retried on transient errors until the lease's safe end."""
        while True:
            remaining = self.remaining()
            if remaining <= 0:
                return "not renewed in time: the lease could expire"
            sent = self._clock()
            try:
                await self._within(remaining, self._blobs.renew_lease(self.blob, self.lease_id))
            except (LeaseLost, LeaseHeld) as exc:
                # LeaseHeld: broken by an operator, or already another holder's.
                return f"taken or gone: {exc}"
            except TimeoutError:
                return "renewal did not answer before the lease could expire"
            except StorageError as exc:
                self._log.warning(
                    "lease.renew_failed", error=str(exc), seconds_left=round(remaining, 1)
                )
                await self._sleep(min(self.timing.retry_every, self.remaining()))
                continue
            self._granted(sent)
            return None

    async def _within(self, seconds: float, call: Coroutine[Any, Any, None]) -> None:
        """`call`, cancelled with TimeoutError after `seconds` on this lease's clock
        (`asyncio.timeout` counts on the loop's clock, which a test cannot step)."""
        request = asyncio.ensure_future(call)
        timer = asyncio.ensure_future(self._sleep(seconds))
        try:
            await asyncio.wait({request, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (request, timer):
                if not task.done():
                    task.cancel()
            await asyncio.gather(request, timer, return_exceptions=True)
        if not request.done() or request.cancelled():
            raise TimeoutError
        request.result()

    async def release(self) -> None:
        """Give the lease up so another daemon can take it at once (best effort)."""
        was_held = self.held
        self.drop()
        if not was_held:
            return
        try:
            await self._blobs.release_lease(self.blob, self.lease_id)
        except LeaseLost:
            pass  # expired and taken meanwhile: nothing left to give up
        except StorageError as exc:
            # It expires by itself within one period; the next owner waits that long.
            self._log.warning("lease.release_failed", error=str(exc))
        else:
            self._log.info("lease.released")


class LeaseKeeper:
    """The renewals of one acquired lease, for the length of a `keeping()` block."""

    def __init__(self, lease: PairLease, renewals: asyncio.Task[str]) -> None:
        self.lease = lease
        self._renewals = renewals

    @property
    def lost(self) -> bool:
        """True once the lease can no longer be proven held (it stays lost)."""
        return self._renewals.done()

    @property
    def reason(self) -> str | None:
        """Why the lease was lost (None while it is held)."""
        if not self._renewals.done():
            return None
        if self._renewals.cancelled():
            return "cancelled"
        error = self._renewals.exception()
        return repr(error) if error is not None else self._renewals.result()

    async def wait_lost(self) -> str:
        """Return when the lease is lost, with the reason (cancelling this waits no more:
        the renewals go on)."""
        await asyncio.wait({self._renewals})
        return self.reason or "cancelled"

    async def run(self, work: Awaitable[T]) -> T:
        """Run `work` while the lease is held and return what it returns.

        The moment the lease can no longer be proven held, `work` is cancelled (nothing
        more of it runs; none of it when the lease is lost already) and `LeaseLost` is
        raised with the reason. When `work` ends first, its result or exception is this
        call's.
        """
        if self.lost:
            # Not even started: no step of the work may run without the lease.
            if inspect.iscoroutine(work):
                work.close()
            raise self._lost_error()
        task = asyncio.ensure_future(work)
        finished = False
        try:
            await asyncio.wait({task, self._renewals}, return_when=asyncio.FIRST_COMPLETED)
            finished = task.done()
        finally:
            # Also when this call is cancelled: the work never outlives it.
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if finished:
            return task.result()
        raise self._lost_error()

    def _lost_error(self) -> LeaseLost:
        return LeaseLost(self.reason or "lease lost", blob=self.lease.blob)


@contextlib.asynccontextmanager
async def keeping(lease: PairLease) -> AsyncIterator[LeaseKeeper]:
    """Renew `lease` (acquired by the caller) until the block ends, then release it.

    Renewals stop at the end of the block however it ends; the release is best effort
    and does nothing once the lease was lost.
    """
    renewals = asyncio.create_task(lease.keep(), name=f"lease-{lease.pair}")
    try:
        yield LeaseKeeper(lease, renewals)
    finally:
        renewals.cancel()
        await asyncio.gather(renewals, return_exceptions=True)
        await lease.release()


async def run_while_held(lease: PairLease, work: Coroutine[Any, Any, T]) -> T:
    """Run `work` under `lease` (acquired by the caller): renewed meanwhile, released
    after; `work` is cancelled and `LeaseLost` raised the moment the lease is lost."""
    async with keeping(lease) as keeper:
        return await keeper.run(work)
