"""Region health from kvdr's own probes (failover/health.py), against real emulators:
one request per probe, down after two failures in a row, up after one success."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from datetime import UTC, datetime
from typing import Any

from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from failover.health import RegionProber
from tests.fixtures.clock import ManualClock
from tests.fixtures.regions import World, WorldFactory
from tests.fixtures.waiting import wait_for
from vault.models import Attributes


def region_up(region: str) -> float | None:
    return REGISTRY.get_sample_value("kvdr_region_up", {"region": region})


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def health_events(logs: list[MutableMapping[str, Any]]) -> list[tuple[Any, Any]]:
    return [(e["event"], e["region"]) for e in logs if str(e["event"]).startswith("region.")]


class TestProbes:
    async def test_answering_regions_are_up_after_one_request_each(self, world: World) -> None:
        """A probe is one listing page per vault; every answering region is up, with the
        time of the check, and its gauge says 1; "region.up" is logged once."""
        clock = ManualClock()
        prober = RegionProber(world.vaults, clock=clock)
        for emulator in world.emulators.values():
            emulator.reset_stats()
        with capture_logs() as logs:
            await prober.probe_all()
            clock.advance(5.0)
            await prober.probe_all()
        by_op = world.emulators["eastus"].stats()["by_op"]
        # (Plus a 401 bearer challenge when the SDK has not met this vault before: its
        # challenge cache is per process.)
        assert (list(by_op), by_op["GetSecrets"]["200"]) == (["GetSecrets"], 2)
        assert prober.health["westus"].as_dict() == {
            "region": "westus",
            "url": world.vaults["westus"].ref.url,
            "up": True,
            "last_check": iso(clock.now),
            "last_ok": iso(clock.now),
            "down_since": None,
            "error": None,
        }
        assert (region_up("eastus"), region_up("westus")) == (1.0, 1.0)
        assert sorted(health_events(logs)) == [("region.up", "eastus"), ("region.up", "westus")]


class TestDownAndUp:
    async def test_two_failures_in_a_row_make_a_region_down(self, world: World) -> None:
        """One failed probe leaves an up region up (no flapping on one lost request); the
        second makes it down, logged once; the last good time stays where it was."""
        clock = ManualClock()
        prober = RegionProber(world.vaults, clock=clock)
        await prober.probe_all()
        healthy_at = clock.now
        world.emulators["westus"].stop()
        with capture_logs() as logs:
            clock.advance(5.0)
            await prober.probe_all()
            state = prober.health["westus"]
            assert (state.up, state.consecutive_failures, region_up("westus")) == (True, 1, 1.0)
            clock.advance(5.0)
            await prober.probe_all()
            assert (state.up, state.consecutive_failures, region_up("westus")) == (False, 2, 0.0)
            clock.advance(5.0)
            await prober.probe_all()  # still down: not logged again
        assert (state.up, state.consecutive_failures, region_up("westus")) == (False, 3, 0.0)
        assert (state.last_ok, state.last_check) == (healthy_at, clock.now)
        assert state.error == (
            "probe on vault westus: vault unreachable, request not sent (ClientConnectorError)"
        )
        assert health_events(logs) == [("region.unreachable", "westus")]
        assert (prober.health["eastus"].up, region_up("eastus")) == (True, 1.0)

    async def test_one_success_brings_a_region_back(self, world: World) -> None:
        """A down region is up again after one answered probe; the error is cleared."""
        clock = ManualClock()
        prober = RegionProber(world.vaults, failures_to_down=1, clock=clock)
        world.emulators["westus"].stop()
        await prober.probe_all()
        assert (prober.health["westus"].up, region_up("westus")) == (False, 0.0)
        world.emulators["westus"].restart()
        clock.advance(5.0)
        with capture_logs() as logs:
            await prober.probe_all()
        state = prober.health["westus"]
        assert (state.up, state.error, state.consecutive_failures) == (True, None, 0)
        assert (state.last_ok, region_up("westus")) == (clock.now, 1.0)
        assert health_events(logs) == [("region.up", "westus")]

    async def test_failures_count_within_the_window_and_up_needs_m_successes(
        self, world: World
    ) -> None:
        """down_after=3 within 10 s: three failures spread over more than 10 s keep the
        region up; three within 10 s make it down (since the third). up_after=2: one
        answered probe leaves it down, the second brings it up."""
        clock = ManualClock()
        prober = RegionProber(
            world.vaults, clock=clock, failures_to_down=3, window_seconds=10, successes_to_up=2
        )
        await prober.probe_all()
        state = prober.health["westus"]
        world.emulators["westus"].stop()
        for _ in range(3):
            clock.advance(6.0)
            await prober.probe_all()
        assert state.up is True  # 3 failures, but never 3 within 10 s
        clock.advance(2.0)
        await prober.probe_all()  # 12 s, 18 s, 20 s: three within 10 s
        assert (state.up, state.down_since, region_up("westus")) == (False, clock.now, 0.0)
        world.emulators["westus"].restart()
        clock.advance(2.0)
        await prober.probe_all()
        assert state.up is False and state.error is None
        clock.advance(2.0)
        await prober.probe_all()
        assert (state.up, state.down_since, region_up("westus")) == (True, None, 1.0)

    async def test_a_vault_slower_than_the_timeout_is_down(self, make_world: WorldFactory) -> None:
        """An answer later than the probe timeout counts as a failure."""
        world = await make_world(per_region={"westus": {"latency_ms": 1500}})
        prober = RegionProber(world.vaults, timeout_seconds=0.3, failures_to_down=1)
        await prober.probe_all()
        state = prober.health["westus"]
        assert (state.up, state.error) == (False, "TimeoutError")
        assert prober.health["eastus"].up is True


class TestCanary:
    async def test_a_canary_secret_is_read_and_a_missing_one_fails(self, world: World) -> None:
        """With a canary, each probe is one GetSecret of it: present on eastus (up),
        absent on westus (down, the vault's answer named)."""
        await world.vaults["eastus"].set_secret("kvdr-canary", "alive", Attributes())
        for emulator in world.emulators.values():
            emulator.reset_stats()
        prober = RegionProber(world.vaults, failures_to_down=1, canary_secret="kvdr-canary")
        await prober.probe_all()
        assert prober.health["eastus"].up is True
        west = prober.health["westus"]
        assert west.up is False and west.error is not None and "SecretNotFound" in west.error
        by_op = world.emulators["eastus"].stats()["by_op"]
        assert by_op["GetSecret"]["200"] == 1 and "GetSecrets" not in by_op


class TestRefused:
    async def test_a_vault_that_refuses_kvdr_is_up_with_the_refusal_named(
        self, world: World
    ) -> None:
        """403 to kvdr's principal (its role taken away; the emulator's deny fault) is no
        outage: the region stays up, so automatic mode promotes nothing, and the refusal
        is the region's error for status and the dashboard."""
        prober = RegionProber(world.vaults, failures_to_down=1)
        await prober.probe_all()
        world.emulators["westus"].management("PUT", "faults", {"deny": "*"})
        with capture_logs() as logs:
            for _ in range(3):
                await prober.probe_all()
        west = prober.health["westus"]
        assert west.up is True and west.error is not None
        assert west.error.startswith("answers, but refuses kvdr") and "403" in west.error
        assert [e["event"] for e in logs].count("region.probe_refused") == 1
        world.emulators["westus"].management("DELETE", "faults")
        await prober.probe_all()
        assert prober.health["westus"].error is None


class TestRun:
    async def test_run_probes_on_its_interval_until_stopped(self, world: World) -> None:
        """The loop probes again after each interval and ends when told to stop."""
        prober = RegionProber(world.vaults, interval_seconds=0.05)
        world.emulators["eastus"].reset_stats()
        stop = asyncio.Event()
        task = asyncio.create_task(prober.run(stop))

        def probes() -> int:
            by_op = world.emulators["eastus"].stats()["by_op"]
            return int(by_op.get("GetSecrets", {}).get("200", 0))

        await wait_for(lambda: probes() >= 3, 10.0, "three probes of eastus")
        stop.set()
        await asyncio.wait_for(task, 5.0)
        assert task.done() and task.exception() is None
        assert prober.health["eastus"].up is True
