"""Automatic promotion (failover/automatic.py): the decision from health and lag, and
the promoter over real local-folder control stores and a real epoch watch."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from failover.automatic import AutoPromoter, Decision, Lag, decide
from failover.control_stores import ControlStores
from failover.control_transitions import initial_record
from failover.epoch_watch import EpochWatch, PairRegions
from failover.health import RegionHealth
from tests.failover.control_fixtures import control, local_stores

REGIONS = ("eastus", "westus", "centralus")
RECORD = initial_record("app", "eastus", ("westus", "centralus"))


def health(down_since: float | None, **up: bool) -> dict[str, RegionHealth]:
    states = {
        "eastus": RegionHealth("eastus", "https://e", up=down_since is None, down_since=down_since)
    }
    for region in ("westus", "centralus"):
        states[region] = RegionHealth(region, f"https://{region}", up=up.get(region, True))
    return states


def decision(states: dict[str, RegionHealth], lags: dict[str, Lag]) -> Decision | None:
    return decide(
        RECORD, REGIONS, states, lags, now=100.0, after_seconds=10.0, objective_seconds=60.0
    )


class TestDecide:
    def test_nothing_while_the_primary_answers_or_is_not_down_long_enough(self) -> None:
        assert decision(health(None), {"westus": Lag(0, 0)}) is None
        assert decision(health(95.0), {"westus": Lag(0, 0)}) is None

    def test_promotes_the_secondary_with_the_least_lag(self) -> None:
        found = decision(health(80.0), {"westus": Lag(5.0, 2), "centralus": Lag(0.5, 1)})
        assert found is not None and found.to == "centralus"
        assert found.why.startswith("automatic: eastus down for 20 s (>= 10 s); centralus's lag")

    def test_lag_above_the_objective_waits_for_a_person(self) -> None:
        found = decision(health(80.0), {"westus": Lag(61.0, 3)})
        assert found is not None and found.to is None
        assert "above the RPO objective 60 s: a person must decide" in found.why

    @pytest.mark.parametrize(
        ("states", "lags", "words"),
        [
            (health(80.0, westus=False, centralus=False), {}, "no secondary answers"),
            (health(80.0), {}, "no lag reading of any secondary"),
        ],
    )
    def test_waits_without_a_candidate(
        self, states: dict[str, RegionHealth], lags: dict[str, Lag], words: str
    ) -> None:
        found = decision(states, lags)
        assert found is not None and found.to is None and words in found.why


def waiting(pair: str) -> float | None:
    return REGISTRY.get_sample_value("kvdr_failover_automatic_waiting", {"pair": pair})


class TestPromoter:
    async def promoter(
        self,
        ctl: ControlStores,
        watch: EpochWatch,
        states: dict[str, RegionHealth],
        lag: float,
        clock: list[float],
        reports: list[tuple[str, str, Mapping[str, Any]]] | None = None,
    ) -> AutoPromoter:
        return AutoPromoter(
            watch,
            ctl,
            {"app": (REGIONS[:2], 60.0)},
            lambda: states,
            lambda pair, region: Lag(lag, 1),
            lambda pair: True,
            after_seconds=10.0,
            interval_seconds=1.0,
            validity_seconds=0.0,
            instance="daemon-a",
            clock=lambda: clock[0],
            report=None if reports is None else lambda *r: reports.append(r),
        )

    async def test_promotes_after_the_outage_with_the_inputs_in_the_history(
        self, tmp_path: Path
    ) -> None:
        """The lag is sampled while eastus answers (0.4 s); eastus is then down for 12
        s: the promoter commits epoch 1, westus active, the decision in the reason;
        a second tick promotes nothing more."""
        async with local_stores(tmp_path, 3) as stores:
            ctl = control(stores)
            watch = EpochWatch(
                ctl,
                {"app": PairRegions("app", "eastus", REGIONS[:2])},
                interval_seconds=0.5,
                validity_seconds=1.0,
            )
            await watch.refresh_all()
            clock = [1000.0]
            states = health(None)
            reports: list[tuple[str, str, Mapping[str, Any]]] = []
            auto = await self.promoter(ctl, watch, states, 0.4, clock, reports)
            await auto.tick()  # eastus up: the lag is sampled
            states.update(health(1000.0))
            clock[0] = 1012.0
            await auto.tick()
            (result,) = auto.promotions
            record = (await ctl.read("app")).committed
            assert record == result.finished
            assert record is not None and (record.epoch, record.active_region) == (1, "westus")
            entry = record.history[-1]
            assert entry.by == "kvdr daemon daemon-a (automatic)"
            assert entry.reason.startswith("automatic: eastus down for 12 s (>= 10 s)")
            assert "lag at the last contact 0.4 s" in entry.reason
            assert entry.rto_seconds is not None and record.state == "failed-over"
            await auto.tick()
            assert len(auto.promotions) == 1 and watch.record("app").epoch == 1
            # What the daemon writes to the audit trail: one promotion, with its epoch.
            ((pair, outcome, detail),) = reports
            assert (pair, outcome, detail["to"], detail["epoch"]) == ("app", "ok", "westus", 1)

    async def test_no_promotion_when_the_lag_exceeded_the_objective(self, tmp_path: Path) -> None:
        """A lag of 90 s at the last contact (objective 60 s): no transition, the
        waiting gauge raised for the alert."""
        async with local_stores(tmp_path, 3) as stores:
            ctl = control(stores)
            watch = EpochWatch(
                ctl,
                {"app": PairRegions("app", "eastus", REGIONS[:2])},
                interval_seconds=0.5,
                validity_seconds=1.0,
            )
            await watch.refresh_all()
            clock = [1000.0]
            states = health(None)
            auto = await self.promoter(ctl, watch, states, 90.0, clock)
            await auto.tick()
            states.update(health(1000.0))
            clock[0] = 1030.0
            await auto.tick()
            assert auto.promotions == [] and waiting("app") == 1.0
            assert (await ctl.read("app")).committed is None

    async def test_two_daemons_promoting_at_once_make_one_epoch(self, tmp_path: Path) -> None:
        """Two promoters that both believe they lead tick at the same moment: exactly
        one promotion commits."""
        async with local_stores(tmp_path, 3) as stores:
            ctl = control(stores)
            autos = []
            clock = [1000.0]
            for _ in range(2):
                watch = EpochWatch(
                    ctl,
                    {"app": PairRegions("app", "eastus", REGIONS[:2])},
                    interval_seconds=0.5,
                    validity_seconds=1.0,
                )
                await watch.refresh_all()
                states = health(None)
                auto = await self.promoter(ctl, watch, states, 0.1, clock)
                await auto.tick()
                states.update(health(1000.0))
                autos.append(auto)
            clock[0] = 1020.0
            await asyncio.gather(*(a.tick() for a in autos))
            assert sum(len(a.promotions) for a in autos) == 1
            record = (await ctl.read("app")).committed
            assert record is not None and record.epoch == 1 and len(record.history) == 1
