"""The control record document (failover/control_record.py): strict parsing that names
the blob and the field (the transitions: test_control_transitions.py)."""

from __future__ import annotations

import contextlib
import json
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from failover.control_record import (
    ControlRecord,
    MalformedControlRecord,
    control_blob_name,
    parse_control_blob_name,
)
from failover.control_transitions import (
    begin_switchover,
    finish_switchover,
    initial_record,
    now_iso,
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
