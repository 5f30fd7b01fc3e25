"""The local stack's process records: a pid is signalled only while it is still the
process `kvdr up` started."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kvdr.stack_processes import (
    StackProcess,
    read_records,
    start_time,
    stop_order,
    stop_processes,
    write_records,
)
from tests.fixtures.waiting import wait_for_sync

# A child that stays until it is signalled; the second ignores SIGTERM.
SLEEPER = [sys.executable, "-c", "import time\nwhile True: time.sleep(60)"]
STUBBORN = [
    sys.executable,
    "-c",
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "sys.stdout.write('ready\\n'); sys.stdout.flush()\n"
    "while True: time.sleep(60)",
]


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for child in started:
        if child.poll() is None:
            child.kill()
        child.wait()


def spawn(children: list[subprocess.Popen[bytes]], argv: list[str]) -> subprocess.Popen[bytes]:
    child = subprocess.Popen(argv, stdout=subprocess.PIPE)
    children.append(child)
    return child


class TestRecords:
    def test_round_trip_through_the_file(self, tmp_path: Path) -> None:
        """Records written to stack.pids read back equal, in order."""
        records = [StackProcess("chaos-proxy", 10, 111), StackProcess("daemon", 12, 222)]
        write_records(tmp_path / "stack.pids", records)
        assert read_records(tmp_path / "stack.pids") == records

    def test_bare_pids_and_garbage_are_not_records(self, tmp_path: Path) -> None:
        """A bare pid (an older kvdr's stack.pids) cannot be checked, so it is no record."""
        (tmp_path / "stack.pids").write_text("4242\nemulator x 1\nazurite 7 99\n")
        assert read_records(tmp_path / "stack.pids") == [StackProcess("azurite", 7, 99)]
        assert read_records(tmp_path / "missing") == []

    def test_stop_order_puts_the_daemon_first(self) -> None:
        """The daemon stops first, the others in the reverse of their start order."""
        names = ["chaos-proxy", "emulator-eastus", "azurite", "daemon"]
        records = [StackProcess(n, i, i) for i, n in enumerate(names)]
        assert [r.name for r in stop_order(records)] == [
            "daemon",
            "azurite",
            "emulator-eastus",
            "chaos-proxy",
        ]


class TestIdentity:
    def test_a_running_child_is_its_record(self, children: list[subprocess.Popen[bytes]]) -> None:
        """A live child's record is running; after it exits (and is reaped) it is not."""
        child = spawn(children, SLEEPER)
        record = StackProcess.of("sleeper", child.pid)
        assert record is not None and record.running()
        child.kill()
        child.wait()
        assert not record.running()
        assert StackProcess.of("sleeper", child.pid) is None

    def test_a_zombie_does_not_count_as_running(
        self, children: list[subprocess.Popen[bytes]]
    ) -> None:
        """A child that exited but is not reaped yet is dead for the records."""
        child = spawn(children, [sys.executable, "-c", "pass"])
        wait_for_sync(lambda: start_time(child.pid) is None, 10, "the child to exit")
        assert Path(f"/proc/{child.pid}").exists()  # not reaped: a zombie

    def test_a_reused_pid_is_never_signalled(self, children: list[subprocess.Popen[bytes]]) -> None:
        """A record whose start time does not match the pid's process (the pid was given
        to another process) is not running, and stopping it leaves that process alone."""
        child = spawn(children, SLEEPER)
        started = start_time(child.pid)
        assert started is not None
        impostor = StackProcess("emulator-eastus", child.pid, started - 1)
        assert not impostor.running()
        assert stop_processes([impostor], timeout=0.5) == []
        assert child.poll() is None


class TestStop:
    def test_sigterm_stops_a_child(self, children: list[subprocess.Popen[bytes]]) -> None:
        """A child that honours SIGTERM stops with it and is not killed."""
        child = spawn(children, SLEEPER)
        record = StackProcess.of("sleeper", child.pid)
        assert record is not None
        assert stop_processes([record], timeout=10) == []
        assert child.wait(10) == -signal.SIGTERM

    def test_sigkill_after_the_timeout(self, children: list[subprocess.Popen[bytes]]) -> None:
        """A child that ignores SIGTERM is killed once the timeout has passed, and named."""
        child = spawn(children, STUBBORN)
        assert child.stdout is not None and child.stdout.readline() == b"ready\n"
        record = StackProcess.of("stubborn", child.pid)
        assert record is not None
        assert stop_processes([record], timeout=0.3) == [record]
        assert child.wait(10) == -signal.SIGKILL
