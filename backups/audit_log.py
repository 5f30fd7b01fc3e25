"""The audit trail in blob storage: `AuditLog` appends, `read_trail` / `verify_trail` read.

Appending is cheap and never waits on storage: `append()` puts events in a buffer, and a
flush writes them as one signed segment (`backups.audit_chain`), when `flush_max_entries`
are waiting, every `flush_interval_seconds` (`run()`), and on exit. The buffer is bounded
by `max_buffered`: when storage or the signer is down long enough for it to fill, further
events are dropped, counted in `kvdr_audit_dropped_total` and logged, and the next
segment that makes it opens with an `audit.dropped` entry saying how many, so the gap is
in the trail itself rather than silent. A replication flood therefore costs at most
`max_buffered` events of memory and never slows mirroring down.

Several writers (the daemon, a `kvdr failover` command, a second daemon) share one
trail: each chains onto the newest segment it read and creates the next segment name
with put-if-absent; the loser of a race re-reads the tail, renumbers and retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import structlog
from prometheus_client import Counter

from backups import audit_chain as chain
from backups.audit_chain import AuditEvent, ChainReport, Problem, Segment, Start
from backups.errors import BackupError
from backups.signers import SignerRing
from storage.errors import BlobExists, BlobNotFound, StorageError
from storage.store import BlobStore

log = structlog.get_logger("kvdr.audit")

APPEND_FAILURES = Counter(
    "kvdr_audit_append_failures_total",
    "Failed attempts to write an audit segment (storage or signer unavailable)",
)
DROPPED = Counter(
    "kvdr_audit_dropped_total",
    "Audit events dropped because the bounded buffer was full while writes failed",
)
# Renumber-and-retry rounds when other writers keep winning the next segment name; each
# round means another writer made progress, so this bounds only pathological contention.
MAX_CONFLICTS = 50


class AuditLog:
    """Buffered, signed, hash-chained appends to the trail in `store`."""

    def __init__(
        self,
        store: BlobStore,
        ring: SignerRing,
        *,
        flush_max_entries: int = 500,
        flush_interval_seconds: float = 5.0,
        max_buffered: int = 10_000,
        retention_seconds: float | None = None,
        retention_interval_seconds: float = 86400.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """With `retention_seconds` (the daemon's log), `run()` also applies audit
        retention every `retention_interval_seconds` (`backups.audit_retention`)."""
        if not ring.can_sign:
            raise ValueError("the audit log needs a signing key ([[backups.signers]])")
        self._store = store
        self._ring = ring
        self._max_entries = max(1, flush_max_entries)
        self._interval = flush_interval_seconds
        self._max_buffered = max(self._max_entries, max_buffered)
        self._buffer: list[AuditEvent] = []
        self._dropped = 0
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._tail: tuple[int, str] | None = None
        self._retention = retention_seconds
        self._retention_interval = retention_interval_seconds
        self._last_retention = 0.0
        self._clock = clock
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.failures = 0

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def append(self, *events: AuditEvent) -> None:
        """Queue `events` for the next segment (never waits; see the module docstring for
        what happens when the buffer is full)."""
        room = self._max_buffered - len(self._buffer)
        if len(events) > room:
            lost = len(events) - max(room, 0)
            self._dropped += lost
            DROPPED.inc(lost)
            events = events[: max(room, 0)]
            log.error("audit.dropped", events=lost, buffered=len(self._buffer) + len(events))
        self._buffer.extend(events)
        if len(self._buffer) >= self._max_entries:
            self._wake.set()

    async def flush(self) -> int:
        """Write everything buffered (in segments of at most `flush_max_entries`);
        returns how many entries were written. Raises `StorageError` or `BackupError`
        (after counting and logging it) when a segment could not be written; the
        unwritten events stay buffered."""
        written = 0
        async with self._lock:
            while self._buffer or self._dropped:
                try:
                    written += await self._write_one()
                except (StorageError, BackupError) as exc:
                    self.failures += 1
                    APPEND_FAILURES.inc()
                    log.error("audit.append_failed", error=str(exc), buffered=len(self._buffer))
                    raise
        return written

    async def _write_one(self) -> int:
        batch = self._buffer[: self._max_entries]
        if self._dropped:
            note = AuditEvent(
                "audit.dropped",
                "failed",
                batch[0].actor if batch else chain.Actor("kvdr", "-"),
                batch[0].time if batch else _now(),
                detail={"entries": self._dropped},
            )
            batch = [note, *batch[: self._max_entries - 1]]
        for _ in range(MAX_CONFLICTS):
            last, prev = self._tail if self._tail is not None else await load_tail(self._store)
            entries = chain.seal(batch, last + 1, prev)
            data = await chain.encode_segment(entries, self._ring)
            name = chain.segment_blob(last + 1)
            meta = {chain.LAST_AT_KEY: f"{batch[-1].time.timestamp():.6f}"}
            try:
                await self._store.put_if_absent(name, data, meta)
            except BlobExists:
                # Another writer took this sequence: chain onto theirs instead.
                self._tail = None
                log.info("audit.append_conflict", segment=name)
                continue
            self._tail = (int(entries[-1]["seq"]), str(entries[-1]["hash"]))
            taken = len(batch) - (1 if self._dropped else 0)
            del self._buffer[:taken]
            self._dropped = 0
            return len(entries)
        raise StorageUnavailableConflict(f"audit trail: {MAX_CONFLICTS} writers raced ahead")

    async def run(self, stop: asyncio.Event) -> None:
        """Flush every `flush_interval_seconds`, or as soon as a segment's worth waits,
        until `stop`; then a last flush. Failures are logged and counted, then retried."""
        while not stop.is_set():
            self._wake.clear()
            waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
            try:
                await asyncio.wait(waits, timeout=self._interval, return_when="FIRST_COMPLETED")
            finally:
                for waiter in waits:
                    waiter.cancel()
            with contextlib.suppress(StorageError, BackupError):
                await self.flush()
            await self._maybe_retention()
        with contextlib.suppress(StorageError, BackupError):
            await self.flush()

    async def _maybe_retention(self) -> None:
        now = self._clock()
        if self._retention is None or now - self._last_retention < self._retention_interval:
            return
        self._last_retention = now
        from backups.audit_retention import enforce_audit_retention

        try:
            await enforce_audit_retention(self._store, self._ring, self._retention, now)
        except (StorageError, BackupError) as exc:
            log.error("audit.retention_failed", error=str(exc))

    async def __aenter__(self) -> Self:
        # The flush loop runs for as long as the log is open (the daemon's lifetime, or
        # one command's); leaving flushes what is left.
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self.run(self._stop), name="audit-log")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # A failed last flush is logged and counted by flush(); the action it records
        # has happened already, so it does not turn into the caller's error.
        self._stop.set()
        if self._task is not None:
            await self._task


class StorageUnavailableConflict(StorageError):
    """Other writers kept taking the next audit segment name."""


def _now() -> datetime:
    return datetime.now(UTC)


async def _segment_names(store: BlobStore) -> list[tuple[int, str]]:
    found = []
    for info in await store.list(chain.SEGMENTS):
        first = chain.parse_segment_blob(info.name)
        if first is not None:
            found.append((first, info.name))
    return sorted(found)


async def load_tail(store: BlobStore) -> tuple[int, str]:
    """(last seq, last hash) a new segment chains onto: the newest segment's last entry,
    else the newest start marker's, else (0, "")."""
    names = await _segment_names(store)
    if names:
        first, name = names[-1]
        with contextlib.suppress(BlobNotFound):
            segment = chain.decode_segment(name, (await store.get(name)).data)
            if segment.entries:
                last = segment.entries[-1]
                return int(last["seq"]), str(last.get("hash", ""))
            # An unreadable tail: chain past it; verify reports it.
            return first, ""
    starts = sorted(
        (n, i.name)
        for i in await store.list(chain.STARTS)
        if (n := chain.parse_start_blob(i.name)) is not None
    )
    if starts:
        with contextlib.suppress(BlobNotFound, ValueError, KeyError):
            doc = json.loads((await store.get(starts[-1][1])).data)
            return int(doc["first"]) - 1, str(doc["prev"])
    return 0, ""


@dataclass
class Trail:
    """The trail as read: where it legitimately starts, its segments, and problems found
    before the chain is checked (forged start markers)."""

    start: Start
    segments: list[Segment]
    problems: list[Problem] = field(default_factory=list)


async def read_trail(store: BlobStore, ring: SignerRing) -> Trail:
    """Every segment from the newest valid start marker on (segments before it are what
    audit retention is deleting)."""
    start = Start()
    problems: list[Problem] = []
    for info in await store.list(chain.STARTS):
        if chain.parse_start_blob(info.name) is None:
            continue
        with contextlib.suppress(BlobNotFound):
            found = chain.decode_start(info.name, (await store.get(info.name)).data, ring)
            if isinstance(found, Problem):
                problems.append(found)
            elif found.first > start.first:
                start = found
    segments: list[Segment] = []
    for first, name in await _segment_names(store):
        if first < start.first:
            continue
        with contextlib.suppress(BlobNotFound):
            segments.append(chain.decode_segment(name, (await store.get(name)).data))
    return Trail(start, segments, problems)


async def verify_trail(store: BlobStore, ring: SignerRing) -> ChainReport:
    trail = await read_trail(store, ring)
    report = chain.check_chain(trail.segments, trail.start, ring)
    report.problems = trail.problems + report.problems
    return report


def entries_of(trail: Trail) -> Sequence[dict[str, Any]]:
    return [entry for segment in trail.segments for entry in segment.entries]
