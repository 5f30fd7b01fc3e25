"""Retention (backups/retention.py): the pure plan never breaks a kept point in time, and
applying it on Azurite deletes exactly the planned blobs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from backups import paths
from backups.catalog import PairCatalog, build_catalog, load_catalog
from backups.retention import HOUR, enforce_retention, plan_retention
from backups.settings import RetentionPolicy
from backups.snapshot import create_snapshot
from backups.stores import BackupStores
from backups.verify import verify_pair
from storage import AzureBlobStore
from storage.store import BlobInfo
from tests.backups.conftest import RING, make_journal, secret_change

PAIR = "app"
POLICY = RetentionPolicy()
START = datetime(2025, 1, 1, tzinfo=UTC).timestamp()


def info(name: str, first: float, last: float) -> BlobInfo:
    return BlobInfo(name=name, size=100, etag='"x"', metadata=paths.object_metadata(first, last))


@st.composite
def catalogs(draw: st.DrawFn) -> tuple[PairCatalog, float]:
    """One or two generations of segments (times rising by minutes to days) with
    snapshots at some segment ends; `now` a little after the last change."""
    infos: list[BlobInfo] = []
    at = START
    for g in range(draw(st.integers(1, 2))):
        gen = paths.new_generation(datetime.fromtimestamp(at, UTC), f"0000000{g}")
        seq = 0
        for _ in range(draw(st.integers(1, 14))):
            first_at = at + draw(st.integers(60, 4 * 86400))
            last_at = first_at + draw(st.integers(0, 3600))
            first, seq = seq + 1, seq + draw(st.integers(1, 3))
            infos.append(info(paths.segment_blob(PAIR, gen, first, seq), first_at, last_at))
            if draw(st.booleans()):
                infos.append(info(paths.snapshot_blob(PAIR, gen, seq), last_at, last_at))
            at = last_at
        at += draw(st.integers(60, 86400))
    infos.append(BlobInfo(name=paths.head_blob(PAIR), size=10, etag='"h"'))
    now = at + draw(st.integers(0, 3 * 86400))
    return build_catalog(PAIR, infos), now


def restorable(catalog: PairCatalog, t: float) -> bool:
    """Whether second `t` can be restored from `catalog` (snapshot + contiguous segments)."""
    gen = catalog.generation_for(t)
    if gen is None:
        return False
    base = gen.base_snapshot(t)
    if base is None and not gen.starts_complete():
        return False
    needed = [s.name.last for s in gen.segments if s.first_at is not None and s.first_at <= t]
    since = base.sequence if base else 0
    until = max([since, *needed])
    return not gen.gaps(since, until)


def pruned(catalog: PairCatalog, delete: tuple[str, ...]) -> PairCatalog:
    keep = [
        info(s.blob, s.first_at or 0, s.last_at or 0)
        for g in catalog.ordered()
        for s in g.segments
        if s.blob not in delete
    ] + [
        info(s.blob, s.at or 0, s.at or 0)
        for g in catalog.ordered()
        for s in g.snapshots
        if s.blob not in delete
    ]
    return build_catalog(PAIR, keep)


class TestPlan:
    @given(catalogs())
    @settings(max_examples=200, deadline=None)
    def test_keep_all_window_stays_restorable(self, scenario: tuple[PairCatalog, float]) -> None:
        """Every second of the keep-all window that was restorable still is."""
        catalog, now = scenario
        plan = plan_retention(catalog, POLICY, now)
        after = pruned(catalog, plan.delete)
        window = now - POLICY.keep_all_hours * HOUR
        moments = {window, now} | {
            t
            for g in catalog.ordered()
            for s in g.segments
            for t in (s.first_at, s.last_at)
            if t is not None and t >= window
        }
        for t in moments:
            if restorable(catalog, t):
                assert restorable(after, t), (t, plan.delete)

    @given(catalogs())
    @settings(max_examples=200, deadline=None)
    def test_kept_points_and_the_newest_snapshot_survive(
        self, scenario: tuple[PairCatalog, float]
    ) -> None:
        """The newest snapshot, the head and every kept snapshot point stay; every kept
        snapshot point is itself restorable afterwards."""
        catalog, now = scenario
        plan = plan_retention(catalog, POLICY, now)
        snapshots = [s for g in catalog.ordered() for s in g.snapshots]
        if snapshots:
            newest = max(snapshots, key=lambda s: (s.at or 0, s.name.generation, s.sequence))
            assert newest.blob not in plan.delete
        assert paths.head_blob(PAIR) not in plan.delete
        after = pruned(catalog, plan.delete)
        for snap in snapshots:
            if snap.blob not in plan.delete and snap.at is not None:
                assert restorable(after, snap.at)
        assert set(plan.delete) <= {
            s.blob for g in catalog.ordered() for s in (*g.segments, *g.snapshots)
        }

    def test_tiers_thin_out_old_snapshots(self) -> None:
        """Hourly snapshots over 60 days keep everything for 48 h, one per hour to 7 days,
        one per day to 35 days, one per month beyond; old segments go."""
        gen = paths.new_generation(datetime.fromtimestamp(START, UTC), "0000000a")
        infos = []
        hours = 60 * 24
        for h in range(1, hours + 1):
            at = START + h * HOUR
            infos.append(info(paths.segment_blob(PAIR, gen, h, h), at, at))
            infos.append(info(paths.snapshot_blob(PAIR, gen, h), at, at))
        now = START + hours * HOUR + 60
        plan = plan_retention(build_catalog(PAIR, infos), POLICY, now)
        kept_snapshots = [b for b in plan.kept if b.endswith(".snap")]
        reasons = [plan.kept[b] for b in kept_snapshots]
        assert reasons.count("inside the keep-all window") + reasons.count("newest snapshot") == 48
        assert reasons.count("hourly point") == 5 * 24
        assert 27 <= reasons.count("daily point") <= 29
        # January's last snapshot is its month's point (also a daily one here).
        january_last = paths.snapshot_blob(PAIR, gen, 31 * 24 - 1)
        assert january_last in plan.kept
        assert paths.snapshot_blob(PAIR, gen, 24) not in plan.kept  # Jan 2: no point
        kept_segments = [b for b in plan.kept if b.endswith(".seg")]
        assert len(kept_segments) == 48  # only the window's replay chain


class TestApply:
    async def test_enforce_deletes_old_segments_only(self, blob_container: AzureBlobStore) -> None:
        """On real storage: segments older than the window's base snapshot are deleted,
        restore points inside the window stay."""
        now = datetime.now(UTC)
        journal = make_journal(blob_container)
        stores = BackupStores(blob_container)
        for days in (10, 5, 3):
            await journal.record([secret_change("db", f"v{days}", at=now - timedelta(days=days))])
            await journal.flush()
            await create_snapshot(stores, RING, PAIR)
        await journal.record([secret_change("db", "recent", at=now - timedelta(hours=1))])
        await journal.flush()
        plan = await enforce_retention(blob_container, PAIR, POLICY, now=now.timestamp())
        gen = (await load_catalog(blob_container, PAIR)).latest
        assert gen is not None
        assert [(s.name.first, s.name.last) for s in gen.segments] == [(4, 4)]
        assert [s.sequence for s in gen.snapshots] == [1, 2, 3]  # daily points + window base
        assert len(plan.delete) == 3
        report = await verify_pair(blob_container, RING, PAIR)
        assert report.ok, report.findings  # what retention leaves is a clean chain
