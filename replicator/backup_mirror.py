"""Mirroring by backup and restore: what the key and certificate mirrors share.

Keys and certificates cannot be written version by version like secrets (the material
never leaves the vault unwrapped); Azure's backup blob carries every version and restores
only into a free name in the same geography. `BackupMirror` holds the parts both kinds
share: reading the source once per item for all targets and sinks, handing the sinks each
new version with the item's backup blob as payload, restore (recovering a soft-deleted
copy first), the one purge DESIGN.md allows (kvdr's own copy, replaced by a newer backup
of the same object, with its window of absence measured), blocking, and the per-target
time bound. `KeyMirror` and `CertificateMirror` plan and apply the rest.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from contextlib import suppress
from enum import StrEnum
from typing import Any, Protocol, TypeVar, cast

import structlog

from replicator import metrics
from replicator.mirror import MirrorBase, TargetOutcome
from replicator.plan_keys import Action, key_type_refusal
from vault.client import VaultClient
from vault.errors import (
    DeletedButRecoverable,
    Forbidden,
    ItemConflict,
    ItemNotFound,
    VaultError,
)
from vault.models import ItemProperties, ItemRef

log = structlog.get_logger("kvdr.mirror")

T = TypeVar("T")

# Replacing a copy takes several calls (delete and its poller, purge, Azure's 409s for
# 1-5 s after a purge, restore). Once the delete is sent, the per-target bound is pushed
# out to this, so a slow replace is not cut off between purge and restore.
REPLACE_TIMEOUT_SECONDS = 120.0


class RestoreResult(StrEnum):
    RESTORED = "restored"
    # The name was soft-deleted on the target: recovered; plan again against it.
    RECOVERED = "recovered"
    # The name is held by another object on the target (reported as a conflict).
    NAME_IN_USE = "name_in_use"


class Next(StrEnum):
    """What a target step does after the action its plan names (`_carry_out`)."""

    # A soft-deleted copy was recovered: list the target and plan again.
    PLAN_AGAIN = "plan_again"
    # Nothing more on this target this time (conflict, blocked, name in use, failed replace).
    STOP = "stop"
    # The plan's updates and the kind's own steps follow.
    GO_ON = "go_on"


class BackupPlan(Protocol):
    """What keys' and certificates' plans share (`KeyPlan`, `CertificatePlan`)."""

    @property
    def action(self) -> Action: ...

    @property
    def missing(self) -> tuple[str, ...]: ...

    @property
    def reason(self) -> str | None: ...

    @property
    def restores(self) -> bool: ...


class SourceReads:
    """Reads of one source item shared by every target and sink of one sync, each made
    at most once (a backup is large and every read counts against the vault's budget)."""

    def __init__(self) -> None:
        self._tasks: dict[Hashable, asyncio.Future[Any]] = {}

    async def once(self, key: Hashable, read: Callable[[], Awaitable[T]]) -> T:
        task = self._tasks.get(key)
        if task is None:
            task = asyncio.ensure_future(read())
            # Retrieved here too, so a failure seen by no one (its waiter timed out) is
            # not reported as "never retrieved" by asyncio.
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
            self._tasks[key] = task
        # Shielded: a target that times out while waiting must not cancel the read the
        # other targets share.
        return cast(T, await asyncio.shield(task))


class BackupMirror(MirrorBase[SourceReads]):
    """Mirrors one kind (keys or certificates) of one pair by backup and restore."""

    def _new_reads(self) -> SourceReads:
        return SourceReads()

    async def _payload(
        self, ref: ItemRef, props: ItemProperties, reads: SourceReads
    ) -> str | bytes | None:
        # Each new version carries the item's backup blob, which holds every version up
        # to it.
        return await self.backup(reads, ref.name)

    async def backup(self, reads: SourceReads, name: str) -> bytes:
        """The source's backup blob of `name`, read once per sync."""
        return await reads.once("backup", lambda: self._source.backup_item(self.kind, name))

    async def _target_versions(self, target: VaultClient, name: str) -> list[ItemProperties]:
        try:
            return await target.list_versions(self.kind, name)
        except ItemNotFound:
            return []

    def _refusal_for_type(self, name: str, key_type: str | None, target: VaultClient) -> str | None:
        """Why `target` cannot hold this item's key type (with the remedy), or None."""
        refusal = key_type_refusal(key_type, target.ref.sku)
        if refusal is None:
            return None
        region = target.ref.region
        return (
            f"{self.kind.value} {name!r} cannot be mirrored into {region!r} "
            f"(sku {target.ref.sku}): {refusal}. Remedy: set regions.{region}.sku if that "
            f"vault's tier is another, mirror into a premium vault, or exclude the "
            f"{self.kind.value} from pair {self._pair.name!r}"
        )

    def _block(self, outcome: TargetOutcome, name: str, reason: str) -> None:
        outcome.blocked = reason
        self._log.warning(
            "mirror.blocked", item=self._item(name), target=outcome.target, reason=reason
        )

    def _conflict(self, outcome: TargetOutcome, name: str, reason: str) -> None:
        outcome.conflict = reason
        self._log.warning(
            "mirror.conflict", item=self._item(name), target=outcome.target, reason=reason
        )

    async def _carry_out(
        self,
        plan: BackupPlan,
        target: VaultClient,
        name: str,
        reads: SourceReads,
        outcome: TargetOutcome,
        deadline: asyncio.Timeout,
        key_type: Callable[[], Awaitable[str | None]],
        still_ours: Callable[[list[ItemProperties]], bool],
    ) -> Next:
        """The action of a key's or certificate's plan on one target: the key type is
        checked before anything is restored, then restore, replace, conflict or block."""
        if plan.restores:
            refusal = self._refusal_for_type(name, await key_type(), target)
            if refusal is not None:
                self._block(outcome, name, refusal)
                return Next.STOP
        if plan.action is Action.RESTORE:
            restored = await self._restore(target, name, reads, outcome, len(plan.missing))
            if restored is RestoreResult.RECOVERED:
                return Next.PLAN_AGAIN
            if restored is RestoreResult.NAME_IN_USE:
                return Next.STOP
        elif plan.action is Action.REPLACE:
            versions = len(plan.missing)
            await self._replace(target, name, reads, outcome, versions, deadline, still_ours)
            if outcome.error is not None or outcome.blocked is not None:
                return Next.STOP
        elif plan.action is Action.CONFLICT:
            self._conflict(outcome, name, plan.reason or "not kvdr's copy")
            return Next.STOP
        elif plan.action is Action.BLOCKED:
            self._block(outcome, name, plan.reason or "blocked")
        return Next.GO_ON

    async def _restore(
        self,
        target: VaultClient,
        name: str,
        reads: SourceReads,
        outcome: TargetOutcome,
        versions: int,
    ) -> RestoreResult:
        """Restore the source's backup where the target has no such name."""
        backup = await self.backup(reads, name)
        started = time.monotonic()
        region = target.ref.region
        try:
            await target.restore_item(self.kind, backup)
        except DeletedButRecoverable:
            # Azure refuses a restore into a soft-deleted name (409): bring the copy back
            # and plan again against it (DESIGN.md, mirror).
            await target.recover_item(self.kind, name)
            self._log.info("target.recovered", item=self._item(name), target=region)
            return RestoreResult.RECOVERED
        except ItemConflict:
            self._conflict(
                outcome,
                name,
                f"the name {name!r} is in use on the target by an object kvdr cannot see as "
                f"a {self.kind.value} (a certificate's key or secret, say); rename one side",
            )
            return RestoreResult.NAME_IN_USE
        outcome.copied += versions
        metrics.CHANGES_APPLIED.labels(self._pair.name, region, self.kind.value, "restore").inc()
        self._log.info(
            f"{self.kind.value}.restored",
            item=self._item(name),
            target=region,
            versions=versions,
            duration_ms=round((time.monotonic() - started) * 1000, 1),
        )
        return RestoreResult.RESTORED

    async def _replace(
        self,
        target: VaultClient,
        name: str,
        reads: SourceReads,
        outcome: TargetOutcome,
        versions: int,
        deadline: asyncio.Timeout,
        still_ours: Callable[[list[ItemProperties]], bool],
    ) -> None:
        """Replace kvdr's copy on `target` with the source's newer backup: delete, purge,
        restore. The only purge kvdr ever makes (DESIGN.md); the caller planned it only
        for a copy whose every version the new backup holds, and `still_ours` checks that
        again on a fresh listing right before the delete."""
        region = target.ref.region
        item = self._item(name)
        # Read before anything is deleted: a source that cannot answer leaves the copy be.
        backup = await self.backup(reads, name)
        current = await self._target_versions(target, name)
        if not current or not still_ours(current):
            # Changed on the target since it was planned (someone wrote a version, or
            # deleted it): nothing is deleted; the next pass plans again.
            self._log.warning("replace.aborted", item=item, target=region)
            outcome.error = ItemConflict(
                f"{item} on vault {region}: changed on the target while kvdr was about to "
                "replace its copy; left as it is, planned again on the next pass",
                vault=region,
                op="replace",
            )
            return
        deadline.reschedule(asyncio.get_running_loop().time() + REPLACE_TIMEOUT_SECONDS)
        started = time.monotonic()
        await target.delete_item(self.kind, name)
        try:
            await target.purge_item(self.kind, name)
        except VaultError as exc:
            # The copy must not stay deleted because its replacement failed.
            with suppress(VaultError):
                await target.recover_item(self.kind, name)
            if isinstance(exc, Forbidden):
                reason = (
                    f"{self.kind.value} {name!r} has {versions} version(s) on the primary that "
                    f"this target lacks, and the target refused to purge kvdr's copy "
                    f"({exc.code or exc.reason}) although its recovery level allowed it; the "
                    f"copy was recovered. Remedy: let kvdr's identity purge on this vault "
                    f"(permission keys/purge or certificates/purge), or mirror into a vault "
                    f"without purge protection"
                )
                self._block(outcome, name, reason)
                return
            raise
        try:
            await target.restore_item(self.kind, backup)
        except VaultError as exc:
            self._log.error(
                "replace.restore_failed",
                item=item,
                target=region,
                error=str(exc),
                state="absent on the target until the next pass restores it",
            )
            raise
        absence = time.monotonic() - started
        metrics.REPLACE_ABSENCE_SECONDS.labels(self._pair.name, region, self.kind.value).observe(
            absence
        )
        metrics.CHANGES_APPLIED.labels(self._pair.name, region, self.kind.value, "replace").inc()
        outcome.copied += versions
        self._log.info(
            f"{self.kind.value}.replaced",
            item=item,
            target=region,
            new_versions=versions,
            absence_ms=round(absence * 1000, 1),
        )
