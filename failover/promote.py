"""Promote and failback: the parts that are not the control record's.

- `promote_refusals`: why a promotion may not happen now (pure).
- `missing_versions`, `pending_loss`: what a promotion lost, item by item: the
  versions the journal recorded on the old primary that the new primary does not hold
  (the journal has seen every change the replicator read, also those it had not
  mirrored yet), and the items the daemon's lag tracker held as pending for the new
  primary that the journal never saw (the primary went before the replicator read them).
- `divergent_writes`: what was written on the old primary after the promotion that
  kvdr did not copy there (applications that kept writing to it): never dropped,
  listed by failback; `resync_secrets` brings such secrets back in line with the active
  region as a new version, so the divergent one stays in the old primary's history.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from vault.client import VaultItems
from vault.errors import ItemNotFound, VaultError
from vault.models import Attributes, ItemKind, ItemProperties

SOURCE_VERSION_TAG = "kvdr-source-version"
# How status writes a hidden name (replicator/guard.py, hidden_name); a vault's item
# names hold letters, digits and dashes only, so no real name starts with it.
HIDDEN_PREFIX = "sha256:"


def promote_refusals(
    active: str, to: str, health: Mapping[str, bool | None], errors: Mapping[str, str]
) -> list[str]:
    """A promotion is for a region that is gone; `to` must answer."""
    refusals: list[str] = []
    if to == active:
        refusals.append(f"{to} is already the active region")
    if health.get(active) is True:
        refusals.append(
            f"the active region {active} answers: use `kvdr failover switchover` (zero "
            "loss), or --force to promote anyway"
        )
    if health.get(to) is not True:
        why = errors.get(to) or "not probed"
        refusals.append(f"{to} does not answer ({why}): it cannot take writes")
    return refusals


@dataclass(frozen=True)
class LostItem:
    kind: str
    name: str
    versions: tuple[str, ...]
    # Age of the oldest lost version when the loss was measured.
    oldest_age_seconds: float
    # "journal": versions the journal recorded; "lag tracker": a change the daemon knew
    # of (a listing or an event) and never read, so its versions are unknown.
    seen_by: str = "journal"

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "name": self.name,
            "versions": list(self.versions),
            "oldest_age_seconds": round(self.oldest_age_seconds, 3),
            "seen_by": self.seen_by,
        }


def pending_refs(pending: Iterable[tuple[str, float]]) -> list[tuple[ItemKind, str]]:
    """The items of a lag reading that can be looked up (hashed names cannot)."""
    refs: list[tuple[ItemKind, str]] = []
    for key, _ in pending:
        kind, _, name = key.partition("/")
        if kind in ItemKind._value2member_map_ and not name.startswith(HIDDEN_PREFIX):
            refs.append((ItemKind(kind), name))
    return refs


def pending_loss(
    pending: Iterable[tuple[str, float]],
    present: Mapping[tuple[str, str], list[ItemProperties]],
    listed: Iterable[tuple[str, str]],
    now: datetime,
) -> list[LostItem]:
    """The lag tracker's pending items (`kind/name`, changed at epoch seconds) that the
    journal's listing (`listed`, by (kind, name)) does not name and that the new
    primary did not receive after the change: no version of it there was made or
    updated at or after the change (pure). A hashed name (the pair hides names) cannot be looked up
    and is reported as it is."""
    seen = set(listed)
    lost: list[LostItem] = []
    for key, since in pending:
        kind, _, name = key.partition("/")
        if (kind, name) in seen:
            continue
        seen.add((kind, name))
        changed = datetime.fromtimestamp(since, now.tzinfo)
        arrived = any(
            (v.updated_on or v.created_on or changed) >= changed
            for v in present.get((kind, name), [])
        )
        if arrived:
            continue
        lost.append(
            LostItem(
                kind=kind,
                name=name,
                versions=(),
                oldest_age_seconds=max(0.0, (now - changed).total_seconds()),
                seen_by="lag tracker",
            )
        )
    return lost


def held_versions(versions: Iterable[ItemProperties]) -> set[str]:
    """Every version id a vault's versions stand for: their own ids and, for kvdr's
    copies, the ids their tag names."""
    held: set[str] = set()
    for v in versions:
        held.add(v.version)
        tagged = v.tags.get(SOURCE_VERSION_TAG)
        if tagged:
            held.add(tagged)
    return held


def missing_versions(
    recorded: Mapping[tuple[str, str], list[ItemProperties]],
    present: Mapping[tuple[str, str], list[ItemProperties]],
    now: datetime,
) -> list[LostItem]:
    """Items whose recorded versions a vault does not hold (pure): `recorded` is what
    the journal saw on the old primary, `present` what the new primary holds, both by
    (kind, name). A version held by its copy (the tag) or as its origin counts as held."""
    lost: list[LostItem] = []
    for key, versions in sorted(recorded.items()):
        have = held_versions(present.get(key, []))
        gone = [
            v
            for v in versions
            if v.version not in have and v.tags.get(SOURCE_VERSION_TAG) not in have
        ]
        if not gone:
            continue
        oldest = min((v.created_on or v.updated_on or now) for v in gone)
        lost.append(
            LostItem(
                kind=key[0],
                name=key[1],
                versions=tuple(v.version for v in gone),
                oldest_age_seconds=max(0.0, (now - oldest).total_seconds()),
            )
        )
    return lost


async def vault_versions(
    vault: VaultItems, refs: Iterable[tuple[ItemKind, str]], concurrency: int = 8
) -> dict[tuple[str, str], list[ItemProperties]]:
    """The versions a vault holds of each item (absent: no entry)."""
    limit = asyncio.Semaphore(concurrency)
    found: dict[tuple[str, str], list[ItemProperties]] = {}

    async def one(kind: ItemKind, name: str) -> None:
        async with limit:
            try:
                found[(kind.value, name)] = await vault.list_versions(kind, name)
            except ItemNotFound:
                return

    async with asyncio.TaskGroup() as group:
        for kind, name in refs:
            group.create_task(one(kind, name))
    return found


@dataclass(frozen=True)
class DivergentItem:
    kind: str
    name: str
    versions: tuple[str, ...]
    # Rewritten from the active region (a new version on top of the divergent ones).
    resynced: bool = False
    # Absent on the active region: left as it is on the old primary.
    kept: bool = False
    error: str = ""

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "name": self.name,
            "versions": list(self.versions),
            "resynced": self.resynced,
            "kept": self.kept,
            "error": self.error,
        }


def divergent_versions(
    old: list[ItemProperties], active: list[ItemProperties], since: datetime
) -> list[ItemProperties]:
    """Versions on the old primary made at or after `since` (the promotion) that kvdr
    did not copy there and that the active region does not hold (pure)."""
    active_has = held_versions(active)
    return [
        v
        for v in old
        if (v.created_on or v.updated_on or since) >= since
        and SOURCE_VERSION_TAG not in v.tags
        and v.version not in active_has
    ]


async def divergent_writes(
    old: VaultItems,
    active: VaultItems,
    kinds: Iterable[ItemKind],
    selects: object,
    since: datetime,
) -> list[DivergentItem]:
    """Every item of the pair on the old primary with divergent versions."""
    found: list[DivergentItem] = []
    choose = selects if callable(selects) else (lambda name: True)
    for kind in sorted(kinds, key=lambda k: k.value):
        names = [p.name for p in await old.list_items(kind) if not p.managed and choose(p.name)]
        olds = await vault_versions(old, [(kind, n) for n in names])
        actives = await vault_versions(active, [(kind, n) for n in names])
        for (kind_name, name), versions in sorted(olds.items()):
            gone = divergent_versions(versions, actives.get((kind_name, name), []), since)
            if gone:
                found.append(DivergentItem(kind_name, name, tuple(v.version for v in gone)))
    return found


async def resync_secrets(
    old: VaultItems, active: VaultItems, items: list[DivergentItem]
) -> list[DivergentItem]:
    """Write the active region's current value of each divergent secret onto the old
    primary as a new version (tagged as kvdr's copy): the divergent version stays in
    the old primary's history. Keys and certificates are listed, not rewritten."""
    done: list[DivergentItem] = []
    for item in items:
        if item.kind != ItemKind.SECRET.value:
            done.append(
                DivergentItem(
                    item.kind,
                    item.name,
                    item.versions,
                    error="not rewritten: resolve by hand (docs/failover.md, failback)",
                )
            )
            continue
        try:
            try:
                versions = await active.list_versions(ItemKind.SECRET, item.name)
            except ItemNotFound:
                versions = []
            current = [v for v in versions if v.enabled]
            if not current:
                # Only the old primary has it: kept as it is, and mirrored from there
                # once the pair fails back.
                done.append(DivergentItem(item.kind, item.name, item.versions, kept=True))
                continue
            source = current[-1]
            mine = await old.list_versions(ItemKind.SECRET, item.name)
            if mine and mine[-1].tags.get(SOURCE_VERSION_TAG) == source.version:
                # The daemon resynchronised it already (the old primary's versions are
                # overwritten by newer ones after a failover; docs/failover.md).
                done.append(DivergentItem(item.kind, item.name, item.versions, resynced=True))
                continue
            value = await active.get_secret(item.name, source.version)
            attrs = Attributes.of(source)
            attrs.tags[SOURCE_VERSION_TAG] = source.version
            await old.set_secret(item.name, value.value, attrs)
        except VaultError as exc:
            done.append(DivergentItem(item.kind, item.name, item.versions, error=str(exc)))
            continue
        done.append(DivergentItem(item.kind, item.name, item.versions, resynced=True))
    return done
