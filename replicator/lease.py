"""Ownership of one pair among several daemons: a blob lease on `leases/<pair>`.

Whoever holds the lease runs the pair; everybody else waits for it to come free. The
holder renews every third of the lease period, so two renewals can fail before the
lease is in danger.

Loss is decided on our own clock, not only on what the service answers: a renewal
that hangs on a dead network says nothing at all. Time is counted on a monotonic clock
from the moment the last successful acquire or renewal was *sent* (the service cannot
have started the new period earlier than that), and the holder gives up `margin`
seconds before the lease could have expired. So by the time another daemon can take
the pair, this one has stopped writing to it: its in-flight requests were cancelled
with a margin to spare, and its checkpoint is not flushed (the ETag condition would
refuse it anyway once the new owner writes).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from storage import BlobStore, LeaseHeld, LeaseLost, StorageError

log = structlog.get_logger("kvdr.lease")

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
    ) -> None:
        self.pair = pair
        self.blob = lease_blob_name(pair)
        self.timing = timing
        self.lease_id = str(uuid.uuid4())
        self._blobs = blobs
        self._clock = clock
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
                await asyncio.sleep(min(wait, self.remaining()))
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
                async with asyncio.timeout(remaining):
                    await self._blobs.renew_lease(self.blob, self.lease_id)
            except (LeaseLost, LeaseHeld) as exc:
                # LeaseHeld: broken by an operator, or already another holder's.
                return f"taken or gone: {exc}"
            except TimeoutError:
                return "renewal did not answer before the lease could expire"
            except StorageError as exc:
                self._log.warning(
                    "lease.renew_failed", error=str(exc), seconds_left=round(remaining, 1)
                )
                await asyncio.sleep(min(self.timing.retry_every, self.remaining()))
                continue
            self._granted(sent)
            return None

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
