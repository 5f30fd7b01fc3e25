"""The drill's probes: one look at the stack (a region answers reads, the daemon is up,
reports an error or lag below a limit, the backups list), the steady-state hypothesis
made of them, the `await` step, and the sampler that records the lag and checks the
"during" hypothesis and the abort conditions every `SAMPLE_SECONDS`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from chaos.errors import StepFailed
from chaos.scenario import Await, Probe
from chaos.state import DrillState
from vault.errors import VaultError

SAMPLE_SECONDS = 1.0


# The configuration override that makes a command give up on an endpoint at once.
NO_RETRIES = "KVDR__STORAGE__RETRIES"


class Probes:
    """The probes of one drill, over its target and its timeline."""

    def __init__(self, state: DrillState) -> None:
        self.state = state

    async def pair_status(self) -> dict[str, Any] | None:
        target = self.state.target
        doc = await target.daemon.status()
        if doc is None:
            return None
        for pair in doc.get("pairs", []):
            if pair.get("name") == target.pair:
                return dict(pair)
        return None

    async def probe(self, probe: Probe) -> tuple[bool, str]:
        """Run one probe once: whether it holds, and what was seen."""
        target = self.state.target
        kind = probe.probe
        if kind in ("region_up", "reads_answer"):
            region = probe.region or self.state.active_region
            reader = target.readers.get(region)
            if reader is None:
                return False, f"no region {region!r} in the stack"
            try:
                async with asyncio.timeout(5):
                    await reader.probe()
            except (VaultError, TimeoutError, OSError) as exc:
                return False, f"{region} did not answer a read: {type(exc).__name__}"
            return True, f"{region} answers reads"
        if kind == "backups_readable":
            return await self._backups_readable(probe)
        if kind == "daemon_up":
            up = await target.daemon.status() is not None
            return up, "the daemon answers /status" if up else "the daemon does not answer"
        pair = await self.pair_status()
        if pair is None:
            return False, f"the daemon does not report pair {target.pair}"
        if kind == "daemon_reports_error":
            errors = [pair.get("source_error")] + [
                e for t in pair.get("targets", []) for e in t.get("recent_errors", [])
            ]
            seen = [str(e)[:200] for e in errors if e]
            return bool(seen), seen[0] if seen else "no error reported for the pair"
        targets = [t for t in pair.get("targets", []) if probe.region in (None, t.get("region"))]
        if not targets:
            return False, f"no target {probe.region!r} in pair {target.pair}"
        lags = {str(t.get("region")): t.get("lag_seconds") for t in targets}
        if any(v is None for v in lags.values()):
            return False, f"lag unknown: {lags}"
        worst = max(float(v) for v in lags.values())
        return worst < probe.seconds, f"lag {worst:.1f} s (limit {probe.seconds:g} s)"

    async def _backups_readable(self, probe: Probe) -> tuple[bool, str]:
        target = self.state.target
        # Expecting the secondary: no retries of the primary first (as an operator who
        # knows storage's primary endpoint is down would run it), so the read answers in
        # a second instead of after the storage client's whole retry budget (~20 s),
        # which would hold the outage past the pair's lease margin.
        env = {NO_RETRIES: "0"} if probe.endpoint == "secondary" else None
        code, doc = await target.cli(["snapshot", "list", "--pair", target.pair, "--json"], env=env)
        if code != 0:
            return False, f"kvdr snapshot list failed: {str(doc.get('error', ''))[:200]}"
        where = str(doc.get("read_from", "primary"))
        generations = sum(len(p.get("generations", [])) for p in doc.get("pairs", []))
        if not generations:
            return False, f"no backups of pair {target.pair} listed ({where} endpoint)"
        if probe.endpoint == "secondary" and where != "secondary":
            return False, "the backups were read from the primary storage endpoint"
        return True, f"{generations} generation(s) listed from the {where} storage endpoint"

    async def probe_within(self, probe: Probe, seconds: float) -> tuple[bool, str]:
        deadline = time.monotonic() + seconds
        while True:
            ok, detail = await self.probe(probe)
            if ok or time.monotonic() >= deadline:
                return ok, detail
            await asyncio.sleep(0.5)

    async def check_hypothesis(self, phase: str) -> bool:
        results = []
        for probe in self.state.scenario.hypothesis:
            if phase not in probe.when:
                continue
            ok, detail = await self.probe_within(probe, probe.within_seconds)
            results.append(
                {"probe": probe.probe, "region": probe.region, "ok": ok, "detail": detail}
            )
        self.state.result.hypothesis.setdefault(phase, []).extend(results)
        self.state.event(
            "hypothesis", phase=phase, ok=all(r["ok"] for r in results), probes=len(results)
        )
        return all(r["ok"] for r in results)

    async def await_condition(self, step: Await) -> None:
        """The `await` step: its condition holds within its timeout, or it fails."""
        ok, detail = await self.probe_within(step.condition, step.timeout_seconds)
        self.state.event("await", condition=step.condition.probe, ok=ok, detail=detail)
        if not ok:
            raise StepFailed(
                f"{step.condition.probe} did not hold within {step.timeout_seconds:g} s: {detail}"
            )

    async def sample(self, abort: Callable[[str], None]) -> None:
        """Every second: the lag, the write counts, the "during" hypothesis, aborts.

        An abort condition failing for its `within_seconds` calls `abort(reason)`."""
        result = self.state.result
        during = [p for p in self.state.scenario.hypothesis if "during" in p.when]
        failing_since: dict[int, float] = {}
        while True:
            now = time.time()
            pair = await self.pair_status()
            lag = None
            if pair is not None:
                lags = [t.get("lag_seconds") for t in pair.get("targets", [])]
                known = [float(v) for v in lags if v is not None]
                lag = max(known) if known else None
            result.samples.append({"at": now, "lag_seconds": lag})
            for probe in during:
                ok, detail = await self.probe(probe)
                if not ok:
                    result.hypothesis.setdefault("during", []).append(
                        {
                            "probe": probe.probe,
                            "region": probe.region,
                            "ok": False,
                            "detail": detail,
                            "at": now,
                        }
                    )
            for index, probe in enumerate(self.state.scenario.abort):
                ok, detail = await self.probe(probe)
                if ok:
                    failing_since.pop(index, None)
                    continue
                since = failing_since.setdefault(index, now)
                if now - since >= probe.within_seconds:
                    abort(f"abort condition {probe.probe} failed: {detail}")
            await asyncio.sleep(SAMPLE_SECONDS)
