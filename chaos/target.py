"""What a drill runs against: the links, the vaults' fault APIs, the daemon, the CLI.

`kvdr/` builds a `DrillTarget` (a throwaway local stack, or a configured environment)
and hands it to `Drill`; nothing in `chaos/` knows how the stack was started.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from chaos.errors import FaultError
from chaos.faults import Faults
from vault.client import VaultClient, VaultItems


class DaemonControl(Protocol):
    """The daemon of the stack under drill."""

    async def status(self) -> dict[str, Any] | None:
        """Its /status document, or None when it does not answer."""
        ...

    async def kill(self) -> None:
        """SIGKILL it: no drain, no last checkpoint."""
        ...

    async def start(self) -> None:
        """Start it again (a no-op when it runs)."""
        ...

    @property
    def running(self) -> bool: ...


class RegionProcess(Protocol):
    """A region's vault as a process the drill may kill and start (the local emulator)."""

    async def kill(self) -> None: ...

    async def start(self) -> None: ...

    @property
    def running(self) -> bool: ...


class CliRunner(Protocol):
    """Runs `kvdr --config <the stack's> ARGS...` as a subprocess (`env`: variables
    added to its environment, such as a `KVDR__...` override): exit code and JSON."""

    def __call__(
        self, args: list[str], env: Mapping[str, str] | None = None
    ) -> Awaitable[tuple[int, dict[str, Any]]]: ...


@dataclass(frozen=True)
class EmulatorControl:
    """One emulated vault's management API (`/_emulator/`), reached directly, not
    through the fault proxy, so a cut link never keeps a drill from cleaning up."""

    region: str
    url: str
    ca_file: str | None = None

    def _call(self, method: str, path: str, body: object | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}/_emulator/{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        context = ssl.create_default_context(cafile=self.ca_file) if self.ca_file else None
        try:
            with urllib.request.urlopen(request, context=context, timeout=10) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise FaultError(
                f"emulator {self.region} refused {method} /_emulator/{path}: {exc.code} "
                f"{exc.read()[:300]!r}"
            ) from exc
        except OSError as exc:
            raise FaultError(
                f"emulator {self.region} management API at {self.url} did not answer: {exc}"
            ) from exc
        return json.loads(raw) if raw else None

    async def call(self, method: str, path: str, body: object | None = None) -> Any:
        return await asyncio.to_thread(self._call, method, path, body)

    async def set_faults(self, body: dict[str, object]) -> None:
        await self.call("PUT", "faults", body)

    async def clear_faults(self) -> None:
        await self.call("DELETE", "faults")

    async def faults(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("GET", "faults")
        return result

    async def set_read_only(self, on: bool) -> None:
        await self.call("PUT", "read-only", {"read_only": on, "exempt_principals": []})

    async def read_only(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("GET", "read-only")
        return result


@dataclass
class DrillTarget:
    """One stack under drill: a pair of regions and everything that steers them."""

    kind: str  # "local" or "configured"
    environment: str  # drill | staging | production
    pair: str
    primary: str
    regions: list[str]
    faults: Faults
    # Link names on the fault proxy: one per region's vault, plus storage.
    links: list[str]
    emulators: dict[str, EmulatorControl]
    # The load's vault clients (its own principal) and the drill's reader clients.
    writers: dict[str, VaultItems]
    readers: dict[str, VaultItems]
    daemon: DaemonControl
    cli: CliRunner
    # Clients for certificate faults (the probes' principal, not the daemon's).
    admins: dict[str, VaultClient] = field(default_factory=dict)
    # Regions whose vault process a drill can kill (`kill_region`): the local stack's.
    region_processes: dict[str, RegionProcess] = field(default_factory=dict)
    # The principal the daemon authenticates as (what `deny_access` "kvdr" means).
    kvdr_principal: str = "kvdr-local"
    notes: list[str] = field(default_factory=list)
