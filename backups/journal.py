"""`Journal`: the replicator's change sink that writes every change of every pair into
encrypted, write-once segments in blob storage.

    async with Journal(stores, keks, settings, fingerprint=version_fingerprint) as journal:
        PairReplicator(..., sinks=[journal])

Per pair it keeps a generation, a sequence counter, a buffer of accepted changes and an
index (item -> version -> fingerprint) that answers `recorded()`. Buffered changes become
one segment every `flush_interval_seconds` or every `flush_max_changes` changes; each
segment is sealed once (fresh data key, wrapped by every KEK), written with
`put_if_absent`, and carries its plaintext digest and its predecessor's. A write whose
answer was lost is retried with the same bytes, so it can never fork the chain.

Durability: see `BackupSettings` ("interval": durable within the flush interval; "sync":
`record()` returns once durable, concurrent calls share one write).

The head blob (`backups/<pair>/head.json`, plain signed JSON, see `backups.head`:
generation, last durable sequence, the newest object's SHA-256, writer, time; nothing
secret) is rewritten after every segment with an ETag condition. It tells a restarted
journal where the generation ended, so a lost trailing segment is a detected gap, and a
second writer is fenced off instead of forking the chain. A head that is not signed by a
pinned signer is treated as absent (and logged), never trusted.

On start (first call for a pair) the journal replays its current generation (newest
snapshot, then segments, all checked); whenever continuity cannot be proven it starts a
new generation and logs why (`backups.new_generation`, `reason=`). The previous
generation stays restorable. Observed times are made non-decreasing per pair (a change
recorded later is never stamped earlier than the one before it), so the state at time T
is always a prefix of the sequence.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import structlog

from backups import metrics, paths
from backups.catalog import GenerationCatalog, load_catalog
from backups.errors import (
    ChainBroken,
    JournalFenced,
    JournalUnavailable,
    KekUnavailable,
    ObjectUnreadable,
)
from backups.head import load_head, write_head
from backups.index import Fingerprint, JournalIndex
from backups.journal_health import FLUSH, LOOP, SNAPSHOT, FailureHook, JournalHealth
from backups.keks import KekRing
from backups.objects import seal_segment
from backups.pair_log import PairLog, check_change
from backups.replay import replay
from backups.retention import enforce_retention
from backups.settings import BackupSettings
from backups.snapshot import create_snapshot
from backups.stores import BackupStores, ObjectConflict
from storage.errors import StorageError
from vault.models import Change, ItemRef

log = structlog.get_logger("kvdr.backups")


class Journal:
    """The journal of every pair; implements the replicator's `ChangeSink`."""

    def __init__(
        self,
        stores: BackupStores,
        keks: KekRing,
        settings: BackupSettings,
        *,
        fingerprint: Fingerprint,
        clock: Callable[[], float] = time.time,
        on_failure: FailureHook | None = None,
        autostart: bool = True,
    ) -> None:
        # `autostart=False`: the owner runs `run()` itself, under its own supervision
        # (the daemon does); otherwise entering the journal starts the loop.
        self._autostart = autostart
        self.health = JournalHealth(clock, on_failure)
        self._stores = stores
        self._keks = keks
        self._settings = settings
        self._fingerprint = fingerprint
        self._clock = clock
        self._logs: dict[str, PairLog] = {}
        self._opening: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_retention = 0.0

    # -- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        """Start the background flush loop (segments, snapshots, retention)."""
        self._stop.clear()
        if self._autostart:
            self._task = asyncio.create_task(self.run(self._stop), name="journal")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop the loop and flush what is buffered (errors are logged: nothing more can
        be done at exit, and the next start recovers from what is durable)."""
        self._stop.set()
        self._wake.set()  # the loop may be waiting out a flush interval
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for pair_log in list(self._logs.values()):
            try:
                await self._flush_all(pair_log)
            except JournalUnavailable as exc:
                log.error(
                    "backups.final_flush_failed",
                    pair=pair_log.pair,
                    buffered=len(pair_log.buffer),
                    error=str(exc),
                )

    async def run(self, stop: asyncio.Event) -> None:
        """Flush every `flush_interval_seconds` (sooner when a buffer fills), snapshot
        every `snapshot_interval_seconds`, apply retention every
        `retention_interval_seconds`, until `stop` is set.

        No error ends the loop: a failed pass is recorded in `health` (and logged), and
        the next pass, one flush interval later, tries again."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._settings.flush_interval_seconds)
            self._wake.clear()
            try:
                await self._pass(stop)
            except Exception as exc:  # the loop outlives any one failure
                self.health.failed(LOOP, "", f"{type(exc).__name__}: {exc}")
                log.exception("backups.journal_pass_failed")
            else:
                self.health.cleared(LOOP, "")

    async def _pass(self, stop: asyncio.Event) -> None:
        for pair_log in list(self._logs.values()):
            await self._background_flush(pair_log)
        await self._stores.copy_pending()
        if stop.is_set():
            return
        for pair_log in list(self._logs.values()):
            await self._maybe_snapshot(pair_log)
        await self._maybe_retention()

    # -- ChangeSink --------------------------------------------------------------------

    async def recorded(self, pair: str, item: ItemRef) -> Mapping[str, str]:
        """Source version id -> fingerprint recorded for `item`; {} when unknown or deleted."""
        return (await self.pair_log(pair)).index.recorded(item)

    async def record(self, changes: Sequence[Change]) -> None:
        """Accept `changes` in order, assigning sequence numbers (see module docstring for
        when they are durable)."""
        grouped: dict[str, list[Change]] = {}
        for change in changes:
            check_change(change)
            grouped.setdefault(change.pair, []).append(change)
        for pair, group in grouped.items():
            pair_log = await self.pair_log(pair)
            if pair_log.fenced:
                # Another process wrote since (a lease hand-over, say): what this one
                # buffered was never durable; start again from what storage holds.
                log.warning(
                    "backups.journal_reopened",
                    pair=pair,
                    dropped=len(pair_log.buffer),
                    reason="fenced by another writer",
                )
                self._logs.pop(pair, None)
                pair_log = await self.pair_log(pair)
            for change in group:
                at = max(change.observed_at.timestamp(), pair_log.last_at)
                pair_log.sequence += 1
                stamped = dataclasses.replace(
                    change,
                    sequence=pair_log.sequence,
                    observed_at=datetime.fromtimestamp(at, UTC),
                )
                pair_log.buffer.append(stamped)
                pair_log.index.apply(stamped)
                pair_log.last_at = at
            metrics.JOURNAL_BUFFERED.labels(pair).set(len(pair_log.buffer))
            if self._settings.durability == "sync":
                await self._flush_until(pair_log, pair_log.sequence)
            elif len(pair_log.buffer) >= self._settings.max_buffered_changes:
                # Backpressure: storage is behind (or down); do not grow without bound.
                await self._flush_until(pair_log, pair_log.sequence)
            elif len(pair_log.buffer) >= self._settings.flush_max_changes:
                self._wake.set()

    # -- queries -------------------------------------------------------------------------

    def status(self) -> list[dict[str, Any]]:
        """Each open pair's journal position (no item names)."""
        return [self._logs[p].status() for p in sorted(self._logs)]

    async def flush(self, pair: str | None = None) -> None:
        """Write everything buffered now (one pair, or all open pairs)."""
        targets = [self._logs[pair]] if pair is not None else list(self._logs.values())
        for pair_log in targets:
            await self._flush_all(pair_log)

    async def position(self, pair: str) -> paths.Pos:
        """The newest durable position of a pair."""
        pair_log = await self.pair_log(pair)
        return paths.Pos(pair_log.generation, pair_log.durable)

    # -- opening a pair -------------------------------------------------------------

    async def pair_log(self, pair: str) -> PairLog:
        """The pair's journal, recovered from blob storage on first use."""
        existing = self._logs.get(pair)
        if existing is not None:
            return existing
        async with self._opening[pair]:
            existing = self._logs.get(pair)
            if existing is None:
                existing = self._logs[pair] = await self._recover(pair)
            return existing

    async def _recover(self, pair: str) -> PairLog:
        paths.check_pair(pair)
        store = self._stores.primary
        try:
            catalog = await load_catalog(store, pair)
            head, head_etag = await self._read_head(pair)
        except StorageError as exc:
            raise JournalUnavailable(f"cannot read the journal of pair {pair!r}: {exc}") from exc
        head_generation = head.get("generation") if head else None
        gen = (
            catalog.generations.get(head_generation)
            if isinstance(head_generation, str)
            else catalog.latest
        )
        if (
            gen is None
            and head is not None
            and isinstance(head_generation, str)
            and head.get("sequence") == 0
        ):
            # Started, nothing written yet: an empty generation, not a broken one.
            with contextlib.suppress(ValueError):
                gen = GenerationCatalog(pair, paths.check_generation(head_generation))
        if gen is None:
            reason = (
                "no journal for this pair yet"
                if head is None and not catalog.generations
                else f"the head names generation {head_generation!r}, which has no objects"
            )
            return await self._new_generation(pair, reason, head_etag)
        index = JournalIndex(self._fingerprint)
        try:
            result = await replay(store, self._keks, gen, index)
        except (ChainBroken, ObjectUnreadable) as exc:
            return await self._new_generation(
                pair, f"cannot continue generation {gen.generation}: {exc}", head_etag
            )
        except (StorageError, KekUnavailable) as exc:
            raise JournalUnavailable(f"cannot read the journal of pair {pair!r}: {exc}") from exc
        written = head.get("sequence") if head and head_generation == gen.generation else None
        if isinstance(written, int) and written > result.sequence:
            return await self._new_generation(
                pair,
                f"journal gap after {result.sequence}: the head says sequences up to "
                f"{written} of generation {gen.generation} were written",
                head_etag,
            )
        pair_log = PairLog(
            pair=pair,
            generation=gen.generation,
            index=index,
            sequence=result.sequence,
            durable=result.sequence,
            prev=result.digest,
            last_object=(result.last.blob, result.last.sha256) if result.last else None,
            last_at=result.at,
            head_etag=head_etag,
        )
        latest_snapshot = gen.base_snapshot()
        if latest_snapshot is not None:
            pair_log.snapshot_sequence = latest_snapshot.sequence
            pair_log.last_snapshot = latest_snapshot.at or 0.0
        else:
            pair_log.last_snapshot = gen.started.timestamp()
        metrics.JOURNAL_LAST_SEQUENCE.labels(pair).set(pair_log.durable)
        log.info(
            "backups.journal_resumed",
            pair=pair,
            generation=gen.generation,
            sequence=result.sequence,
            items=len(index),
            segments_read=result.segments_read,
        )
        if head_generation != gen.generation:
            await self._write_head(pair_log)
        return pair_log

    async def _new_generation(self, pair: str, reason: str, head_etag: str | None) -> PairLog:
        now = self._clock()
        generation = paths.new_generation(datetime.fromtimestamp(now, UTC))
        pair_log = PairLog(
            pair=pair,
            generation=generation,
            index=JournalIndex(self._fingerprint),
            head_etag=head_etag,
            last_snapshot=now,
        )
        metrics.NEW_GENERATIONS.labels(pair).inc()
        metrics.JOURNAL_LAST_SEQUENCE.labels(pair).set(0)
        log.warning("backups.new_generation", pair=pair, generation=generation, reason=reason)
        await self._write_head(pair_log, creating=head_etag is None)
        return pair_log

    # -- head ------------------------------------------------------------------------------

    async def _read_head(self, pair: str) -> tuple[dict[str, Any] | None, str | None]:
        read = await load_head(self._stores.primary, self._keks.signers, pair)
        if read.problem is not None:
            log.warning("backups.head_untrusted", pair=pair, blob=read.blob, problem=read.problem)
        return (read.head.doc if read.head else None), read.etag

    async def _write_head(self, pair_log: PairLog, creating: bool = False) -> None:
        await write_head(
            self._stores.primary,
            self._keks.signers,
            pair_log,
            updated_at=self._clock(),
            writer=self._settings.writer,
            creating=creating,
        )

    # -- flushing ------------------------------------------------------------------------

    async def _background_flush(self, pair_log: PairLog) -> None:
        try:
            await self._flush_all(pair_log)
        except JournalUnavailable as exc:
            log.warning(
                "backups.flush_failed",
                pair=pair_log.pair,
                buffered=len(pair_log.buffer),
                error=str(exc),
            )

    async def _flush_all(self, pair_log: PairLog) -> None:
        await self._flush_until(pair_log, pair_log.sequence)

    async def _flush_until(self, pair_log: PairLog, sequence: int) -> None:
        """Write segments until `sequence` is durable. Callers waiting on the lock find
        their changes written by whoever held it (group commit)."""
        async with pair_log.lock:
            while pair_log.durable < sequence and (pair_log.buffer or pair_log.sealed):
                await self._flush_one(pair_log)

    async def _flush_one(self, pair_log: PairLog) -> None:
        if pair_log.fenced:
            raise JournalFenced(f"the journal of pair {pair_log.pair!r} is fenced")
        pair = pair_log.pair
        if pair_log.sealed is None:
            batch = pair_log.buffer[: self._settings.flush_max_changes]
            try:
                sealed = await seal_segment(
                    pair, pair_log.generation, batch, pair_log.prev, self._keks
                )
            except KekUnavailable as exc:
                self._flush_failed(pair_log, str(exc))
                raise JournalUnavailable(f"cannot seal a segment of pair {pair!r}: {exc}") from exc
            # Kept until written: a retry sends the very same bytes.
            pair_log.sealed = (sealed, len(batch))
        sealed, count = pair_log.sealed
        try:
            await self._stores.put_object(sealed.name, sealed.data, sealed.metadata)
        except ObjectConflict as exc:
            pair_log.fenced = True
            log.error("backups.journal_fenced", pair=pair, blob=sealed.name, reason=str(exc))
            raise JournalFenced(f"journal segment {sealed.name!r}: {exc}") from exc
        except StorageError as exc:
            self._flush_failed(pair_log, str(exc))
            raise JournalUnavailable(
                f"cannot write journal segment {sealed.name!r}: {exc}"
            ) from exc
        pair_log.durable = pair_log.buffer[count - 1].sequence
        del pair_log.buffer[:count]
        pair_log.prev = sealed.digest
        pair_log.last_object = (sealed.name, hashlib.sha256(sealed.data).hexdigest())
        pair_log.sealed = None
        pair_log.last_flush = self._clock()
        pair_log.last_error = None
        self.health.cleared(FLUSH, pair)
        metrics.JOURNAL_LAST_SEQUENCE.labels(pair).set(pair_log.durable)
        metrics.JOURNAL_BUFFERED.labels(pair).set(len(pair_log.buffer))
        await self._write_head(pair_log)

    def _flush_failed(self, pair_log: PairLog, error: str) -> None:
        pair_log.last_error = error
        metrics.JOURNAL_FLUSH_ERRORS.labels(pair_log.pair).inc()
        self.health.failed(FLUSH, pair_log.pair, error)

    # -- snapshots and retention ------------------------------------------------------------

    async def _maybe_snapshot(self, pair_log: PairLog) -> None:
        due = pair_log.last_snapshot + self._settings.snapshot_interval_seconds
        if self._clock() < due or pair_log.durable <= pair_log.snapshot_sequence:
            return
        if pair_log.last_error is not None:
            # Its segments cannot be written now: the snapshot stays due (and says so).
            self.health.failed(
                SNAPSHOT, pair_log.pair, f"due, waiting for segments: {pair_log.last_error}"
            )
            return
        await self.snapshot(pair_log.pair)

    async def snapshot(self, pair: str) -> int | None:
        """Compact the pair's durable journal into a snapshot now; its sequence, or None
        when it failed (logged)."""
        pair_log = await self.pair_log(pair)
        try:
            # A snapshot covers only what is durable: write the buffer first.
            await self._flush_all(pair_log)
        except JournalUnavailable as exc:
            self.health.failed(SNAPSHOT, pair, str(exc))
            return None  # not tried: still due, retried once segments can be written
        try:
            made = await create_snapshot(
                self._stores,
                self._keks,
                pair,
                generation=pair_log.generation,
                until_sequence=pair_log.durable,
                clock=self._clock,
            )
        except (StorageError, KekUnavailable, ChainBroken, ObjectUnreadable) as exc:
            log.error("backups.snapshot_failed", pair=pair, error=str(exc))
            self.health.failed(SNAPSHOT, pair, str(exc))
            pair_log.last_snapshot = self._clock()  # retry after another interval
            return None
        self.health.cleared(SNAPSHOT, pair)
        pair_log.last_snapshot = self._clock()
        if made is not None:
            pair_log.snapshot_sequence = made.sequence
        return made.sequence if made else None

    async def _maybe_retention(self) -> None:
        now = self._clock()
        if now - self._last_retention < self._settings.retention_interval_seconds:
            return
        self._last_retention = now
        # Each store is planned from its own listing: a replica may lag behind.
        for store in (self._stores.primary, *self._stores.replicas):
            for pair in list(self._logs):
                try:
                    await enforce_retention(store, pair, self._settings.retention, now=now)
                except StorageError as exc:
                    log.error(
                        "backups.retention_failed",
                        pair=pair,
                        store=store.description,
                        error=str(exc),
                    )
