"""Automatic promotion (`[failover] mode = "automatic"`).

The daemon that holds a pair's lease promotes a secondary when all of these hold, and
otherwise raises an alert and waits for a person:

- the active region has been down (failover/health.py: `down_after` failed probes
  within `down_window`) for at least `automatic_after`;
- the secondary answers its probes;
- the secondary's lag at the last contact with the primary (sampled every tick while
  the primary answered) was within the pair's RPO objective;
- the control record's majority takes the new epoch (a compare-and-swap on a majority
  of control stores: a daemon cut off from them cannot promote, and two daemons can
  never both win the epoch).

The decision and its inputs go into the transition's `reason`, so the history says
why the promotion happened. Patroni refuses automatic promotion across data centres
without a global quorum; this is that quorum, plus the lag guard.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from prometheus_client import Gauge

from failover.control_record import ControlRecord, Fence
from failover.control_stores import ControlStores, NoMajority
from failover.control_transitions import TransitionRefused, begin_promote
from failover.epoch_watch import EpochWatch
from failover.fencing import FenceAction, FenceError
from failover.health import RegionHealth
from failover.transition import TransitionResult, commit
from storage.errors import StorageError

log = structlog.get_logger("kvdr.automatic")

WAITING = Gauge(
    "kvdr_failover_automatic_waiting",
    "1 while the pair's active region is down and automatic promotion waits for a person "
    "(lag above the objective, no healthy secondary or no control-record majority)",
    ["pair"],
)


@dataclass(frozen=True)
class Lag:
    seconds: float
    pending: int


@dataclass(frozen=True)
class Decision:
    """What one tick decided for one pair: `to` set means promote."""

    to: str | None
    why: str


def decide(
    record: ControlRecord,
    regions: tuple[str, ...],
    health: Mapping[str, RegionHealth],
    last_lag: Mapping[str, Lag],
    *,
    now: float,
    after_seconds: float,
    objective_seconds: float,
) -> Decision | None:
    """Pure: None while the active region is not down long enough; else a promotion to
    the best candidate, or the reason none is made."""
    active = record.active_region
    state = health.get(active)
    if state is None or state.up is not False or state.down_since is None:
        return None
    down_for = now - state.down_since
    if down_for < after_seconds:
        return None
    candidates = [r for r in regions if r != active and health.get(r) and health[r].up]
    if not candidates:
        return Decision(None, f"{active} down for {down_for:.0f} s and no secondary answers")
    lags = {r: last_lag.get(r) for r in candidates}
    known = {r: lag for r, lag in lags.items() if lag is not None}
    if not known:
        return Decision(
            None, f"{active} down for {down_for:.0f} s; no lag reading of any secondary"
        )
    best = min(known, key=lambda r: (known[r].seconds, known[r].pending, r))
    lag = known[best]
    if lag.seconds > objective_seconds:
        return Decision(
            None,
            f"{active} down for {down_for:.0f} s; {best}'s lag at the last contact was "
            f"{lag.seconds:.1f} s, above the RPO objective {objective_seconds:g} s: a person "
            "must decide (kvdr failover promote)",
        )
    return Decision(
        best,
        f"automatic: {active} down for {down_for:.0f} s (>= {after_seconds:g} s); {best}'s "
        f"lag at the last contact {lag.seconds:.1f} s with {lag.pending} pending, within "
        f"the objective {objective_seconds:g} s",
    )


class AutoPromoter:
    def __init__(
        self,
        watch: EpochWatch,
        stores: ControlStores,
        pairs: Mapping[str, tuple[tuple[str, ...], float]],
        health: Callable[[], Mapping[str, RegionHealth]],
        lag_of: Callable[[str, str], Lag | None],
        leads: Callable[[str], bool],
        *,
        after_seconds: float,
        interval_seconds: float,
        validity_seconds: float,
        instance: str,
        clock: Callable[[], float] = time.time,
        fence: FenceAction | None = None,
        report: Callable[[str, str, Mapping[str, Any]], None] | None = None,
    ) -> None:
        """`pairs`: each pair's regions and RPO objective. `report(pair, outcome,
        detail)` hears of every promotion attempt ("ok" or "refused"): the daemon puts
        it in the audit trail."""
        self._watch = watch
        self._stores = stores
        self._pairs = dict(pairs)
        self._health = health
        self._lag_of = lag_of
        self._leads = leads
        self._after = after_seconds
        self._interval = interval_seconds
        self._validity = validity_seconds
        self._instance = instance
        self._clock = clock
        # Lifts the new primary's fence (a former primary is still fenced from the
        # transition before); the old primary's fence is owed and applied when it is
        # back (failover/fence_keeper.py).
        self._fence = fence
        self._report = report
        self._last_lag: dict[str, dict[str, Lag]] = {p: {} for p in self._pairs}
        self._last_why: dict[str, str] = {}
        self.promotions: list[TransitionResult] = []

    async def tick(self) -> None:
        health = self._health()
        for pair, (regions, objective) in self._pairs.items():
            WAITING.labels(pair).set(0)
            if not self._leads(pair) or not self._watch.confirmed(pair):
                continue
            record = self._watch.record(pair)
            active = health.get(record.active_region)
            if active is not None and active.up:
                # The primary answers: remember each target's lag at this contact.
                for region in regions:
                    lag = self._lag_of(pair, region)
                    if region != record.active_region and lag is not None:
                        self._last_lag[pair][region] = lag
                continue
            decision = decide(
                record,
                regions,
                health,
                self._last_lag[pair],
                now=self._clock(),
                after_seconds=self._after,
                objective_seconds=objective,
            )
            if decision is None:
                continue
            if decision.to is None:
                WAITING.labels(pair).set(1)
                if self._last_why.get(pair) != decision.why:
                    log.error("failover.automatic_waiting", pair=pair, why=decision.why)
                    self._last_why[pair] = decision.why
                continue
            await self._promote(pair, decision, health)

    async def _promote(
        self, pair: str, decision: Decision, health: Mapping[str, RegionHealth]
    ) -> None:
        assert decision.to is not None
        started = time.monotonic()
        try:
            read = await self._stores.read(pair, split_ok=True)
            known = self._watch.record(pair)
            # Never written: the configured primary's initial record (the watch's).
            base = read.base or known
            if base.epoch != known.epoch:
                return  # somebody moved it meanwhile: the next tick sees the new record
            record = begin_promote(
                base,
                decision.to,
                by=f"kvdr daemon {self._instance} (automatic)",
                reason=decision.why,
                highest_epoch=read.highest_epoch,
            )
            lifted: dict[str, tuple[Fence, dict[str, Any] | None]] = {}

            async def lift() -> None:
                to = decision.to
                assert to is not None
                if self._fence is None or record.fences.get(to) != "applied":
                    return
                try:
                    await self._fence.lift(to, record.fence_saved.get(to))
                except FenceError as exc:
                    log.error("failover.automatic_fence_not_lifted", pair=pair, error=str(exc))
                    return
                lifted[to] = ("none", None)

            result = await commit(
                self._stores,
                read,
                base,
                record,
                validity=self._validity,
                started=started,
                after_wait=lift,
                fences=lambda: lifted,
            )
        except (NoMajority, TransitionRefused, StorageError) as exc:
            WAITING.labels(pair).set(1)
            log.error("failover.automatic_refused", pair=pair, to=decision.to, error=str(exc))
            if self._report is not None:
                self._report(pair, "refused", {"to": decision.to, "why": decision.why})
            return
        self.promotions.append(result)
        log.warning(
            "failover.automatic_promoted",
            pair=pair,
            to=decision.to,
            epoch=result.committed.record.epoch,
            rto_seconds=round(result.rto_seconds, 3),
            why=decision.why,
        )
        if self._report is not None:
            self._report(
                pair,
                "ok",
                {
                    "to": decision.to,
                    "why": decision.why,
                    "epoch": result.committed.record.epoch,
                    "rto_seconds": round(result.rto_seconds, 3),
                },
            )
        await self._watch.refresh(pair)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.tick()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._interval)
