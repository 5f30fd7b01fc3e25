"""The local two-region stack behind `kvdr up`: two emulators, Azurite, the fault proxy.

Every link the daemon uses goes through the fault proxy, one proxy per link, so a drill
or a test can degrade each separately:

    daemon -> 127.0.0.1:8443  [proxy "eastus-vault"] -> emulator eastus (internal port)
    daemon -> 127.0.0.1:8444  [proxy "westus-vault"] -> emulator westus (internal port)
    daemon -> 127.0.0.1:10000 [proxy "blob"]         -> Azurite blob (internal port)
    daemon -> 127.0.0.1:10001 [proxy "blob-secondary"] -> the same Azurite, read replica

All state lives under `.kvdr/` in the working folder; everything binds 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from kvdr.stack_processes import StackProcess, write_records

if TYPE_CHECKING:
    from kvdr.config import KvdrConfig

log = structlog.get_logger("kvdr.up")

HOST = "127.0.0.1"
GEO = "us"
# Azurite's documented development account; public by design, not a secret.
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


class StackError(Exception):
    """The local stack could not start; the message says which part and why."""


@dataclass(frozen=True)
class StackPorts:
    """Public ports of the local stack (DESIGN.md defaults)."""

    eastus: int = 8443
    westus: int = 8444
    blob: int = 10000
    blob_secondary: int = 10001
    proxy_api: int = 8474
    daemon: int = 8080

    @classmethod
    def free(cls) -> StackPorts:
        """Every port a free one, for a stack beside `kvdr up` (drills, tests, benches)."""
        return cls(*(free_port() for _ in dataclasses.fields(cls)))

    def named(self) -> dict[str, int]:
        return {
            "eastus vault": self.eastus,
            "westus vault": self.westus,
            "blob storage": self.blob,
            "blob storage secondary": self.blob_secondary,
            "fault proxy API": self.proxy_api,
            "daemon HTTP": self.daemon,
        }


def port_in_use(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _lost_a_port(exc: StackError) -> bool:
    """The stack could not bind a port it was given (taken since it was found free)."""
    text = str(exc)
    return text.startswith("port in use") or "address already in use" in text


def check_ports(ports: StackPorts) -> None:
    """Refuse to start when a public port is taken, naming it."""
    taken = [f"{port} ({what})" for what, port in ports.named().items() if port_in_use(port)]
    if taken:
        raise StackError(
            "port in use: " + ", ".join(taken) + ". Stop what uses it, or run `kvdr down` "
            "if an earlier `kvdr up --detach` is still running."
        )


def find_azurite(project_root: Path | None = None) -> list[str]:
    """The azurite-blob command: the project's pinned npm install, else one on PATH."""
    candidates = [Path.cwd() / "node_modules" / ".bin" / "azurite-blob"]
    if project_root is not None:
        candidates.append(project_root / "node_modules" / ".bin" / "azurite-blob")
    override = os.environ.get("KVDR_AZURITE")
    if override:
        candidates.insert(0, Path(override))
    for candidate in candidates:
        if candidate.exists():
            return [str(candidate)]
    on_path = shutil.which("azurite-blob")
    if on_path:
        return [on_path]
    raise StackError(
        "Azurite not found: run `make install` (it runs `npm ci` for the pinned azurite), "
        "or set KVDR_AZURITE to an azurite-blob executable"
    )


def azurite_connection_string(port: int) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
        f"AccountKey={AZURITE_KEY};BlobEndpoint=http://{HOST}:{port}/{AZURITE_ACCOUNT};"
    )


