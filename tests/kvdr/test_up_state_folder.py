"""`kvdr up` in a folder whose `.kvdr/` cannot be written (issue 14): a read-only one
(the immutable attribute, which binds root too) or a full one (a 64 KB tmpfs) is named
with the reason, exit 1, nothing started and no traceback. Each case skips where the
machine does not allow making such a folder."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.cli import run_kvdr


def _allowed(*argv: str) -> bool:
    return subprocess.run(list(argv), capture_output=True).returncode == 0


@pytest.fixture
def read_only_state(tmp_path: Path) -> Iterator[Path]:
    state = tmp_path / ".kvdr"
    state.mkdir()
    if not _allowed("chattr", "+i", str(state)):
        pytest.skip("chattr +i is not permitted here")
    try:
        yield tmp_path
    finally:
        _allowed("chattr", "-i", str(state))


@pytest.fixture
def full_state(tmp_path: Path) -> Iterator[Path]:
    state = tmp_path / ".kvdr"
    state.mkdir()
    if not _allowed("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(state)):
        pytest.skip("mounting a tmpfs is not permitted here")
    try:
        (state / "filler").write_bytes(b"\0" * 60_000)
        yield tmp_path
    finally:
        _allowed("umount", str(state))


def assert_named(result: subprocess.CompletedProcess[str], folder: Path, reason: str) -> None:
    assert result.returncode == 1, result.stderr
    assert f"the state folder {folder / '.kvdr'} cannot be written" in result.stderr
    assert reason in result.stderr and "Traceback" not in result.stderr
    assert not (folder / ".kvdr" / "stack.pids").exists()


def test_a_read_only_state_folder_is_named(read_only_state: Path) -> None:
    for args in (("up", "--detach"), ("up",)):
        result = run_kvdr(*args, cwd=read_only_state, timeout=60)
        assert_named(result, read_only_state, "Operation not permitted")


def test_a_full_state_folder_is_named(full_state: Path) -> None:
    result = run_kvdr("up", "--detach", cwd=full_state, timeout=60)
    assert_named(result, full_state, "No space left on device")
