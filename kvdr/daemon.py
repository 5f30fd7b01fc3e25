"""The daemon's lifecycle: which parts run, the HTTP server, and a clean stop.

On SIGTERM: stop taking work, let in-flight items finish within the drain bound, cancel
the rest, write the checkpoints, release the pairs' leases, exit 0.

Several daemons with the same configuration share the pairs: each runs only the pairs
whose blob lease it holds (replicator/ownership.py, docs/high-availability.md).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import web

from failover.automatic import AutoPromoter, Lag
from failover.epoch_watch import EpochWatch, PairRegions
from failover.fence_keeper import FenceKeeper
from failover.fencing import FenceAction, open_fence
from failover.health import RegionProber
from kvdr import __version__
from kvdr.http_api import build_http_app
from kvdr.wiring import Parts, open_parts
from replicator.change_feed import ChangeFeed, EventBudget, VaultEvent
from replicator.ownership import RELEASE_SECONDS, PairOwnership
from replicator.pair import PairReplicator
from replicator.settings import PairSettings
from storage.lease import LeaseTiming
from vault.credentials import build_credential

if TYPE_CHECKING:
    from kvdr.config import KvdrConfig
    from kvdr.drill_records import DrillRecordWatch
    from kvdr.drill_schedule import DrillScheduler

log = structlog.get_logger("kvdr.daemon")


class Daemon:
    """Runs the replicators, region probes and HTTP surface until told to stop."""

    def __init__(self, config: KvdrConfig) -> None:
        self.config = config
        self.parts: Parts | None = None
        self.prober: RegionProber | None = None
        self.ownership: PairOwnership | None = None
        # `[[drills]]` on their schedules (None without any).
        self.drills: DrillScheduler | None = None
        # The drill records in storage, exported as kvdr_drill_* (kvdr/drill_records.py).
        self.drill_records: DrillRecordWatch | None = None
        # The control records as this daemon reads them: the direction of each pair
        # and the fence on every write (failover/epoch_watch.py).
        self.watch: EpochWatch | None = None
        self.started_at = time.time()
        self._ready = False
        self.http_port: int | None = None
        # Events may spend a bounded share of each primary's read budget.
        self.feed = ChangeFeed(
            EventBudget(config.vault.other_ops_per_10s, config.replicator.event_read_share)
        )

    # -- DaemonView ------------------------------------------------------------------

    def ready(self) -> bool:
        return self._ready and not self.not_ready_reason()

    def not_ready_reason(self) -> str:
        """Why `/readyz` answers 503, in one line; empty when ready."""
        if not self._ready:
            return "starting" if self.parts is None or self.ownership is None else "stopping"
        journal = self.parts.journal if self.parts else None
        if journal is not None and not journal.health.ok:
            return f"journal failing: {journal.health.summary()}"
        return ""

    def running_replicators(self) -> list[PairReplicator]:
        """The pairs this daemon runs now (it holds their leases)."""
        return self.ownership.replicators() if self.ownership else []

    def refresh_metrics(self) -> None:
        for replicator in self.running_replicators():
            replicator.publish_metrics()

    def status(self) -> dict[str, Any]:
        return {
            "instance": self.config.daemon.instance_id,
            "version": __version__,
            "started_at": datetime.fromtimestamp(self.started_at, UTC).isoformat(),
            "ready": self._ready,
            "regions": [h.as_dict() for h in self.prober.health.values()] if self.prober else [],
            "pairs": self._pair_status(),
            "instances": self.ownership.instances() if self.ownership else [],
            # Journal positions of the pairs this daemon records (no item names).
            "journal": self.parts.journal.status() if self.parts and self.parts.journal else [],
            "journal_health": (
                self.parts.journal.health.as_dict() if self.parts and self.parts.journal else None
            ),
            # The last scheduled drill of each scenario: verdict and where its report is.
            "drills": list(self.drills.last.values()) if self.drills else [],
        }

    def _pair_status(self) -> list[dict[str, Any]]:
        docs = self.ownership.status() if self.ownership else []
        if self.watch is not None:
            for doc in docs:
                doc["control"] = self.watch.status(doc["name"])
        return docs

    def on_events(self, events: Sequence[VaultEvent]) -> int:
        """Route Key Vault events to the pairs running here (another daemon's pairs are
        found by its polling); how many a pair queued."""
        return self.feed.deliver(events, self.running_replicators())

    # -- lifecycle -------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        settings = self.config.daemon
        async with AsyncExitStack() as stack:
            app = build_http_app(self, settings)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            stack.push_async_callback(runner.cleanup)
            site = web.TCPSite(runner, settings.listen_host, settings.listen_port)
            await site.start()
            self.http_port = _bound_port(runner, settings.listen_port)
            log.info("daemon.listening", url=f"http://{settings.listen_host}:{self.http_port}")

            self.parts = parts = await open_parts(self.config, stack, supervised_journal=True)
            failover = self.config.failover
            self.watch = EpochWatch(
                parts.control,
                {
                    p.name: PairRegions(p.name, p.primary.region, p.regions)
                    for p in self.config.replicator.pairs
                },
                interval_seconds=failover.epoch_check_interval_seconds,
                validity_seconds=failover.epoch_validity_seconds,
                enforce_fences=failover.fence != "none",
            )
            # The direction of each pair before its first replicator starts.
            await self.watch.refresh_all()
            self.ownership = ownership = PairOwnership(
                [r.pair for r in parts.replicators],
                parts.blobs,
                settings.instance_id,
                LeaseTiming(self.config.replicator.lease_duration_seconds),
                self._fresh_replicator,
                self.config.replicator.drain_seconds,
            )
            self.prober = prober = RegionProber(
                parts.vaults,
                interval_seconds=failover.probe_interval_seconds,
                timeout_seconds=failover.probe_timeout_seconds,
                failures_to_down=failover.down_after,
                window_seconds=failover.down_window_seconds,
                successes_to_up=failover.up_after,
                canary_secret=failover.canary_secret,
            )
            keeper = await self._fence_keeper(stack, parts, ownership, prober)
            # The first round of leases before ready: a lone daemon runs every pair at once.
            await ownership.start()
            self._ready = True
            log.info(
                "daemon.started",
                pairs=[r.pair.name for r in parts.replicators],
                running=[r.pair.name for r in ownership.replicators()],
            )

            tasks = [
                asyncio.create_task(self.prober.run(stop), name="region-probes"),
                asyncio.create_task(self.watch.run(stop), name="control-records"),
                # Drains, flushes and releases the pairs it runs when `stop` is set.
                asyncio.create_task(ownership.run(stop), name="pairs"),
            ]
            if keeper is not None:
                tasks.append(asyncio.create_task(keeper.run(stop), name="fences"))
            if failover.mode == "automatic":
                promoter = self._auto_promoter(
                    parts, ownership, prober, keeper.action if keeper is not None else None
                )
                tasks.append(asyncio.create_task(promoter.run(stop), name="automatic-failover"))
            # Every drill against this environment left a record in storage (whoever
            # ran it: a terminal, the CronJob, the timer, [[drills]]): exported here.
            from kvdr.drill_records import DrillRecordWatch

            self.drill_records = DrillRecordWatch(parts.blobs)
            tasks.append(asyncio.create_task(self.drill_records.run(stop), name="drill-records"))
            if self.config.drills:
                from kvdr.drill_schedule import DrillScheduler

                self.drills = DrillScheduler(
                    self.config.drills,
                    self.config.source.resolve(),
                    settings.state_dir.resolve() / "drills",
                )
                tasks.append(asyncio.create_task(self.drills.run(stop), name="drills"))
            if parts.journal is not None:
                # Flushes, snapshots and retention; its final flush runs when the stack
                # closes the journal, after the pairs have drained.
                tasks.append(asyncio.create_task(parts.journal.run(stop), name="journal"))
            await self._supervise(tasks, stop)
            self._ready = False
            log.info("daemon.stopped")

    async def _fence_keeper(
        self, stack: AsyncExitStack, parts: Parts, ownership: PairOwnership, prober: RegionProber
    ) -> FenceKeeper | None:
        """With a fence action configured: applies the fences owed to regions that come
        back (failover/fence_keeper.py)."""
        failover = self.config.failover
        if failover.fence == "none" or self.watch is None:
            return None
        credential = build_credential(self.config.credential)
        await stack.enter_async_context(credential)
        regions = {r: self.config.regions[r] for r in parts.vaults}
        action = await stack.enter_async_context(
            open_fence(failover, regions, credential, self.config.vault.ca_file)
        )
        return FenceKeeper(
            self.watch,
            parts.control,
            action,
            [p.name for p in self.config.replicator.pairs],
            region_up=lambda r: prober.health[r].up is True if r in prober.health else False,
            leads=ownership.leads,
            interval_seconds=failover.probe_interval_seconds,
        )

    def _auto_promoter(
        self,
        parts: Parts,
        ownership: PairOwnership,
        prober: RegionProber,
        fence: FenceAction | None,
    ) -> AutoPromoter:
        """`mode = "automatic"`: this daemon promotes the pairs it leads (failover/automatic.py)."""
        assert self.watch is not None and parts.audit is not None
        failover = self.config.failover
        audit = parts.audit

        def lag_of(pair: str, region: str) -> Lag | None:
            for replicator in ownership.replicators():
                if replicator.pair.name == pair and region in replicator.targets:
                    return Lag(replicator.lag.lag(region), replicator.lag.pending(region))
            return None

        return AutoPromoter(
            self.watch,
            parts.control,
            {p.name: (p.regions, p.rpo_objective_seconds) for p in self.config.replicator.pairs},
            lambda: prober.health,
            lag_of,
            ownership.leads,
            after_seconds=failover.automatic_after_seconds,
            # Deciding costs nothing (health and lag are in memory): a tick every half
            # second keeps the promotion from waiting a probe interval more.
            interval_seconds=0.5,
            validity_seconds=failover.epoch_validity_seconds,
            instance=self.config.daemon.instance_id,
            fence=fence,
            report=lambda pair, outcome, detail: audit.record(
                "failover.automatic_promote", outcome, pair=pair, detail=detail
            ),
        )

    def _fresh_replicator(self, pair: PairSettings) -> PairReplicator:
        """A new replicator each time this daemon takes a pair; `parts.replicators` keeps
        the latest one of every pair."""
        assert self.parts is not None and self.watch is not None
        record = self.watch.record(pair.name)
        replicator = self.parts.make_replicator(
            pair,
            active=record.active_region,
            epoch=record.direction_epoch,
            gate=self.watch.gate(pair.name),
            # Every region that was active before a transition.
            former=frozenset(t.from_region for t in record.history),
        )
        for index, previous in enumerate(self.parts.replicators):
            if previous.pair.name == pair.name:
                self.parts.replicators[index] = replicator
        return replicator

    async def _supervise(self, tasks: list[asyncio.Task[None]], stop: asyncio.Event) -> None:
        """Wait for stop (or a part crashing), then drain within the bound and cancel."""
        stop_wait = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([stop_wait, *tasks], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not stop_wait and task.exception() is not None:
                log.error("daemon.part_failed", part=task.get_name(), error=repr(task.exception()))
        stop.set()
        drain = self.config.replicator.drain_seconds
        # The pairs drain within `drain` by themselves, then flush and release their leases
        # (bounded by drain + RELEASE_SECONDS inside); then the members' record is left.
        # This bound comes after theirs, so a part is cancelled only when it overruns.
        _, pending = await asyncio.wait(tasks, timeout=drain + 2 * RELEASE_SECONDS)
        for task in pending:
            log.warning("daemon.abandoned", part=task.get_name(), drain_seconds=drain)
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        stop_wait.cancel()


def _bound_port(runner: web.AppRunner, configured: int) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return configured
