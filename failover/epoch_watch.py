"""The daemon's view of the control records: which direction each pair runs in, and
whether kvdr may still write in it.

Every `interval` the watch reads each pair's record (a majority read, no repair; a
store whose record has not changed since the last reading answers "not modified",
without a body, which is as good a reading of it). A reading is valid for `validity`
seconds from the moment the read *started*: a record committed after that moment may
not be in it. A replicator's gate (`PairGate`, the replicator's `WriteGate`) lets a
write through only while

- the newest valid reading is the epoch the replicator was started in, and
- it was confirmed less than `validity` ago (control stores that stop answering stop
  kvdr's writes within `validity`: it cannot know that the epoch has not moved), and
- the target region owes no fence (a fence that could not be applied while the region
  was gone is applied before kvdr writes to it).

A transition (failover/switchover.py, promote.py) waits `validity` after its commit
before it reports the new primary ready: by then every daemon of the old epoch has
stopped writing, whatever its network did in between. Durations are measured on each
host's monotonic clock, so the rule rests on clock rates, not on synchronised clocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import structlog
from prometheus_client import Gauge

from failover.control_record import ControlRecord, MalformedControlRecord
from failover.control_stores import ControlStores, NoMajority, QuorumRead
from failover.control_transitions import initial_record
from vault.write_gate import WriteFenced

log = structlog.get_logger("kvdr.epoch")

EPOCH = Gauge(
    "kvdr_epoch", "The control record's epoch of the pair, as this daemon read it", ["pair"]
)
ACTIVE_REGION = Gauge(
    "kvdr_active_region",
    "1 for the region the control record names active for the pair, 0 for the others",
    ["pair", "region"],
)

RTO = Gauge(
    "kvdr_failover_rto_seconds",
    "Measured RTO of the pair's last transition (switchover, promote or failback)",
    ["pair"],
)

# Defaults (docs/failover.md, "The epoch fence"): a record is read every second and a
# reading stays good for three, so a moved epoch stops the old direction within 3 s;
# with storage round trips of tens of milliseconds, two missed readings in a row do not
# stop replication.
DEFAULT_INTERVAL_SECONDS = 1.0
DEFAULT_VALIDITY_SECONDS = 3.0


@dataclass(frozen=True)
class PairRegions:
    """What the watch needs of a pair: its name, configured primary and regions."""

    name: str
    primary: str
    regions: tuple[str, ...]


@dataclass
class _Reading:
    record: ControlRecord
    confirmed_at: float | None = None  # monotonic start of the last good read
    error: str | None = None
    moved: asyncio.Event = field(default_factory=asyncio.Event)
    # The last read that succeeded: each store's view of it stands while that store's
    # record keeps its ETag.
    read: QuorumRead | None = None


class EpochWatch:
    """Reads the pairs' control records on an interval; hands out write gates."""

    def __init__(
        self,
        stores: ControlStores,
        pairs: Mapping[str, PairRegions],
        *,
        interval_seconds: float = DEFAULT_INTERVAL_SECONDS,
        validity_seconds: float = DEFAULT_VALIDITY_SECONDS,
        enforce_fences: bool = False,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if validity_seconds <= interval_seconds:
            raise ValueError(
                f"epoch validity ({validity_seconds} s) must be longer than the interval "
                f"between readings ({interval_seconds} s)"
            )
        self.stores = stores
        self.interval = interval_seconds
        self.validity = validity_seconds
        # A fence owed to a region blocks kvdr's writes to it only when a fence action
        # is configured: with none, `required` only tells a person to fence by hand.
        self.enforce_fences = enforce_fences
        self._monotonic = monotonic
        self._pairs = dict(pairs)
        self._readings = {
            name: _Reading(initial_record(name, p.primary, p.regions))
            for name, p in self._pairs.items()
        }
        self._changed = asyncio.Event()

    # -- reading -------------------------------------------------------------------

    def record(self, pair: str) -> ControlRecord:
        """The newest record read for `pair` (the initial one until a read succeeds)."""
        return self._readings[pair].record

    def confirmed(self, pair: str) -> bool:
        at = self._readings[pair].confirmed_at
        return at is not None and self._monotonic() - at < self.validity

    def status(self, pair: str) -> dict[str, object]:
        reading = self._readings[pair]
        record = reading.record
        return {
            "epoch": record.epoch,
            "active_region": record.active_region,
            "state": record.state,
            "fences": dict(record.fences),
            "confirmed": self.confirmed(pair),
            "error": reading.error,
        }

    async def refresh(self, pair: str) -> ControlRecord:
        """Read `pair`'s record once; the reading counts from before the read began."""
        reading = self._readings[pair]
        started = self._monotonic()
        try:
            read = await self.stores.read(pair, repair=False, since=reading.read)
        except (NoMajority, MalformedControlRecord) as exc:
            if reading.error != str(exc):
                log.warning("epoch.unconfirmed", pair=pair, error=str(exc))
            reading.error = str(exc)
            return reading.record
        reading.read = read
        spec = self._pairs[pair]
        record = read.committed or initial_record(pair, spec.primary, spec.regions)
        reading.error = None
        if record.epoch < reading.record.epoch:
            # Never back: an older majority than one already seen is a store restored
            # from an old copy, not a transition.
            log.error("epoch.went_back", pair=pair, read=record.epoch, known=reading.record.epoch)
            return reading.record
        if record.epoch != reading.record.epoch:
            log.info(
                "epoch.moved",
                pair=pair,
                epoch=record.epoch,
                active=record.active_region,
                was=reading.record.epoch,
            )
            reading.moved.set()
            reading.moved = asyncio.Event()
            self._changed.set()
        reading.record = record
        reading.confirmed_at = started
        self._publish(pair, record)
        return record

    async def refresh_all(self) -> None:
        await asyncio.gather(*(self.refresh(p) for p in self._pairs))

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.refresh_all()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)

    def _publish(self, pair: str, record: ControlRecord) -> None:
        EPOCH.labels(pair).set(record.epoch)
        measured = [t for t in record.history if t.rto_seconds is not None]
        if measured:
            RTO.labels(pair).set(measured[-1].rto_seconds or 0.0)
        for region in self._pairs[pair].regions:
            ACTIVE_REGION.labels(pair, region).set(1 if region == record.active_region else 0)

    # -- gates -----------------------------------------------------------------------

    def gate(self, pair: str) -> PairGate:
        """A gate for a replicator started now, in the direction the record says."""
        return PairGate(self, pair, self._readings[pair].record.epoch)

    def _moved_event(self, pair: str) -> asyncio.Event:
        return self._readings[pair].moved


