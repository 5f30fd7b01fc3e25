"""Replay rules (backups/state.py, backups/index.py) and the record codec
(backups/records.py): pure, property-tested."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backups import records
from backups.index import JournalIndex
from backups.records import RecordError
from backups.state import PairState
from replicator.sink import version_fingerprint
from vault.models import Change, ChangeOp, ItemKind, ItemProperties, ItemRef

T0 = datetime(2025, 1, 1, tzinfo=UTC)
TAGS = st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=8), max_size=3)
TIMES = st.none() | st.integers(0, 2_000_000_000).map(lambda s: datetime.fromtimestamp(s, UTC))


@st.composite
def properties(
    draw: st.DrawFn, kind: ItemKind = ItemKind.SECRET, name: str = "db"
) -> ItemProperties:
    return ItemProperties(
        kind=kind,
        name=name,
        version=draw(st.sampled_from(["v1", "v2", "v3", "v4"])),
        enabled=draw(st.booleans()),
        not_before=draw(TIMES),
        expires_on=draw(TIMES),
        created_on=draw(TIMES),
        updated_on=draw(TIMES),
        content_type=draw(st.none() | st.text(max_size=20)),
        tags=draw(TAGS),
        managed=draw(st.booleans()),
        key_type=draw(st.none() | st.sampled_from(["RSA", "EC-HSM"])),
        recovery_level=draw(st.none() | st.just("Recoverable+Purgeable")),
    )


class TestCodec:
    @given(properties(), st.none() | st.text(max_size=50) | st.binary(max_size=50))
    def test_changes_round_trip(self, props: ItemProperties, payload: str | bytes | None) -> None:
        """A change with any properties and payload survives a segment line."""
        change = Change("app", props.ref, ChangeOp.NEW_VERSION, T0, props, 7, payload)
        line = records.change_to_line(change, T0.timestamp())
        assert b"\n" not in line
        back = records.change_from_line("app", line)
        assert back == change and back.payload == payload

    @given(st.lists(properties(), max_size=4), st.booleans())
    def test_items_round_trip(self, versions: list[ItemProperties], deleted: bool) -> None:
        """A snapshot item line gives back its versions, flags and payloads."""
        entries = [(p, 1.5, f"value-{i}") for i, p in enumerate(versions)]
        line = records.item_to_line(ItemRef(ItemKind.SECRET, "db"), deleted, 2.0, entries)  # type: ignore[arg-type]
        item, back_deleted, changed, back = records.item_from_line(line)
        assert (item.name, back_deleted, changed) == ("db", deleted, 2.0)
        assert back == entries

    @pytest.mark.parametrize(
        "line,field",
        [
            (b"[]", "not a JSON object"),
            (b'{"k":"thing","n":"x"}', "'k'"),
            (b'{"k":"secret","n":"x","o":"explode","s":1,"a":0}', "'o'"),
            (b'{"k":"secret","n":"x","o":"delete","s":0,"a":0}', "'s'"),
            (b'{"k":"secret","n":"x","o":"delete","s":1,"a":0,"x":{"b":"@@"}}', "'x.b'"),
        ],
    )
    def test_bad_lines_name_the_field(self, line: bytes, field: str) -> None:
        """A malformed record names the field at fault."""
        with pytest.raises(RecordError, match=field):
            records.change_from_line("app", line)


OPS = st.sampled_from([ChangeOp.NEW_VERSION, ChangeOp.UPDATE, ChangeOp.DELETE, ChangeOp.RECOVER])


@st.composite
def histories(draw: st.DrawFn) -> list[Change]:
    changes = []
    for seq in range(1, draw(st.integers(1, 15)) + 1):
        name = draw(st.sampled_from(["a", "b"]))
        op = draw(OPS)
        props = (
            draw(properties(name=name)) if op in (ChangeOp.NEW_VERSION, ChangeOp.UPDATE) else None
        )
        at = T0 + timedelta(seconds=seq)
        changes.append(Change("app", ItemRef(ItemKind.SECRET, name), op, at, props, seq, "v"))
    return changes


class TestReplayRules:
    @given(histories())
    @settings(max_examples=80)
    def test_index_agrees_with_state(self, history: list[Change]) -> None:
        """The journal's index and the restore state apply the same rules."""
        state, index = PairState("app", "g"), JournalIndex(version_fingerprint)
        for change in history:
            state.apply(change)
            index.apply(change)
        for ref, item in state.items.items():
            expected = (
                {}
                if item.deleted
                else {v: version_fingerprint(s.props) for v, s in item.versions.items()}
            )
            assert index.recorded(ref) == expected
        assert state.sequence == history[-1].sequence

    def test_delete_then_new_unknown_version_starts_over(self) -> None:
        """A deleted item that gets an unknown version was purged and created anew."""
        state = PairState("app", "g")
        ref = ItemRef(ItemKind.SECRET, "db")
        v1 = ItemProperties(ItemKind.SECRET, "db", "v1")
        v2 = ItemProperties(ItemKind.SECRET, "db", "v2")
        state.apply(Change("app", ref, ChangeOp.NEW_VERSION, T0, v1, 1, "one"))
        state.apply(Change("app", ref, ChangeOp.DELETE, T0, None, 2))
        state.apply(Change("app", ref, ChangeOp.NEW_VERSION, T0, v2, 3, "two"))
        assert list(state.items[ref].versions) == ["v2"]

    def test_keys_keep_only_the_newest_backup(self) -> None:
        """Older key versions drop their backup blob once a newer one is recorded."""
        state = PairState("app", "g")
        ref = ItemRef(ItemKind.KEY, "k")
        for seq, version in enumerate(["v1", "v2"], start=1):
            props = ItemProperties(ItemKind.KEY, "k", version)
            state.apply(Change("app", ref, ChangeOp.NEW_VERSION, T0, props, seq, version.encode()))
        assert [v.payload for v in state.items[ref].ordered()] == [None, b"v2"]
        assert state.items[ref].backup == b"v2"
