"""The audit log against a real (local-folder) store: appends become signed segments,
concurrent writers keep one chain, the buffer stays bounded through an outage and says
what it dropped, and backup retention never touches the trail."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from backups import audit_chain as chain
from backups.audit_chain import Actor, AuditEvent
from backups.audit_log import AuditLog, read_trail, verify_trail
from backups.retention import enforce_retention
from backups.settings import RetentionPolicy
from backups.snapshot import create_snapshot
from backups.stores import BackupStores
from storage.errors import StorageError
from storage.local_folder import LocalFolderStore
from storage.settings import LocalFolderSettings
from tests.backups.conftest import RING as BACKUP_RING
from tests.backups.conftest import make_journal, secret_change
from tests.backups.test_audit_chain import RING

ACTOR = Actor("kvdr-test", "host-a")


def event(n: int, pair: str = "app") -> AuditEvent:
    return AuditEvent(
        "mirror.set",
        "ok",
        ACTOR,
        datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=n),
        pair=pair,
        item=("secret", f"s{n}"),
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[LocalFolderStore]:
    async with LocalFolderStore(LocalFolderSettings(str(tmp_path / "blobs"))) as folder:
        yield folder


class TestAppend:
    async def test_appends_become_signed_segments_that_verify(
        self, store: LocalFolderStore
    ) -> None:
        """Seven events at five per segment: two segments, seq 1-7, intact."""
        log = AuditLog(store, RING, flush_max_entries=5)
        log.append(*(event(i) for i in range(7)))
        assert await log.flush() == 7
        names = [i.name for i in await store.list("audit/")]
        assert names == [chain.segment_blob(1), chain.segment_blob(6)]
        report = await verify_trail(store, RING)
        assert report.ok and (report.first_seq, report.last_seq) == (1, 7)

    async def test_concurrent_writers_keep_one_chain(self, store: LocalFolderStore) -> None:
        """Two writers (say the daemon and a failover command) racing for the tail both
        get every entry in, and the chain stays intact."""
        a = AuditLog(store, RING, flush_max_entries=2)
        b = AuditLog(store, RING, flush_max_entries=2)
        a.append(event(0))
        await a.flush()
        b.append(event(1))
        await b.flush()  # a's cached tail is stale now
        for i in range(20):
            a.append(event(100 + i, "a"))
            b.append(event(200 + i, "b"))
        with capture_logs() as logs:
            await asyncio.gather(a.flush(), b.flush(), a.flush(), b.flush())
        assert any(e["event"] == "audit.append_conflict" for e in logs)
        report = await verify_trail(store, RING)
        assert report.ok, report.problems
        assert report.last_seq == 42
        trail = await read_trail(store, RING)
        pairs = [e["pair"] for s in trail.segments for e in s.entries]
        assert (pairs.count("a"), pairs.count("b")) == (20, 20)


class TestOutage:
    async def test_a_full_buffer_drops_and_says_so_in_the_trail(
        self, store: LocalFolderStore, tmp_path: Path
    ) -> None:
        """While storage is down the buffer holds at most `max_buffered`; the rest is
        dropped, counted, and the first segment after the outage records how many."""
        log = AuditLog(store, RING, flush_max_entries=4, max_buffered=6)
        root = tmp_path / "blobs"
        shutil.move(root, tmp_path / "away")
        root.write_text("storage is down")
        try:
            with capture_logs() as logs:
                log.append(*(event(i) for i in range(10)))
                assert log.buffered == 6
                with pytest.raises(StorageError):
                    await log.flush()
            assert log.failures == 1
            assert {"audit.dropped", "audit.append_failed"} <= {e["event"] for e in logs}
        finally:
            root.unlink()
            shutil.move(tmp_path / "away", root)
        assert await log.flush() == 7
        trail = await read_trail(store, RING)
        first = trail.segments[0].entries[0]
        assert (first["operation"], first["detail"]) == ("audit.dropped", {"entries": 4})
        assert [e["item"]["name"] for s in trail.segments for e in s.entries[1:] if e["item"]][
            :3
        ] == ["s0", "s1", "s2"]
        assert (await verify_trail(store, RING)).ok


class TestRetentionBoundary:
    async def test_backup_retention_never_deletes_audit_blobs(
        self, store: LocalFolderStore
    ) -> None:
        """Backup retention that does delete old journal segments leaves every audit
        segment and start marker alone, however old."""
        now = datetime.now(UTC)
        journal = make_journal(store)
        stores = BackupStores(store)
        for days in (10, 5, 3):
            await journal.record([secret_change("db", f"v{days}", at=now - timedelta(days=days))])
            await journal.flush()
            await create_snapshot(stores, BACKUP_RING, "app")
        log = AuditLog(store, RING)
        log.append(*(event(i, pair="app") for i in range(3)))
        await log.flush()
        await store.put_if_absent(chain.start_blob(1), await chain.encode_start(1, "", RING))
        before = sorted(i.name for i in await store.list("audit/"))
        policy = RetentionPolicy(keep_all_hours=1, hourly_days=0, daily_days=0, monthly_months=0)
        plan = await enforce_retention(store, "app", policy, now=now.timestamp())
        assert plan.delete  # retention did delete backup objects
        assert sorted(i.name for i in await store.list("audit/")) == before
        assert len(before) == 2 and (await verify_trail(store, RING)).ok
