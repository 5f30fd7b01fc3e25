"""The control record document (failover/control_record.py): strict parsing that names
the blob and the field, and the pure transitions."""

from __future__ import annotations

import contextlib
import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from failover.control_record import (
    ControlRecord,
    MalformedControlRecord,
    TransitionRefused,
    approve,
    begin_failback,
    begin_promote,
    begin_switchover,
    control_blob_name,
    finish_switchover,
    initial_record,
    now_iso,
    parse_control_blob_name,
    valid_approvals,
)

BLOB = "0:local/failover/app/control.json"


def switched() -> ControlRecord:
    base = initial_record("app", "eastus", ("westus",))
    begun = begin_switchover(
        base, "westus", by="ops", reason="maintenance", highest_epoch=0, loss_items=0
    )
    # `written_at` is set by the control stores on every write.
    return replace(finish_switchover(begun, 1.25), written_at=now_iso())


def doc() -> dict[str, Any]:
    out: dict[str, Any] = json.loads(switched().to_json())
    return out


class TestDocument:
    def test_round_trip(self) -> None:
        """A record reads back equal to what was written."""
        record = switched()
        assert ControlRecord.from_json(record.to_json(), BLOB) == record

    def test_blob_names_round_trip(self) -> None:
        """One blob per pair, under failover/; the parse function inverts the name."""
        assert control_blob_name("app") == "failover/app/control.json"
        assert parse_control_blob_name(control_blob_name("app")) == "app"
        with pytest.raises(ValueError):
            control_blob_name("../x")
        with pytest.raises(ValueError):
            parse_control_blob_name("failover/app/other.json")

    @pytest.mark.parametrize(
        ("mutate", "field"),
        [
            (lambda d: d.pop("epoch"), "epoch: missing"),
            (lambda d: d.update(epoch="3"), "epoch: expected an integer"),
            (lambda d: d.update(epoch=True), "epoch: expected an integer"),
            (lambda d: d.update(epoch=-1), "epoch: expected an integer >= 0"),
            (lambda d: d.update(state="broken"), "state: 'broken' is not one of"),
            (lambda d: d.update(format=2), "format: unsupported format 2"),
            (lambda d: d.update(extra=1), "extra: unknown field"),
            (lambda d: d["fences"].update(eastus="maybe"), "fences.eastus: 'maybe'"),
            (lambda d: d["fences"].pop("westus"), "fences: no entry for the active region"),
            (lambda d: d.update(history={}), "history: expected an array"),
            (lambda d: d["history"][0].update(at="yesterday"), "history[0].at: expected an ISO"),
            (lambda d: d["history"][0].update(rto_seconds=-1), "history[0].rto_seconds"),
            (lambda d: d["history"][0].update(kind="coup"), "history[0].kind"),
            (lambda d: d["approvals"].append({"operator": ""}), "approvals[0].operator"),
        ],
    )
    def test_malformed_names_blob_and_field(self, mutate: Any, field: str) -> None:
        """Every malformed document raises MalformedControlRecord naming the blob and the
        field, never a KeyError or TypeError."""
        d = doc()
        mutate(d)
        with pytest.raises(MalformedControlRecord) as caught:
            ControlRecord.from_json(json.dumps(d).encode(), BLOB)
        assert BLOB in str(caught.value) and field in str(caught.value)
        assert caught.value.blob == BLOB

    @pytest.mark.parametrize("data", [b"", b"{", b"[]", b"\xff\xfe", b"null"])
    def test_not_an_object(self, data: bytes) -> None:
        """Bytes that are not a JSON object are malformed, with the blob named."""
        with pytest.raises(MalformedControlRecord, match="control record 0:local"):
            ControlRecord.from_json(data, BLOB)

    @given(st.sampled_from(sorted(doc())), st.none() | st.booleans() | st.integers() | st.text())
    def test_any_field_replaced_never_crashes_the_parser(self, key: str, value: object) -> None:
        """A valid document with any one field replaced by any scalar either parses or
        raises MalformedControlRecord."""
        d = doc()
        d[key] = value
        with contextlib.suppress(MalformedControlRecord):
            ControlRecord.from_json(json.dumps(d).encode(), BLOB)


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
