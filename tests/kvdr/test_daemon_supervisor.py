"""`kvdr up`'s daemon supervisor: the daemon child is restarted with a growing backoff
when it dies, and stopped with SIGTERM."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from kvdr.daemon_supervisor import DaemonSupervisor
from tests.fixtures.waiting import wait_for_sync

DIES_AT_ONCE = [sys.executable, "-c", "import sys; print('starting'); sys.exit(3)"]
RUNS = [sys.executable, "-c", "import time\nwhile True: time.sleep(60)"]


@pytest.fixture
def supervised() -> Iterator[list[DaemonSupervisor]]:
    running: list[DaemonSupervisor] = []
    yield running
    for supervisor in running:
        supervisor.stop(timeout=5)


def in_thread(supervisor: DaemonSupervisor) -> threading.Thread:
    thread = threading.Thread(target=supervisor.supervise, daemon=True)
    thread.start()
    return thread


def exits_until(supervisor: DaemonSupervisor, restarts: int) -> list[dict[str, Any]]:
    """Supervise until `restarts` restarts, stop; the `daemon.exited` log events."""
    with capture_logs() as logs:
        thread = in_thread(supervisor)
        wait_for_sync(lambda: supervisor.restarts >= restarts, 30, f"{restarts} restarts")
        supervisor.stop(timeout=5)
        thread.join(10)
    assert not thread.is_alive()
    return [dict(e) for e in logs if e["event"] == "daemon.exited"]


class TestDaemonSupervisor:
    def test_a_dying_daemon_is_restarted_with_a_doubling_backoff(
        self, tmp_path: Path, supervised: list[DaemonSupervisor]
    ) -> None:
        """Each exit is logged with its code, the restart count and the wait before the
        next start, which doubles up to the maximum; each new process is reported."""
        started: list[int] = []
        supervisor = DaemonSupervisor(
            DIES_AT_ONCE,
            tmp_path / "logs" / "daemon.log",
            on_start=lambda process: started.append(process.pid),
            first_backoff=0.05,
            max_backoff=0.2,
        )
        supervised.append(supervisor)
        exits = exits_until(supervisor, restarts=4)
        assert [e["restarts"] for e in exits[:4]] == [1, 2, 3, 4]
        assert [e["restart_in_seconds"] for e in exits[:4]] == [0.05, 0.1, 0.2, 0.2]
        assert {e["code"] for e in exits} == {3}
        assert len(set(started)) == len(started) >= 4
        assert (tmp_path / "logs" / "daemon.log").read_text().count("starting") >= 4

    def test_a_daemon_that_ran_long_enough_restarts_after_the_first_backoff(
        self, tmp_path: Path, supervised: list[DaemonSupervisor]
    ) -> None:
        """The backoff starts over after a daemon that had been running stably died."""
        supervisor = DaemonSupervisor(
            DIES_AT_ONCE,
            tmp_path / "daemon.log",
            first_backoff=0.05,
            max_backoff=10,
            stable_after=0,
        )
        supervised.append(supervisor)
        exits = exits_until(supervisor, restarts=3)
        assert {e["restart_in_seconds"] for e in exits} == {0.05}

    def test_a_killed_daemon_is_restarted_and_stop_ends_the_new_one(
        self, tmp_path: Path, supervised: list[DaemonSupervisor]
    ) -> None:
        """SIGKILL on the running daemon brings a new process; stop() SIGTERMs it and
        supervision ends without another restart."""
        supervisor = DaemonSupervisor(RUNS, tmp_path / "daemon.log", first_backoff=0.05)
        supervised.append(supervisor)
        first = supervisor.start()
        thread = in_thread(supervisor)
        first.kill()
        wait_for_sync(
            lambda: supervisor.process is not first and supervisor.process, 30, "a new daemon"
        )
        second = supervisor.process
        assert second is not None and second.poll() is None
        supervisor.stop(timeout=5)
        thread.join(10)
        assert not thread.is_alive()
        assert second.returncode == -15
        assert supervisor.restarts == 1 and supervisor.process is second
