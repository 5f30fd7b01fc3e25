"""`Drill`: runs a scenario against a `DrillTarget` into a timeline, then judges it.

The order of a run (Chaos Toolkit's, with rollbacks that cannot be skipped):
1. the steady-state hypothesis "before"; a failure there ends the drill (nothing runs);
2. the method, step by step, while a sampler records lag and checks the "during"
   hypothesis and the abort conditions every second;
3. rollbacks, last registered first, ALWAYS: after success, a failed step, an abort
   condition, the time limit or an interrupt (the command line turns SIGINT and SIGTERM
   into `interrupt()`). Every step that changes something registers its undo before it
   acts; the unwinding runs shielded, so a second signal cannot cut it short;
4. a sweep for anything left behind (toxics, links down, emulator faults, read-only
   fences, a changed active region), the hypothesis "after", and the verdict.
The timeline is the single source of the report, the metrics and the verdict.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import structlog

from chaos.cleanup import ROLLBACK_TIMEOUT_SECONDS, Rollback, Rollbacks, leftovers
from chaos.errors import ChaosError, StepFailed
from chaos.inject import FaultSteps
from chaos.journal import DrillResult
from chaos.measure import recovery
from chaos.probes import SAMPLE_SECONDS, Probes
from chaos.scenario import (
    AddCertificateVersion,
    Await,
    DenyAccess,
    DisableCertificate,
    Failback,
    Heal,
    KillDaemon,
    KillRegion,
    LinkDown,
    LoadStart,
    LoadStop,
    Promote,
    ReadOnly,
    Scenario,
    StartDaemon,
    Step,
    Switchover,
    ToxicFault,
    VaultErrors,
    Verify,
    Wait,
)
from chaos.state import DrillState
from chaos.switch import FailoverSteps
from chaos.target import DrillTarget
from chaos.verify import verify
from vault.errors import VaultError

__all__ = [
    "ROLLBACK_TIMEOUT_SECONDS",
    "SAMPLE_SECONDS",
    "Drill",
    "Rollback",
    "StepFailed",
]

log = structlog.get_logger("chaos.drill")


class Drill:
    """One run of `scenario` against `target`.

    Its parts share one `DrillState` (chaos.state): `probes` (chaos.probes), `cleanup`,
    the rollbacks, and the sweep for leftovers (chaos.cleanup), `fault_steps`
    (chaos.inject), `failover_steps` (chaos.switch) and the verification (chaos.verify).
    The method's dispatch and the run loop are here."""

    def __init__(self, scenario: Scenario, source: str, target: DrillTarget) -> None:
        self.state = DrillState(scenario, source, target)
        self.scenario = scenario
        self.target = target
        self.run_id = self.state.run_id
        self.result = self.state.result
        self.probes = Probes(self.state)
        self.cleanup = Rollbacks(self.state)
        self.fault_steps = FaultSteps(self.state, self.cleanup)
        self.failover_steps = FailoverSteps(self.state, self.cleanup)
        self._method: asyncio.Task[None] | None = None
        self._interrupted: str | None = None
        self._abort: str | None = None

    @property
    def rollbacks(self) -> list[Rollback]:
        """Every rollback registered so far, in the order registered."""
        return self.cleanup.registered

    @property
    def faults(self) -> dict[str, Rollback]:
        """The rollback of each fault injected so far, by the fault step's id."""
        return self.fault_steps.faults

    # -- timeline ---------------------------------------------------------------------

    def event(self, kind: str, **detail: Any) -> None:
        self.state.event(kind, **detail)

    def interrupt(self, why: str) -> None:
        """Stop the method now (SIGINT / SIGTERM); rollbacks and the report still run."""
        if self._interrupted is not None:
            log.warning("drill.interrupt_ignored", reason="rollbacks are running", signal=why)
            return
        self._interrupted = why
        self.event("interrupted", signal=why)
        if self._method is not None:
            self._method.cancel()

    def _abort_method(self, reason: str) -> None:
        """An abort condition failed for long enough: the first one stops the method."""
        if self._abort is not None:
            return
        self._abort = reason
        self.event("abort", reason=reason)
        if self._method is not None:
            self._method.cancel()

    # -- the method -------------------------------------------------------------------

    async def _step(self, index: int, step: Step) -> None:
        self.event("step", index=index, action=step.action, note=step.note)
        load = self.state.load
        if isinstance(step, LoadStart):
            load.start()
        elif isinstance(step, LoadStop):
            await load.stop()
        elif isinstance(step, Wait):
            await asyncio.sleep(step.seconds)
        elif isinstance(
            step,
            ToxicFault
            | LinkDown
            | VaultErrors
            | DenyAccess
            | ReadOnly
            | DisableCertificate
            | KillRegion,
        ):
            await self.fault_steps.inject(step)
        elif isinstance(step, AddCertificateVersion):
            await self.fault_steps.add_certificate_version(step)
        elif isinstance(step, Heal):
            await self.fault_steps.heal(step)
        elif isinstance(step, Await):
            await self.probes.await_condition(step)
        elif isinstance(step, KillDaemon):
            await self.fault_steps.kill_daemon()
        elif isinstance(step, StartDaemon):
            await self.fault_steps.start_daemon()
        elif isinstance(step, Switchover):
            await self.failover_steps.switch(step.to, "switchover", step)
        elif isinstance(step, Promote):
            await self.failover_steps.switch(step.to, "promote", step)
        elif isinstance(step, Failback):
            await self.failover_steps.failback()
        elif isinstance(step, Verify):
            await verify(self.state, step)

    async def _run_method(self) -> None:
        for index, step in enumerate(self.scenario.steps):
            await self._step(index, step)

    # -- the whole run ----------------------------------------------------------------

    async def leftovers(self) -> list[str]:
        """What the drill would have left behind, read from the proxy and emulators."""
        return await leftovers(self.state)

    async def run(self) -> DrillResult:
        result = self.result
        self.event(
            "start",
            scenario=self.scenario.name,
            target=self.target.kind,
            pair=self.target.pair,
            primary=self.target.primary,
        )
        sampler: asyncio.Task[None] | None = None
        try:
            if not await self.probes.check_hypothesis("before"):
                result.status, result.reason = "failed", "the steady state did not hold before"
            else:
                sampler = asyncio.create_task(
                    self.probes.sample(self._abort_method), name="drill-sampler"
                )
                self._method = asyncio.create_task(self._run_method(), name="drill-method")
                try:
                    async with asyncio.timeout(self.scenario.max_duration_seconds):
                        await asyncio.shield(self._method)
                    result.status = "completed"
                except TimeoutError:
                    self._method.cancel()
                    result.status = "aborted"
                    result.reason = (
                        f"the drill ran longer than {self.scenario.max_duration_seconds:g} s"
                    )
                except asyncio.CancelledError:
                    if self._method.cancelled() and (self._abort or self._interrupted):
                        result.status = "aborted" if self._abort else "interrupted"
                        result.reason = self._abort or f"interrupted by {self._interrupted}"
                    else:
                        raise
                except (StepFailed, ChaosError, VaultError) as exc:
                    result.status, result.reason = "failed", str(exc)
        finally:
            if self._method is not None and not self._method.done():
                self._method.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._method
            if sampler is not None:
                sampler.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sampler
            unwinding = asyncio.create_task(self.cleanup.unwind(), name="drill-rollbacks")
            while not unwinding.done():
                try:
                    await asyncio.shield(unwinding)
                except asyncio.CancelledError:
                    log.warning("drill.rollbacks_continue", reason="cancelled while unwinding")
            result.left_behind = await self.leftovers()
        await self.probes.check_hypothesis("after")
        result.recovery = recovery(
            result.ledger, self.state.first_fault, self.state.promoted_to, self.target.primary
        )
        result.ended_at = time.time()
        self.event("end", status=result.status, passed=result.passed)
        return result
