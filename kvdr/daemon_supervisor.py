"""The daemon of `kvdr up` as a child process, restarted with a backoff when it dies.

Drills kill the daemon on purpose (and an OOM kill does it by accident): `kvdr up`
then starts a new one, which reads its checkpoints and leases from Azurite and carries
on where the old one stopped. Its output goes to `.kvdr/logs/daemon.log`.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import structlog

log = structlog.get_logger("kvdr.up")

# 1, 2, 4 ... 30 s between restarts: a daemon that dies at start (a broken config, a
# port taken) does not spin, and one killed by a drill is back within a second.
FIRST_BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 30.0
# A daemon that ran this long before it died starts the backoff from the beginning.
STABLE_SECONDS = 60.0
# How long the daemon may drain (flush its journal and checkpoints) on SIGTERM.
STOP_SECONDS = 30.0


def daemon_argv(config_path: Path) -> list[str]:
    return [sys.executable, "-m", "kvdr", "run", "--config", str(config_path)]


@dataclass
class DaemonSupervisor:
    """Runs `argv` as a child, restarts it when it exits, stops it on `stop()`."""

    argv: list[str]
    log_path: Path
    # Told each new daemon process, to record its pid for `kvdr down`.
    on_start: Callable[[subprocess.Popen[bytes]], None] = lambda _: None
    first_backoff: float = FIRST_BACKOFF_SECONDS
    max_backoff: float = MAX_BACKOFF_SECONDS
    stable_after: float = STABLE_SECONDS
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    _started_at: float = 0.0
    _backoff: float = 0.0
    _stopping: threading.Event = field(default_factory=threading.Event)
    # stop() from another thread must not fall between a restart's check and its start.
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> subprocess.Popen[bytes]:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            # A process group of its own: Ctrl-C on `kvdr up` reaches only kvdr up,
            # which stops the daemon first and then the rest of the stack.
            self.process = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                process_group=0,
            )
        self._started_at = time.monotonic()
        log.info("daemon.started", pid=self.process.pid, restarts=self.restarts)
        self.on_start(self.process)
        return self.process

    def supervise(self) -> None:
        """Keep the daemon running until `stop()` (or an exception in this thread)."""
        self._backoff = self.first_backoff
        if self.process is None:
            self.start()
        while not self._stopping.is_set():
            assert self.process is not None
            code = self.process.poll()
            if code is None:
                self._stopping.wait(0.2)
                continue
            if time.monotonic() - self._started_at >= self.stable_after:
                self._backoff = self.first_backoff
            self.restarts += 1
            log.warning(
                "daemon.exited",
                pid=self.process.pid,
                code=code,
                restart_in_seconds=self._backoff,
                restarts=self.restarts,
                log=str(self.log_path),
            )
            if self._stopping.wait(self._backoff):
                break
            self._backoff = min(self._backoff * 2, self.max_backoff)
            with self._lock:
                if self._stopping.is_set():
                    break
                process = self.start()
            log.warning("daemon.restarted", pid=process.pid, restarts=self.restarts)

    def stop(self, timeout: float = STOP_SECONDS) -> None:
        """SIGTERM the daemon, wait for its drain, SIGKILL it after `timeout`."""
        with self._lock:
            self._stopping.set()
            process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("stack.kill", part="daemon")
            process.kill()
            process.wait()
