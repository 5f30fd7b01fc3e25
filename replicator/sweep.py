"""The deletion sweep: deletions and recoveries on a primary, propagated to its targets.

Event Grid sends no delete, purge or recover events (DESIGN.md), so deletions are found
by comparing listings: on its own interval the sweep lists the primary's live and
deleted items of every kind of the pair and compares them with each target's checkpoint.

- An item the checkpoint holds as mirrored and the primary no longer lists as live was
  deleted there: it is soft-deleted on that target. Only kvdr's own copy is deleted: the
  target's latest version must carry kvdr's `kvdr-source-version` tag or the version id
  kvdr recorded (restored keys and certificates keep the source's ids); anything else is
  left in place and reported.
- An item the checkpoint marks as deleted and the primary lists as live again was
  recovered there: it is recovered on that target.
- Nothing is ever purged on a target. A purge on the primary changes nothing: the
  target keeps its soft-deleted copy until its own retention ends. An item deleted and
  purged between two sweeps (in neither list) is soft-deleted on the target like any
  other deletion, and logged as such.

Deleted items stay in the checkpoint, marked with `deleted_at`, so a recovery is
recognised. Sinks (the journal) get a DELETE or RECOVER change before any target applies
it. The deletion guard (`replicator.guard`) decides whether deletions may be applied.

This module plans (pure); `replicator.deletions` does the I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from replicator.checkpoint import ItemCheckpoint
from replicator.guard import GuardLimits, GuardState
from replicator.plan import SOURCE_VERSION_TAG
from replicator.settings import PairSettings
from vault.models import ItemKind, ItemProperties, ItemRef

GuardEvent = Literal["tripped", "updated", "released"]
RELEASED_BY_CONFIRMATION = "confirmation"
RELEASED_BY_CONFIGURATION = "configuration"


def item_ref(key: str) -> ItemRef | None:
    """The item of a checkpoint key `kind/name`; None for a key of no known kind."""
    kind, sep, name = key.partition("/")
    if not sep or not name:
        return None
    try:
        return ItemRef(ItemKind(kind), name)
    except ValueError:
        return None


@dataclass(frozen=True)
class SweepPlan:
    """What one sweep does, per target, and what the guard becomes."""

    # Deletions to apply now and recoveries to apply, per target region.
    deletes: Mapping[str, tuple[ItemRef, ...]]
    recovers: Mapping[str, tuple[ItemRef, ...]]
    # Items deleted on the primary and not yet deleted on every target.
    pending: tuple[ItemRef, ...]
    # Of `pending`: in neither of the primary's lists (deleted and purged since seen).
    vanished: frozenset[ItemRef]
    # Items live on the primary again and still marked deleted on some target.
    recovered: tuple[ItemRef, ...]
    # Of `pending`: not applied by this sweep (the guard holds them back).
    withheld: tuple[ItemRef, ...]
    # The pair's items the guard counts against: live on the primary plus `pending`.
    items: int
    guard: GuardState
    event: GuardEvent | None = None


def plan_sweep(
    pair: PairSettings,
    live: Iterable[ItemRef],
    deleted: Iterable[ItemRef],
    checkpoints: Mapping[str, Mapping[str, ItemCheckpoint]],
    guard: GuardState,
    limits: GuardLimits,
    now: float,
    *,
    confirm: bool = False,
) -> SweepPlan:
    """Compare the primary's lists with each target's checkpoint (pure).

    Only items the pair selects (kind and name globs) and that a checkpoint holds are
    considered: kvdr deletes nothing it did not mirror. With `confirm`, a tripped guard
    lets exactly the deletions it withheld through (those still pending) and is
    released; other pending deletions wait for the next sweep.
    """

    def selected(ref: ItemRef) -> bool:
        return ref.kind in pair.kinds and pair.selects(ref.name)

    live_set = {ref for ref in live if selected(ref)}
    pending_by: dict[str, list[ItemRef]] = {}
    recover_by: dict[str, list[ItemRef]] = {}
    for region, entries in sorted(checkpoints.items()):
        for key, entry in sorted(entries.items()):
            ref = item_ref(key)
            if ref is None or not selected(ref):
                continue
            if ref in live_set:
                if entry.deleted_at is not None:
                    recover_by.setdefault(region, []).append(ref)
            elif entry.deleted_at is None:
                pending_by.setdefault(region, []).append(ref)
    pending = tuple(sorted({r for refs in pending_by.values() for r in refs}, key=str))
    recovered = tuple(sorted({r for refs in recover_by.values() for r in refs}, key=str))
    items = len(live_set) + len(pending)
    keys = tuple(str(ref) for ref in pending)

    event: GuardEvent | None = None
    next_guard = guard
    if confirm and guard.tripped:
        confirmed = set(guard.withheld)
        allowed = {ref for ref in pending if str(ref) in confirmed}
        next_guard, event = guard.release(now, RELEASED_BY_CONFIRMATION), "released"
    elif guard.tripped:
        if guard.limits != limits and not limits.trips(len(pending), items):
            # The configuration changed and no longer counts this many as a mass deletion.
            allowed = set(pending)
            next_guard, event = guard.release(now, RELEASED_BY_CONFIGURATION), "released"
        else:
            allowed = set()
            next_guard = guard.trip(now, keys, items, limits)
            event = "updated" if next_guard != guard else None
    elif limits.trips(len(pending), items):
        allowed = set()
        next_guard, event = guard.trip(now, keys, items, limits), "tripped"
    else:
        allowed = set(pending)

    deletes = {
        region: tuple(ref for ref in refs if ref in allowed) for region, refs in pending_by.items()
    }
    return SweepPlan(
        deletes={region: refs for region, refs in deletes.items() if refs},
        recovers={region: tuple(refs) for region, refs in recover_by.items()},
        pending=pending,
        vanished=frozenset(pending) - set(deleted),
        recovered=recovered,
        withheld=tuple(ref for ref in pending if ref not in allowed),
        items=items,
        guard=next_guard,
        event=event,
    )


def merge_checkpoint_items(
    mine: Mapping[str, ItemCheckpoint], theirs: Mapping[str, ItemCheckpoint]
) -> dict[str, ItemCheckpoint]:
    """Both writers' entries, the more recent one where both have an item (pure).

    A checkpoint records what was applied on a target; when another process (a
    `kvdr sync --once`) wrote it meanwhile, the union of what either applied is true.
    """
    merged = dict(theirs)
    for key, entry in mine.items():
        other = merged.get(key)
        if other is None or entry.changed_at > other.changed_at:
            merged[key] = entry
    return merged


def kvdr_wrote(latest: ItemProperties, entry: ItemCheckpoint) -> bool:
    """True when a target item's latest version is kvdr's copy: a secret version kvdr
    wrote carries its tag; a restored key or certificate keeps the source's version id."""
    return SOURCE_VERSION_TAG in latest.tags or latest.version in (
        entry.source_version,
        entry.target_version,
    )
