"""The drill runner's rollbacks against a real fault proxy (kvdr's, and Shopify's where
installed): they run after a failed step, an interrupt and an abort condition, and the
proxy is asked afterwards. The daemon here is a stand-in answering /status (or not): a
real one needs the whole stack, which tests/chaos/test_drills_e2e.py runs."""

from __future__ import annotations

import asyncio
from typing import Any

from chaos.drill import Drill
from chaos.faults import Faults, LinkInfo
from chaos.scenario import parse_scenario
from chaos.target import DrillTarget
from tests.fixtures.chaos import EchoServer, FaultProxyEndpoint


class StandInDaemon:
    def __init__(self, up: bool = True) -> None:
        self.up = up

    @property
    def running(self) -> bool:
        return True

    async def status(self) -> dict[str, Any] | None:
        return {"pairs": []} if self.up else None

    async def kill(self) -> None:
        self.up = False

    async def start(self) -> None:
        self.up = True


async def no_cli(args: list[str], env: object = None) -> tuple[int, dict[str, Any]]:
    raise AssertionError(f"no failover command expected: {args}")


def target(faults: Faults, daemon: StandInDaemon) -> DrillTarget:
    return DrillTarget(
        kind="test",
        environment="drill",
        pair="demo",
        primary="eastus",
        regions=["eastus", "westus"],
        faults=faults,
        links=["eastus-vault"],
        emulators={},
        writers={},
        readers={},
        daemon=daemon,
        cli=no_cli,
    )


FAULTS = """
name = "t"
[[abort]]
probe = "daemon_up"
within_seconds = 0.5
[[steps]]
action = "toxic"
id = "slow"
link = "eastus-vault"
type = "latency"
attributes = { latency = 100 }
[[steps]]
action = "link_down"
id = "cut"
link = "eastus-vault"
"""


async def clean(faults: Faults) -> bool:
    links = await faults.links()
    return links["eastus-vault"].enabled and await faults.toxics("eastus-vault") == []


class TestRollbacks:
    async def make_link(self, fault_proxy: FaultProxyEndpoint, echo: EchoServer) -> Faults:
        faults = Faults(fault_proxy.host, fault_proxy.port)
        link: LinkInfo = await faults.create_link("eastus-vault", echo.address)
        assert link.enabled
        return faults

    async def test_failed_step_rolls_back_every_fault(
        self, fault_proxy: FaultProxyEndpoint, echo_server: EchoServer
    ) -> None:
        """An await that times out after two faults: both undone, last first; failed."""
        faults = await self.make_link(fault_proxy, echo_server)
        text = FAULTS + (
            '[[steps]]\naction = "await"\ntimeout_seconds = 0.5\n'
            'condition = { probe = "region_up", region = "nowhere" }\n'
        )
        drill = Drill(parse_scenario(text, "t.toml"), "t.toml", target(faults, StandInDaemon()))
        result = await drill.run()
        assert result.status == "failed"
        assert "region_up did not hold" in result.reason
        assert [r["what"] for r in result.rollbacks] == [
            "bring link eastus-vault up",
            "remove toxic latency from link eastus-vault",
        ]
        assert result.left_behind == []
        assert await clean(faults)

    async def test_interrupt_mid_fault_rolls_back(
        self, fault_proxy: FaultProxyEndpoint, echo_server: EchoServer
    ) -> None:
        """interrupt() (what SIGINT calls) during a wait: interrupted, nothing left."""
        faults = await self.make_link(fault_proxy, echo_server)
        text = FAULTS + '[[steps]]\naction = "wait"\nseconds = 60\n'
        drill = Drill(parse_scenario(text, "t.toml"), "t.toml", target(faults, StandInDaemon()))
        task = asyncio.create_task(drill.run())
        while not drill.faults.get("cut"):
            await asyncio.sleep(0.05)
        assert not await clean(faults)
        drill.interrupt("SIGINT")
        drill.interrupt("SIGINT")  # a second signal does not cut the rollbacks short
        result = await asyncio.wait_for(task, 30)
        assert result.status == "interrupted"
        assert all(r["ok"] for r in result.rollbacks) and len(result.rollbacks) == 2
        assert await clean(faults)

    async def test_abort_condition_stops_the_method(
        self, fault_proxy: FaultProxyEndpoint, echo_server: EchoServer
    ) -> None:
        """The daemon stops answering: the abort condition fires, rollbacks run."""
        faults = await self.make_link(fault_proxy, echo_server)
        daemon = StandInDaemon()
        text = FAULTS + '[[steps]]\naction = "wait"\nseconds = 60\n'
        drill = Drill(parse_scenario(text, "t.toml"), "t.toml", target(faults, daemon))
        task = asyncio.create_task(drill.run())
        while not drill.faults.get("cut"):
            await asyncio.sleep(0.05)
        daemon.up = False
        result = await asyncio.wait_for(task, 30)
        assert result.status == "aborted"
        assert "daemon_up" in result.reason
        assert await clean(faults)
        assert not result.passed

    async def test_before_hypothesis_failing_injects_nothing(
        self, fault_proxy: FaultProxyEndpoint, echo_server: EchoServer
    ) -> None:
        faults = await self.make_link(fault_proxy, echo_server)
        text = FAULTS.replace("[[abort]]", '[[hypothesis]]\nprobe = "daemon_up"\n[[abort]]')
        drill = Drill(
            parse_scenario(text, "t.toml"), "t.toml", target(faults, StandInDaemon(up=False))
        )
        result = await drill.run()
        assert result.status == "failed" and "before" in result.reason
        assert result.rollbacks == [] and result.fault_windows == []
