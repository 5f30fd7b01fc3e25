"""`kvdr up [--config FILE] [--detach]`: the local two-region stack plus the daemon."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING

import click

from kvdr.commands._shared import EXIT_FAILED, LOCAL_CONFIG, fail

if TYPE_CHECKING:
    from kvdr.config import KvdrConfig

STATE_DIR = Path(".kvdr")
PID_FILE = STATE_DIR / "up.pid"
SEED_MARKER = STATE_DIR / "seeded"
# Demo data only: obviously fake values, written once into the primary.
DEMO_SECRETS = {
    "demo-database-password": "not-a-real-password-1",
    "demo-api-token": "not-a-real-token-2",
    "demo-storage-key": "not-a-real-key-3",
}


async def seed_demo(config: KvdrConfig) -> None:
    """Write a few demo secrets into each pair's primary, once per state folder."""
    from vault.adapter import KeyVaultAdapter
    from vault.credentials import build_credential
    from vault.models import Attributes

    if SEED_MARKER.exists():
        return
    async with AsyncExitStack() as stack:
        credential = build_credential(config.credential)
        await stack.enter_async_context(credential)
        for pair in config.replicator.pairs:
            vault = await stack.enter_async_context(
                KeyVaultAdapter.open(pair.primary, credential, config.vault)
            )
            for name, value in DEMO_SECRETS.items():
                await vault.set_secret(
                    name,
                    value,
                    Attributes(content_type="text/plain", tags={"seeded-by": "kvdr-up"}),
                )
    SEED_MARKER.write_text("demo secrets written\n")


def where_to_look(port: int) -> str:
    return (
        f"kvdr local stack is up.\n"
        f"  dashboard:   http://127.0.0.1:{port}/\n"
        f"  status:      kvdr status   (or --json)\n"
        f"  metrics:     http://127.0.0.1:{port}/metrics\n"
        f"  vaults:      https://127.0.0.1:8443 (eastus, primary),"
        f" https://127.0.0.1:8444 (westus)\n"
        f"  CA to trust: {STATE_DIR / 'vaults' / 'eastus' / 'tls' / 'ca.pem'}\n"
        f"  fault proxy: http://127.0.0.1:8474/proxies\n"
        f"  logs:        {STATE_DIR / 'logs'}/"
    )


def run_stack(config_path: Path | None) -> None:
    """Start the stack's processes, seed, run the daemon; stop everything on the way out."""
    from kvdr.commands.run import run_until_signalled
    from kvdr.config import load_config
    from kvdr.local_stack import LocalStack

    project_root = Path(__file__).resolve().parents[2]
    stack = LocalStack(state_dir=STATE_DIR.resolve(), project_root=project_root)
    try:
        stack.start()
        config = stack.write_config(LOCAL_CONFIG.resolve())
        if config_path is not None:
            config = load_config(config_path)
        asyncio.run(seed_demo(config))
        click.echo(where_to_look(config.daemon.listen_port), err=True)
        asyncio.run(run_until_signalled(config))
    finally:
        stack.stop()


def start_detached(config_path: Path | None) -> None:
    """Start `kvdr up` in the background, wait until its daemon is ready, and return."""
    STATE_DIR.mkdir(exist_ok=True)
    (STATE_DIR / "logs").mkdir(exist_ok=True)
    argv = [sys.executable, "-m", "kvdr", "up"]
    if config_path is not None:
        argv += ["--config", str(config_path)]
    log_path = STATE_DIR / "logs" / "up.log"
    with log_path.open("ab") as out:
        process = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    PID_FILE.write_text(f"{process.pid}\n")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            PID_FILE.unlink(missing_ok=True)
            tail = log_path.read_text(errors="replace").splitlines()[-15:]
            fail("local stack failed to start:\n  " + "\n  ".join(tail), EXIT_FAILED)
        try:
            with urllib.request.urlopen("http://127.0.0.1:8080/readyz", timeout=1) as r:
                if r.status == 200:
                    click.echo(where_to_look(8080))
                    click.echo(f"  stop it with: kvdr down   (pid {process.pid})")
                    return
        except OSError:
            pass
        time.sleep(0.5)
    os.kill(process.pid, signal.SIGTERM)  # it stops what it started
    fail(f"local stack was not ready within 120 s; see {log_path}", EXIT_FAILED)


@click.command("up")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="Daemon configuration (default: the built-in local configuration).",
)
@click.option("--detach", is_flag=True, help="Leave the stack running; `kvdr down` stops it.")
def command(config_path: Path | None, detach: bool) -> None:
    """Start two emulators, Azurite, the fault proxy and the daemon (Ctrl-C stops all)."""
    from kvdr.local_stack import StackError

    if detach:
        start_detached(config_path)
        return
    from kvdr.log_setup import configure_logging

    configure_logging("auto", "info")
    # SIGTERM while the stack is still starting: unwind through run_stack's `finally`
    # so every process started so far is stopped (the daemon installs its own handler).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        run_stack(config_path)
    except StackError as exc:
        fail(str(exc), EXIT_FAILED)
