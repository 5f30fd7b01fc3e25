"""Mirror: applies one secret's missing versions and attributes onto its targets.

Planning is pure (`replicator.plan`); this module does the I/O. A source value is read
once per item and version, however many targets need it.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Generic, Protocol, Self, TypeVar, runtime_checkable

import structlog

from replicator import metrics
from replicator.plan import (
    PLACEHOLDER_VALUE,
    SecretPlan,
    SkippedVersion,
    UpdateVersion,
    listed_in_sync,
    placeholder_attributes,
    plan_secret,
    target_attributes,
    versions_digest,
)
from replicator.settings import PairSettings, ReplicatorSettings
from replicator.sink import ChangeSink, changes_for_sink
from vault.client import VaultClient
from vault.errors import BadRequest, DeletedButRecoverable, ItemNotFound, NoAnswer, VaultError
from vault.models import Attributes, ChangeOp, ItemKind, ItemProperties, ItemRef, SecretValue

log = structlog.get_logger("kvdr.mirror")

# The per-sync cache of source reads a kind uses (secret values, backup blobs).
R = TypeVar("R")


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
    # `plan.versions_digest` of the source versions this sync applied (kinds that prove
    # items in sync from a target listing keep it in the checkpoint).
    history: str | None = None

    @property
    def name(self) -> str:
        return self.ref.name


@dataclass(frozen=True)
class ListedItem:
    """What a full pass knows of one item on one target before syncing it: the target's
    latest version as the target's listing shows it (None: not listed) and the history
    its checkpoint holds for the item."""

    latest: ItemProperties | None
    history: str | None = None


# Called as soon as one target is done with an item, so a slow target does not delay
# what the others report (lag, checkpoints): (item outcome so far, that target's result).
TargetDone = Callable[["ItemOutcome", TargetOutcome], None]


class ItemMirror(Protocol):
    """Mirrors the items of one kind of one pair; one implementation per kind.

    Contract: sinks first (the journal holds a change before any target applies it),
    then every target concurrently, each reported through `on_target` when it is done.
    """

    # True when `sync` can take a target's listing (`listed`) as proof that the target
    # holds the item, and so skip that target's per-item reads.
    proves_by_listing: bool

    async def sync(
        self,
        name: str,
        targets: list[str],
        on_target: TargetDone | None = None,
        listed: Mapping[str, ListedItem] | None = None,
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


class MirrorBase(ABC, Generic[R]):
    """What every kind's mirror shares: read the source's versions once, hand the sinks
    what they lack first, then bring each target up to date concurrently, each within the
    target timeout and reported through `on_target` as soon as it is done.

    A kind supplies the per-sync cache of source reads (`_new_reads`), the material a
    sink gets with a new version (`_payload`) and the work on one target
    (`_sync_target_once`).
    """

    kind: ItemKind
    proves_by_listing = False

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

    @classmethod
    def for_pair(
        cls,
        pair: PairSettings,
        settings: ReplicatorSettings,
        source: VaultClient,
        targets: Mapping[str, VaultClient],
        sinks: Sequence[ChangeSink],
    ) -> Self:
        """The factory `replicator.pair.MIRRORS` calls."""
        return cls(pair, source, targets, sinks, settings.target_timeout_seconds)

    def _item(self, name: str) -> str:
        return f"{self.kind.value}/{name}"

    async def _update(
        self,
        target: VaultClient,
        name: str,
        update: UpdateVersion,
        attributes: Attributes,
        outcome: TargetOutcome,
    ) -> None:
        """Write the source's attributes onto the target version that holds it already."""
        started = time.monotonic()
        region = target.ref.region
        await target.update_properties(self.kind, name, update.target_version, attributes)
        outcome.updated += 1
        metrics.CHANGES_APPLIED.labels(self._pair.name, region, self.kind.value, "update").inc()
        self._log.info(
            f"{self.kind.value}.attributes_mirrored",
            item=self._item(name),
            target=region,
            source_version=update.source.version,
            target_version=update.target_version,
            duration_ms=round((time.monotonic() - started) * 1000, 1),
        )

    async def sync(
        self,
        name: str,
        targets: list[str],
        on_target: TargetDone | None = None,
        listed: Mapping[str, ListedItem] | None = None,
    ) -> ItemOutcome:
        """Bring item `name` up to date in every sink, then on each of `targets`.

        A target whose entry in `listed` proves it in sync (`_listed_in_sync`) is not
        read at all; every other target gets the per-item path.
        """
        ref = ItemRef(self.kind, name)
        try:
            source_versions = await self._source.list_versions(self.kind, name)
        except (ItemNotFound, BadRequest):
            # The primary says there is no such item (400: nor can there be, by that
            # name): nothing to apply, and its pending mark is cleared.
            source_versions = []
        except VaultError as exc:
            return ItemOutcome(ref=ref, source_latest=None, source_error=exc)
        if not source_versions or source_versions[-1].managed:
            # Gone from the source since it was listed (deletions are the sweep's job),
            # or a certificate's key or secret named by an event: it travels with its
            # certificate.
            return ItemOutcome(ref=ref, source_latest=None)
        outcome = ItemOutcome(ref=ref, source_latest=source_versions[-1])
        if self.proves_by_listing:
            outcome.history = versions_digest(source_versions)
        reads = self._new_reads()
        await self._record(ref, source_versions, reads, outcome)

        async def one(region: str) -> None:
            hint = (listed or {}).get(region)
            if hint is not None and self._listed_in_sync(source_versions, hint):
                result = TargetOutcome(target=region)
            else:
                result = await self._sync_target(name, source_versions, region, reads)
            outcome.targets[region] = result
            if on_target is not None:
                on_target(outcome, result)

        await asyncio.gather(*(one(t) for t in targets))
        return outcome

    # -- what each kind implements --------------------------------------------------------

    def _listed_in_sync(self, source_versions: list[ItemProperties], listed: ListedItem) -> bool:
        """True when the target's listing entry proves the target holds the item (kinds
        with `proves_by_listing` say when)."""
        return False

    @abstractmethod
    def _new_reads(self) -> R:
        """A fresh cache of source reads, shared by the sinks and targets of one sync."""

    @abstractmethod
    async def _payload(self, ref: ItemRef, props: ItemProperties, reads: R) -> str | bytes | None:
        """The material recorded with a new version, or None to record it without."""

    @abstractmethod
    async def _sync_target_once(
        self,
        name: str,
        source_versions: list[ItemProperties],
        target: VaultClient,
        reads: R,
        outcome: TargetOutcome,
        deadline: asyncio.Timeout,
    ) -> None:
        """Plan and apply one item on one target (VaultErrors are reported by the caller)."""

    # -- shared steps -----------------------------------------------------------------------

    async def _record(
        self,
        ref: ItemRef,
        source_versions: list[ItemProperties],
        reads: R,
        outcome: ItemOutcome,
    ) -> None:
        """Hand every sink what it lacks of this item, new versions with their material."""
        now = datetime.now(UTC)
        for sink in self._sinks:
            try:
                recorded = await sink.recorded(self._pair.name, ref)
                changes = changes_for_sink(self._pair.name, ref, source_versions, recorded, now)
                filled = []
                for change in changes:
                    if change.op is ChangeOp.NEW_VERSION and change.properties is not None:
                        payload = await self._payload(ref, change.properties, reads)
                        if payload is not None:
                            change = replace(change, payload=payload)
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
        region: str,
        reads: R,
    ) -> TargetOutcome:
        target = self._targets[region]
        outcome = TargetOutcome(target=region)
        item = self._item(name)
        try:
            async with asyncio.timeout(self._target_timeout) as deadline:
                await self._sync_target_once(
                    name, source_versions, target, reads, outcome, deadline
                )
        except TimeoutError:
            outcome.error = NoAnswer(
                f"{item} on vault {region}: no result within the time allowed",
                vault=region,
                op="mirror",
            )
            self._log.warning("mirror.timeout", item=item, target=region)
        except VaultError as exc:
            outcome.error = exc
            self._log.warning(
                "mirror.failed", item=item, target=region, reason=exc.reason, error=str(exc)
            )
        if outcome.error is not None:
            metrics.REPLICATION_ERRORS.labels(self._pair.name, region, outcome.error.reason).inc()
        return outcome


