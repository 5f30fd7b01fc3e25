"""Mirror: applies one secret's missing versions and attributes onto its targets.

Planning is pure (`replicator.plan`); this module does the I/O. A source value is read
once per item and version, however many targets need it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

import structlog

from replicator import metrics
from replicator.plan import SecretPlan, SkippedVersion, plan_secret, target_attributes
from replicator.settings import PairSettings
from replicator.sink import ChangeSink, changes_for_sink
from vault.client import VaultClient
from vault.errors import DeletedButRecoverable, ItemNotFound, NoAnswer, VaultError
from vault.models import ChangeOp, ItemKind, ItemProperties, ItemRef, SecretValue

log = structlog.get_logger("kvdr.mirror")


@dataclass
class TargetOutcome:
    """What happened on one target for one item."""

    target: str
    copied: int = 0
    updated: int = 0
    skipped: tuple[SkippedVersion, ...] = ()
    conflict: str | None = None
    error: VaultError | None = None
    target_version: str | None = None
    # The target cannot take the item's new versions (purge protection, a key type its
    # SKU does not hold): the reason and the remedy. Reported, the pair goes on.
    blocked: str | None = None

    @property
    def applied(self) -> bool:
        """True when the target now holds what the source has (or kvdr cannot do more)."""
        return self.error is None


@dataclass
class ItemOutcome:
    """One item synced onto several targets (and recorded in the pair's sinks)."""

    ref: ItemRef
    source_latest: ItemProperties | None
    targets: dict[str, TargetOutcome] = field(default_factory=dict)
    source_error: VaultError | None = None
    # A sink (the journal) could not record the item's changes: it is synced again.
    sink_error: Exception | None = None

    @property
    def name(self) -> str:
        return self.ref.name


# Called as soon as one target is done with an item, so a slow target does not delay
# what the others report (lag, checkpoints): (item outcome so far, that target's result).
TargetDone = Callable[["ItemOutcome", TargetOutcome], None]


class ItemMirror(Protocol):
    """Mirrors the items of one kind of one pair; one implementation per kind.

    Contract: sinks first (the journal holds a change before any target applies it),
    then every target concurrently, each reported through `on_target` when it is done.
    """

    async def sync(
        self, name: str, targets: list[str], on_target: TargetDone | None = None
    ) -> ItemOutcome:
        """Bring item `name` up to date on each of `targets` and in every sink."""
        ...


@runtime_checkable
class VaultLevelMirror(Protocol):
    """A mirror that also copies what belongs to the vault rather than to one item
    (certificate issuers and contacts); the replicator calls it on each full pass."""

    async def sync_vault_level(self, targets: list[str]) -> dict[str, VaultError | None]:
        """Bring the vault-level settings of each target in line; the error per target."""
        ...


@runtime_checkable
class StartCheck(Protocol):
    """A mirror with something to check before its pair starts (key types against the
    targets' SKUs): configuration errors found at start, not at 3 a.m."""

    async def check_start(self) -> list[str]:
        """Problems that make the pair unable to run, one message each (empty: fine)."""
        ...


class SecretValues:
    """Source values read once per (name, version) and shared by every target."""

    def __init__(self, source: VaultClient) -> None:
        self._source = source
        self._tasks: dict[tuple[str, str], asyncio.Task[SecretValue]] = {}

    async def get(self, name: str, version: str) -> SecretValue:
        key = (name, version)
        task = self._tasks.get(key)
        if task is None:
            task = asyncio.ensure_future(self._source.get_secret(name, version))
            self._tasks[key] = task
        return await task


class SecretMirror:
    """Mirrors secrets of one pair from its primary onto its secondaries."""

    def __init__(
        self,
        pair: PairSettings,
        source: VaultClient,
        targets: Mapping[str, VaultClient],
        sinks: Sequence[ChangeSink] = (),
        target_timeout_seconds: float = 15.0,
    ) -> None:
        self._pair = pair
        self._source = source
        self._targets = targets
        self._sinks = tuple(sinks)
        self._target_timeout = target_timeout_seconds
        self._log = log.bind(pair=pair.name, source=pair.primary.region)

    async def sync(
        self, name: str, targets: list[str], on_target: TargetDone | None = None
    ) -> ItemOutcome:
        """Bring secret `name` up to date on each of `targets` and in every sink."""
        ref = ItemRef(ItemKind.SECRET, name)
        try:
            source_versions = await self._source.list_versions(ItemKind.SECRET, name)
        except ItemNotFound:
            source_versions = []
        except VaultError as exc:
            return ItemOutcome(ref=ref, source_latest=None, source_error=exc)
        if not source_versions or source_versions[-1].managed:
            # Gone from the source since it was listed (deletions are the sweep's job),
            # or a certificate's secret named by an event: it travels with its certificate.
            return ItemOutcome(ref=ref, source_latest=None)
        outcome = ItemOutcome(ref=ref, source_latest=source_versions[-1])
        values = SecretValues(self._source)
        await self._record(ref, source_versions, values, outcome)

        async def one(region: str) -> None:
            result = await self._sync_target(name, source_versions, region, values)
            outcome.targets[region] = result
            if on_target is not None:
                on_target(outcome, result)

        await asyncio.gather(*(one(t) for t in targets))
        return outcome

    async def _record(
        self,
        ref: ItemRef,
        source_versions: list[ItemProperties],
        values: SecretValues,
        outcome: ItemOutcome,
    ) -> None:
        """Hand every sink what it lacks of this secret, values included."""
        now = datetime.now(UTC)
        for sink in self._sinks:
            try:
                recorded = await sink.recorded(self._pair.name, ref)
                changes = changes_for_sink(self._pair.name, ref, source_versions, recorded, now)
                filled = []
                for change in changes:
                    props = change.properties
                    if change.op is ChangeOp.NEW_VERSION and props is not None and props.enabled:
                        secret = await values.get(ref.name, props.version)
                        change = replace(change, payload=secret.value)
                    # A disabled version's value cannot be read: it is recorded without
                    # one, and restore reports it as such.
                    filled.append(change)
                if filled:
                    await sink.record(filled)
            except Exception as exc:  # any sink failure: the item is synced again later
                outcome.sink_error = exc
                self._log.warning("sink.failed", item=str(ref), error=str(exc))

    async def _sync_target(
        self,
        name: str,
        source_versions: list[ItemProperties],
        target_region: str,
        values: SecretValues,
    ) -> TargetOutcome:
        target = self._targets[target_region]
        outcome = TargetOutcome(target=target_region)
        try:
            async with asyncio.timeout(self._target_timeout):
                await self._sync_target_once(name, source_versions, target, values, outcome)
        except TimeoutError:
            exc = NoAnswer(
                f"secret/{name} on vault {target_region}: no result within "
                f"{self._target_timeout:.0f} s",
                vault=target_region,
                op="mirror",
            )
            outcome.error = exc
            metrics.REPLICATION_ERRORS.labels(self._pair.name, target_region, exc.reason).inc()
            self._log.warning("mirror.timeout", item=f"secret/{name}", target=target_region)
        return outcome

    async def _sync_target_once(
        self,
        name: str,
        source_versions: list[ItemProperties],
        target: VaultClient,
        values: SecretValues,
        outcome: TargetOutcome,
    ) -> None:
        target_region = outcome.target
        try:
            plan = await self._plan(name, source_versions, target)
            if plan.conflict is None and (plan.copies or plan.updates):
                try:
                    await self._apply(plan, target, values, outcome)
                except DeletedButRecoverable:
                    # Azure refuses a new version while the name is soft-deleted (409
                    # ObjectIsDeletedButRecoverable): recover it, then plan again against
                    # what recovery brought back.
                    await target.recover_item(ItemKind.SECRET, name)
                    self._log.info("target.recovered", item=f"secret/{name}", target=target_region)
                    plan = await self._plan(name, source_versions, target)
                    await self._apply(plan, target, values, outcome)
            outcome.skipped = plan.skipped
            outcome.conflict = plan.conflict
            if plan.conflict is not None:
                self._log.warning(
                    "mirror.conflict",
                    item=f"secret/{name}",
                    target=target_region,
                    reason=plan.conflict,
                )
        except VaultError as exc:
            outcome.error = exc
            metrics.REPLICATION_ERRORS.labels(self._pair.name, target_region, exc.reason).inc()
            self._log.warning(
                "mirror.failed",
                item=f"secret/{name}",
                target=target_region,
                reason=exc.reason,
                error=str(exc),
            )

    async def _plan(
        self, name: str, source_versions: list[ItemProperties], target: VaultClient
    ) -> SecretPlan:
        try:
            target_versions = await target.list_versions(ItemKind.SECRET, name)
        except ItemNotFound:
            target_versions = []
        return plan_secret(name, source_versions, target_versions, adopt=self._pair.adopt)

    async def _apply(
        self, plan: SecretPlan, target: VaultClient, values: SecretValues, outcome: TargetOutcome
    ) -> None:
        region = target.ref.region
        for copy in plan.copies:
            started = time.monotonic()
            secret = await values.get(plan.name, copy.source.version)
            written = await target.set_secret(
                plan.name, secret.value, target_attributes(copy.source)
            )
            outcome.copied += 1
            outcome.target_version = written.version
            metrics.CHANGES_APPLIED.labels(self._pair.name, region, "secret", "new_version").inc()
            self._log.info(
                "secret.mirrored",
                item=f"secret/{plan.name}",
                target=region,
                source_version=copy.source.version,
                target_version=written.version,
                duration_ms=round((time.monotonic() - started) * 1000, 1),
            )
        for update in plan.updates:
            started = time.monotonic()
            await target.update_properties(
                ItemKind.SECRET,
                plan.name,
                update.target_version,
                target_attributes(update.source),
            )
            outcome.updated += 1
            metrics.CHANGES_APPLIED.labels(self._pair.name, region, "secret", "update").inc()
            self._log.info(
                "secret.attributes_mirrored",
                item=f"secret/{plan.name}",
                target=region,
                source_version=update.source.version,
                target_version=update.target_version,
                duration_ms=round((time.monotonic() - started) * 1000, 1),
            )
