"""Blob names of the backups (backups/paths.py): pure functions and their inverses."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backups import paths
from backups.paths import HeadName, Pos, SegmentName, SnapshotName
from storage._names import check_blob_name, check_metadata

PAIRS = st.from_regex(r"[A-Za-z0-9_-]{1,63}", fullmatch=True)
GENERATIONS = st.builds(
    lambda ts, token: paths.new_generation(datetime.fromtimestamp(ts, UTC), token),
    st.integers(0, 4_000_000_000),
    st.from_regex(r"[0-9a-f]{8}", fullmatch=True),
)
SEQUENCES = st.integers(1, paths.MAX_SEQUENCE)


class TestRoundTrips:
    @given(PAIRS, GENERATIONS, SEQUENCES, st.integers(0, 10**6))
    def test_segment_names_parse_back(self, pair: str, gen: str, first: int, extra: int) -> None:
        """A segment name parses back to its pair, generation and range; it is a valid blob name."""
        last = min(first + extra, paths.MAX_SEQUENCE)
        name = paths.segment_blob(pair, gen, first, last)
        assert paths.parse_blob(name) == SegmentName(pair, gen, first, last)
        assert check_blob_name(name) == name

    @given(PAIRS, GENERATIONS, SEQUENCES)
    def test_snapshot_names_parse_back(self, pair: str, gen: str, seq: int) -> None:
        """A snapshot name parses back to its pair, generation and sequence."""
        name = paths.snapshot_blob(pair, gen, seq)
        assert paths.parse_blob(name) == SnapshotName(pair, gen, seq)
        assert paths.parse_blob(name).blob == name  # type: ignore[union-attr]

    @given(PAIRS)
    def test_head_names_parse_back(self, pair: str) -> None:
        """The head blob of a pair parses back to the pair."""
        assert paths.parse_blob(paths.head_blob(pair)) == HeadName(pair)

    @given(PAIRS, GENERATIONS, st.lists(SEQUENCES, min_size=2, max_size=20))
    def test_names_sort_in_sequence_order(self, pair: str, gen: str, seqs: list[int]) -> None:
        """Zero padding makes name order equal sequence order."""
        names = [paths.snapshot_blob(pair, gen, s) for s in seqs]
        assert sorted(names) == [paths.snapshot_blob(pair, gen, s) for s in sorted(seqs)]

    def test_generation_ids_sort_by_start(self) -> None:
        """Generation ids sort by their start time and give it back."""
        early = paths.new_generation(datetime(2025, 1, 1, 12, tzinfo=UTC))
        late = paths.new_generation(datetime(2025, 1, 2, 0, tzinfo=UTC))
        assert early < late
        assert paths.generation_started(early) == datetime(2025, 1, 1, 12, tzinfo=UTC)


class TestRefusals:
    @pytest.mark.parametrize(
        "name",
        [
            "checkpoints/app/westus.json",
            "backups/app",
            "backups/app/not-a-gen/segments/000000000001-000000000002.seg",
            "backups/app/20250101T000000Z-0000abcd/segments/000000000002-000000000001.seg",
            "backups/app/20250101T000000Z-0000abcd/segments/1-2.seg",
            "backups/app/20250101T000000Z-0000abcd/snapshots/000000000000.snap",
            "backups/app/20250101T000000Z-0000abcd/other/000000000001.snap",
            "backups/a b/20250101T000000Z-0000abcd/snapshots/000000000001.snap",
        ],
    )
    def test_other_names_are_not_backup_blobs(self, name: str) -> None:
        """Anything that is not exactly a backup blob name is refused, naming it."""
        with pytest.raises(ValueError, match="not a backup blob name"):
            paths.parse_blob(name)

    def test_bad_inputs_are_named(self) -> None:
        """Bad pairs, generations and ranges are refused with the input in the message."""
        with pytest.raises(ValueError, match="'a/b'"):
            paths.head_blob("a/b")
        with pytest.raises(ValueError, match="'g1'"):
            paths.snapshot_blob("app", "g1", 1)
        gen = paths.new_generation(datetime(2025, 1, 1, tzinfo=UTC))
        with pytest.raises(ValueError, match="ends before it starts"):
            paths.segment_blob("app", gen, 5, 4)
        with pytest.raises(ValueError, match="from 1"):
            paths.snapshot_blob("app", gen, 0)


class TestMetadataAndPositions:
    @given(st.floats(0, 4e9), st.floats(0, 4e9))
    def test_metadata_round_trip(self, first: float, last: float) -> None:
        """Time range metadata parses back (to the microsecond) and is valid metadata."""
        meta = paths.object_metadata(first, last)
        assert check_metadata(meta) == meta
        parsed = paths.parse_metadata(meta)
        assert parsed is not None
        assert abs(parsed[0] - first) < 1e-5 and abs(parsed[1] - last) < 1e-5

    def test_malformed_metadata_is_none(self) -> None:
        """Missing or malformed metadata is None, not an error."""
        assert paths.parse_metadata({}) is None
        assert paths.parse_metadata({"first_at": "x", "last_at": "1"}) is None

    def test_positions_are_values(self) -> None:
        """Positions compare and print as generation/sequence."""
        assert str(Pos("g", 4)) == "g/4"
        assert Pos("g", 0).is_zero() and Pos("g", 3) < Pos("g", 4)
