"""Malformed state documents are refused naming the blob (replicator/state_documents.py)."""

from __future__ import annotations

import json

import pytest

from replicator.checkpoint import Checkpoint
from replicator.guard import GuardState
from replicator.members import Heartbeat
from replicator.state_seal import StateDocumentUnreadable

BLOB = "checkpoints/app/westus.json"


def _checkpoint(**fields: object) -> bytes:
    doc: dict[str, object] = {
        "format": 1,
        "pair": "app",
        "target": "westus",
        "updated_at": 1.0,
        "items": {"secret/db": ["fp", "v1", "t1", 1.0]},
    }
    doc.update(fields)
    return json.dumps(doc).encode()


class TestCheckpointDocument:
    def test_entries_without_the_optional_fields_read(self) -> None:
        """Four-, five- and six-element entries all read; the absent fields are None."""
        data = _checkpoint(
            items={
                "secret/a": ["fp", "v1", None, 1.0],
                "secret/b": ["fp", "v1", "t1", 1.0, 2.0],
                "secret/c": ["fp", "v1", "t1", 1.0, None, "h"],
            }
        )
        cp = Checkpoint.from_json(data, etag="e", blob=BLOB)
        assert (cp.items["secret/a"].deleted_at, cp.items["secret/a"].history) == (None, None)
        assert cp.items["secret/b"].deleted_at == 2.0
        assert cp.items["secret/c"].history == "h"

    @pytest.mark.parametrize(
        ("data", "reason"),
        [
            (b"{", "checkpoint is not JSON"),
            (b"[1, 2]", "checkpoint is not a JSON object"),
            (_checkpoint(format=7), "unsupported format (7)"),
            (_checkpoint(format="x"), "unsupported format (missing or not a number)"),
            (_checkpoint(items=None), "checkpoint is malformed: items: "),
            (_checkpoint(pair=None), "checkpoint is malformed: pair: "),
            (
                _checkpoint(items={"secret/db": ["fp"]}),
                "items.<item>: Value error, an entry has 4 to 6 fields",
            ),
            (_checkpoint(items={"secret/db": ["fp", "v", "t", "soon"]}), "items.<item>.3: "),
        ],
    )
    def test_malformed_checkpoints_name_the_blob(self, data: bytes, reason: str) -> None:
        """Anything but a checkpoint is StateDocumentUnreadable naming the blob, never a
        KeyError or TypeError."""
        with pytest.raises(StateDocumentUnreadable) as caught:
            Checkpoint.from_json(data, etag=None, blob=BLOB)
        assert caught.value.blob == BLOB
        assert str(caught.value).startswith(f"state document {BLOB!r}: ")
        assert reason in str(caught.value)

    def test_values_and_item_names_are_not_quoted(self) -> None:
        """A rejected value or an item's name never appears in the message."""
        data = _checkpoint(items={"secret/payroll-db": ["fp", "v", "t", "hunter2"]})
        with pytest.raises(StateDocumentUnreadable) as caught:
            Checkpoint.from_json(data, etag=None, blob=BLOB)
        assert "hunter2" not in str(caught.value)
        assert "payroll" not in str(caught.value)


class TestGuardDocument:
    @pytest.mark.parametrize(
        ("doc", "reason"),
        [
            ({"format": 1}, "deletion guard is malformed: pair: Field required"),
            ({"format": 1, "pair": "app", "limits": {"fraction": 0.5}}, "limits.min_items: "),
            ({"format": 1, "pair": "app", "withheld": "secret/a"}, "withheld: "),
            ({"format": 1, "pair": "app", "deleted": "many"}, "deleted: "),
            ({"format": 2, "pair": "app"}, "unsupported format (2)"),
        ],
    )
    def test_malformed_guards_name_the_blob(self, doc: dict[str, object], reason: str) -> None:
        """A damaged guard document says which field is wrong and where it is stored."""
        blob = "guards/app.json"
        with pytest.raises(StateDocumentUnreadable) as caught:
            GuardState.from_json(json.dumps(doc).encode(), etag=None, blob=blob)
        assert caught.value.blob == blob
        assert reason in str(caught.value)

    def test_a_minimal_guard_reads_with_its_defaults(self) -> None:
        """Only format and pair are required; the rest has the untripped defaults."""
        state = GuardState.from_json(b'{"format":1,"pair":"app"}', etag="e")
        assert state == GuardState(pair="app")


class TestHeartbeatDocument:
    def test_a_malformed_heartbeat_names_the_blob_and_every_field(self) -> None:
        """Each wrong field is listed, without its value."""
        blob = "members/m1.json"
        data = json.dumps(
            {"format": 1, "member": "m1", "instance": "i", "beat": "x", "at": "t"}
        ).encode()
        with pytest.raises(StateDocumentUnreadable) as caught:
            Heartbeat.from_json(data, blob)
        message = str(caught.value)
        assert caught.value.blob == blob
        for field in ("beat", "lease_seconds", "held", "handing_over"):
            assert f"{field}: " in message
        assert "'x'" not in message
