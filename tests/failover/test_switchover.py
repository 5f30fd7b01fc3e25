"""The planned switchover (failover/switchover.py): the pure refusals, and the
transition with its RTO on real local-folder control stores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from failover.control_stores import ControlStores, NoMajority
from failover.control_transitions import initial_record
from failover.switchover import (
    Checks,
    LagReading,
    SwitchoverRefused,
    approval_refusals,
    switchover,
    switchover_refusals,
)
from failover.transition import TransitionResult
from tests.failover.control_fixtures import control, local_stores

HEALTHY = Checks(
    health={"eastus": True, "westus": True},
    lag=LagReading(0.0, 0, "daemon http://127.0.0.1:8080/status"),
)


class TestRefusals:
    def test_healthy_and_caught_up_is_allowed(self) -> None:
        """Both regions up, lag 0 and nothing pending: no refusal."""
        record = initial_record("app", "eastus", ("westus",))
        assert switchover_refusals(record, "westus", HEALTHY) == []

    @pytest.mark.parametrize(
        ("checks", "words"),
        [
            (
                Checks(
                    health={"eastus": True, "westus": False},
                    health_errors={"westus": "x"},
                    lag=HEALTHY.lag,
                ),
                "region westus is not healthy (x)",
            ),
            (Checks(health={"westus": True}, lag=HEALTHY.lag), "region eastus is not healthy"),
            (
                Checks(health=HEALTHY.health, lag_unknown_because="no daemon"),
                "lag to westus is unknown (no daemon)",
            ),
            (Checks(health=HEALTHY.health, lag=LagReading(2.5, 0, "d")), "lag 2.5 s"),
            (Checks(health=HEALTHY.health, lag=LagReading(0.0, 3, "d")), "3 changes pending"),
        ],
    )
    def test_each_precondition(self, checks: Checks, words: str) -> None:
        """An unhealthy region, an unknown lag, a lag or pending changes: refused."""
        record = initial_record("app", "eastus", ("westus",))
        assert any(words in r for r in switchover_refusals(record, "westus", checks))

    def test_back_to_the_configured_primary_is_allowed(self) -> None:
        """After a switch to westus the daemon mirrors from westus: switching back to
        eastus is an ordinary switchover."""
        record = initial_record("app", "westus", ("eastus",))
        assert switchover_refusals(record, "eastus", HEALTHY) == []

    def test_to_the_active_region_is_refused(self) -> None:
        record = initial_record("app", "westus", ("eastus",))
        (why,) = switchover_refusals(record, "westus", HEALTHY)
        assert why == "westus is already the active region (epoch 0)"

    @pytest.mark.parametrize(
        ("needed", "approved", "glass", "refused"),
        [
            (0, (), False, False),
            (2, ("ana",), False, True),
            (2, ("ana", "bo"), False, False),
            (2, (), True, False),
        ],
    )
    def test_approvals(
        self, needed: int, approved: tuple[str, ...], glass: bool, refused: bool
    ) -> None:
        """Too few distinct approvals refuse, enough or break-glass pass."""
        found = approval_refusals(needed, approved, glass, 3600)
        assert bool(found) is refused
        if refused:
            assert found[0].startswith(f"{needed} approvals needed within 3600 s, 1 given (ana)")


async def switch(
    ctl: ControlStores, checks: Checks, started: float = 0.0, **more: Any
) -> TransitionResult:
    """A switchover of pair app from eastus to westus."""
    return await switchover(
        ctl,
        pair="app",
        primary="eastus",
        regions=["eastus", "westus"],
        to="westus",
        by="ops@host",
        reason="patch",
        checks=checks,
        started=started,
        validity=more.pop("validity", 0.0),
        **more,
    )


class TestSwitchover:
    async def test_commits_epoch_and_records_rto(self, tmp_path: Path) -> None:
        """The switch commits epoch 1, then the record goes back to normal with the RTO
        from the command's start to the first commit."""
        ticks = iter([10.0])
        async with local_stores(tmp_path, 3) as stores:
            ctl = control(stores)
            result = await switch(ctl, HEALTHY, 8.5, clock=lambda: next(ticks))
            assert result.rto_seconds == 1.5 and result.finished is not None
            read = await ctl.read("app")
            assert read.committed == result.finished
            assert (read.committed.state, read.committed.epoch) == ("normal", 1)
            entry = read.committed.history[-1]
            assert (entry.rto_seconds, entry.loss_items, entry.by) == (1.5, 0, "ops@host")
            assert "lag 0 s and 0 pending" in entry.loss_basis

    async def test_refused_leaves_the_stores_alone(self, tmp_path: Path) -> None:
        """A refusal writes nothing."""
        async with local_stores(tmp_path, 3) as stores:
            ctl = control(stores)
            with pytest.raises(SwitchoverRefused, match="unknown"):
                await switch(ctl, Checks(health=HEALTHY.health))
            assert [await s.list("failover/") for s in stores] == [[], [], []]

    async def test_two_stores_down_is_refused(self, tmp_path: Path) -> None:
        """Two of three control stores unreachable: NoMajority, nothing switched."""
        async with local_stores(tmp_path, 3) as stores:
            stores[0].down = stores[1].down = True
            with pytest.raises(NoMajority):
                await switch(control(stores), HEALTHY)
