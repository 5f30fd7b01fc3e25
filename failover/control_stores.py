"""Where control records live: one blob store, or several in different regions.

With N stores (1 or 3), a write counts only when a majority (N // 2 + 1) of
compare-and-swaps succeed, and a reader takes the highest epoch that a majority holds.
Why two concurrent transitions can never both win the same epoch: a transition writes
an epoch above the highest it read on any store, each write conditional on the ETag it
read from that store. Two majorities share at least one store. On that store the later
of the two writers either read before the earlier one wrote (its ETag is stale, its
compare-and-swap fails, which counts against it) or read after (then it saw the other's
epoch and wrote a higher one). So an epoch has at most one majority, and the record at
the highest majority epoch is the one committed.

A write that loses leaves its document on a minority of stores; the next transition
reads it (it counts for the highest epoch) and supersedes it with a higher one. An
update inside an epoch (a finished switch recording its RTO) never overwrites a store
holding a higher epoch: that may be a transition still collecting its majority. A store
that is unreachable, or holds a malformed document, counts against every write; a
malformed document is never overwritten (its epoch is unknown) and is named in the
read so that a person can look at it. A reader writes the committed record onto stores
that lag behind it (absent or older), with the same compare-and-swap.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TypeVar

import structlog

from failover.control_record import ControlRecord, MalformedControlRecord, control_blob_name
from storage.errors import BlobNotFound, StorageError, WriteConflict
from storage.store import BlobStore, compare_and_swap, get_if_changed

log = structlog.get_logger("kvdr.failover")
T = TypeVar("T")


class ControlConflict(WriteConflict):
    what = "control record"


class NoMajority(Exception):
    """Fewer than a majority of control stores agreed or accepted the write.

    `problems` names each store that did not count and why."""

    def __init__(self, message: str, problems: dict[str, str]) -> None:
        detail = "; ".join(f"{store}: {why}" for store, why in sorted(problems.items()))
        super().__init__(f"{message} ({detail})" if detail else message)
        self.problems = dict(problems)


@dataclass(frozen=True)
class StoreView:
    """What one store held when read. `error` set: unreachable or malformed (not
    writable); `etag` None with no error: the record is absent there."""

    store: str
    etag: str | None = None
    record: ControlRecord | None = None
    error: str | None = None
    malformed: bool = False

    def to_dict(self) -> dict[str, object]:
        return {
            "store": self.store,
            "epoch": self.record.epoch if self.record else None,
            "revision": self.record.revision if self.record else None,
            "absent": self.error is None and self.record is None,
            "error": self.error,
            "malformed": self.malformed,
        }


@dataclass(frozen=True)
class QuorumRead:
    pair: str
    views: tuple[StoreView, ...]
    # The record at the highest epoch a majority vouches for; None: none written yet,
    # or (`undecided`) the stores that answered cannot tell.
    committed: ControlRecord | None
    # What the next transition is computed from: `committed`, or a newer write that
    # may have been committed on stores that did not answer (as Paxos adopts the
    # highest accepted value), or None for the pair's initial record.
    base: ControlRecord | None
    # The highest epoch on any store read, committed or a minority leftover.
    highest_epoch: int
    majority: int
    undecided: bool = False


@dataclass(frozen=True)
class Committed:
    record: ControlRecord
    written: tuple[str, ...]
    # Stores that did not take the write, and why.
    missed: dict[str, str]


def _supports(record: ControlRecord, key: tuple[int, str], revision: int) -> bool:
    """Does a store holding `record` vouch for the write (`key`, `revision`)?

    The write itself or a later revision of it does; so does a newer transition that was
    computed from it (its `previous`, up to the revision it read) or from a descendant of it
    (its history carries the transition). A newer transition left on a minority of
    stores thus still counts for the record it was computed from."""
    if (record.epoch, record.txid) == key:
        return record.revision >= revision
    previous = record.previous
    if previous is not None and (previous.epoch, previous.txid) == key:
        return previous.revision >= revision
    return key in record.lineage


def _newest_first(records: Sequence[ControlRecord]) -> list[ControlRecord]:
    return sorted(records, key=lambda r: (r.epoch, r.revision, r.txid), reverse=True)


def decide(
    views: Sequence[StoreView], majority: int
) -> tuple[ControlRecord | None, ControlRecord | None, bool]:
    """(committed, base, undecided) from what the stores held; pure.

    committed: the newest record that a majority of stores vouch for. base: the newest
    record that might be committed, counting every store that did not answer as a
    supporter (it may hold it), else `committed`. Raises `NoMajority` when fewer than a
    majority answered: then nothing can be told.
    """
    readable = [v for v in views if v.error is None]
    if len(readable) < majority:
        problems = {v.store: v.error for v in views if v.error is not None}
        raise NoMajority(
            f"only {len(readable)} of {len(views)} control stores could be read, {majority} needed",
            problems,
        )
    unknown = len(views) - len(readable)
    records = [v.record for v in readable if v.record is not None]
    # A record superseded on some stores is still readable as the `previous` of its
    # successors there.
    candidates = records + [r.previous for r in records if r.previous is not None]

    def support(candidate: ControlRecord) -> int:
        key = (candidate.epoch, candidate.txid)
        return sum(_supports(r, key, candidate.revision) for r in records)

    ordered = _newest_first(candidates)
    committed = next((r for r in ordered if support(r) >= majority), None)
    # A newer transition may be vouched for only through the history of the records
    # that followed it (its own copies all superseded): then its content cannot be
    # shown, and an older record must not be shown in its place.
    vouched = [
        key
        for key in {k for r in records for k in r.lineage}
        if sum(_supports(r, key, 0) for r in records) >= majority
    ]
    newest = max(vouched, default=None)
    if committed is not None and newest is not None and newest[0] > committed.epoch:
        committed = None
    base = next(
        (
            r
            for r in ordered
            if (committed is None or _newer(r, committed)) and support(r) + unknown >= majority
        ),
        committed,
    )
    absent = len(readable) - len(records)
    undecided = committed is None and (absent < majority or newest is not None)
    return committed, base, undecided


def committed_record(views: Sequence[StoreView], majority: int) -> ControlRecord | None:
    """The record at the highest epoch a majority holds (or carries in its lineage);
    None when a majority holds none. Raises `NoMajority` when that cannot be told."""
    committed, _, undecided = decide(views, majority)
    if undecided:
        problems = {v.store: v.error for v in views if v.error is not None}
        raise NoMajority(
            f"no majority of {len(views)} control stores agrees on the record (need {majority})",
            problems,
        )
    return committed


class TransitionInProgress(NoMajority):
    """A store holds a newer write than the committed record, written so recently that
    its transition may still be collecting its majority: overwriting it could undo a
    commit. Retry after `seconds`."""


class ControlStores:
    """The control record's stores and the majority rule over them."""

    def __init__(
        self,
        stores: Sequence[BlobStore],
        timeout_seconds: float = 5.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if len(stores) not in (1, 3):
            raise ValueError(f"control stores must be one or three, got {len(stores)}")
        self._stores = tuple(stores)
        self._timeout = timeout_seconds
        self._clock = clock
        # A transition reads every store, then writes every store, each call bounded by
        # the timeout: its writes land within about 2 timeouts of its read. Four, plus
        # 5 s for the clocks of two hosts, is when an uncommitted newer write is a
        # leftover rather than a transition in flight.
        self.in_flight_seconds = 4 * timeout_seconds + 5.0

    @property
    def majority(self) -> int:
        return len(self._stores) // 2 + 1

    @property
    def descriptions(self) -> tuple[str, ...]:
        return tuple(self._name(i) for i in range(len(self._stores)))

    def _name(self, index: int) -> str:
        # Index first: two Azurite containers may describe themselves alike.
        return f"{index}:{self._stores[index].description}"

    async def _bounded(self, work: Awaitable[T]) -> T:
        async with asyncio.timeout(self._timeout):
            return await work

    async def _view(self, index: int, blob: str, last: StoreView | None = None) -> StoreView:
        """What store `index` holds. `last`: its view from an earlier read; while its
        record keeps that ETag the store answers "not modified" (on Azure Blob a 304,
        no body) and `last` stands, as read now. An absent, unreadable or malformed
        document has no view to keep and is read whole."""
        name = self._name(index)
        kept = last if last and last.store == name and last.record is not None else None
        try:
            got = await self._bounded(
                get_if_changed(self._stores[index], blob, kept.etag if kept else None)
            )
        except BlobNotFound:
            return StoreView(name)
        except (StorageError, TimeoutError) as exc:
            return StoreView(name, error=_why(exc))
        if got is None:
            assert kept is not None  # only a conditional read answers "not modified"
            return kept
        try:
            record = ControlRecord.from_json(got.data, f"{name}/{blob}")
        except MalformedControlRecord as exc:
            log.error("control.malformed", store=name, blob=blob, error=str(exc))
            return StoreView(name, etag=got.info.etag, error=str(exc), malformed=True)
        return StoreView(name, etag=got.info.etag, record=record)

    async def read(
        self,
        pair: str,
        *,
        repair: bool = True,
        split_ok: bool = False,
        since: QuorumRead | None = None,
    ) -> QuorumRead:
        """Every store read at once; the committed record; lagging stores repaired.

        Raises `NoMajority` when fewer than a majority answer, or when no record has a
        majority unless `split_ok` (then `undecided` is set and `base` names what a
        transition builds on). `since`: an earlier read of the pair from these stores,
        for a poll: each store whose record is unchanged since is not read again."""
        blob = control_blob_name(pair)
        last = since.views if since is not None and since.pair == pair else ()
        views = await asyncio.gather(
            *(
                self._view(i, blob, last[i] if i < len(last) else None)
                for i in range(len(self._stores))
            )
        )
        if len(views) == 1 and views[0].malformed:
            # One store: its document is the record, and it cannot be read.
            raise MalformedControlRecord(views[0].error or "malformed", blob=blob)
        highest = max((v.record.epoch for v in views if v.record is not None), default=0)
        committed, base, undecided = decide(views, self.majority)
        if undecided:
            log.warning("control.undecided", pair=pair, stores=[v.to_dict() for v in views])
            if not split_ok:
                committed_record(views, self.majority)  # raises NoMajority, naming stores
        read = QuorumRead(
            pair, tuple(views), committed, base, highest, self.majority, undecided=undecided
        )
        if repair and committed is not None:
            await self._repair(read, committed)
        return read

    async def read_forced(self, pair: str) -> QuorumRead:
        """Whatever the stores that answer hold, without the majority rule: the newest
        record any of them has is taken as committed (`promote --force` only, when a
        majority cannot be reached; the transition is recorded as forced)."""
        blob = control_blob_name(pair)
        views = await asyncio.gather(*(self._view(i, blob) for i in range(len(self._stores))))
        records = [v.record for v in views if v.record is not None]
        newest = _newest_first(records)[0] if records else None
        highest = max((r.epoch for r in records), default=0)
        return QuorumRead(pair, tuple(views), newest, newest, highest, self.majority)

    async def _repair(self, read: QuorumRead, committed: ControlRecord) -> None:
        lagging = [
            i
            for i, view in enumerate(read.views)
            if view.error is None and (view.record is None or _older(view.record, committed))
        ]
        if not lagging:
            return
        written = await self._write_each(read, committed, lagging)
        repaired = [self._name(i) for i, why in written.items() if why is None]
        if repaired:
            log.info("control.repaired", pair=read.pair, epoch=committed.epoch, stores=repaired)

    async def write(
        self, read: QuorumRead, record: ControlRecord, *, forced: bool = False
    ) -> Committed:
        """Write `record` over what `read` found; raises `NoMajority` unless a majority
        of compare-and-swaps succeed (`forced`: one is enough; `promote --force` only,
        which says so loudly and records it).

        `record` is either a transition (an epoch above every epoch read) or an update
        of the committed record (same epoch and txid, a higher revision)."""
        committed = read.committed
        transition = record.epoch > read.highest_epoch
        update = (
            committed is not None
            and record.epoch == committed.epoch
            and record.txid == committed.txid
            and record.revision > committed.revision
        )
        if not (transition or update):
            raise ValueError(
                f"epoch {record.epoch} is neither above the highest read "
                f"({read.highest_epoch}) nor an update of the committed record"
            )
        if transition:
            self._refuse_in_flight(read)
        record = replace(record, written_at=self._clock().isoformat())
        missed: dict[str, str] = {}
        targets = []
        for i, view in enumerate(read.views):
            if view.error is not None:
                missed[view.store] = view.error
            elif view.record is not None and view.record.epoch > record.epoch:
                missed[view.store] = f"holds epoch {view.record.epoch}, newer than ours"
            else:
                targets.append(i)
        results = await self._write_each(read, record, targets)
        written = tuple(self._name(i) for i, why in results.items() if why is None)
        missed.update({self._name(i): why for i, why in results.items() if why is not None})
        if len(written) < (1 if forced else self.majority):
            log.warning(
                "control.no_majority",
                pair=read.pair,
                epoch=record.epoch,
                written=list(written),
                missed=missed,
            )
            raise NoMajority(
                f"control record of pair {read.pair} at epoch {record.epoch} reached "
                f"{len(written)} of {len(read.views)} stores, {self.majority} needed",
                missed,
            )
        log.info(
            "control.committed",
            pair=read.pair,
            epoch=record.epoch,
            state=record.state,
            active=record.active_region,
            written=list(written),
        )
        return Committed(record, written, missed)

    def _refuse_in_flight(self, read: QuorumRead) -> None:
        # Writes newer than the base are known not to be committed (too few stores can
        # hold them); a fresh one may be a transition still writing its other stores.
        base = read.base
        now = self._clock()
        for view in read.views:
            record = view.record
            if record is None or (base is not None and not _newer(record, base)):
                continue
            if not record.written_at:
                continue
            age = (now - datetime.fromisoformat(record.written_at)).total_seconds()
            if age < self.in_flight_seconds:
                wait = self.in_flight_seconds - age
                raise TransitionInProgress(
                    f"a transition of pair {read.pair} to epoch {record.epoch} "
                    f"(active {record.active_region}) was written {max(age, 0):.1f} s ago "
                    f"and may still be committing; retry in {wait:.0f} s",
                    {view.store: f"holds uncommitted epoch {record.epoch}"},
                )

    async def _write_each(
        self, read: QuorumRead, record: ControlRecord, indexes: Sequence[int]
    ) -> dict[int, str | None]:
        blob = control_blob_name(read.pair)
        data = record.to_json()

        async def one(i: int) -> str | None:
            try:
                await self._bounded(
                    compare_and_swap(
                        self._stores[i], blob, data, read.views[i].etag, conflict=ControlConflict
                    )
                )
            except ControlConflict:
                return "changed since read (compare-and-swap lost)"
            except (StorageError, TimeoutError) as exc:
                return _why(exc)
            return None

        outcomes = await asyncio.gather(*(one(i) for i in indexes))
        return dict(zip(indexes, outcomes, strict=True))

    async def transition(self, pair: str, make: Callable[[QuorumRead], ControlRecord]) -> Committed:
        """Read, let `make` compute the next record from what was read (its `base`),
        write it."""
        read = await self.read(pair, split_ok=True)
        return await self.write(read, make(read))


def _older(record: ControlRecord, committed: ControlRecord) -> bool:
    if record.epoch != committed.epoch:
        return record.epoch < committed.epoch
    if record.txid != committed.txid:
        # The same epoch from another writer can never have reached a majority.
        return True
    return record.revision < committed.revision


def _newer(record: ControlRecord, than: ControlRecord) -> bool:
    """A later epoch, or a later revision of the same transition."""
    if record.epoch != than.epoch:
        return record.epoch > than.epoch
    return record.txid == than.txid and record.revision > than.revision


def _why(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    return f"{type(exc).__name__}: {exc}"