class SecretMirror(MirrorBase[SecretValues]):
    """Mirrors secrets of one pair from its primary onto its secondaries."""

    kind = ItemKind.SECRET
    # kvdr's tag on a target version names the source version it copies, and listings
    # carry tags: a target listing proves most items of a full pass in sync.
    proves_by_listing = True

    def _new_reads(self) -> SecretValues:
        return SecretValues(self._source)

    def _listed_in_sync(self, source_versions: list[ItemProperties], listed: ListedItem) -> bool:
        return listed_in_sync(source_versions, listed.latest, listed.history)

    async def _payload(
        self, ref: ItemRef, props: ItemProperties, reads: SecretValues
    ) -> str | bytes | None:
        # A disabled version's value cannot be read: it is recorded without one, and
        # restore reports it as such.
        if not props.enabled:
            return None
        return (await reads.get(ref.name, props.version)).value

    async def _sync_target_once(
        self,
        name: str,
        source_versions: list[ItemProperties],
        target: VaultClient,
        values: SecretValues,
        outcome: TargetOutcome,
        deadline: asyncio.Timeout,
    ) -> None:
        target_region = outcome.target
        plan = await self._plan(name, source_versions, target)
        if plan.conflict is None and not plan.in_sync:
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

    async def _plan(
        self, name: str, source_versions: list[ItemProperties], target: VaultClient
    ) -> SecretPlan:
        try:
            target_versions = await target.list_versions(ItemKind.SECRET, name)
        except ItemNotFound:
            target_versions = []
        return plan_secret(
            name, source_versions, target_versions, adopt=self._pair.adopts(target.ref.region)
        )

    async def _write(
        self,
        target: VaultClient,
        name: str,
        value: str,
        attributes: Attributes,
        outcome: TargetOutcome,
        *,
        source_version: str,
        started: float,
        placeholder: bool = False,
    ) -> None:
        """A new target version: a copy of a source version's value, or a placeholder."""
        region = target.ref.region
        written = await target.set_secret(name, value, attributes)
        outcome.copied += 1
        outcome.target_version = written.version
        change = "placeholder" if placeholder else "new_version"
        metrics.CHANGES_APPLIED.labels(self._pair.name, region, "secret", change).inc()
        self._log.info(
            "secret.placeholder_mirrored" if placeholder else "secret.mirrored",
            item=f"secret/{name}",
            target=region,
            source_version=source_version,
            target_version=written.version,
            duration_ms=round((time.monotonic() - started) * 1000, 1),
        )

    async def _apply(
        self, plan: SecretPlan, target: VaultClient, values: SecretValues, outcome: TargetOutcome
    ) -> None:
        for copy in plan.copies:
            started = time.monotonic()
            secret = await values.get(plan.name, copy.source.version)
            await self._write(
                target,
                plan.name,
                secret.value,
                target_attributes(copy.source),
                outcome,
                source_version=copy.source.version,
                started=started,
            )
        for placeholder in plan.placeholders:
            # No value is read: the source refuses it. The target refuses it too.
            await self._write(
                target,
                plan.name,
                PLACEHOLDER_VALUE,
                placeholder_attributes(placeholder.source),
                outcome,
                source_version=placeholder.source.version,
                started=time.monotonic(),
                placeholder=True,
            )
        for update in plan.updates:
            attributes = (
                placeholder_attributes(update.source)
                if update.placeholder
                else target_attributes(update.source)
            )
            await self._update(target, plan.name, update, attributes, outcome)
