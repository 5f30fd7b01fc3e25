"""`kvdr down`: stop what `kvdr up --detach` started, also when `kvdr up` was killed."""

from __future__ import annotations

import contextlib
import os
import signal
import time

import click

from kvdr.commands.up import PID_FILE, STACK_PIDS, stale_processes, stop_stale_stack
from kvdr.stack_processes import StackProcess, read_records


def _running_up() -> StackProcess | None:
    return next((record for record in read_records(PID_FILE) if record.running()), None)


def _left_alone() -> list[str]:
    """Listed processes whose pid no longer is the process kvdr up started."""
    return [r.describe() for r in read_records(STACK_PIDS) if not r.running()]


@click.command("down")
@click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait before SIGKILL.")
def command(timeout: float) -> None:
    """Stop the local stack started with `kvdr up --detach`."""
    up = _running_up()
    if up is not None:
        _stop_up(up, timeout)
        return
    stale = stale_processes()
    if not stale:
        had = read_records(PID_FILE)
        PID_FILE.unlink(missing_ok=True)
        STACK_PIDS.unlink(missing_ok=True)
        if had:
            click.echo(f"the local stack (kvdr up, pid {had[0].pid}) had already stopped")
        else:
            click.echo(f"nothing to stop: no running kvdr up in this folder ({PID_FILE})")
        return
    gone = _left_alone()
    killed = stop_stale_stack(stale, timeout)
    click.echo(
        "stopped the local stack left behind by a kvdr up that is gone: "
        + ", ".join(r.describe() for r in stale)
    )
    if killed:
        listed = ", ".join(r.describe() for r in killed)
        click.echo(f"  killed after {timeout:.0f} s: {listed}")
    if gone:
        click.echo("  already gone (pid not signalled): " + ", ".join(gone))


def _stop_up(up: StackProcess, timeout: float) -> None:
    """Only `kvdr up` gets the signal: it stops the daemon first (whose last writes need
    Azurite), then the emulators, Azurite and the proxy it started. What it has not
    stopped within `timeout` is killed, `kvdr up` included."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(up.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and up.running():
        time.sleep(0.2)
    if up.running():
        with contextlib.suppress(ProcessLookupError):
            os.kill(up.pid, signal.SIGKILL)
        stop_stale_stack(stale_processes(), 0)
        click.echo(
            f"the local stack (kvdr up, pid {up.pid}) did not stop in {timeout:.0f} s; killed it"
        )
    else:
        # kvdr up removes its files as it stops; what it could not stop is stopped here.
        stop_stale_stack(stale_processes(), timeout)
        click.echo(f"stopped the local stack (kvdr up, pid {up.pid})")
    PID_FILE.unlink(missing_ok=True)
