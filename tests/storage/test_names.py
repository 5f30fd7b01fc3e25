"""The one naming rule: every accepted name is one path inside the store's folder."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage._names import check_blob_name, check_lease, check_metadata


class TestBlobNames:
    @given(st.text(min_size=1, max_size=60))
    def test_accepted_names_stay_inside_the_root(self, name: str) -> None:
        """Any accepted name maps to a relative path below the root (no escape, no alias)."""
        try:
            check_blob_name(name)
        except ValueError:
            return
        path = PurePosixPath(*name.split("/"))
        assert not path.is_absolute()
        assert ".." not in path.parts and "." not in path.parts
        assert path.as_posix() == name  # one name, one path: nothing collapsed

    @pytest.mark.parametrize(
        "name", ["journal/p/g1/0000000001-0000000100.seg", "control", "a b/ü.json", "x" * 255]
    )
    def test_ordinary_names_are_accepted(self, name: str) -> None:
        """Names kvdr uses (paths, spaces, non-ASCII) are accepted unchanged."""
        assert check_blob_name(name) == name

    def test_long_segments_and_names_are_refused(self) -> None:
        """A segment over 255 bytes or a name over 1,024 characters is refused."""
        with pytest.raises(ValueError, match="255"):
            check_blob_name("é" * 128)
        with pytest.raises(ValueError, match="1024"):
            check_blob_name("a/" * 512 + "a")


class TestMetadataAndLeases:
    def test_case_duplicates_are_refused(self) -> None:
        """Keys differing only in case are one key to Azure, so they are refused."""
        with pytest.raises(ValueError, match="'Kind'"):
            check_metadata({"kind": "a", "Kind": "b"})

    def test_lease_rules(self) -> None:
        """Lease ids must be GUIDs and durations 15-60 s; booleans are not numbers."""
        good = "5f2b4c1e-7a61-4d0e-9a43-3f1d2b6c8e90"
        check_lease(good, 15)
        check_lease(good, 60)
        with pytest.raises(ValueError):
            check_lease(good, True)
        with pytest.raises(ValueError, match="GUID"):
            check_lease("pair-a-leader", 30)
