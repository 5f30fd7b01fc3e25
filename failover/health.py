"""Region health: is each region's vault answering?

A probe is one cheap authenticated request per vault per interval. A region is down
after `failures_to_down` failed probes within `window_seconds`, and up again after
`successes_to_up` successful probes in a row. The defaults ([failover], 2 s interval,
2 s timeout, down after 3 failures within 10 s, up after 2 successes) show a dead region
in about 6 s, fast enough for automatic promotion to act within its 20 s budget, while
one lost packet or one slow answer (a single failure) never marks a region down, and a
region that flaps between answering and not does not come back up on one lucky probe.

A vault that answers 401/403 (kvdr's role taken away, a token it refuses, a deny
assignment) is reachable: the region is up, and the refusal is its `error`. Counting it
as down would promote another region, and move every application, for a permissions
mistake that a failover does not mend.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from prometheus_client import Gauge

from vault.client import VaultItems
from vault.errors import Forbidden, VaultError

# How a region's error starts when its vault answers but refuses kvdr.
REFUSED = "answers, but refuses kvdr"
REGION_UP = Gauge("kvdr_region_up", "1 when the region's vault answers kvdr's probes", ["region"])
log = structlog.get_logger("kvdr.health")


@dataclass
class RegionHealth:
    region: str
    url: str
    up: bool | None = None
    consecutive_failures: int = 0
    last_check: float | None = None
    last_ok: float | None = None
    error: str | None = None
    # When it was last found down (None while up).
    down_since: float | None = None

    def as_dict(self) -> dict[str, Any]:
        def iso(ts: float | None) -> str | None:
            return datetime.fromtimestamp(ts, UTC).isoformat() if ts else None

        return {
            "region": self.region,
            "url": self.url,
            "up": self.up,
            "last_check": iso(self.last_check),
            "last_ok": iso(self.last_ok),
            "down_since": iso(self.down_since),
            "error": self.error,
        }


class RegionProber:
    """Probes every region's vault on an interval and keeps `RegionHealth` per region."""

    def __init__(
        self,
        vaults: Mapping[str, VaultItems],
        interval_seconds: float = 5.0,
        timeout_seconds: float = 5.0,
        failures_to_down: int = 2,
        clock: Callable[[], float] = time.time,
        window_seconds: float | None = None,
        successes_to_up: int = 1,
        canary_secret: str | None = None,
    ) -> None:
        self._vaults = dict(vaults)
        self._interval = interval_seconds
        self._timeout = timeout_seconds
        self._failures_to_down = failures_to_down
        # Failures count within this window (None: in a row, however long ago).
        self._window = window_seconds
        self._successes_to_up = successes_to_up
        # Read by every probe when set: a vault that lists but cannot serve a value
        # (its HSM or storage failing) is not up.
        self._canary = canary_secret
        self._clock = clock
        self._failures: dict[str, list[float]] = {r: [] for r in vaults}
        self._successes: dict[str, int] = {r: 0 for r in vaults}
        self.health = {r: RegionHealth(region=r, url=v.ref.url) for r, v in vaults.items()}

    async def probe_all(self) -> None:
        await asyncio.gather(*(self._probe(r) for r in self._vaults))

    async def _probe(self, region: str) -> None:
        state = self.health[region]
        refused: Forbidden | None = None
        failure: str | None = None
        try:
            async with asyncio.timeout(self._timeout):
                if self._canary is None:
                    await self._vaults[region].probe()
                else:
                    await self._vaults[region].get_secret(self._canary)
        except Forbidden as exc:
            # It answered: up, with the refusal as its error (the module docstring).
            refused = exc
        except (VaultError, TimeoutError) as exc:
            failure = str(exc) or type(exc).__name__
        if failure is not None:
            self._failed(region, state, failure)
        else:
            was_refused = (state.error or "").startswith(REFUSED)
            self._answered(region, state)
            if refused is not None:
                if not was_refused:
                    log.warning("region.probe_refused", region=region, error=str(refused))
                state.error = f"{REFUSED}: {refused}"
        state.last_check = self._clock()
        REGION_UP.labels(region).set(1 if state.up else 0)

    def _failed(self, region: str, state: RegionHealth, error: str) -> None:
        now = self._clock()
        state.consecutive_failures += 1
        self._successes[region] = 0
        state.error = error
        failures = self._failures[region]
        failures.append(now)
        if self._window is not None:
            failures[:] = [t for t in failures if now - t <= self._window]
        if len(failures) >= self._failures_to_down and state.up is not False:
            state.up = False
            state.down_since = now
            log.warning("region.unreachable", region=region, error=state.error)

    def _answered(self, region: str, state: RegionHealth) -> None:
        self._successes[region] += 1
        if self._window is None:
            self._failures[region].clear()
        if state.up is not True and (
            state.up is None or self._successes[region] >= self._successes_to_up
        ):
            log.info("region.up", region=region)
            state.up = True
            state.down_since = None
            self._failures[region].clear()
        state.consecutive_failures = 0
        state.error = None
        state.last_ok = self._clock()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.probe_all()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._interval)
