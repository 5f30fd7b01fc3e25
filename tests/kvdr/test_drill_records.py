"""Drill records in storage (kvdr/drill_records.py): every drill against a configured
environment leaves one, and every daemon exports them, so the dashboard shows the last
drill per pair whoever ran it. A record is read strictly: a forged or damaged one is
skipped and named, and exports nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from kvdr.drill_metrics import DrillMetrics
from kvdr.drill_records import (
    MAX_RECORD_BYTES,
    DrillRecordWatch,
    load_records,
    publish,
    read_record,
    record_blob,
)
from replicator.state_seal import StateDocumentUnreadable
from storage.azure_blob import AzureBlobStore
from storage.local_folder import LocalFolderStore
from storage.settings import AzureBlobSettings, LocalFolderSettings


def report(
    passed: bool, ended_at: str, pair: str = "app", rto: float | None = 3.5
) -> dict[str, Any]:
    return {
        "scenario": "region-outage",
        "run_id": "0a1b2c3d",
        "target": {"pair": pair, "environment": "staging"},
        "passed": passed,
        "ended_at": ended_at,
        "measured": {
            "rpo_items": 0 if passed else 2,
            "rpo_seconds": 0.0 if passed else 7.5,
            "rto_seconds": rto,
        },
    }


@pytest.fixture
async def store(tmp_path: Path) -> Any:
    async with LocalFolderStore(LocalFolderSettings(path=str(tmp_path / "store"))) as opened:
        yield opened


def gauges(registry: CollectorRegistry, pair: str = "app") -> dict[str, float | None]:
    labels = {"scenario": "region-outage", "pair": pair}
    return {
        name: registry.get_sample_value(f"kvdr_drill_{name}", labels)
        for name in ("passed", "rpo_seconds", "rto_seconds", "last_success_timestamp_seconds")
    }


async def test_a_failed_drill_keeps_the_last_success_and_the_daemon_exports_it(
    store: LocalFolderStore,
) -> None:
    await publish(store, report(True, "2026-12-01T06:00:00+00:00"))
    blob = await publish(store, report(False, "2026-12-08T06:00:00+00:00", rto=None))
    assert blob == record_blob("app", "region-outage") == "drills/app/region-outage.json"
    record = await read_record(store, blob)
    assert (record.passed, record.rpo_items, record.rto_seconds) == (False, 2, None)
    registry = CollectorRegistry()
    assert await DrillRecordWatch(store, DrillMetrics(registry)).refresh() == 1
    seen = gauges(registry)
    assert (seen["passed"], seen["rpo_seconds"]) == (0.0, 7.5)
    # When a drill last passed: what "no passing drill for 8 days" alerts on.
    assert seen["last_success_timestamp_seconds"] == 1796104800.0


async def test_forged_damaged_and_misplaced_records_are_skipped_and_named(
    store: LocalFolderStore,
) -> None:
    await publish(store, report(True, "2026-12-01T06:00:00+00:00"))
    await store.put("drills/app/not-json.json", b"{")
    await store.put("drills/app/huge.json", b" " * (MAX_RECORD_BYTES + 1))
    await store.put(
        "drills/app/negative.json",
        b'{"format": 1, "scenario": "negative", "pair": "app", "environment": "x", '
        b'"run_id": "r", "ended_at": 1, "passed": true, "rpo_seconds": -5, "rpo_items": 0}',
    )
    # A copy of pair app's record under pair "other": it would show as other's drill.
    copied = (await store.get("drills/app/region-outage.json")).data
    await store.put("drills/other/region-outage.json", copied)
    with capture_logs() as logs:
        records = await load_records(store)
    assert [(r.pair, r.scenario) for r in records] == [("app", "region-outage")]
    skipped = {e["blob"]: e["reason"] for e in logs if e["event"] == "drill_records.skipped"}
    assert set(skipped) == {
        "drills/app/not-json.json",
        "drills/app/huge.json",
        "drills/app/negative.json",
        "drills/other/region-outage.json",
    }
    assert "rpo_seconds" in skipped["drills/app/negative.json"]
    assert skipped["drills/other/region-outage.json"] == "names another pair"
    with pytest.raises(StateDocumentUnreadable) as caught:
        await read_record(store, "drills/app/not-json.json")
    assert "drills/app/not-json.json" in str(caught.value)


async def test_unreadable_storage_keeps_the_gauges(store: LocalFolderStore) -> None:
    """A storage outage is not a failed drill: the last exported values stay."""
    await publish(store, report(True, "2026-12-01T06:00:00+00:00"))
    registry = CollectorRegistry()
    metrics = DrillMetrics(registry)
    await DrillRecordWatch(store, metrics).refresh()
    # Nothing listens on port 9: the account does not answer.
    gone = AzureBlobSettings(
        container="kvdr",
        connection_string=(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey="
            + "a2V5" * 22
            + ";BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;"
        ),
        retries=0,
        connect_timeout_seconds=1.0,
    )
    async with AzureBlobStore(gone, create_container=False) as dead:
        watch = DrillRecordWatch(dead, metrics)
        assert await watch.refresh() == 0
    assert watch.error is not None
    assert gauges(registry)["passed"] == 1.0
