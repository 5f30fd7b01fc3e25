"""The transitions of a control record, as pure functions from one record to the next.

`begin_switchover`, `begin_promote` and `begin_failback` move the active region under a
new epoch; `finish_switchover` records the measured RTO in the same epoch; the fence
and approval updates change a record without moving it. The document itself is
`failover.control_record`; writing a record through the majority rule is
`failover.control_stores` and `failover.transition`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from failover.control_record import Approval, ControlRecord, Fence, State, Transition

# Per region, the fence to record and, for an applied one, what lifting it needs.
FenceUpdates = Mapping[str, tuple[Fence, dict[str, Any] | None]]


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def initial_record(pair: str, primary: str, regions: tuple[str, ...]) -> ControlRecord:
    """What a pair is before its first transition: the configured primary is active at
    epoch 0. Never written as such: the first transition writes epoch 1."""
    return ControlRecord(
        pair=pair,
        active_region=primary,
        epoch=0,
        state="normal",
        txid="initial",
        revision=0,
        fences={region: "none" for region in (primary, *regions)},
    )


class TransitionRefused(Exception):
    """The record's state does not allow the transition asked for."""


def begin_switchover(
    record: ControlRecord,
    to: str,
    *,
    by: str,
    reason: str,
    highest_epoch: int,
    at: str | None = None,
    loss_items: int | None = None,
    loss_basis: str = "",
    approved_by: tuple[str, ...] = (),
    break_glass: bool = False,
) -> ControlRecord:
    """The record that makes `to` active under a new epoch, state `switching-over`.

    `highest_epoch` is the highest epoch seen on any control store, committed or not:
    the new epoch is above it, so a minority write left behind by a lost transition is
    superseded rather than repeated."""
    if record.state != "normal":
        raise TransitionRefused(
            f"pair {record.pair} is {record.state} at epoch {record.epoch}, not normal"
        )
    entry = replace(
        _entry(record, "switchover", to, by, reason, at),
        loss_items=loss_items,
        loss_basis=loss_basis,
        approved_by=approved_by,
        break_glass=break_glass,
    )
    return _begin(record, entry, highest_epoch)


def begin_promote(
    record: ControlRecord,
    to: str,
    *,
    by: str,
    reason: str,
    highest_epoch: int,
    at: str | None = None,
    approved_by: tuple[str, ...] = (),
    break_glass: bool = False,
    forced: bool = False,
) -> ControlRecord:
    """The record that makes `to` active while the active region is gone: a new epoch,
    state `failed-over`, the old primary's fence owed until it answers again. Allowed
    from any state: a region can fail in the middle of a switch too."""
    entry = _entry(record, "promote", to, by, reason, at)
    entry = replace(entry, approved_by=approved_by, break_glass=break_glass, forced=forced)
    return _begin(record, entry, highest_epoch)


def begin_failback(
    record: ControlRecord,
    to: str,
    *,
    by: str,
    reason: str,
    highest_epoch: int,
    at: str | None = None,
    loss_items: int | None = None,
    loss_basis: str = "",
) -> ControlRecord:
    """Back to `to` (the region that was promoted away from) as a planned switch, state
    `failing-back` until its RTO is recorded."""
    if record.state != "failed-over":
        raise TransitionRefused(
            f"pair {record.pair} is {record.state} at epoch {record.epoch}, not failed-over: "
            "a failback follows a promote (use switchover otherwise)"
        )
    entry = _entry(record, "failback", to, by, reason, at)
    entry = replace(entry, loss_items=loss_items, loss_basis=loss_basis)
    return _begin(record, entry, highest_epoch)


# The state each kind of transition leaves the record in until its RTO is recorded.
_BEGUN: dict[str, State] = {
    "switchover": "switching-over",
    "promote": "failed-over",
    "failback": "failing-back",
}


def _entry(
    record: ControlRecord, kind: str, to: str, by: str, reason: str, at: str | None
) -> Transition:
    """The history entry of a transition of `kind` away from the active region; its
    epoch and txid are set by `_begin`."""
    return Transition(
        epoch=0,
        txid="",
        kind=kind,
        from_region=record.active_region,
        to_region=to,
        by=by,
        at=at or now_iso(),
        reason=reason,
    )


