"""`kvdr up [--config FILE] [--detach]`: the local two-region stack plus the daemon."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from kvdr.commands._shared import EXIT_FAILED, LOCAL_CONFIG, fail
from kvdr.stack_processes import (
    StackProcess,
    read_records,
    stop_order,
    stop_processes,
    write_records,
)

if TYPE_CHECKING:
    from kvdr.config import KvdrConfig

STATE_DIR = Path(".kvdr")
PID_FILE = STATE_DIR / "up.pid"
STACK_PIDS = STATE_DIR / "stack.pids"
SEED_MARKER = STATE_DIR / "seeded"
# Demo data only: obviously fake values, written once into the primary.
DEMO_SECRETS = {
    "demo-database-password": "not-a-real-password-1",
    "demo-api-token": "not-a-real-token-2",
    "demo-storage-key": "not-a-real-key-3",
}
DEMO_KEY = "demo-signing-key"
DEMO_CERTIFICATE = "demo-tls-certificate"
DEMO_TAGS = {"seeded-by": "kvdr-up"}
# How long `kvdr up` gives a stale stack's processes to stop before it kills them.
STALE_STOP_SECONDS = 30.0


async def seed_demo(config: KvdrConfig) -> None:
    """Write demo secrets, an RSA key and a self-signed certificate into each pair's
    primary (those of the kinds the pair mirrors), once per state folder."""
    from azure.keyvault.certificates import CertificatePolicy, WellKnownIssuerNames
    from azure.keyvault.certificates.aio import CertificateClient
    from azure.keyvault.keys.aio import KeyClient

    from vault.adapter import KeyVaultAdapter
    from vault.credentials import build_credential
    from vault.models import Attributes, ItemKind

    if SEED_MARKER.exists():
        return
    sdk_options: dict[str, Any] = {
        "verify_challenge_resource": config.vault.verify_challenge_resource
    }
    if config.vault.ca_file:
        sdk_options["connection_verify"] = config.vault.ca_file
    async with AsyncExitStack() as stack:
        credential = build_credential(config.credential)
        await stack.enter_async_context(credential)
        for pair in config.replicator.pairs:
            url = pair.primary.url
            if ItemKind.SECRET in pair.kinds:
                vault = await stack.enter_async_context(
                    KeyVaultAdapter.open(pair.primary, credential, config.vault)
                )
                for name, value in DEMO_SECRETS.items():
                    await vault.set_secret(
                        name, value, Attributes(content_type="text/plain", tags=DEMO_TAGS)
                    )
            if ItemKind.KEY in pair.kinds:
                async with KeyClient(url, credential, **sdk_options) as keys:
                    await keys.create_rsa_key(DEMO_KEY, size=2048, tags=DEMO_TAGS)
            if ItemKind.CERTIFICATE in pair.kinds:
                policy = CertificatePolicy(
                    issuer_name=WellKnownIssuerNames.self,
                    subject="CN=demo.kvdr.local",
                    validity_in_months=12,
                )
                async with CertificateClient(url, credential, **sdk_options) as certificates:
                    # The emulator issues a self-signed certificate at once; the SDK's
                    # poller would wait 5 s before its first look.
                    await certificates.create_certificate(
                        DEMO_CERTIFICATE, policy, tags=DEMO_TAGS, _polling_interval=0
                    )
    SEED_MARKER.write_text("demo secrets, key and certificate written\n")


def running_up() -> StackProcess | None:
    """The `kvdr up` of this folder (not this process), while it still runs."""
    for record in read_records(PID_FILE):
        if record.pid != os.getpid() and record.running():
            return record
    return None


def stale_processes() -> list[StackProcess]:
    """What `stack.pids` lists that still runs as the process kvdr up started."""
    return [record for record in read_records(STACK_PIDS) if record.running()]


def stop_stale_stack(stale: list[StackProcess], timeout: float) -> list[StackProcess]:
    """Stop a stack whose `kvdr up` is gone; returns those that had to be killed."""
    killed = stop_processes(stop_order(stale), timeout)
    PID_FILE.unlink(missing_ok=True)
    STACK_PIDS.unlink(missing_ok=True)
    return killed


def clear_stale_stack(replace: bool) -> None:
    """Refuse to start over a running stack of this folder; stop a stale one (what a
    killed `kvdr up` left behind) when `replace` says so or the user agrees."""
    live = running_up()
    if live is not None:
        fail(
            f"a local stack is already running in this folder ({live.describe()}); "
            "stop it with `kvdr down`",
            EXIT_FAILED,
        )
    stale = stale_processes()
    if stale:
        names = ", ".join(record.describe() for record in stale)
        if not replace and sys.stdin.isatty():
            replace = click.confirm(
                f"kvdr up is gone but its stack still runs in this folder: {names}. Stop it?",
                default=True,
                err=True,
            )
        if not replace:
            fail(
                f"a stale local stack of this folder is still running: {names}. "
                "Stop it with `kvdr down` (or start with `kvdr up --replace`).",
                EXIT_FAILED,
            )
        stop_stale_stack(stale, STALE_STOP_SECONDS)
        click.echo(f"stopped the stale local stack: {names}", err=True)
    PID_FILE.unlink(missing_ok=True)
    STACK_PIDS.unlink(missing_ok=True)


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
        f"  demo data:   {len(DEMO_SECRETS)} secrets, key {DEMO_KEY}, certificate"
        f" {DEMO_CERTIFICATE} in eastus, mirrored to westus\n"
        f"  logs:        {STATE_DIR / 'logs'}/ (the daemon's: daemon.log; kvdr up restarts"
        f" it when it dies)"
    )


def check_state_folder() -> None:
    """Exit 1 naming the folder when `.kvdr/` cannot be written (read-only, full, not a
    folder): the stack keeps its vaults, storage, logs and pids there, and a failure half
    way through starting would leave processes behind."""
    probe = STATE_DIR / "logs" / ".kvdr-write-check"
    try:
        probe.parent.mkdir(parents=True, exist_ok=True)
        # More than a few bytes: a full disk often still takes an empty file.
        probe.write_bytes(b"\0" * 65536)
        probe.unlink()
    except OSError as exc:
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)
        fail(
            f"the state folder {STATE_DIR.resolve()} cannot be written "
            f"({exc.strerror or type(exc).__name__}): kvdr up keeps the local stack's "
            "vaults, storage, logs and pids there; free space or fix its permissions",
            EXIT_FAILED,
        )


def run_stack(config_path: Path | None) -> None:
    """Start the stack's processes, seed, run and supervise the daemon as a child;
    stop everything on the way out (the daemon first)."""
    from kvdr.config import load_config
    from kvdr.daemon_supervisor import DaemonSupervisor, daemon_argv
    from kvdr.local_stack import LocalStack

    project_root = Path(__file__).resolve().parents[2]
    STATE_DIR.mkdir(exist_ok=True)
    me = StackProcess.of("up", os.getpid())
    write_records(PID_FILE, [me] if me is not None else [])
    stack = LocalStack(state_dir=STATE_DIR.resolve(), project_root=project_root)
    supervisor: DaemonSupervisor | None = None
    try:
        stack.start()
        daemon_config = LOCAL_CONFIG.resolve()
        config = stack.write_config(daemon_config)
        if config_path is not None:
            daemon_config = config_path.resolve()
            config = load_config(daemon_config)
        asyncio.run(seed_demo(config))
        supervisor = DaemonSupervisor(
            daemon_argv(daemon_config),
            STATE_DIR.resolve() / "logs" / "daemon.log",
            on_start=lambda process: stack.track("daemon", process.pid),
        )
        supervisor.start()
        click.echo(where_to_look(config.daemon.listen_port), err=True)
        supervisor.supervise()
    finally:
        # A second Ctrl-C or SIGTERM must not cut the stop short (kvdr down kills
        # what is left after its timeout).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if supervisor is not None:
            supervisor.stop()
        stack.stop()
        if me is not None and me in read_records(PID_FILE):
            PID_FILE.unlink(missing_ok=True)


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
    record = StackProcess.of("up", process.pid)
    write_records(PID_FILE, [record] if record is not None else [])
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
@click.option(
    "--replace",
    is_flag=True,
    help="Stop a stale stack of this folder (left by a killed `kvdr up`) without asking.",
)
def command(config_path: Path | None, detach: bool, replace: bool) -> None:
    """Start two emulators, Azurite, the fault proxy and the daemon (Ctrl-C stops all)."""
    from kvdr.local_stack import StackError

    check_state_folder()
    clear_stale_stack(replace)
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