class PairGate:
    """The write gate of one replicator, started at `epoch` (replicator/write_gate.py)."""

    def __init__(self, watch: EpochWatch, pair: str, epoch: int) -> None:
        self._watch = watch
        self.pair = pair
        self.epoch = epoch
        self._moved = watch._moved_event(pair)

    def check(self, region: str) -> None:
        watch, pair = self._watch, self.pair
        record = watch.record(pair)
        if record.epoch != self.epoch:
            raise WriteFenced(
                f"pair {pair}: the control record moved to epoch {record.epoch} (active "
                f"{record.active_region}); this replicator ran at epoch {self.epoch} and "
                "writes nothing more",
                vault=region,
                op="write",
            )
        if not watch.confirmed(pair):
            raise WriteFenced(
                f"pair {pair}: the control record was not confirmed within "
                f"{watch.validity:g} s; kvdr writes nothing until it reads it again",
                vault=region,
                op="write",
            )
        if watch.enforce_fences and record.fences.get(region) == "required":
            raise WriteFenced(
                f"pair {pair}: {region} must be fenced before kvdr writes to it again",
                vault=region,
                op="write",
            )

    async def wait_moved(self) -> None:
        if self._watch.record(self.pair).epoch != self.epoch:
            return
        await self._moved.wait()
