"""One pair's replication loop: change feed in, mirror out, checkpoints and lag kept.

Changes are found three ways (DESIGN.md, change feed): Event Grid events (fast, not
reliable), polling of the primary's listing against the checkpoint (cheap: one list call
per interval), and a full reconciliation that asks the mirror to compare every item's
versions on both sides (finds whatever the other two missed). Events only accelerate;
correctness rests on polling and reconciliation.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import structlog

from replicator.accounting import (
    Accounting,
    SyncReport,
    TargetState,
    changed_items,
    item_key,
    ref_key,
)
from replicator.certificate_mirror import CertificateMirror
from replicator.change_feed import EventQueue
from replicator.checkpoint import Checkpoint, CheckpointStore, CheckpointWriter
from replicator.deletions import PairDeletions, SweepReport
from replicator.guard import DeletionGuardStore
from replicator.item_locks import ItemLocks
from replicator.key_mirror import KeyMirror
from replicator.lag import LagTracker
from replicator.mirror import (
    ItemMirror,
    ItemOutcome,
    SecretMirror,
    StartCheck,
    TargetOutcome,
    VaultLevelMirror,
)
from replicator.pair_status import RpoAlarm, pair_status
from replicator.poll_pacing import PollPacer
from replicator.settings import PairSettings, ReplicatorSettings
from replicator.sink import ChangeSink
from replicator.state_seal import StateDocumentUnreadable
from replicator.target_listing import TargetListings
from vault.client import VaultClient
from vault.errors import VaultError
from vault.models import ItemKind, ItemProperties, ItemRef
from vault.write_gate import OpenGate, WriteGate

log = structlog.get_logger("kvdr.replicator")

# Names other modules (the daemon, `kvdr sync`, benchmarks) import from here.
__all__ = [
    "MIRRORS",
    "PairReplicator",
    "SyncReport",
    "TargetState",
    "changed_items",
    "item_key",
    "ref_key",
]

MirrorFactory = Callable[
    [
        PairSettings,
        ReplicatorSettings,
        VaultClient,
        Mapping[str, VaultClient],
        Sequence[ChangeSink],
    ],
    ItemMirror,
]


# Which mirror handles which kind.
MIRRORS: dict[ItemKind, MirrorFactory] = {
    ItemKind.SECRET: SecretMirror.for_pair,
    ItemKind.KEY: KeyMirror.for_pair,
    ItemKind.CERTIFICATE: CertificateMirror.for_pair,
}


class PairReplicator:
    """Replicates one pair; `run()` until stopped, or `reconcile()` / `poll()` once."""

    def __init__(
        self,
        pair: PairSettings,
        settings: ReplicatorSettings,
        source: VaultClient,
        targets: Mapping[str, VaultClient],
        checkpoints: CheckpointStore,
        clock: Callable[[], float] = time.time,
        sinks: Sequence[ChangeSink] = (),
        guards: DeletionGuardStore | None = None,
        epoch: int = 0,
        gate: WriteGate | None = None,
        read_budget_per_10s: int = 3600,
    ) -> None:
        self.pair = pair
        # What says when this replicator must stop writing (its targets are wrapped in
        # it by the wiring); the owner rebuilds it when `gate.wait_moved()` returns.
        self.gate: WriteGate = gate or OpenGate()
        # The control record's epoch this replicator runs under (0: never failed over);
        # its checkpoints belong to that epoch's direction.
        self.epoch = epoch
        self._settings = settings
        self._source = source
        self._targets = dict(targets)
        self._checkpoints = checkpoints
        self._writer = CheckpointWriter(checkpoints, clock)
        self._clock = clock
        missing = [k.value for k in pair.kinds if k not in MIRRORS]
        if missing:
            raise ValueError(f"pair {pair.name!r}: no mirror for kinds {', '.join(missing)}")
        self._mirrors: dict[ItemKind, ItemMirror] = {
            kind: MIRRORS[kind](pair, settings, source, self._targets, tuple(sinks))
            for kind in sorted(pair.kinds)
        }
        self.lag = LagTracker(self._targets, clock)
        # Target states (filled by `load()`), lag, the source's and the sinks' errors.
        self._accounts = Accounting({}, self.lag, clock, pair.name)
        # Items announced by events: bounded and deduplicated (replicator/change_feed.py).
        self.events = EventQueue(settings.event_queue_limit)
        # How often to poll (replicator/poll_pacing.py), on the primary's read budget.
        self.pacer = PollPacer.of(settings, read_budget_per_10s)
        self._item_locks = ItemLocks()
        # Per kind: items of one kind waiting on that kind's budget (secret creates are
        # 300 per 10 s; keys and certificates spend the vault's 4,000) keep no slot from
        # the others.
        self._limits = {
            kind: asyncio.Semaphore(settings.max_concurrent_items) for kind in self._mirrors
        }
        self.last_reconcile: float | None = None
        self.last_deep_reconcile: float | None = None
        self.last_poll: float | None = None
        # Listings of the primary compared so far (polls and full passes), each counted
        # once what it found is either applied or pending: a switchover's drain waits
        # for one that began after the fence.
        self.passes = 0
        # Listings begun (a pass in progress has begun but is not counted in `passes`).
        self.passes_begun = 0
        self._rpo_alarm = RpoAlarm(pair)
        # Why the pair does not run: configuration errors found at start (check_start).
        self.refused: str | None = None
        self._log = log.bind(pair=pair.name)
        # Deletion sweep, deletion guard and expiry watch (replicator/deletions.py).
        self.deletions = PairDeletions(
            pair, settings, source, self._targets, tuple(sinks), checkpoints, guards, clock
        )

    @property
    def targets(self) -> dict[str, TargetState]:
        """Each target's state (what status shows), by region."""
        return self._accounts.targets

    @property
    def source_error(self) -> str | None:
        """The primary's last error, None once it answered again."""
        return self._accounts.source_error

    @source_error.setter
    def source_error(self, value: str | None) -> None:
        self._accounts.source_error = value

    @property
    def sink_errors(self) -> dict[str, str]:
        """Items a sink (the journal) failed to record, with the error."""
        return self._accounts.sink_errors

    # -- lifecycle -----------------------------------------------------------------

    async def load(self) -> None:
        """Read each target's checkpoint from blob storage."""
        source = self.pair.primary.region
        for region in self._targets:
            cp = await self._checkpoints.load(self.pair.name, region)
            fresh = not cp.written_under(source, self.epoch)
            if fresh:
                # Another direction's record (a failover came between): what it says was
                # applied says nothing about this direction. A full pass finds out.
                self._log.info(
                    "checkpoint.new_direction",
                    target=region,
                    source=source,
                    epoch=self.epoch,
                    was_source=cp.source,
                    was_epoch=cp.epoch,
                )
                cp = Checkpoint(pair=self.pair.name, target=region, etag=cp.etag)
            cp.source, cp.epoch = source, self.epoch
            self.targets[region] = TargetState(region=region, checkpoint=cp, dirty=fresh)
            self._log.info("checkpoint.loaded", target=region, items=len(cp.items))
        await self.deletions.load_guard()

    async def flush(self) -> None:
        """Write every checkpoint that changed (ETag-conditional)."""
        await self._writer.flush(self.targets.values())

    def wants(self, ref: ItemRef) -> bool:
        """True when this pair replicates the item (its kinds and name filters)."""
        return ref.kind in self.pair.kinds and self.pair.selects(ref.name)

    def notify(self, kind: ItemKind, name: str, version: str | None = None) -> bool:
        """An event says `name` changed on the primary: sync it soon. False when the
        pair does not replicate it, or it is queued already, or the queue is full."""
        ref, now = ItemRef(kind, name), self._clock()
        if not self.wants(ref):
            return False
        # A duplicate or an overflow still shows that events arrive.
        self.pacer.event_received()
        if not self.events.put(ref, now):
            return False
        # Pending from the moment kvdr knows of it, even while a long pass keeps the
        # loop from reading the queue: the lag and RPO must show the wait. Bounded by
        # the queue: a mark is set only for a queued item, and syncing it clears the
        # mark (also when the primary says the item does not exist).
        for region in self.targets:
            self.lag.mark_pending(region, ref_key(ref), now)
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """Reconcile, then poll, react to events and reconcile again on intervals."""
        if not self.targets:
            try:
                await self.load()
            except StateDocumentUnreadable as exc:
                # Another state key, or none: replicating without the checkpoint would
                # forget what kvdr wrote. Refused (in status), the other pairs run on.
                self.refused = str(exc)
                self._log.error("pair.refused", problems=[str(exc)])
                await stop.wait()
                return
        if not await self._start_allowed():
            # Refused: this pair waits for the stop; the daemon's other pairs run on.
            await stop.wait()
            return
        await self._guarded(self.reconcile)
        await self._guarded(self.sweep)
        next_poll = self._clock() + self.pacer.interval()
        next_reconcile = self._clock() + self._settings.reconcile_interval_seconds
        next_sweep = self._clock() + self._settings.deletion_sweep_interval_seconds
        while not stop.is_set():
            wait_s = max(0.0, min(next_poll, next_reconcile, next_sweep) - self._clock())
            # Wake for a checkpoint write the event path put off, too.
            write_s = self._writer.next_due(self.targets.values())
            if write_s is not None:
                wait_s = min(wait_s, write_s)
            refs = await self._wait_for_events(stop, wait_s)
            if stop.is_set():
                break
            if refs:
                await self._guarded(functools.partial(self.sync_refs, refs), flush=False)
            now = self._clock()
            if now >= next_reconcile:
                await self._guarded(self.reconcile)
                next_reconcile = self._clock() + self._settings.reconcile_interval_seconds
                next_poll = self._clock() + self.pacer.interval()
            elif now >= next_poll:
                await self._guarded(self.poll)
                # A fixed cadence: a slow pass does not stretch the poll period (and the
                # time a change waits to be seen); a pass longer than the period runs the
                # next one at once rather than piling up.
                next_poll = max(next_poll + self.pacer.interval(), self._clock())
            if now >= next_sweep:
                await self._guarded(self.sweep)
                next_sweep = self._clock() + self._settings.deletion_sweep_interval_seconds
            # Event batches write their checkpoints at most once a second per target;
            # a pass and the stop write whatever changed.
            await self._writer.flush_due(self.targets.values())
        await self.flush()

    async def check_start(self) -> list[str]:
        """Configuration errors that keep this pair from starting, from every mirror that
        checks something at start (an HSM key a target's SKU cannot hold, say)."""
        problems: list[str] = []
        for mirror in self._mirrors.values():
            if isinstance(mirror, StartCheck):
                problems += await mirror.check_start()
        return problems

    async def _start_allowed(self) -> bool:
        try:
            problems = await self.check_start()
        except VaultError as exc:
            # An unreachable primary proves nothing wrong with the configuration: start,
            # and let each restore check the key type again.
            self._log.warning("start_check.skipped", reason=exc.reason, error=str(exc))
            return True
        if not problems:
            return True
        self.refused = "; ".join(problems)
        self._log.error("pair.refused", problems=problems)
        self.publish_metrics()
        return False

    async def _wait_for_events(self, stop: asyncio.Event, wait_s: float) -> dict[ItemRef, float]:
        await self.events.wait(stop, wait_s)
        return self.events.take_all()

    async def _guarded(self, step: Callable[[], Any], flush: bool = True) -> None:
        """Run one pass, then write its checkpoints (unless `flush` is off: the caller
        writes them when due); a vault error of the source is status, not a crash."""
        try:
            await step()
            if flush:
                await self.flush()
        except VaultError as exc:
            self.source_error = str(exc)
            self.lag.source_failed()
            self._log.warning("pass.failed", reason=exc.reason, error=str(exc))
        finally:
            self.publish_metrics()

    # -- passes ----------------------------------------------------------------------

    async def _source_listing(self) -> list[ItemProperties]:
        began = self._clock()
        listing: list[ItemProperties] = []
        for kind in self._mirrors:
            listing += await self._source.list_items(kind)
        self.source_error = None
        self.lag.source_read(began)
        # Certificate-backed keys and secrets travel with their certificate.
        return [p for p in listing if not p.managed and self.pair.selects(p.name)]

    async def poll(self) -> SyncReport:
        """Compare the primary's listing with the checkpoints; sync what differs."""
        self.passes_begun += 1
        listing = await self._source_listing()
        self.last_poll = self._clock()
        work: dict[ItemRef, list[str]] = {}
        for region, state in self.targets.items():
            for props in changed_items(listing, state.checkpoint):
                since = props.updated_on.timestamp() if props.updated_on else self._clock()
                self.lag.mark_pending(region, item_key(props.kind, props.name), since)
                work.setdefault(props.ref, []).append(region)
        self.passes += 1
        self.pacer.poll_done(len(listing), len(self.pair.kinds), len(work))
        report = await self._sync_many(work)
        report.items = len(listing)
        report.unchanged += len(listing) - len(work)
        return report

    async def reconcile(self, progress: Callable[[int, int], None] | None = None) -> SyncReport:
        """Full pass: every selected item is compared with every target. Each target is
        listed once; what its listing proves in sync is not read again (secrets, see
        replicator/target_listing.py), the rest is compared version by version. The first
        pass of this replicator, and one every `deep_reconcile_interval`, is deep: every
        item is compared version by version on every target."""
        self.passes_begun += 1
        listing = await self._source_listing()
        now = self._clock()
        for region, state in self.targets.items():
            for props in changed_items(listing, state.checkpoint):
                since = props.updated_on.timestamp() if props.updated_on else now
                self.lag.mark_pending(region, item_key(props.kind, props.name), since)
        self.passes += 1
        work = {p.ref: list(self.targets) for p in listing}
        deep = (
            self.last_deep_reconcile is None
            or now - self.last_deep_reconcile >= self._settings.deep_reconcile_interval_seconds
        )
        listings = None
        if not deep:
            listings = await TargetListings.take(
                self.pair.name,
                {r: self._targets[r] for r in self._accounts.live_targets(self.targets)},
                [k for k, m in self._mirrors.items() if m.proves_by_listing],
                self._settings.target_timeout_seconds,
            )
        report = await self._sync_many(work, progress, listings)
        await self._sync_vault_level()
        report.items = len(listing)
        self.last_reconcile = self._clock()
        self.last_poll = self.last_reconcile
        if deep:
            self.last_deep_reconcile = self.last_reconcile
        return report

    async def _sync_vault_level(self) -> None:
        """What some mirrors copy for the vault as a whole (certificate issuers and
        contacts), once per full pass."""
        now = self._clock()
        live = self._accounts.live_targets(self.targets)
        for kind, mirror in self._mirrors.items():
            if not isinstance(mirror, VaultLevelMirror):
                continue
            try:
                results = await mirror.sync_vault_level(live)
            except VaultError as exc:
                # The source's failure; the items of this pass are done and checkpointed.
                self.source_error = str(exc)
                self._log.warning("vault_level.failed", kind=kind.value, error=str(exc))
                continue
            for region, error in results.items():
                if error is not None:
                    item = f"{kind.value} issuers and contacts"
                    state = self.targets[region]
                    state.record_error(now, item, error)
                    if error.transient:
                        # Unreachable: the sweep and the next passes leave it alone for a
                        # while instead of waiting out its timeout again.
                        self._accounts.suspend(state, now, error)

    async def sync_refs(self, refs: Mapping[ItemRef, float]) -> SyncReport:
        """Sync the given items on every target (the event path)."""
        for ref, at in refs.items():
            for region in self.targets:
                self.lag.mark_pending(region, ref_key(ref), at)
        return await self._sync_many({r: list(self.targets) for r in refs})

    async def sweep(self, confirm: bool = False) -> SweepReport:
        """Propagate deletions and recoveries of the primary within the deletion guard,
        and refresh the expiry watch (replicator/deletions.py, sweep.py). With `confirm`
        the deletions a tripped guard withheld are applied and the guard is released."""
        now = self._clock()
        outcome = await self.deletions.sweep(
            self._source_listing,
            self.targets,
            skip={r for r, s in self.targets.items() if s.suspended_until > now},
            confirm=confirm,
            flush=self.flush,
        )
        if outcome is None:
            return SweepReport(errors=1, guard_tripped=self.deletions.guard.tripped)
        for problem in outcome.problems:
            state = self.targets[problem.region]
            if problem.conflict is not None:
                state.conflicts[problem.item] = problem.conflict
            elif problem.error is not None:
                state.record_error(now, problem.item, problem.error)
                if problem.error.transient:
                    self._accounts.suspend(state, now, problem.error)
        self.sink_errors.update(outcome.sink_errors)
        for key in outcome.sink_recorded:
            self.sink_errors.pop(key, None)
        return outcome.report

    async def _sync_many(
        self,
        work: Mapping[ItemRef, list[str]],
        progress: Callable[[int, int], None] | None = None,
        listings: TargetListings | None = None,
    ) -> SyncReport:
        report = SyncReport()
        done = 0

        def target_done(outcome: ItemOutcome, result: TargetOutcome) -> None:
            self._accounts.target_done(outcome, result, report)

        async def one(ref: ItemRef, regions: list[str]) -> None:
            nonlocal done
            async with self._limits[ref.kind]:
                live = self._accounts.live_targets(regions)
                listed = listings.for_item(ref, self.targets) if listings else None
                # One lock per item in flight: an event and a poll for the same item
                # must not write the same version twice.
                async with self._item_locks.hold(ref):
                    mirror = self._mirrors[ref.kind]
                    outcome = await mirror.sync(ref.name, live, target_done, listed)
            self._accounts.item_done(outcome, report)
            done += 1
            if progress is not None:
                progress(done, len(work))

        async with asyncio.TaskGroup() as group:
            for ref, regions in work.items():
                group.create_task(one(ref, regions))
        return report

    # -- observation -------------------------------------------------------------------

    def publish_metrics(self) -> None:
        """Update the gauges, and log once when RPO crosses the objective either way."""
        self._rpo_alarm.publish(self.lag, self.targets, self._mirrors, self.deletions)

    def status(self) -> dict[str, Any]:
        """A JSON-ready view of this pair (names and versions only, never values)."""
        doc = pair_status(
            self.pair,
            lag=self.lag,
            targets=self.targets,
            deletions=self.deletions,
            last_reconcile=self.last_reconcile,
            last_poll=self.last_poll,
            passes=self.passes,
            passes_begun=self.passes_begun,
            source_error=self.source_error,
            refused=self.refused,
            sink_errors=self.sink_errors,
            clock=self._clock,
        )
        doc["polling"] = self.pacer.status()
        return doc
