"""Where a drill runs: a throwaway local stack (`--stack local`), or a configured one.

The local drill stack is the stack of `kvdr up` (two emulators, Azurite, the fault
proxy with one link per vault and storage) plus its daemon, but on free ports and in a
folder of its own: a drill never touches a running `kvdr up` or its `.kvdr/`, and tests
can drill while another stack runs. It is stopped and (unless kept) deleted afterwards.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from chaos.faults import Faults
from chaos.target import DrillTarget, EmulatorControl
from kvdr.config import KvdrConfig, load_config
from kvdr.daemon_supervisor import daemon_argv
from kvdr.local_stack import (
    HOST,
    STORAGE_LINK,
    STORAGE_SECONDARY_LINK,
    VAULT_LINKS,
    LocalStack,
    StackError,
)
from vault.adapter import KeyVaultAdapter
from vault.client import VaultClient, VaultItems
from vault.credentials import build_credential
from vault.models import VaultRef

log = structlog.get_logger("kvdr.drill")

# The principals of the drill's own clients: the load writes as an application would,
# the probes read; neither is the daemon's, so denying kvdr access does not deny them.
LOAD_PRINCIPAL = "kvdr-drill-load"
PROBE_PRINCIPAL = "kvdr-drill-probe"
# What the emulator's token endpoint names a caller without a client id.
EMULATOR_DEFAULT_PRINCIPAL = "kvdr-local"


@dataclass
class DaemonProcess:
    """`kvdr run` as a child process that a drill may kill and start again."""

    config_path: Path
    url: str
    log_path: Path
    token: str | None = None
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    _env: dict[str, str] = field(default_factory=lambda: dict(os.environ))

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _start(self) -> None:
        if self.running:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(
                daemon_argv(self.config_path),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # Its own group: the terminal's Ctrl-C reaches the drill, which rolls back
                # and then stops the daemon; the daemon does not die under the rollback.
                process_group=0,
                env=self._env,
            )
        self.starts += 1

    def _status(self) -> dict[str, Any] | None:
        from kvdr.commands.status import StatusRefused, daemon_status

        try:
            return daemon_status(self.url.rstrip("/") + "/status", token=self.token)
        except StatusRefused:
            return None

    async def status(self) -> dict[str, Any] | None:
        return await asyncio.to_thread(self._status)

    async def start(self, wait_seconds: float = 60.0) -> None:
        self._start()
        deadline = time.monotonic() + wait_seconds
        while time.monotonic() < deadline:
            if await self.status() is not None:
                return
            if not self.running:
                break
            await asyncio.sleep(0.2)
        from chaos.errors import FaultError

        raise FaultError(
            f"the daemon did not answer /status within {wait_seconds:g} s ({self.log_path})"
        )

    async def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            await asyncio.to_thread(self.process.wait)

    def stop(self, timeout: float = 30.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def cli_runner(config_path: Path, cwd: Path) -> Any:
    """Runs `kvdr <args> --config <config>` as a user would; returns (exit, JSON)."""

    async def run(
        args: list[str], env: Mapping[str, str] | None = None
    ) -> tuple[int, dict[str, Any]]:
        env = dict(os.environ, KVDR_CONFIG=str(config_path), **(env or {}))
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "kvdr",
            *args,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await process.communicate()
        code = process.returncode if process.returncode is not None else 1
        try:
            doc = json.loads(out) if out.strip() else {}
        except ValueError:
            doc = {}
        if not isinstance(doc, dict):
            doc = {}
        if code != 0 and "error" not in doc and not doc.get("refused"):
            doc["error"] = err.decode("utf-8", "replace").strip()[-400:] or f"exit {code}"
        return code, doc

    return run


def _with_principal(config: KvdrConfig, principal: str) -> Any:
    """The configuration's credential settings, as `principal` where the credential can
    name one (the emulator's token endpoint takes a client id as the principal)."""
    if config.credential.kind == "emulator":
        return dataclasses.replace(config.credential, client_id=principal)
    return config.credential


@asynccontextmanager
async def open_target(
    config: KvdrConfig,
    *,
    kind: str,
    environment: str,
    pair_name: str | None,
    faults: Faults,
    links: list[str],
    emulators: dict[str, EmulatorControl],
    daemon: Any,
    config_path: Path,
    cwd: Path,
    region_processes: dict[str, Any] | None = None,
) -> AsyncIterator[DrillTarget]:
    """A `DrillTarget` over `config`'s pair, with the load's and the probes' clients."""
    pairs = list(config.replicator.pairs)
    pair = next((p for p in pairs if pair_name in (None, p.name)), None)
    if pair is None:
        known = ", ".join(p.name for p in pairs) or "none"
        raise ValueError(f"pair: no pair named {pair_name!r} in the configuration (pairs: {known})")
    regions = [pair.primary.region, *(t.region for t in pair.secondaries)]
    # Like an application: one attempt per write, a short timeout, so the load sees an
    # outage as it happens instead of retrying through it.
    settings = dataclasses.replace(config.vault, max_attempts=1, request_timeout_seconds=5.0)
    async with AsyncExitStack() as stack:
        writers: dict[str, VaultItems] = {}
        readers: dict[str, VaultItems] = {}
        admins: dict[str, VaultClient] = {}
        load_credential = build_credential(_with_principal(config, LOAD_PRINCIPAL))
        probe_credential = build_credential(_with_principal(config, PROBE_PRINCIPAL))
        await stack.enter_async_context(load_credential)
        await stack.enter_async_context(probe_credential)
        for region in regions:
            ref: VaultRef = config.regions[region]
            writers[region] = await stack.enter_async_context(
                KeyVaultAdapter.open(ref, load_credential, settings)
            )
            reader = await stack.enter_async_context(
                KeyVaultAdapter.open(
                    ref, probe_credential, dataclasses.replace(settings, max_attempts=3)
                )
            )
            readers[region] = admins[region] = reader
        yield DrillTarget(
            kind=kind,
            environment=environment,
            pair=pair.name,
            primary=pair.primary.region,
            regions=regions,
            faults=faults,
            links=links,
            emulators=emulators,
            writers=writers,
            readers=readers,
            daemon=daemon,
            cli=cli_runner(config_path, cwd),
            kvdr_principal=config.credential.client_id or EMULATOR_DEFAULT_PRINCIPAL,
            admins=admins,
            region_processes=dict(region_processes or {}),
        )


@dataclass
class LocalDrillStack:
    """The throwaway stack: started by `start()`, gone after `stop()`."""

    root: Path
    keep: bool = False
    project_root: Path | None = None
    stack: LocalStack | None = None
    daemon: DaemonProcess | None = None
    config_path: Path | None = None
    _owns_root: bool = False

    @classmethod
    def in_temporary_folder(
        cls, keep: bool = False, project_root: Path | None = None
    ) -> LocalDrillStack:
        root = Path(tempfile.mkdtemp(prefix="kvdr-drill-"))
        drill = cls(root=root, keep=keep, project_root=project_root)
        drill._owns_root = True
        return drill

    def start(self) -> KvdrConfig:
        state = self.root / ".kvdr"
        self.stack = LocalStack.start_on_free_ports(state, self.project_root)
        ports = self.stack.ports
        self.config_path = state / "kvdr.toml"
        self.stack.write_config(self.config_path)
        # A drill's stack reacts in about a second (the demo's 2 s poll would dominate RPO).
        text = self.config_path.read_text()
        text = text.replace('poll_interval = "2s"', 'poll_interval = "1s"')
        text = text.replace("[daemon]\n", '[daemon]\ninstance_id = "kvdr-drill"\n', 1)
        self.config_path.write_text(text)
        config = load_config(self.config_path)
        self.daemon = DaemonProcess(
            self.config_path,
            f"http://{HOST}:{ports.daemon}",
            state / "logs" / "daemon.log",
        )
        return config

    def emulators(self) -> dict[str, EmulatorControl]:
        assert self.stack is not None
        out = {}
        for region, folder in self.stack.emulator_dirs.items():
            endpoint = json.loads((folder / "endpoint.json").read_text())
            out[region] = EmulatorControl(
                region,
                f"https://{HOST}:{int(endpoint['port'])}",
                str(folder / "tls" / "ca.pem"),
            )
        return out

    def region_processes(self) -> dict[str, EmulatorProcess]:
        assert self.stack is not None
        return {region: EmulatorProcess(region, self.stack) for region in self.stack.emulator_dirs}

    def faults(self) -> Faults:
        assert self.stack is not None
        return Faults(HOST, self.stack.ports.proxy_api)

    def stop(self) -> None:
        try:
            if self.daemon is not None:
                self.daemon.stop()
        finally:
            if self.stack is not None:
                self.stack.stop()
            if self._owns_root and not self.keep:
                shutil.rmtree(self.root, ignore_errors=True)


def _spawn(argv: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as out:
        # Its own process group, as the stack's other children (local_stack.py).
        return subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, process_group=0
        )


@dataclass
class EmulatorProcess:
    """One region's emulator of the local drill stack, killed and started again by a
    drill (`kill_region`) on the same internal port, so the fault proxy's link to it
    holds and the daemon meets the outage and the return as a real region would."""

    region: str
    stack: LocalStack

    def _process(self) -> subprocess.Popen[bytes] | None:
        name = f"emulator-{self.region}"
        found = [p for n, p in self.stack.processes if n == name]
        return found[-1] if found else None

    @property
    def running(self) -> bool:
        process = self._process()
        return process is not None and process.poll() is None

    async def kill(self) -> None:
        process = self._process()
        if process is not None and process.poll() is None:
            process.kill()
            await asyncio.to_thread(process.wait)

    async def start(self) -> None:
        if self.running:
            return
        from chaos.errors import FaultError
        from kvdr.config import local_events_secret
        from kvdr.local_stack import wait_for_tcp

        folder = self.stack.emulator_dirs[self.region]
        port = int(json.loads((folder / "endpoint.json").read_text())["port"])
        secret = local_events_secret(self.stack.state_dir)
        argv = [
            sys.executable,
            "-m",
            "kvdr",
            "emulator",
            "--host",
            HOST,
            "--port",
            str(port),
            "--state-dir",
            str(folder),
            "--region",
            self.region,
            "--geo",
            "us",
            "--events-to",
            f"http://{HOST}:{self.stack.ports.daemon}/events?secret={secret}",
        ]
        log_path = self.stack.state_dir / "logs" / f"emulator-{self.region}.log"
        process = await asyncio.to_thread(_spawn, argv, log_path)
        self.stack.processes.append((f"emulator-{self.region}", process))
        self.stack.track(f"emulator-{self.region}", process.pid)
        try:
            await asyncio.to_thread(wait_for_tcp, port, process, f"emulator {self.region}", 30)
        except StackError as exc:
            raise FaultError(str(exc)) from exc


def local_links() -> list[str]:
    return [*VAULT_LINKS.values(), STORAGE_LINK, STORAGE_SECONDARY_LINK]
