"""`kvdr down`: stop what `kvdr up --detach` started."""

from __future__ import annotations

import contextlib
import os
import signal
import time

import click

from kvdr.commands._shared import EXIT_FAILED, fail
from kvdr.commands.up import PID_FILE, STATE_DIR

STACK_PIDS = STATE_DIR / "stack.pids"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@click.command("down")
@click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait before SIGKILL.")
def command(timeout: float) -> None:
    """Stop the local stack started with `kvdr up --detach`."""
    if not PID_FILE.exists():
        click.echo(f"nothing to stop: no {PID_FILE} in this folder")
        return
    try:
        pid = int(PID_FILE.read_text().strip())
    except ValueError:
        fail(f"{PID_FILE} does not hold a process id; remove it by hand", EXIT_FAILED)
    if not _alive(pid):
        PID_FILE.unlink(missing_ok=True)
        click.echo(f"the local stack (pid {pid}) had already stopped")
        return
    # Only `kvdr up` gets the signal: it stops the daemon first (whose last writes need
    # Azurite), then the emulators, Azurite and the proxy it started.
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.2)
    if _alive(pid):
        for victim in (pid, *_stack_pids()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
        click.echo(f"the local stack (pid {pid}) did not stop in {timeout:.0f} s; killed it")
    else:
        click.echo(f"stopped the local stack (pid {pid})")
    PID_FILE.unlink(missing_ok=True)


def _stack_pids() -> list[int]:
    """The children `kvdr up` started (its `stack.pids`), for the last resort."""
    try:
        text = STACK_PIDS.read_text()
    except OSError:
        return []
    return [int(line) for line in text.split() if line.isdigit()]
