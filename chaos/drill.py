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
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog

from chaos.errors import ChaosError, LinkNotFound
from chaos.journal import DrillResult, Event
from chaos.ledger import WriteLoad
from chaos.measure import (
    Holdings,
    Inventory,
    account,
    missing_from,
    recovery,
)
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
    Probe,
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
from chaos.target import DrillTarget
from replicator.plan import SOURCE_VERSION_TAG
from vault.client import VaultClient
from vault.errors import ItemNotFound, VaultError
from vault.models import Attributes, ItemKind

log = structlog.get_logger("chaos.drill")

SAMPLE_SECONDS = 1.0
ROLLBACK_TIMEOUT_SECONDS = 60.0


class StepFailed(ChaosError):
    """A step of the method could not do what it says; the message says why."""


@dataclass
class Rollback:
    what: str
    undo: Callable[[], Awaitable[None]]
    # Set when the method itself undid it (heal, failback): the rollback is then spent.
    done: bool = False


class Drill:
    """One run of `scenario` against `target`."""

    def __init__(self, scenario: Scenario, source: str, target: DrillTarget) -> None:
        self.scenario = scenario
        self.target = target
        self.run_id = uuid.uuid4().hex[:8]
        self.result = DrillResult(scenario, source, target, self.run_id, time.time())
        self.active_region = target.primary
        self.load = WriteLoad(
            prefix=f"drill-{scenario.name}-{self.run_id}",
            rate=scenario.load.rate,
            names=scenario.load.names,
            writers=dict(target.writers),
            active=lambda: self.active_region,
            ledger=self.result.ledger,
            write_timeout_seconds=scenario.load.write_timeout_seconds,
        )
        self.rollbacks: list[Rollback] = []
        self.faults: dict[str, Rollback] = {}
        self.vault_faults: dict[str, dict[str, dict[str, object]]] = {}
        self.first_fault: float | None = None
        self.promoted_to: str | None = None
        self._method: asyncio.Task[None] | None = None
        self._interrupted: str | None = None
        self._abort: str | None = None
        self._load_paused = False

    # -- timeline ---------------------------------------------------------------------

    def event(self, kind: str, **detail: Any) -> None:
        self.result.events.append(Event(time.time(), kind, detail))
        log.info(f"drill.{kind}", drill=self.scenario.name, **detail)

    def interrupt(self, why: str) -> None:
        """Stop the method now (SIGINT / SIGTERM); rollbacks and the report still run."""
        if self._interrupted is not None:
            log.warning("drill.interrupt_ignored", reason="rollbacks are running", signal=why)
            return
        self._interrupted = why
        self.event("interrupted", signal=why)
        if self._method is not None:
            self._method.cancel()

    # -- probes -----------------------------------------------------------------------

    async def _pair_status(self) -> dict[str, Any] | None:
        doc = await self.target.daemon.status()
        if doc is None:
            return None
        for pair in doc.get("pairs", []):
            if pair.get("name") == self.target.pair:
                return dict(pair)
        return None

    async def probe(self, probe: Probe) -> tuple[bool, str]:
        """Run one probe once: whether it holds, and what was seen."""
        kind = probe.probe
        if kind in ("region_up", "reads_answer"):
            region = probe.region or self.active_region
            reader = self.target.readers.get(region)
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
            up = await self.target.daemon.status() is not None
            return up, "the daemon answers /status" if up else "the daemon does not answer"
        pair = await self._pair_status()
        if pair is None:
            return False, f"the daemon does not report pair {self.target.pair}"
        if kind == "daemon_reports_error":
            errors = [pair.get("source_error")] + [
                e for t in pair.get("targets", []) for e in t.get("recent_errors", [])
            ]
            seen = [str(e)[:200] for e in errors if e]
            return bool(seen), seen[0] if seen else "no error reported for the pair"
        targets = [t for t in pair.get("targets", []) if probe.region in (None, t.get("region"))]
        if not targets:
            return False, f"no target {probe.region!r} in pair {self.target.pair}"
        lags = {str(t.get("region")): t.get("lag_seconds") for t in targets}
        if any(v is None for v in lags.values()):
            return False, f"lag unknown: {lags}"
        worst = max(float(v) for v in lags.values())
        return worst < probe.seconds, f"lag {worst:.1f} s (limit {probe.seconds:g} s)"

    async def _backups_readable(self, probe: Probe) -> tuple[bool, str]:
        code, doc = await self.target.cli(
            ["snapshot", "list", "--pair", self.target.pair, "--json"]
        )
        if code != 0:
            return False, f"kvdr snapshot list failed: {str(doc.get('error', ''))[:200]}"
        where = str(doc.get("read_from", "primary"))
        generations = sum(len(p.get("generations", [])) for p in doc.get("pairs", []))
        if not generations:
            return False, f"no backups of pair {self.target.pair} listed ({where} endpoint)"
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
        for probe in self.scenario.hypothesis:
            if phase not in probe.when:
                continue
            ok, detail = await self.probe_within(probe, probe.within_seconds)
            results.append(
                {"probe": probe.probe, "region": probe.region, "ok": ok, "detail": detail}
            )
        self.result.hypothesis.setdefault(phase, []).extend(results)
        self.event("hypothesis", phase=phase, ok=all(r["ok"] for r in results), probes=len(results))
        return all(r["ok"] for r in results)

    async def _sample(self) -> None:
        """Every second: the lag, the write counts, the "during" hypothesis, aborts."""
        during = [p for p in self.scenario.hypothesis if "during" in p.when]
        failing_since: dict[int, float] = {}
        while True:
            now = time.time()
            pair = await self._pair_status()
            lag = None
            if pair is not None:
                lags = [t.get("lag_seconds") for t in pair.get("targets", [])]
                known = [float(v) for v in lags if v is not None]
                lag = max(known) if known else None
            self.result.samples.append({"at": now, "lag_seconds": lag})
            for probe in during:
                ok, detail = await self.probe(probe)
                if not ok:
                    self.result.hypothesis.setdefault("during", []).append(
                        {
                            "probe": probe.probe,
                            "region": probe.region,
                            "ok": False,
                            "detail": detail,
                            "at": now,
                        }
                    )
            for index, probe in enumerate(self.scenario.abort):
                ok, detail = await self.probe(probe)
                if ok:
                    failing_since.pop(index, None)
                    continue
                since = failing_since.setdefault(index, now)
                if now - since >= probe.within_seconds and self._abort is None:
                    self._abort = f"abort condition {probe.probe} failed: {detail}"
                    self.event("abort", reason=self._abort)
                    if self._method is not None:
                        self._method.cancel()
            await asyncio.sleep(SAMPLE_SECONDS)

    # -- rollbacks --------------------------------------------------------------------

    def register(self, what: str, undo: Callable[[], Awaitable[None]]) -> Rollback:
        rollback = Rollback(what, undo)
        self.rollbacks.append(rollback)
        return rollback

    async def _undo(self, rollback: Rollback, by: str) -> None:
        if rollback.done:
            return
        rollback.done = True
        started = time.time()
        try:
            async with asyncio.timeout(ROLLBACK_TIMEOUT_SECONDS):
                await rollback.undo()
        except (ChaosError, VaultError, OSError, TimeoutError) as exc:
            self.result.rollbacks.append(
                {
                    "what": rollback.what,
                    "by": by,
                    "ok": False,
                    "error": str(exc)[:300],
                    "at": started,
                }
            )
            self.event("rollback_failed", what=rollback.what, error=str(exc)[:300])
            return
        self.result.rollbacks.append({"what": rollback.what, "by": by, "ok": True, "at": started})
        self.event("rollback" if by == "rollback" else "healed", what=rollback.what)

    async def _unwind(self) -> None:
        await self.load.stop()
        for rollback in reversed(self.rollbacks):
            await self._undo(rollback, "rollback")

    # -- faults -----------------------------------------------------------------------

    def _fault_started(self, fid: str, what: str) -> None:
        now = time.time()
        if self.first_fault is None:
            self.first_fault = now
        self.result.fault_windows.append({"id": fid, "what": what, "start": now, "end": None})
        self.event("fault", id=fid, what=what)

    def _fault_ended(self, fid: str) -> None:
        for window in self.result.fault_windows:
            if window["id"] == fid and window["end"] is None:
                window["end"] = time.time()

    def _link(self, link: str) -> str:
        if link not in self.target.links:
            raise StepFailed(
                f"no link {link!r} on the fault proxy (links: {', '.join(self.target.links)})"
            )
        return link

    def _emulator(self, region: str) -> Any:
        emulator = self.target.emulators.get(region)
        if emulator is None:
            raise StepFailed(
                f"region {region!r} has no emulator fault API here (vault faults need the "
                "kvdr emulator; regions: " + ", ".join(self.target.emulators) + ")"
            )
        return emulator

    async def _put_vault_faults(self, region: str) -> None:
        merged: dict[str, object] = {}
        for body in self.vault_faults.get(region, {}).values():
            merged.update(body)
        emulator = self._emulator(region)
        if merged:
            await emulator.set_faults(merged)
        else:
            await emulator.clear_faults()

    async def _inject(self, step: Step) -> None:
        fid = str(getattr(step, "id"))  # noqa: B009 - fault steps have an id
        if isinstance(step, ToxicFault):
            link = self._link(step.link)
            toxic = f"drill-{fid}"

            async def remove_toxic() -> None:
                with contextlib.suppress(LinkNotFound):
                    await self.target.faults.remove_toxic(link, toxic)
                self._fault_ended(fid)

            rollback = self.register(f"remove toxic {step.type} from link {link}", remove_toxic)
            self._fault_started(fid, f"{step.type} on {link}")
            await self.target.faults.add_toxic(
                link,
                step.type,
                stream=step.stream,
                name=toxic,
                toxicity=step.toxicity,
                attributes=step.attributes,
            )
        elif isinstance(step, LinkDown):
            link = self._link(step.link)

            async def link_up() -> None:
                await self.target.faults.set_up(link)
                self._fault_ended(fid)

            rollback = self.register(f"bring link {link} up", link_up)
            self._fault_started(fid, f"link {link} down")
            await self.target.faults.set_down(link)
        elif isinstance(step, VaultErrors | DenyAccess):
            region = step.region
            self._emulator(region)
            body: dict[str, object]
            if isinstance(step, VaultErrors):
                body = {
                    "errors": {
                        "status": step.status,
                        "share": step.share,
                        "retry_after_seconds": step.retry_after_seconds,
                    }
                }
                what = f"{step.status} on {step.share:.0%} of {region}'s requests"
            else:
                principals = step.principals
                if principals == "kvdr":
                    principals = (self.target.kvdr_principal,)
                body = {"deny": principals if principals == "*" else list(principals)}
                what = f"{region} denies access to {principals}"

            async def clear_vault_fault() -> None:
                self.vault_faults.get(region, {}).pop(fid, None)
                await self._put_vault_faults(region)
                self._fault_ended(fid)

            rollback = self.register(f"clear fault {fid} on {region}'s vault", clear_vault_fault)
            self.vault_faults.setdefault(region, {})[fid] = body
            self._fault_started(fid, what)
            await self._put_vault_faults(region)
        elif isinstance(step, ReadOnly):
            emulator = self._emulator(step.region)

            async def writable() -> None:
                await emulator.set_read_only(False)
                self._fault_ended(fid)

            rollback = self.register(f"turn {step.region}'s read-only mode off", writable)
            self._fault_started(fid, f"{step.region} read-only")
            await emulator.set_read_only(True)
        elif isinstance(step, DisableCertificate):
            region = step.region or self.active_region
            vault = self._admin(region)
            versions = await vault.list_versions(ItemKind.CERTIFICATE, step.certificate)
            if not versions:
                raise StepFailed(f"no certificate {step.certificate!r} in {region}")
            chosen = (
                step.version
                or max(
                    versions, key=lambda v: v.created_on.timestamp() if v.created_on else 0.0
                ).version
            )
            props = next((v for v in versions if v.version == chosen), None)
            if props is None:
                raise StepFailed(f"certificate {step.certificate!r} has no version {chosen!r}")
            tags = dict(props.tags)
            name = step.certificate

            async def enable() -> None:
                await vault.update_properties(
                    ItemKind.CERTIFICATE, name, chosen, Attributes(enabled=True, tags=tags)
                )
                self._fault_ended(fid)

            rollback = self.register(f"enable certificate {name} in {region}", enable)
            self._fault_started(fid, f"certificate {name} disabled in {region}")
            await vault.update_properties(
                ItemKind.CERTIFICATE, name, chosen, Attributes(enabled=False, tags=tags)
            )
        elif isinstance(step, KillRegion):
            process = self.target.region_processes.get(step.region)
            if process is None:
                raise StepFailed(
                    f"kill_region {step.region!r}: only the local stack's emulators can be "
                    "killed (regions: " + ", ".join(self.target.region_processes) + ")"
                )

            async def restart() -> None:
                await process.start()
                self._fault_ended(fid)

            rollback = self.register(f"start {step.region}'s vault again", restart)
            self._fault_started(fid, f"region {step.region} killed")
            await process.kill()
        else:  # pragma: no cover - FAULT_ACTIONS lists the types above
            raise StepFailed(f"not a fault: {step.action}")
        self.faults[fid] = rollback
        duration = getattr(step, "duration_seconds", None)
        if duration is not None:
            await asyncio.sleep(duration)
            await self._undo(rollback, "heal")

    def _admin(self, region: str) -> VaultClient:
        vault = self.target.admins.get(region)
        if vault is None:
            raise StepFailed(f"no region {region!r} in the stack")
        return vault

    async def _add_certificate_version(self, step: AddCertificateVersion) -> None:
        region = step.region or self.active_region
        vault = self._admin(region)
        versions = await vault.list_versions(ItemKind.CERTIFICATE, step.certificate)
        if not versions:
            raise StepFailed(f"no certificate {step.certificate!r} in {region}")
        latest = max(versions, key=lambda v: v.created_on.timestamp() if v.created_on else 0.0)
        material = await vault.get_certificate_material(step.certificate, latest.version)
        policy = await vault.get_certificate_policy(step.certificate)
        props = await vault.import_certificate(
            step.certificate, material, Attributes(tags=dict(latest.tags)), policy
        )
        if self.first_fault is None:
            self.first_fault = time.time()
        self.event(
            "fault",
            id="add_certificate_version",
            what=f"new version of {step.certificate}",
            version=props.version,
        )

    # -- failover ---------------------------------------------------------------------

    async def _inventory(self, region: str) -> Inventory:
        reader = self.target.readers[region]
        out: dict[str, Holdings] = {}
        for name in self.load.all_names:
            try:
                versions = await reader.list_versions(ItemKind.SECRET, name)
            except ItemNotFound:
                versions = []
            out[name] = Holdings(
                frozenset(v.version for v in versions),
                tuple(v.tags[SOURCE_VERSION_TAG] for v in versions if SOURCE_VERSION_TAG in v.tags),
            )
        return out

    async def _failover(self, args: list[str], what: str) -> dict[str, Any]:
        started = time.time()
        code, doc = await self.target.cli(args)
        self.event(
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

    async def _switch(self, to: str, how: str, step: Switchover | Promote) -> None:
        if to not in self.target.regions:
            raise StepFailed(f"--to {to!r} is not a region of pair {self.target.pair}")
        home = self.target.primary

        async def back_home() -> None:
            if self.active_region == home:
                return
            if self.promoted_to is not None and how == "promote":
                await self._failover(
                    ["failover", "failback", "--pair", self.target.pair, "--yes", "--json"],
                    "failback",
                )
            else:
                await self._failover(
                    [
                        "failover",
                        "switchover",
                        "--pair",
                        self.target.pair,
                        "--to",
                        home,
                        "--yes",
                        "--json",
                    ],
                    "switchover",
                )
            self.active_region = home

        self.register(f"return pair {self.target.pair} to {home}", back_home)
        args = ["failover", how, "--pair", self.target.pair, "--to", to, "--yes", "--json"]
        if isinstance(step, Promote) and step.force:
            args.append("--force")
        if isinstance(step, Switchover):
            # A planned switchover fences the old primary, so applications' writes there
            # are refused, not acknowledged: the load pauses for the switch.
            self._load_paused = self.load.running
            await self.load.stop()
        if self.first_fault is None:
            self.first_fault = time.time()
            self.event("fault", id=how, what=f"{how} to {to} starts the RTO clock")
        try:
            await self._failover(args, how)
        finally:
            if self._load_paused:
                self.load.start()
                self._load_paused = False
        promoted_at = time.time()
        self.active_region = to
        self.promoted_to = to
        inventory = await self._inventory(to)
        loss = missing_from(to, inventory, self.result.ledger.entries, promoted_at)
        self.result.losses.append(loss)
        self.event(
            "promoted",
            to=to,
            how=how,
            lost=loss.items,
            oldest_age_seconds=round(loss.oldest_age_seconds, 3),
        )

    # -- the method -------------------------------------------------------------------

    async def _await(self, step: Await) -> None:
        ok, detail = await self.probe_within(step.condition, step.timeout_seconds)
        self.event("await", condition=step.condition.probe, ok=ok, detail=detail)
        if not ok:
            raise StepFailed(
                f"{step.condition.probe} did not hold within {step.timeout_seconds:g} s: {detail}"
            )

    async def _verify(self, step: Verify) -> None:
        lost = [e for loss in self.result.losses for e in loss.missing]
        others = [r for r in self.target.regions if r != self.active_region]
        deadline = time.monotonic() + step.settle_seconds
        entries = list(self.result.ledger.entries)
        while True:
            results = [
                account(
                    self.active_region, await self._inventory(self.active_region), entries, lost
                )
            ]
            # Replicas must hold what the active region acknowledged (no promotion: this
            # is the RPO the drill measures).
            mine = [e for e in entries if e.region == self.active_region]
            replica_losses = []
            for region in others:
                inventory = await self._inventory(region)
                results.append(account(region, inventory, mine, lost))
                replica_losses.append(missing_from(region, inventory, mine, time.time()))
            settled = all(not r.unaccounted for r in results)
            if settled or time.monotonic() >= deadline:
                break
            await asyncio.sleep(1.0)
        self.result.accounting = results
        if self.promoted_to is None:
            self.result.losses.extend(replica_losses)
        self.event(
            "verify",
            checked=len(entries),
            accounting=[r.to_dict() | {"unaccounted": len(r.unaccounted)} for r in results],
        )

    async def _step(self, index: int, step: Step) -> None:
        self.event("step", index=index, action=step.action, note=step.note)
        if isinstance(step, LoadStart):
            self.load.start()
        elif isinstance(step, LoadStop):
            await self.load.stop()
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
            await self._inject(step)
        elif isinstance(step, AddCertificateVersion):
            await self._add_certificate_version(step)
        elif isinstance(step, Heal):
            chosen = list(self.faults) if step.fault == "*" else [step.fault]
            for fid in chosen:
                await self._undo(self.faults[fid], "heal")
        elif isinstance(step, Await):
            await self._await(step)
        elif isinstance(step, KillDaemon):
            self.register("start the daemon", self.target.daemon.start)
            if self.first_fault is None:
                self.first_fault = time.time()
            self.result.fault_windows.append(
                {"id": "daemon", "what": "daemon killed", "start": time.time(), "end": None}
            )
            await self.target.daemon.kill()
        elif isinstance(step, StartDaemon):
            await self.target.daemon.start()
            self._fault_ended("daemon")
        elif isinstance(step, Switchover):
            await self._switch(step.to, "switchover", step)
        elif isinstance(step, Promote):
            await self._switch(step.to, "promote", step)
        elif isinstance(step, Failback):
            await self._failover(
                ["failover", "failback", "--pair", self.target.pair, "--yes", "--json"], "failback"
            )
            self.active_region = self.target.primary
            for rollback in self.rollbacks:
                if rollback.what.startswith("return pair"):
                    rollback.done = True
        elif isinstance(step, Verify):
            await self._verify(step)

    async def _run_method(self) -> None:
        for index, step in enumerate(self.scenario.steps):
            await self._step(index, step)

    # -- the whole run ----------------------------------------------------------------

    async def leftovers(self) -> list[str]:
        """What the drill would have left behind, read from the proxy and emulators."""
        out: list[str] = []
        try:
            links = await self.target.faults.links()
            for name in self.target.links:
                info = links.get(name)
                if info is not None and not info.enabled:
                    out.append(f"link {name} is down")
                for toxic in await self.target.faults.toxics(name):
                    out.append(f"toxic {toxic.name} ({toxic.type}) on link {name}")
        except ChaosError as exc:
            out.append(f"the fault proxy could not be checked: {exc}")
        owed: dict[str, str] | None = None
        for region, emulator in self.target.emulators.items():
            try:
                if (await emulator.faults()).get("active"):
                    out.append(f"emulator fault on {region}")
                fenced = (await emulator.read_only()).get("read_only")
                if fenced and owed is None:
                    # Asked only when a region is fenced: who owes it?
                    owed = await self._record_fences()
                if fenced and owed is not None and region in owed:
                    # The failover's own fence of a standby region (the control record
                    # holds it; a switch back keeps the old active fenced): not the drill's.
                    self.event("fence_kept", region=region, by="control record", state=owed[region])
                elif fenced:
                    out.append(
                        f"{region} is read-only (fenced) and the control record owes no fence"
                    )
            except ChaosError as exc:
                out.append(f"emulator {region} could not be checked: {exc}")
        if self.active_region != self.target.primary:
            out.append(
                f"pair {self.target.pair} is active in {self.active_region}, not "
                f"{self.target.primary}"
            )
        if not self.target.daemon.running:
            out.append("the daemon is not running")
        for region, process in self.target.region_processes.items():
            if not process.running:
                out.append(f"{region}'s vault process is not running")
        return out

    async def _record_fences(self) -> dict[str, str]:
        """Regions the control record fences (`required` / `applied`) other than the
        active one, from `kvdr failover status`; empty when it cannot be read."""
        try:
            code, doc = await self.target.cli(
                ["failover", "status", "--pair", self.target.pair, "--json"]
            )
        except OSError:
            return {}
        if code != 0:
            return {}
        for pair in doc.get("pairs", []):
            if pair.get("pair") != self.target.pair:
                continue
            active = pair.get("active_region")
            fences = pair.get("fences") or {}
            return {
                r: str(f) for r, f in fences.items() if f in ("required", "applied") and r != active
            }
        return {}

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
            if not await self.check_hypothesis("before"):
                result.status, result.reason = "failed", "the steady state did not hold before"
            else:
                sampler = asyncio.create_task(self._sample(), name="drill-sampler")
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
            unwinding = asyncio.create_task(self._unwind(), name="drill-rollbacks")
            while not unwinding.done():
                try:
                    await asyncio.shield(unwinding)
                except asyncio.CancelledError:
                    log.warning("drill.rollbacks_continue", reason="cancelled while unwinding")
            result.left_behind = await self.leftovers()
        await self.check_hypothesis("after")
        result.recovery = recovery(
            result.ledger, self.first_fault, self.promoted_to, self.target.primary
        )
        result.ended_at = time.time()
        self.event("end", status=result.status, passed=result.passed)
        return result
