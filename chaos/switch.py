"""A drill's failover steps: a planned switchover, a promotion and a failback, each
through `kvdr failover` as the target's command line, so a drill exercises what an
operator runs. A switch registers the way home before it acts, starts the RTO clock
when no fault has, and measures what the new primary lost."""

from __future__ import annotations

import time
from typing import Any

from chaos.cleanup import Rollbacks
from chaos.errors import StepFailed
from chaos.measure import missing_from
from chaos.scenario import Promote, Switchover
from chaos.state import DrillState
from chaos.verify import inventory

# What the rollback that returns the pair home is called; a failback step spends it.
RETURN_HOME = "return pair"


class FailoverSteps:
    """The switchover, promote and failback steps of one drill."""

    def __init__(self, state: DrillState, rollbacks: Rollbacks) -> None:
        self.state = state
        self.rollbacks = rollbacks
        self._load_paused = False

    async def _failover(self, args: list[str], what: str) -> dict[str, Any]:
        state = self.state
        started = time.time()
        code, doc = await state.target.cli(args)
        state.event(
            what,
            ok=code == 0,
            exit_code=code,
            seconds=round(time.time() - started, 3),
            result={k: v for k, v in doc.items() if k not in ("checks", "stores")},
        )
        if code != 0:
            why = (
                "; ".join(str(r) for r in doc.get("refused", []))
                or doc.get("error")
                or (f"exit {code}")
            )
            raise StepFailed(f"kvdr failover {args[1]} failed: {why}")
        return doc

    async def switch(self, to: str, how: str, step: Switchover | Promote) -> None:
        """Switch over or promote (`how`) the pair to `to`, then record what it lost."""
        state = self.state
        pair = state.target.pair
        if to not in state.target.regions:
            raise StepFailed(f"--to {to!r} is not a region of pair {pair}")
        home = state.target.primary

        async def back_home() -> None:
            if state.active_region == home:
                return
            if state.promoted_to is not None and how == "promote":
                await self._failover(
                    ["failover", "failback", "--pair", pair, "--yes", "--json"], "failback"
                )
            else:
                await self._failover(
                    ["failover", "switchover", "--pair", pair, "--to", home, "--yes", "--json"],
                    "switchover",
                )
            state.active_region = home

        self.rollbacks.register(f"{RETURN_HOME} {pair} to {home}", back_home)
        args = ["failover", how, "--pair", pair, "--to", to, "--yes", "--json"]
        if isinstance(step, Promote) and step.force:
            args.append("--force")
        if isinstance(step, Switchover):
            # A planned switchover fences the old primary, so applications' writes there
            # are refused, not acknowledged: the load pauses for the switch.
            self._load_paused = state.load.running
            await state.load.stop()
        if state.start_clock(time.time()):
            state.event("fault", id=how, what=f"{how} to {to} starts the RTO clock")
        try:
            await self._failover(args, how)
        finally:
            if self._load_paused:
                state.load.start()
                self._load_paused = False
        promoted_at = time.time()
        state.active_region = to
        state.promoted_to = to
        held = await inventory(state, to)
        loss = missing_from(to, held, state.result.ledger.entries, promoted_at)
        state.result.losses.append(loss)
        state.event(
            "promoted",
            to=to,
            how=how,
            lost=loss.items,
            oldest_age_seconds=round(loss.oldest_age_seconds, 3),
        )

    async def failback(self) -> None:
        """The failback step: the pair returns to its primary, and the rollback that
        would have taken it there is spent."""
        state = self.state
        await self._failover(
            ["failover", "failback", "--pair", state.target.pair, "--yes", "--json"], "failback"
        )
        state.active_region = state.target.primary
        for rollback in self.rollbacks.registered:
            if rollback.what.startswith(RETURN_HOME):
                rollback.done = True
