"""The pure transitions of a control record (failover/control_transitions.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from failover.control_record import ControlRecord
from failover.control_transitions import (
    TransitionRefused,
    approve,
    begin_failback,
    begin_promote,
    begin_switchover,
    finish_switchover,
    initial_record,
    valid_approvals,
    with_fence_updates,
    with_fences,
)


class TestTransitions:
    def test_switchover_raises_epoch_and_records_history(self) -> None:
        """A switchover makes the target active at an epoch above the highest seen,
        owes a fence on the old primary, and records who, why, loss; finishing it keeps
        the epoch and records the RTO."""
        base = initial_record("app", "eastus", ("westus",))
        begun = begin_switchover(
            base, "westus", by="ops", reason="patch", highest_epoch=4, loss_items=0
        )
        assert (begun.epoch, begun.state, begun.active_region) == (5, "switching-over", "westus")
        assert begun.fences == {"eastus": "required", "westus": "none"}
        assert begun.revision == 1 and begun.txid != base.txid
        done = finish_switchover(begun, 0.8123)
        assert (done.epoch, done.txid, done.state) == (5, begun.txid, "normal")
        assert done.revision == 2
        entry = done.history[-1]
        assert (entry.from_region, entry.to_region, entry.by, entry.reason) == (
            "eastus",
            "westus",
            "ops",
            "patch",
        )
        assert (entry.rto_seconds, entry.loss_items) == (0.812, 0)

    def test_refusals(self) -> None:
        """No switchover to the active region, an unknown region, or while switching."""
        base = initial_record("app", "eastus", ("westus",))
        with pytest.raises(TransitionRefused, match="already active"):
            begin_switchover(base, "eastus", by="o", reason="", highest_epoch=0)
        with pytest.raises(TransitionRefused, match="not a region"):
            begin_switchover(base, "mars", by="o", reason="", highest_epoch=0)
        begun = begin_switchover(base, "westus", by="o", reason="", highest_epoch=0)
        with pytest.raises(TransitionRefused, match="switching-over"):
            begin_switchover(begun, "eastus", by="o", reason="", highest_epoch=1)
        with pytest.raises(TransitionRefused, match="normal, not in a transition"):
            finish_switchover(base, 1.0)

    def test_promote_failback_and_fences(self) -> None:
        """A promote is allowed from any state and leaves the pair failed-over with the
        old primary's fence owed; finishing keeps failed-over; a failback needs
        failed-over, and a fence applied to the new primary stays recorded until the
        finish lifts it (with what lifting needed kept until then)."""
        base = initial_record("app", "eastus", ("westus",))
        with pytest.raises(TransitionRefused, match="not failed-over"):
            begin_failback(base, "westus", by="o", reason="", highest_epoch=0)
        switching = begin_switchover(base, "westus", by="o", reason="", highest_epoch=0)
        promoted = begin_promote(
            switching, "eastus", by="o", reason="gone", highest_epoch=1, forced=True
        )
        assert (promoted.epoch, promoted.state) == (2, "failed-over")
        assert promoted.active_region == "eastus"
        assert promoted.fences == {"eastus": "none", "westus": "required"}
        assert promoted.history[-1].forced and promoted.direction_epoch == 2
        done = finish_switchover(
            promoted, 2.0, loss_items=3, fences={"westus": ("applied", {"rules": [1]})}
        )
        assert (done.state, done.history[-1].loss_items) == ("failed-over", 3)
        assert (done.fences["westus"], done.fence_saved) == ("applied", {"westus": {"rules": [1]}})
        back = begin_failback(done, "westus", by="o", reason="", highest_epoch=2)
        assert back.fences == {"eastus": "required", "westus": "applied"}
        lifted = finish_switchover(back, 1.0, fences={"westus": ("none", None)})
        assert (lifted.state, lifted.fences["westus"], lifted.fence_saved) == ("normal", "none", {})
        again = ControlRecord.from_json(done.to_json(), "blob")
        assert again.fence_saved == done.fence_saved and again.history == done.history

    def test_approvals(self) -> None:
        """Approvals on a never-written record write the pair's first record above the
        highest epoch; one per operator (the newer replaces the older); only those
        inside the window count; a transition uses them up."""
        base = initial_record("app", "eastus", ("westus",))
        first = approve(base, "ana", written=False, highest_epoch=4, at="2026-12-03T10:00:00+00:00")
        assert (first.epoch, first.active_region, first.history) == (5, "eastus", ())
        again = approve(first, "ana", written=True, highest_epoch=5, at="2026-12-03T11:00:00+00:00")
        both = approve(again, "bo", written=True, highest_epoch=5, at="2026-12-03T09:30:00+00:00")
        assert [a.operator for a in both.approvals] == ["ana", "bo"] and both.epoch == 5
        now = datetime(2026, 12, 3, 11, 10, tzinfo=UTC)
        assert valid_approvals(both, now, 3600) == ("ana",)
        assert valid_approvals(both, now, 7200) == ("ana", "bo")
        moved = begin_switchover(both, "westus", by="o", reason="", highest_epoch=5)
        assert moved.approvals == () and moved.direction_epoch == 6

    def test_fence_updates(self) -> None:
        """Fence updates fold into the same write (`with_fence_updates`) or the next
        revision (`with_fences`); an applied fence keeps what lifting it needs, a lifted
        one forgets it."""
        initial = initial_record("app", "eastus", ("westus",))
        base = begin_switchover(initial, "westus", by="o", reason="", highest_epoch=0)
        saved = {"eastus": {"rules": [1]}}
        applied = with_fence_updates(base, {"eastus": ("applied", saved["eastus"])})
        assert (applied.key, applied.previous) == (base.key, base.previous)
        assert (applied.fences["eastus"], applied.fence_saved) == ("applied", saved)
        owed = with_fence_updates(applied, {"eastus": ("required", None)})
        assert (owed.fences["eastus"], owed.fence_saved) == ("required", saved)
        lifted = with_fences(applied, {"eastus": ("none", None)})
        assert (lifted.fences["eastus"], lifted.fence_saved) == ("none", {})
        assert lifted.revision == applied.revision + 1 and lifted.previous is not None
        assert lifted.previous.key == applied.key and lifted.previous.previous is None
