"""Retention: which backup objects to keep, planned purely, then applied.

Kept points in time:
- every second of the last `keep_all_hours`: the newest snapshot taken at or before the
  window's start (or the generation's start, when it has none), and every segment after
  it, in every generation that reaches into the window;
- older points are snapshots: the newest snapshot of each hour up to `hourly_days`, of
  each day up to `daily_days`, of each calendar month (UTC) up to `monthly_months`.

Never deleted: the newest snapshot of the pair, the head blob, a segment that a kept point
still needs (the window's replay chain, or a generation without any snapshot that still
has a point inside the horizon), and anything kvdr cannot parse.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog

from backups.catalog import GenerationCatalog, PairCatalog, SnapshotEntry, load_catalog
from backups.settings import RetentionPolicy
from storage.errors import BlobNotFound
from storage.store import BlobStore

log = structlog.get_logger("kvdr.backups")

HOUR = 3600.0
DAY = 86400.0


@dataclass(frozen=True)
class RetentionPlan:
    """Blobs to delete, and why each kept object is kept."""

    pair: str
    delete: tuple[str, ...]
    kept: dict[str, str] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.delete


def _month_index(ts: float) -> int:
    moment = datetime.fromtimestamp(ts, UTC)
    return moment.year * 12 + moment.month - 1


def _month_start(index: int) -> float:
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC).timestamp()


def _select(
    snapshots: Iterable[SnapshotEntry],
    since: float,
    until: float,
    bucket_of: Callable[[float], int],
) -> dict[int, SnapshotEntry]:
    """The newest snapshot of each bucket among those taken in [since, until)."""
    chosen: dict[int, SnapshotEntry] = {}
    for snap in snapshots:
        if snap.at is None or not since <= snap.at < until:
            continue
        key = bucket_of(snap.at)
        best = chosen.get(key)
        if (
            best is None
            or (best.at or 0) < snap.at
            or (best.at == snap.at and best.sequence < snap.sequence)
        ):
            chosen[key] = snap
    return chosen


def plan_retention(catalog: PairCatalog, policy: RetentionPolicy, now: float) -> RetentionPlan:
    """What to delete from `catalog` at time `now` (pure)."""
    kept: dict[str, str] = {}
    window = now - policy.keep_all_hours * HOUR
    hourly_since = now - policy.hourly_days * DAY
    daily_since = now - policy.daily_days * DAY
    oldest_month = _month_start(_month_index(now) - policy.monthly_months + 1)
    horizon = min(window, hourly_since, daily_since)
    if policy.monthly_months:
        horizon = min(horizon, oldest_month)

    snapshots = [s for g in catalog.ordered() for s in g.snapshots]
    tiers: list[tuple[str, float, Callable[[float], int]]] = [
        ("hourly point", hourly_since, lambda at: int(at // HOUR)),
        ("daily point", daily_since, lambda at: int(at // DAY)),
    ]
    if policy.monthly_months:
        tiers.append(("monthly point", oldest_month, _month_index))
    for reason, since, bucket in tiers:
        for snap in _select(snapshots, since, window, bucket).values():
            kept.setdefault(snap.blob, reason)
    for snap in snapshots:
        if snap.at is not None and snap.at >= window:
            kept.setdefault(snap.blob, "inside the keep-all window")
    newest = max(
        snapshots, key=lambda s: (s.at or 0.0, s.name.generation, s.sequence), default=None
    )
    if newest is not None:
        kept[newest.blob] = "newest snapshot"
    latest_gen = catalog.latest
    for gen in catalog.ordered():
        _keep_window_chain(gen, window, kept, is_latest=gen is latest_gen)
        _keep_snapshotless(gen, horizon, kept)
    if catalog.head is not None:
        kept[catalog.head.name] = "journal head"
    delete = [
        blob
        for gen in catalog.ordered()
        for blob in [s.blob for s in gen.segments] + [s.blob for s in gen.snapshots]
        if blob not in kept
    ]
    return RetentionPlan(pair=catalog.pair, delete=tuple(delete), kept=kept)


def _keep_window_chain(
    gen: GenerationCatalog, window: float, kept: dict[str, str], *, is_latest: bool
) -> None:
    """Everything a restore to any second of the keep-all window needs in `gen`."""
    latest = gen.latest_restorable()
    reaches_window = latest is not None and latest >= window
    if not (reaches_window or is_latest):
        return
    base = gen.base_snapshot(window)
    since = base.sequence if base is not None else 0
    if base is not None:
        kept.setdefault(base.blob, "base of the keep-all window")
    for seg in gen.segments:
        if seg.name.last > since:
            kept.setdefault(seg.blob, "needed by the keep-all window")


def _keep_snapshotless(gen: GenerationCatalog, horizon: float, kept: dict[str, str]) -> None:
    """A generation without snapshots restores only from its segments: keep them while
    any of its seconds is inside the retention horizon."""
    if gen.snapshots:
        return
    latest = gen.latest_restorable()
    if latest is None or latest >= horizon:
        for seg in gen.segments:
            kept.setdefault(seg.blob, "generation without a snapshot")


async def apply_retention(store: BlobStore, plan: RetentionPlan) -> int:
    """Delete the plan's blobs; returns how many were deleted (absent ones count)."""
    deleted = 0
    for name in plan.delete:
        with contextlib.suppress(BlobNotFound):
            await store.delete(name)
        deleted += 1
    if deleted:
        log.info("backups.retention_applied", pair=plan.pair, deleted=deleted, kept=len(plan.kept))
    return deleted


async def enforce_retention(
    store: BlobStore, pair: str, policy: RetentionPolicy, *, now: float
) -> RetentionPlan:
    """Plan against a fresh listing and apply."""
    plan = plan_retention(await load_catalog(store, pair), policy, now)
    await apply_retention(store, plan)
    return plan
