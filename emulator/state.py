"""`VaultState`: everything one emulated vault holds while it runs, shared by all handlers."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from emulator.clock import Clock
from emulator.events import EventPublisher
from emulator.faults import VaultFaults
from emulator.network_rules import NetworkAcls
from emulator.rbac import Rbac
from emulator.settings import EmulatorSettings
from emulator.stats import RequestStats
from emulator.store import VersionStore
from emulator.throttle import Throttle

# Singletons namespace for the emulator's own modes, so a restart keeps them.
MODES_NAMESPACE = "emulator"


@dataclass
class ReadOnlyMode:
    """The failover fence: when on, writes answer 403 except for exempt principals."""

    read_only: bool = False
    exempt_principals: frozenset[str] = frozenset()

    def to_json(self) -> dict[str, object]:
        """The management API's representation."""
        return {"read_only": self.read_only, "exempt_principals": sorted(self.exempt_principals)}


@dataclass
class VaultState:
    """Settings, store, clock, throttle, events and modes of one running emulator."""

    settings: EmulatorSettings
    store: VersionStore
    clock: Clock
    throttle: Throttle
    events: EventPublisher
    identity_header: str
    stats: RequestStats = field(default_factory=RequestStats)
    read_only: ReadOnlyMode = field(default_factory=ReadOnlyMode)
    # Drill faults (429/503 on a share, deny access); in memory only, never persisted.
    faults: VaultFaults = field(default_factory=VaultFaults)
    # The vault's network rules (set through the management plane, emulator/arm.py).
    network_acls: NetworkAcls = field(default_factory=NetworkAcls)
    # Set once the port is bound (with --port 0 only then is it known).
    listen_url: str = ""
    # RBAC mode: role assignments and the tenant's token key (None: any token will do).
    rbac: Rbac | None = None

    @classmethod
    def open(cls, settings: EmulatorSettings, identity_header: str) -> VaultState:
        """Open the store under the state folder and restore the persisted modes."""
        store = VersionStore(settings.state_dir / "vault.db")
        clock = Clock(float(store.get_value(MODES_NAMESPACE, "clock_offset") or 0.0))
        holder: dict[str, VaultState] = {}
        events = EventPublisher(
            settings, vault_url=lambda: holder["state"].vault_url(), now=clock.now
        )
        state = cls(
            settings=settings,
            store=store,
            clock=clock,
            throttle=Throttle(settings.throttle == "azure"),
            events=events,
            identity_header=identity_header,
            rbac=Rbac(settings.rbac_file, settings.region) if settings.rbac_file else None,
        )
        holder["state"] = state
        saved = store.get_value(MODES_NAMESPACE, "read_only")
        if isinstance(saved, dict):
            state.read_only = ReadOnlyMode(
                bool(saved.get("read_only")), frozenset(saved.get("exempt_principals") or ())
            )
        acls = store.get_value(MODES_NAMESPACE, "network_acls")
        if isinstance(acls, dict):
            state.network_acls = NetworkAcls.from_json(acls)
        return state

    def now(self) -> int:
        """Vault time in whole Unix seconds (wall clock + the test offset)."""
        return self.clock.now_int()

    def vault_url(self, request: web.Request | None = None) -> str:
        """The vault's base URL for ids: the address the client used, else the bound one.

        Azure's ids carry the vault's DNS name as the client addressed it. Locally a
        client may reach the emulator through a fault proxy on another port, and the ids
        it gets back must point where it can reach, so the request's Host wins.
        """
        if request is not None and request.host:
            return f"https://{request.host}"
        return self.listen_url

    def set_clock_offset(self, seconds: float) -> None:
        """Move the vault's clock (persisted across restarts)."""
        self.clock.offset_seconds = seconds
        self.store.put_value(MODES_NAMESPACE, "clock_offset", seconds)

    def set_read_only(self, mode: ReadOnlyMode) -> None:
        """Turn the read-only fence on or off (persisted across restarts)."""
        self.read_only = mode
        self.store.put_value(MODES_NAMESPACE, "read_only", mode.to_json())

    def set_network_acls(self, acls: NetworkAcls) -> None:
        """Replace the vault's network rules (persisted across restarts)."""
        self.network_acls = acls
        self.store.put_value(MODES_NAMESPACE, "network_acls", acls.to_json())


STATE_KEY: web.AppKey[VaultState] = web.AppKey("vault_state", VaultState)


def vault_state(request: web.Request) -> VaultState:
    """The vault this request is for."""
    return request.app[STATE_KEY]
