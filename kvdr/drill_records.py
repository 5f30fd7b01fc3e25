"""The last drill of each scenario and pair, in blob storage, for the daemon's metrics.

`kvdr drill run --stack config` runs wherever the operator or a scheduler starts it (a
terminal, the Kubernetes CronJob, the systemd timer, the daemon's own `[[drills]]`); the
dashboard and the alerts read the daemon's `/metrics`. So every drill against a
configured environment leaves a small record at `drills/<pair>/<scenario>.json` in the
configuration's `[storage]`, and every daemon exports the records it finds
(`kvdr_drill_*`, kvdr/drill_metrics.py): the last drill per pair shows on the dashboard
whoever ran it.

A record holds figures only (no item names, no values). It is read strictly and small:
a record that is too large or malformed is skipped and named in the log, never trusted.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

import structlog
from pydantic import BaseModel, ConfigDict, Field

from kvdr.drill_metrics import DrillMetrics, default_metrics
from replicator.state_documents import read_document
from replicator.state_seal import StateDocumentUnreadable
from storage.errors import BlobNotFound, StorageError
from storage.store import BlobStore

log = structlog.get_logger("kvdr.drill_records")

PREFIX = "drills/"
# A record is a few hundred bytes; anything much larger is not one of ours.
MAX_RECORD_BYTES = 4096
# Records read per refresh (pairs x scenarios); the rest are left out and logged.
MAX_RECORDS = 500
# One listing of `drills/` per refresh: cheap, and a finished drill shows within it.
REFRESH_SECONDS = 15.0
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
# As the configuration allows (kvdr/_config_pairs.py).
_PAIR = re.compile(r"^[A-Za-z0-9_-]{1,63}$")


class DrillRecord(BaseModel):
    """One drill's outcome, as the metrics need it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    format: Literal[1] = 1
    scenario: str = Field(pattern=_NAME.pattern)
    pair: str = Field(pattern=_PAIR.pattern)
    environment: str = Field(max_length=32)
    run_id: str = Field(max_length=32)
    ended_at: float = Field(ge=0, allow_inf_nan=False)
    passed: bool
    rpo_seconds: float = Field(ge=0, allow_inf_nan=False)
    rpo_items: int = Field(ge=0)
    rto_seconds: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    # The last passing drill of this scenario and pair (kept from the previous record
    # when this one failed), for "no passing drill for 8 days".
    last_success_at: float | None = Field(default=None, ge=0, allow_inf_nan=False)


def record_blob(pair: str, scenario: str) -> str:
    return f"{PREFIX}{pair}/{scenario}.json"


def record_of(doc: dict[str, Any], previous: DrillRecord | None) -> DrillRecord:
    """The record of a drill report document (chaos/report.py)."""
    measured = doc["measured"]
    passed = bool(doc["passed"])
    ended = datetime.fromisoformat(doc["ended_at"]).timestamp()
    return DrillRecord(
        scenario=doc["scenario"],
        pair=doc["target"]["pair"],
        environment=str(doc["target"].get("environment", "")),
        run_id=str(doc["run_id"]),
        ended_at=ended,
        passed=passed,
        rpo_seconds=float(measured["rpo_seconds"]),
        rpo_items=int(measured["rpo_items"]),
        rto_seconds=measured["rto_seconds"],
        last_success_at=ended if passed else (previous.last_success_at if previous else None),
    )


async def read_record(store: BlobStore, blob: str) -> DrillRecord:
    """The record at `blob`; `StateDocumentUnreadable` naming it when it is not one."""
    data = (await store.get(blob)).data
    if len(data) > MAX_RECORD_BYTES:
        raise StateDocumentUnreadable(blob, f"drill record is larger than {MAX_RECORD_BYTES} bytes")
    return read_document(DrillRecord, blob, data, "drill record")


async def publish(store: BlobStore, doc: dict[str, Any]) -> str:
    """Write the drill's record (over the previous one of its scenario and pair); the
    blob's name."""
    blob = record_blob(doc["target"]["pair"], doc["scenario"])
    try:
        previous: DrillRecord | None = await read_record(store, blob)
    except (BlobNotFound, StateDocumentUnreadable):
        previous = None
    record = record_of(doc, previous)
    await store.put(blob, record.model_dump_json().encode())
    return blob


async def load_records(store: BlobStore) -> list[DrillRecord]:
    """Every well-formed record; the others are logged by blob name and skipped."""
    infos = await store.list(PREFIX)
    if len(infos) > MAX_RECORDS:
        log.warning("drill_records.too_many", found=len(infos), read=MAX_RECORDS)
    records: list[DrillRecord] = []
    for info in sorted(infos, key=lambda i: i.name)[:MAX_RECORDS]:
        if info.size > MAX_RECORD_BYTES:
            log.warning("drill_records.skipped", blob=info.name, reason="too large")
            continue
        try:
            record = await read_record(store, info.name)
        except StateDocumentUnreadable as exc:
            log.warning("drill_records.skipped", blob=info.name, reason=str(exc))
            continue
        except BlobNotFound:
            continue
        if info.name != record_blob(record.pair, record.scenario):
            # A record copied under another pair's name would show as that pair's drill.
            log.warning("drill_records.skipped", blob=info.name, reason="names another pair")
            continue
        records.append(record)
    return records


class DrillRecordWatch:
    """The daemon's task: exports the records in storage as `kvdr_drill_*` every 15 s."""

    def __init__(
        self,
        store: BlobStore,
        metrics: DrillMetrics | None = None,
        interval_seconds: float = REFRESH_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._metrics = metrics or default_metrics()
        self._interval = interval_seconds
        self._clock = clock
        self.last_refresh: float | None = None
        self.error: str | None = None

    async def refresh(self) -> int:
        """Read the records and set the gauges; how many were exported."""
        try:
            records = await load_records(self._store)
        except StorageError as exc:
            # The gauges keep their last values: a storage outage is not a failed drill.
            if self.error is None:
                log.warning("drill_records.unreadable", error=str(exc))
            self.error = str(exc)
            return 0
        for record in records:
            self._metrics.set_record(record)
        self.error = None
        self.last_refresh = self._clock()
        return len(records)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.refresh()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._interval)
