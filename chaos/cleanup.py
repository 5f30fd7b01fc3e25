"""A drill's rollbacks, and the sweep for what it would have left behind.

Every step that changes something registers its undo (a `Rollback`) before it acts.
`Rollbacks.unwind()` stops the load and runs every undo not yet spent, last registered
first, each within `ROLLBACK_TIMEOUT_SECONDS`; a failed undo is recorded, not raised,
so the ones after it still run. `leftovers()` then asks the fault proxy, the emulators,
the control record and the processes what is still not as the drill found it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from chaos.errors import ChaosError
from chaos.state import DrillState
from vault.errors import VaultError

ROLLBACK_TIMEOUT_SECONDS = 60.0


@dataclass
class Rollback:
    what: str
    undo: Callable[[], Awaitable[None]]
    # Set when the method itself undid it (heal, failback): the rollback is then spent.
    done: bool = False


class Rollbacks:
    """The undos one drill registered, in the order it registered them."""

    def __init__(self, state: DrillState) -> None:
        self.state = state
        self.registered: list[Rollback] = []

    def register(self, what: str, undo: Callable[[], Awaitable[None]]) -> Rollback:
        rollback = Rollback(what, undo)
        self.registered.append(rollback)
        return rollback

    async def undo(self, rollback: Rollback, by: str) -> None:
        """Run `rollback` once, `by` the rollbacks or a heal; a failure is recorded."""
        if rollback.done:
            return
        rollback.done = True
        result = self.state.result
        started = time.time()
        try:
            async with asyncio.timeout(ROLLBACK_TIMEOUT_SECONDS):
                await rollback.undo()
        except (ChaosError, VaultError, OSError, TimeoutError) as exc:
            result.rollbacks.append(
                {
                    "what": rollback.what,
                    "by": by,
                    "ok": False,
                    "error": str(exc)[:300],
                    "at": started,
                }
            )
            self.state.event("rollback_failed", what=rollback.what, error=str(exc)[:300])
            return
        result.rollbacks.append({"what": rollback.what, "by": by, "ok": True, "at": started})
        self.state.event("rollback" if by == "rollback" else "healed", what=rollback.what)

    async def unwind(self) -> None:
        await self.state.load.stop()
        for rollback in reversed(self.registered):
            await self.undo(rollback, "rollback")


async def leftovers(state: DrillState) -> list[str]:
    """What the drill would have left behind, read from the proxy and emulators."""
    target = state.target
    out: list[str] = []
    # No links: the environment has no fault proxy the drill could reach, so it left
    # nothing there (a link step fails before it injects anything).
    try:
        links = await target.faults.links() if target.links else {}
        for name in target.links:
            info = links.get(name)
            if info is not None and not info.enabled:
                out.append(f"link {name} is down")
            for toxic in await target.faults.toxics(name):
                out.append(f"toxic {toxic.name} ({toxic.type}) on link {name}")
    except ChaosError as exc:
        out.append(f"the fault proxy could not be checked: {exc}")
    owed: dict[str, str] | None = None
    for region, emulator in target.emulators.items():
        try:
            if (await emulator.faults()).get("active"):
                out.append(f"emulator fault on {region}")
            fenced = (await emulator.read_only()).get("read_only")
            if fenced and owed is None:
                # Asked only when a region is fenced: who owes it?
                owed = await _record_fences(state)
            if fenced and owed is not None and region in owed:
                # The failover's own fence of a standby region (the control record
                # holds it; a switch back keeps the old active fenced): not the drill's.
                state.event("fence_kept", region=region, by="control record", state=owed[region])
            elif fenced:
                out.append(f"{region} is read-only (fenced) and the control record owes no fence")
        except ChaosError as exc:
            out.append(f"emulator {region} could not be checked: {exc}")
    if state.active_region != target.primary:
        out.append(f"pair {target.pair} is active in {state.active_region}, not {target.primary}")
    if not target.daemon.running:
        out.append("the daemon is not running")
    for region, process in target.region_processes.items():
        if not process.running:
            out.append(f"{region}'s vault process is not running")
    return out


async def _record_fences(state: DrillState) -> dict[str, str]:
    """Regions the control record fences (`required` / `applied`) other than the
    active one, from `kvdr failover status`; empty when it cannot be read."""
    pair_name = state.target.pair
    try:
        code, doc = await state.target.cli(["failover", "status", "--pair", pair_name, "--json"])
    except OSError:
        return {}
    if code != 0:
        return {}
    for pair in doc.get("pairs", []):
        if pair.get("pair") != pair_name:
            continue
        active = pair.get("active_region")
        fences = pair.get("fences") or {}
        return {
            r: str(f) for r, f in fences.items() if f in ("required", "applied") and r != active
        }
    return {}
