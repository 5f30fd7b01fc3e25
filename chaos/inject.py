"""A drill's fault steps: toxics and links down on the fault proxy, errors and denied
access on an emulated vault, read-only mode, a disabled or a new certificate version,
a killed region or daemon, and healing them.

Each fault registers its rollback before it acts and opens a fault window on the
timeline that its undo closes; the first fault starts the RTO clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from chaos.cleanup import Rollback, Rollbacks
from chaos.errors import LinkNotFound, StepFailed
from chaos.scenario import (
    AddCertificateVersion,
    DenyAccess,
    DisableCertificate,
    Heal,
    KillRegion,
    LinkDown,
    ReadOnly,
    Step,
    ToxicFault,
    VaultErrors,
)
from chaos.state import DrillState
from vault.client import VaultClient
from vault.models import Attributes, ItemKind


class FaultSteps:
    """The faults one drill injected, by step id, and the steps that inject them."""

    def __init__(self, state: DrillState, rollbacks: Rollbacks) -> None:
        self.state = state
        self.rollbacks = rollbacks
        self.faults: dict[str, Rollback] = {}
        # Per region, the emulator fault body of each fault step still on: the emulator
        # holds one fault document, so it is always sent merged.
        self.vault_faults: dict[str, dict[str, dict[str, object]]] = {}

    def _fault_started(self, fid: str, what: str) -> None:
        now = time.time()
        self.state.start_clock(now)
        self.state.result.fault_windows.append({"id": fid, "what": what, "start": now, "end": None})
        self.state.event("fault", id=fid, what=what)

    def _fault_ended(self, fid: str) -> None:
        for window in self.state.result.fault_windows:
            if window["id"] == fid and window["end"] is None:
                window["end"] = time.time()

    def _link(self, link: str) -> str:
        links = self.state.target.links
        if link not in links:
            raise StepFailed(f"no link {link!r} on the fault proxy (links: {', '.join(links)})")
        return link

    def _emulator(self, region: str) -> Any:
        emulator = self.state.target.emulators.get(region)
        if emulator is None:
            raise StepFailed(
                f"region {region!r} has no emulator fault API here (vault faults need the "
                "kvdr emulator; regions: " + ", ".join(self.state.target.emulators) + ")"
            )
        return emulator

    def _admin(self, region: str) -> VaultClient:
        vault = self.state.target.admins.get(region)
        if vault is None:
            raise StepFailed(f"no region {region!r} in the stack")
        return vault

    async def _put_vault_faults(self, region: str) -> None:
        merged: dict[str, object] = {}
        for body in self.vault_faults.get(region, {}).values():
            merged.update(body)
        emulator = self._emulator(region)
        if merged:
            await emulator.set_faults(merged)
        else:
            await emulator.clear_faults()

    async def inject(self, step: Step) -> None:
        """One fault step: register its rollback, open its window, inject it; with a
        `duration_seconds`, wait that long and heal it."""
        fid = str(getattr(step, "id"))  # noqa: B009 - fault steps have an id
        target = self.state.target
        register = self.rollbacks.register
        if isinstance(step, ToxicFault):
            link = self._link(step.link)
            toxic = f"drill-{fid}"

            async def remove_toxic() -> None:
                with contextlib.suppress(LinkNotFound):
                    await target.faults.remove_toxic(link, toxic)
                self._fault_ended(fid)

            rollback = register(f"remove toxic {step.type} from link {link}", remove_toxic)
            self._fault_started(fid, f"{step.type} on {link}")
            await target.faults.add_toxic(
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
                await target.faults.set_up(link)
                self._fault_ended(fid)

            rollback = register(f"bring link {link} up", link_up)
            self._fault_started(fid, f"link {link} down")
            await target.faults.set_down(link)
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
                    principals = (target.kvdr_principal,)
                body = {"deny": principals if principals == "*" else list(principals)}
                what = f"{region} denies access to {principals}"

            async def clear_vault_fault() -> None:
                self.vault_faults.get(region, {}).pop(fid, None)
                await self._put_vault_faults(region)
                self._fault_ended(fid)

            rollback = register(f"clear fault {fid} on {region}'s vault", clear_vault_fault)
            self.vault_faults.setdefault(region, {})[fid] = body
            self._fault_started(fid, what)
            await self._put_vault_faults(region)
        elif isinstance(step, ReadOnly):
            emulator = self._emulator(step.region)

            async def writable() -> None:
                await emulator.set_read_only(False)
                self._fault_ended(fid)

            rollback = register(f"turn {step.region}'s read-only mode off", writable)
            self._fault_started(fid, f"{step.region} read-only")
            await emulator.set_read_only(True)
        elif isinstance(step, DisableCertificate):
            rollback = await self._disable_certificate(fid, step)
        elif isinstance(step, KillRegion):
            process = target.region_processes.get(step.region)
            if process is None:
                raise StepFailed(
                    f"kill_region {step.region!r}: only the local stack's emulators can be "
                    "killed (regions: " + ", ".join(target.region_processes) + ")"
                )

            async def restart() -> None:
                await process.start()
                self._fault_ended(fid)

            rollback = register(f"start {step.region}'s vault again", restart)
            self._fault_started(fid, f"region {step.region} killed")
            await process.kill()
        else:  # pragma: no cover - FAULT_ACTIONS lists the types above
            raise StepFailed(f"not a fault: {step.action}")
        self.faults[fid] = rollback
        duration = getattr(step, "duration_seconds", None)
        if duration is not None:
            await asyncio.sleep(duration)
            await self.rollbacks.undo(rollback, "heal")

    async def _disable_certificate(self, fid: str, step: DisableCertificate) -> Rollback:
        region = step.region or self.state.active_region
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

        rollback = self.rollbacks.register(f"enable certificate {name} in {region}", enable)
        self._fault_started(fid, f"certificate {name} disabled in {region}")
        await vault.update_properties(
            ItemKind.CERTIFICATE, name, chosen, Attributes(enabled=False, tags=tags)
        )
        return rollback

    async def add_certificate_version(self, step: AddCertificateVersion) -> None:
        region = step.region or self.state.active_region
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
        self.state.start_clock(time.time())
        self.state.event(
            "fault",
            id="add_certificate_version",
            what=f"new version of {step.certificate}",
            version=props.version,
        )

    async def heal(self, step: Heal) -> None:
        """Undo one fault by id, or every one ("*") the method injected so far."""
        chosen = list(self.faults) if step.fault == "*" else [step.fault]
        for fid in chosen:
            await self.rollbacks.undo(self.faults[fid], "heal")

    async def kill_daemon(self) -> None:
        self.rollbacks.register("start the daemon", self.state.target.daemon.start)
        self.state.start_clock(time.time())
        self.state.result.fault_windows.append(
            {"id": "daemon", "what": "daemon killed", "start": time.time(), "end": None}
        )
        await self.state.target.daemon.kill()

    async def start_daemon(self) -> None:
        await self.state.target.daemon.start()
        self._fault_ended("daemon")
