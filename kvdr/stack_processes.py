"""The processes of the local stack as `kvdr up` records them, and stopping them safely.

`kvdr up` writes `.kvdr/up.pid` (itself) and `.kvdr/stack.pids` (the emulators, Azurite,
the fault proxy and the daemon), one `name pid start` line each. `start` is the
process's start time as the kernel reports it (`/proc/<pid>/stat`, field 22, clock
ticks since boot): a pid is only ever signalled while that start time still matches,
so a pid the kernel has since given to another process is never killed. Where there
is no `/proc`, nothing counts as running and nothing is signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

# How often a stop looks again whether the processes it signalled are gone.
_POLL_SECONDS = 0.1


def start_time(pid: int) -> int | None:
    """When `pid` started (clock ticks since boot), or None when it is gone or a zombie."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may itself hold spaces or ")".
    fields = text[text.rfind(")") + 2 :].split()
    if len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


@dataclass(frozen=True)
class StackProcess:
    """One process `kvdr up` started: its part's name, pid and start time."""

    name: str
    pid: int
    started: int

    @classmethod
    def of(cls, name: str, pid: int) -> StackProcess | None:
        """The record of a running `pid`, or None when it has already exited."""
        started = start_time(pid)
        return None if started is None else cls(name, pid, started)

    def line(self) -> str:
        return f"{self.name} {self.pid} {self.started}\n"

    @classmethod
    def parse(cls, line: str) -> StackProcess | None:
        """The record on `line`; None for anything else (a bare pid cannot be checked)."""
        parts = line.split()
        if len(parts) != 3 or not (parts[1].isdigit() and parts[2].isdigit()):
            return None
        return cls(parts[0], int(parts[1]), int(parts[2]))

    def running(self) -> bool:
        """True while this pid is still the process that was recorded."""
        return start_time(self.pid) == self.started

    def describe(self) -> str:
        return f"{self.name} (pid {self.pid})"


def write_records(path: Path, records: Iterable[StackProcess]) -> None:
    """Replace `path` with `records`, atomically: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text("".join(r.line() for r in records), encoding="ascii")
    os.replace(temporary, path)


def read_records(path: Path) -> list[StackProcess]:
    """The records in `path` (none when it is missing)."""
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except OSError:
        return []
    return [r for r in map(StackProcess.parse, text.splitlines()) if r is not None]


def stop_order(records: Sequence[StackProcess]) -> list[StackProcess]:
    """The daemon first (its last checkpoint and journal writes need Azurite), then the
    other parts in the reverse of the order they started in."""
    daemon = [r for r in records if r.name == "daemon"]
    return daemon + [r for r in reversed(records) if r.name != "daemon"]


def _signal(record: StackProcess, sig: signal.Signals) -> None:
    if record.running():
        with contextlib.suppress(ProcessLookupError):
            os.kill(record.pid, sig)


def stop_processes(records: Sequence[StackProcess], timeout: float) -> list[StackProcess]:
    """SIGTERM each still-running record in turn and wait for it (at most `timeout`
    seconds for all), then SIGKILL whatever is left. Returns those that had to be
    killed. A record whose pid now belongs to another process is left alone."""
    deadline = time.monotonic() + timeout
    killed: list[StackProcess] = []
    for record in records:
        _signal(record, signal.SIGTERM)
        while record.running() and time.monotonic() < deadline:
            time.sleep(_POLL_SECONDS)
    for record in records:
        if record.running():
            _signal(record, signal.SIGKILL)
            killed.append(record)
    # SIGKILL is not refused, but the kernel takes a moment to tear a process down.
    kill_deadline = time.monotonic() + 5
    while any(r.running() for r in killed) and time.monotonic() < kill_deadline:
        time.sleep(_POLL_SECONDS)
    return killed
