"""Audit retention on a real (local-folder) store: old whole segments go, a signed start
marker keeps the trail verifiable, and a removed segment or marker is still caught."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backups import audit_chain as chain
from backups.audit_chain import Actor, AuditEvent
from backups.audit_log import AuditLog, verify_trail
from backups.audit_retention import enforce_audit_retention, plan_audit_retention
from storage.local_folder import LocalFolderStore
from storage.settings import LocalFolderSettings
from storage.store import BlobInfo
from tests.backups.test_audit_chain import RING

DAY = 86400.0
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def event(day: int) -> AuditEvent:
    return AuditEvent("failover.approve", "ok", Actor("p", "h"), T0 + timedelta(days=day))


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[LocalFolderStore]:
    async with LocalFolderStore(LocalFolderSettings(str(tmp_path / "blobs"))) as folder:
        yield folder


async def trail_of_days(store: LocalFolderStore, days: list[int]) -> None:
    """One segment per day given (each of one entry)."""
    log = AuditLog(store, RING, flush_max_entries=1)
    log.append(*(event(d) for d in days))
    await log.flush()


def info(first: int, last_at: float | None) -> BlobInfo:
    meta = {} if last_at is None else {chain.LAST_AT_KEY: str(last_at)}
    return BlobInfo(chain.segment_blob(first), 1, "e", metadata=meta)


class TestPlan:
    def test_only_a_leading_run_of_old_segments_and_never_the_newest(self) -> None:
        """Old, old, unknown time, old, old(newest): only the first two go."""
        now = 1000 * DAY
        plan = plan_audit_retention(
            [info(1, 1.0), info(2, 2.0), info(3, None), info(4, 3.0), info(5, 4.0)], now, DAY
        )
        assert plan.delete == (chain.segment_blob(1), chain.segment_blob(2))
        assert plan.start == 3
        everything_old = plan_audit_retention([info(1, 1.0), info(2, 2.0)], now, DAY)
        assert everything_old.delete == (chain.segment_blob(1),)


class TestApply:
    async def test_old_segments_go_and_the_trail_still_verifies(
        self, store: LocalFolderStore
    ) -> None:
        """Entries of days 0-4 with 2 days kept on day 5: days 0-2 are deleted, the
        marker says seq 4, verify is intact from there, and appending goes on."""
        await trail_of_days(store, [0, 1, 2, 3, 4])
        now = (T0 + timedelta(days=5)).timestamp()
        plan = await enforce_audit_retention(store, RING, 2 * DAY + 1, now)
        assert plan.start == 4 and len(plan.delete) == 3
        names = [i.name for i in await store.list("audit/")]
        assert names == [chain.segment_blob(4), chain.segment_blob(5), chain.start_blob(4)]
        report = await verify_trail(store, RING)
        assert report.ok, report.problems
        assert (report.first_seq, report.start.first) == (4, 4)
        await trail_of_days(store, [5])
        assert (await verify_trail(store, RING)).last_seq == 6

    async def test_removing_a_segment_or_the_marker_after_retention_is_caught(
        self, store: LocalFolderStore
    ) -> None:
        """After retention: a middle segment removed is a gap; the marker removed means
        the trail no longer begins at seq 1: both fail verify."""
        await trail_of_days(store, [0, 1, 2, 3, 4, 5])
        now = (T0 + timedelta(days=6)).timestamp()
        plan = await enforce_audit_retention(store, RING, 3 * DAY + 1, now)
        assert plan.start == 4 and (await verify_trail(store, RING)).ok
        await store.delete(chain.segment_blob(5))
        found = [str(p) for p in (await verify_trail(store, RING)).problems]
        assert f"{chain.segment_blob(6)} seq 6: seq 5 missing (removed segment?)" in found
        await store.delete(chain.start_blob(4))
        found = [str(p) for p in (await verify_trail(store, RING)).problems]
        assert f"{chain.segment_blob(4)} seq 4: seq 1-3 missing before the first segment" in found

    async def test_a_forged_marker_is_refused(self, store: LocalFolderStore) -> None:
        """A start marker not signed by a pinned signer is named, and not used."""
        from tests.backups.test_audit_chain import FORGER

        await trail_of_days(store, [0, 1, 2])
        await store.delete(chain.segment_blob(1))
        await store.put_if_absent(chain.start_blob(2), await chain.encode_start(2, "x", FORGER))
        found = [str(p) for p in (await verify_trail(store, RING)).problems]
        assert any(f.startswith(chain.start_blob(2)) and "not pinned" in f for f in found)
        assert any("seq 1 missing before the first segment" in f for f in found)