def wait_for_file(path: Path, process: subprocess.Popen[bytes], what: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists():
            return
        if process.poll() is not None:
            raise StackError(f"{what} exited with code {process.returncode} while starting")
        time.sleep(0.05)
    raise StackError(f"{what} did not start within {seconds:.0f} s")


def wait_for_tcp(port: int, process: subprocess.Popen[bytes], what: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StackError(f"{what} exited with code {process.returncode} while starting")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise StackError(f"{what} did not open port {port} within {seconds:.0f} s")


# The links of the stack, by name (see the module docstring); drills and tests cut them.
VAULT_LINKS = {"eastus": "eastus-vault", "westus": "westus-vault"}
STORAGE_LINK = "blob"
STORAGE_SECONDARY_LINK = "blob-secondary"


def link_faults(port: int, links: Sequence[tuple[str, int, int]]) -> None:
    """Create the named links (name, listen port, upstream port) on the fault proxy at
    `port`, through the same client drills use (`chaos.faults`). Blocking, like the rest
    of `LocalStack.start()`: the client's coroutines run on an event loop of their own in
    a worker thread, so this works whether or not the caller is inside a running loop
    (`kvdr drill` and the failover bench start the stack from one)."""
    from chaos.errors import FaultError
    from chaos.faults import Faults

    faults = Faults(HOST, port)

    async def create() -> None:
        for name, listen, upstream in links:
            await faults.create_link(name, f"{HOST}:{upstream}", listen=f"{HOST}:{listen}")

    try:
        with ThreadPoolExecutor(max_workers=1) as worker:
            worker.submit(asyncio.run, create()).result()
    except FaultError as exc:
        raise StackError(f"fault proxy: {exc}") from exc


@dataclass
class LocalStack:
    """Starts and stops the child processes of the local stack."""

    state_dir: Path
    ports: StackPorts = field(default_factory=StackPorts)
    project_root: Path | None = None
    processes: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    emulator_dirs: dict[str, Path] = field(default_factory=dict)
    # What `stack.pids` lists: these processes plus any tracked from outside (the daemon).
    records: dict[str, StackProcess] = field(default_factory=dict)

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        logs = self.state_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        out = (logs / f"{name}.log").open("ab")
        # A process group of its own: Ctrl-C on `kvdr up` (which the terminal sends to
        # the whole foreground group) must reach only kvdr up, which stops the daemon
        # first (its last checkpoint and journal writes need Azurite) and then these.
        process = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            process_group=0,
        )
        out.close()
        self.processes.append((name, process))
        self.track(name, process.pid)
        return process

    @property
    def pids_file(self) -> Path:
        return self.state_dir / "stack.pids"

    def track(self, name: str, pid: int) -> None:
        """List `pid` in `stack.pids` as `name` (replacing an earlier one of that name),
        for `kvdr down` when kvdr up itself is gone and cannot stop its children."""
        self.records.pop(name, None)
        record = StackProcess.of(name, pid)
        if record is not None:
            self.records[name] = record
        write_records(self.pids_file, self.records.values())

    def start(self) -> None:
        check_ports(self.ports)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        kvdr = [sys.executable, "-m", "kvdr"]
        proxy = self._spawn(
            "chaos-proxy",
            [*kvdr, "chaos-proxy", "--host", HOST, "--port", str(self.ports.proxy_api)],
        )
        from kvdr.config import local_events_secret

        # Event Grid's way: the webhook URL carries the shared secret. The emulator
        # never shows the query of a subscriber URL (logs, /_emulator/stats).
        secret = local_events_secret(self.state_dir)
        events_url = f"http://{HOST}:{self.ports.daemon}/events?secret={secret}"
        internal: dict[str, int] = {}
        for region in ("eastus", "westus"):
            state = self.state_dir / "vaults" / region
            state.mkdir(parents=True, exist_ok=True)
            (state / "endpoint.json").unlink(missing_ok=True)
            process = self._spawn(
                f"emulator-{region}",
                [
                    *kvdr,
                    "emulator",
                    "--host",
                    HOST,
                    "--port",
                    "0",
                    "--state-dir",
                    str(state),
                    "--region",
                    region,
                    "--geo",
                    GEO,
                    "--events-to",
                    events_url,
                ],
            )
            wait_for_file(state / "endpoint.json", process, f"emulator {region}", 30)
            internal[region] = int(json.loads((state / "endpoint.json").read_text())["port"])
            self.emulator_dirs[region] = state
        blob_port = free_port()
        blob_dir = self.state_dir / "azurite"
        blob_dir.mkdir(parents=True, exist_ok=True)
        azurite = self._spawn(
            "azurite",
            [
                *find_azurite(self.project_root),
                "--blobHost",
                HOST,
                "--blobPort",
                str(blob_port),
                "--location",
                str(blob_dir),
                "--disableTelemetry",
                "--silent",
                "--skipApiVersionCheck",
            ],
        )
        wait_for_tcp(blob_port, azurite, "Azurite", 60)
        wait_for_tcp(self.ports.proxy_api, proxy, "fault proxy", 30)
        # The read replica is the same Azurite (`<account>-secondary` in the path) behind a
        # link of its own, so a drill can cut the primary storage endpoint alone.
        link_faults(
            self.ports.proxy_api,
            [
                (VAULT_LINKS["eastus"], self.ports.eastus, internal["eastus"]),
                (VAULT_LINKS["westus"], self.ports.westus, internal["westus"]),
                (STORAGE_LINK, self.ports.blob, blob_port),
                (STORAGE_SECONDARY_LINK, self.ports.blob_secondary, blob_port),
            ],
        )
        log.info(
            "stack.started",
            eastus=self.ports.eastus,
            westus=self.ports.westus,
            blob=self.ports.blob,
            blob_secondary=self.ports.blob_secondary,
            proxy_api=self.ports.proxy_api,
        )

    @classmethod
    def start_on_free_ports(
        cls, state_dir: Path, project_root: Path | None = None, attempts: int = 3
    ) -> LocalStack:
        """A stack on free ports (drills, tests, benches), started. A port found free
        can be taken before the stack binds it (by another process, or by one of the
        stack's own children asking for any port): the stack is then stopped and
        started again on other ports, up to `attempts` times."""
        for attempt in range(1, attempts + 1):
            stack = cls(state_dir=state_dir, ports=StackPorts.free(), project_root=project_root)
            try:
                stack.start()
            except StackError as exc:
                stack.stop()
                if attempt == attempts or not _lost_a_port(exc):
                    raise
                log.warning("stack.port_taken", attempt=attempt, error=str(exc))
                continue
            return stack
        raise AssertionError("unreachable")  # pragma: no cover

    def stop(self, timeout: float = 10.0) -> None:
        for _, process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for name, process in reversed(self.processes):
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("stack.kill", part=name)
                process.kill()
                process.wait()
        self.processes.clear()
        self.records.clear()
        self.pids_file.unlink(missing_ok=True)

    def blob_connection_string(self) -> str:
        return azurite_connection_string(self.ports.blob)

    def write_config(self, path: Path) -> KvdrConfig:
        """Write the daemon's configuration for this stack (its ports and folders)."""
        from kvdr.config import write_local_config

        return write_local_config(
            path,
            state_dir=self.state_dir,
            emulator_state_dirs={r: str(d) for r, d in self.emulator_dirs.items()},
            blob_connection_string=self.blob_connection_string(),
            eastus_port=self.ports.eastus,
            westus_port=self.ports.westus,
            blob_port=self.ports.blob,
            blob_secondary_port=self.ports.blob_secondary,
            daemon_port=self.ports.daemon,
        )