def _begin(record: ControlRecord, entry: Transition, highest_epoch: int) -> ControlRecord:
    to = entry.to_region
    if to == record.active_region:
        raise TransitionRefused(f"{to} is already active at epoch {record.epoch}")
    if to not in record.fences:
        raise TransitionRefused(f"{to} is not a region of pair {record.pair}")
    epoch = max(record.epoch, highest_epoch) + 1
    txid = uuid.uuid4().hex
    old = record.active_region
    fences = dict(record.fences)
    # The old primary stays fenced until it is made active again: owed until kvdr (or a
    # person) applies it.
    if fences.get(old) != "applied":
        fences[old] = "required"
    if fences.get(to) != "applied":
        # An applied fence on the new primary stays recorded until it is lifted.
        fences[to] = "none"
    return replace(
        record,
        active_region=to,
        epoch=epoch,
        state=_BEGUN[entry.kind],
        txid=txid,
        revision=record.revision + 1,
        fences=fences,
        approvals=(),
        history=(*record.history, replace(entry, epoch=epoch, txid=txid)),
        previous=replace(record, previous=None) if record.epoch else None,
    )


def finish_switchover(
    record: ControlRecord,
    rto_seconds: float,
    *,
    loss_items: int | None = None,
    loss_basis: str | None = None,
    fences: FenceUpdates | None = None,
) -> ControlRecord:
    """The same epoch and transition with its measured RTO (and, for a promote, its
    loss); a switchover or failback returns to `normal`, a promote stays `failed-over`."""
    if record.state not in ("switching-over", "failing-back", "failed-over") or not record.history:
        raise TransitionRefused(f"pair {record.pair} is {record.state}, not in a transition")
    last = replace(record.history[-1], rto_seconds=round(rto_seconds, 3))
    if loss_items is not None:
        last = replace(last, loss_items=loss_items)
    if loss_basis is not None:
        last = replace(last, loss_basis=loss_basis)
    return replace(
        with_fence_updates(record, fences or {}),
        state="failed-over" if record.state == "failed-over" else "normal",
        revision=record.revision + 1,
        history=(*record.history[:-1], last),
        previous=replace(record, previous=None),
    )


def with_fence_updates(record: ControlRecord, updates: FenceUpdates) -> ControlRecord:
    """`record` with `updates` applied to its fences (an applied fence keeps what
    lifting it needs, a lifted one forgets it); the same write otherwise: what a
    command's fencer did, folded into the record it is about to write or lift from."""
    fences, saved = dict(record.fences), dict(record.fence_saved)
    for region, (fence, kept) in updates.items():
        fences[region] = fence
        if fence == "applied" and kept is not None:
            saved[region] = kept
        elif fence == "none":
            saved.pop(region, None)
    return replace(record, fences=fences, fence_saved=saved)


def with_fences(record: ControlRecord, updates: FenceUpdates) -> ControlRecord:
    """The same epoch, fences changed (applied once kvdr fenced a region, with what
    lifting it needs), as the next revision."""
    return replace(
        with_fence_updates(record, updates),
        revision=record.revision + 1,
        previous=replace(record, previous=None),
    )


def approve(
    record: ControlRecord,
    operator: str,
    *,
    written: bool,
    highest_epoch: int,
    at: str | None = None,
) -> ControlRecord:
    """One more approval for the next transition (an operator's newer approval replaces
    their older one). On a record that was never `written`, the pair's first record:
    the configured primary active, at an epoch above `highest_epoch`, no transition."""
    kept = tuple(a for a in record.approvals if a.operator != operator)
    approvals = (*kept, Approval(operator=operator, at=at or now_iso()))
    if not written:
        return replace(
            record,
            epoch=max(record.epoch, highest_epoch) + 1,
            txid=uuid.uuid4().hex,
            revision=record.revision + 1,
            approvals=approvals,
        )
    return replace(
        record,
        approvals=approvals,
        revision=record.revision + 1,
        previous=replace(record, previous=None),
    )


def valid_approvals(record: ControlRecord, now: datetime, window_seconds: float) -> tuple[str, ...]:
    """The distinct operators whose approvals are younger than the window."""
    fresh = [
        a.operator
        for a in record.approvals
        if (now - datetime.fromisoformat(a.at)).total_seconds() <= window_seconds
    ]
    return tuple(sorted(set(fresh)))
