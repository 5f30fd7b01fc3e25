"""`kvdr down`: stop what `kvdr up --detach` started."""

from __future__ import annotations

import os
import signal
import time

import click

from kvdr.commands._shared import EXIT_FAILED, fail
from kvdr.commands.up import PID_FILE


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
    # `kvdr up --detach` made its process a session and group leader; its children
    # (emulators, Azurite, proxy) are in the same group and get the signal too.
    os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.2)
    if _alive(pid):
        os.killpg(pid, signal.SIGKILL)
        click.echo(f"the local stack (pid {pid}) did not stop in {timeout:.0f} s; killed it")
    else:
        click.echo(f"stopped the local stack (pid {pid})")
    PID_FILE.unlink(missing_ok=True)
