"""Runs the pairs this daemon holds the lease of, and only those.

Several daemons with the same configuration share the pairs. Every tick (a tenth of
the lease period, with jitter so the daemons do not move in step) a daemon reads the
others' heartbeats (replicator/members.py), plans (replicator/balance.py) which free
pairs to try to take and whether to hand one over to a daemon that holds fewer, and
writes its own heartbeat. A pair it takes gets a fresh `PairReplicator` (checkpoints
loaded anew: another daemon may have written them since) and a keeper that renews the
lease. There are three ways out of a pair:

- the lease is lost: the replicator's task is cancelled at once and nothing is
  flushed; what it did since its last flush is found again by the next owner's first
  pass (the `kvdr-source-version` tags keep that from writing anything twice);
- hand-over or SIGTERM: the replicator takes no new work, in-flight items get
  `drain_seconds`, the checkpoint is flushed while the lease is still renewed, then
  the lease is released so the next owner can start at once;
- the replicator fails: a checkpoint changed by another writer (`CheckpointConflict`)
  or unreachable storage restarts it from the stored checkpoint while the lease holds;
  anything else releases the lease and is raised to the daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import structlog

from replicator import metrics
from replicator.balance import BalanceView, Peer, plan_balance
from replicator.errors import CheckpointConflict
from replicator.members import Members
from replicator.pair import PairReplicator
from replicator.pair_status import pair_shell
from replicator.settings import PairSettings
from storage import BlobStore, LeaseKeeper, LeaseLost, LeaseTiming, PairLease, StorageError, keeping

log = structlog.get_logger("kvdr.ownership")

# A pair handed over is offered to daemons below their share for this many ticks; the
# giver keeps away from it twice as long, after which anybody may take it.
OFFER_TICKS = 4
# A pair is not handed over within this many ticks of being taken.
MIN_HOLD_TICKS = 4
# After SIGTERM: flushing and releasing may take this long on top of the drain.
RELEASE_SECONDS = 10.0

# A fresh replicator for the pair, in the direction the control record says now.
ReplicatorFactory = Callable[[PairSettings], PairReplicator]
_Outcome = Literal["stopped", "lost", "restart", "redirect"]


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat() if ts else None


@dataclass(eq=False)
class _Slot:
    """One configured pair on this daemon."""

    pair: PairSettings
    lease: PairLease
    replicator: PairReplicator | None = None
    # The task that runs the pair while this daemon holds its lease.
    task: asyncio.Task[None] | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    taken_at: float = 0.0  # monotonic
    taken_wall: float = 0.0
    # Set when this daemon gives the pair up for evenness (not on SIGTERM).
    handing_over: bool = False
    offered_until: float = 0.0  # monotonic: announced as handing over until then
    cooling_until: float = 0.0  # monotonic: not taken back by this daemon until then

    @property
    def name(self) -> str:
        return self.pair.name

    @property
    def active(self) -> bool:
        return self.task is not None and not self.task.done()


class PairOwnership:
    """Takes, keeps, hands over and gives up the pairs' leases; runs what it holds."""

    def __init__(
        self,
        pairs: Sequence[PairSettings],
        blobs: BlobStore,
        instance_id: str,
        timing: LeaseTiming,
        make_replicator: ReplicatorFactory,
        drain_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.instance_id = instance_id
        self.timing = timing
        self.members = Members(blobs, instance_id, timing, clock, wall)
        self._make_replicator = make_replicator
        self._drain = drain_seconds
        self._clock = clock
        self._wall = wall
        self._rng = rng or random.Random()
        self._slots = {p.name: _Slot(p, PairLease(blobs, p.name, timing, clock)) for p in pairs}
        self._failure: BaseException | None = None
        self._wake = asyncio.Event()
        self._log = log.bind(instance=instance_id)
        for name in self._slots:
            metrics.LEADER.labels(name).set(0)

    # -- what the daemon asks ------------------------------------------------------

    def leads(self, pair: str) -> bool:
        """True while this daemon runs `pair` under its lease."""
        slot = self._slots[pair]
        return slot.active and slot.replicator is not None and slot.lease.held

    def replicators(self) -> list[PairReplicator]:
        """The replicators running here now (events and metrics go to these only)."""
        return [
            s.replicator
            for s in self._slots.values()
            if s.replicator is not None and self.leads(s.name)
        ]

    def status(self) -> list[dict[str, Any]]:
        """Every configured pair: the full view where this daemon runs it, otherwise who
        does (as the heartbeats tell) with the live figures left empty."""
        docs = []
        for slot in self._slots.values():
            if slot.replicator is not None and self.leads(slot.name):
                doc = slot.replicator.status()
                doc.update(
                    leader=True,
                    owner=self.instance_id,
                    owner_since=_iso(slot.taken_wall),
                    owner_live=True,
                )
            else:
                doc = pair_shell(slot.pair)
                owner = self.members.owner(slot.name)
                doc.update(
                    leader=False,
                    owner=owner.instance if owner else None,
                    owner_since=owner.since if owner else None,
                    owner_live=owner.live if owner else None,
                )
            docs.append(doc)
        return docs

    def instances(self) -> list[dict[str, Any]]:
        """This daemon and every other one seen through its heartbeat."""
        me = {
            "instance": self.instance_id,
            "live": True,
            "pairs": sorted(s.name for s in self._slots.values() if self.leads(s.name)),
            "last_heartbeat": None,
            "self": True,
        }
        return [me, *({**other, "self": False} for other in self.members.instances())]

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """The first round: take what is free before the daemon reports ready."""
        await self.tick()

    async def run(self, stop: asyncio.Event) -> None:
        """Tick until `stop`, then hand everything over; raises what a pair raised."""
        try:
            while not stop.is_set() and self._failure is None:
                pause = self.timing.tick * self._rng.uniform(0.8, 1.2)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(pause):
                        await _first_of(stop, self._wake)
                self._wake.clear()
                if stop.is_set() or self._failure is not None:
                    break
                await self.tick()
        finally:
            await self.shutdown()
        if self._failure is not None:
            raise self._failure

    async def tick(self) -> None:
        """Read the others, take free pairs, hand one over if due, write the heartbeat."""
        now = self._clock()
        try:
            await self.members.refresh()
        except StorageError as exc:
            # Keep the last view: the leases stay correct without it.
            self._log.warning("members.refresh_failed", error=str(exc))
        held = {s.name: s.taken_at for s in self._slots.values() if s.active}
        claimed = {p for v in self.members.live() for p in v.heartbeat.held}
        handing_over = {
            s.name
            for s in self._slots.values()
            if (s.active and s.handing_over) or (s.offered_until > now and s.name not in claimed)
        }
        plan = plan_balance(
            BalanceView(
                pairs=tuple(self._slots),
                held=held,
                peers=tuple(
                    Peer(frozenset(v.heartbeat.held), frozenset(v.heartbeat.handing_over))
                    for v in self.members.live()
                ),
                now=now,
                min_hold=MIN_HOLD_TICKS * self.timing.tick,
                releasing=frozenset(handing_over),
                cooling=frozenset(s.name for s in self._slots.values() if s.cooling_until > now),
            )
        )
        for name in plan.release:
            self._hand_over(self._slots[name], plan.share)
        await asyncio.gather(*(self._try_take(self._slots[name]) for name in plan.acquire))
        await self._beat()

    async def _try_take(self, slot: _Slot) -> None:
        try:
            taken = await slot.lease.acquire()
        except StorageError as exc:
            self._log.warning("lease.acquire_failed", pair=slot.name, error=str(exc))
            return
        if not taken:
            return
        slot.taken_at = self._clock()
        slot.taken_wall = self._wall()
        slot.stop = asyncio.Event()
        slot.handing_over = False
        slot.task = asyncio.create_task(self._own(slot), name=f"pair-{slot.name}")
        metrics.LEADER.labels(slot.name).set(1)
        self._log.info("pair.taken", pair=slot.name)

    def _hand_over(self, slot: _Slot, share: int) -> None:
        slot.handing_over = True
        slot.stop.set()
        self._log.info("pair.handing_over", pair=slot.name, share=share)

    def _offer(self, slot: _Slot) -> None:
        """The pair was given up for evenness: offer it to daemons below their share."""
        now = self._clock()
        slot.handing_over = False
        slot.offered_until = now + OFFER_TICKS * self.timing.tick
        slot.cooling_until = now + 2 * OFFER_TICKS * self.timing.tick

    async def _beat(self) -> None:
        now = self._clock()
        held = {s.name: s.taken_wall for s in self._slots.values() if s.active}
        offered = [
            s.name
            for s in self._slots.values()
            if s.offered_until > now or (s.active and s.handing_over)
        ]
        try:
            await self.members.beat(held, offered)
        except StorageError as exc:
            self._log.warning("members.beat_failed", error=str(exc))

    async def shutdown(self) -> None:
        """Stop every pair (drain, flush, release) and leave; bounded in time."""
        running = [s for s in self._slots.values() if s.active]
        for slot in running:
            slot.stop.set()
        tasks = [s.task for s in running if s.task is not None]
        if tasks:
            try:
                _, pending = await asyncio.wait(tasks, timeout=self._drain + RELEASE_SECONDS)
            except asyncio.CancelledError:
                # Cancelled from above (the daemon's own bound ran out): no pair task may
                # outlive this one, or it would go on using stores that are being closed.
                pending = {t for t in tasks if not t.done()}
                for task in pending:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise
            for task in pending:
                self._log.warning("pair.release_abandoned", part=task.get_name())
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        await self.members.leave()

    # -- one pair while its lease is held ------------------------------------------------

    async def _own(self, slot: _Slot) -> None:
        outcome: _Outcome = "stopped"
        try:
            async with keeping(slot.lease) as keeper:
                while True:
                    replicator = self._make_replicator(slot.pair)
                    slot.replicator = replicator
                    try:
                        outcome = await keeper.run(self._replicate(slot, replicator))
                    except LeaseLost:
                        if not keeper.lost:
                            raise
                        outcome = "lost"  # stopped at once: nothing more was written
                    if outcome == "redirect" and not slot.stop.is_set():
                        # A new epoch: the replicator of the old one wrote nothing more;
                        # the next one runs in the record's direction, at once.
                        continue
                    if outcome != "restart" or slot.stop.is_set():
                        break
                    # Storage trouble or a foreign checkpoint write: start over from the
                    # stored checkpoint after a pause, as long as the lease holds.
                    await _wait_any(keeper, slot.stop, self.timing.tick)
                    if keeper.lost:
                        outcome = "lost"
                        break
                if outcome == "lost":
                    self._log.warning(
                        "pair.stopped_lease_lost", pair=slot.name, reason=keeper.reason
                    )
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError):
                self._failure = exc
                self._wake.set()
                self._log.error("pair.failed", pair=slot.name, error=repr(exc))
            raise
        finally:
            # `keeping` stopped the renewals and released the lease (unless it was lost).
            slot.lease.drop()
            if slot.handing_over:
                self._offer(slot)
                self._wake.set()  # tell the others now, not a tick later
            self._forget(slot)
            self._log.info("pair.left", pair=slot.name, outcome=outcome)

    async def _replicate(self, slot: _Slot, replicator: PairReplicator) -> _Outcome:
        """Run the pair until it stops or fails; `keeper.run` cancels it if the lease goes."""
        work = asyncio.create_task(replicator.run(slot.stop), name=f"replicate-{slot.name}")
        stopping = asyncio.create_task(slot.stop.wait())
        moved = asyncio.create_task(replicator.gate.wait_moved())
        try:
            await asyncio.wait({work, stopping, moved}, return_when=asyncio.FIRST_COMPLETED)
            if moved.done() and not work.done():
                # The control record's epoch moved: no drain (its gate refuses every
                # write already), the checkpoint kept, then the new direction.
                self._log.info("pair.redirecting", pair=slot.name, epoch=replicator.epoch)
                await _cancel(work)
                await self._flush(slot, replicator)
                return "redirect"
            if not work.done():
                # Hand-over or SIGTERM: in-flight items get the drain bound.
                await asyncio.wait({work}, timeout=self._drain)
                if not work.done():
                    self._log.warning(
                        "pair.drain_abandoned", pair=slot.name, drain_seconds=self._drain
                    )
                    await _cancel(work)
                    await self._flush(slot, replicator)
                    return "stopped"
            error = work.exception()
            if error is None:
                return "stopped"  # run() flushed before returning
            if isinstance(error, CheckpointConflict | StorageError):
                self._log.warning("pair.restarting", pair=slot.name, error=str(error))
                return "restart"
            raise error
        finally:
            stopping.cancel()
            moved.cancel()
            if not work.done():
                await _cancel(work)

    async def _flush(self, slot: _Slot, replicator: PairReplicator) -> None:
        try:
            await replicator.flush()
        except (CheckpointConflict, StorageError) as exc:
            self._log.warning("checkpoint.flush_failed", pair=slot.name, error=str(exc))

    def _forget(self, slot: _Slot) -> None:
        """This daemon no longer runs the pair: its live gauges must not linger here."""
        metrics.LEADER.labels(slot.name).set(0)
        if slot.replicator is not None:
            # Guard and expiry series too: another daemon exports them now.
            slot.replicator.deletions.forget_metrics()
        slot.replicator = None
        with contextlib.suppress(KeyError):
            metrics.RPO_SECONDS.remove(slot.name)
        for target in slot.pair.secondaries:
            for gauge in (metrics.REPLICATION_LAG_SECONDS, metrics.CONFLICTS):
                with contextlib.suppress(KeyError):
                    gauge.remove(slot.name, target.region)


async def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def _first_of(*events: asyncio.Event) -> None:
    waits = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


async def _wait_any(keeper: LeaseKeeper, event: asyncio.Event, seconds: float) -> None:
    lost = asyncio.create_task(keeper.wait_lost())
    waiting = asyncio.create_task(event.wait())
    try:
        await asyncio.wait({lost, waiting}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        lost.cancel()
        waiting.cancel()
