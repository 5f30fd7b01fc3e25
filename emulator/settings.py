"""Settings of one emulated vault (one region), as given on `kvdr emulator`'s command line."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

SKUS = ("standard", "premium", "managed-hsm")
THROTTLE_MODES = ("off", "azure")
# Azure accepts a soft-delete retention of 7 to 90 days; 90 is its default.
MIN_RETENTION_DAYS = 7
MAX_RETENTION_DAYS = 90


# What `--allow-remote` prints: the emulator checks no token and encrypts nothing at rest.
REMOTE_WARNING = (
    "kvdr emulator: WARNING: --allow-remote serves this vault beyond this machine. The "
    "emulator accepts any bearer token and has no access control, so anyone who can "
    "reach {host} can read and change every secret, key and certificate in it; the "
    "identity header in endpoint.json is the only thing guarding its token endpoint. "
    "Use it only on a network you trust completely."
)


def is_loopback(host: str) -> bool:
    """Whether `host` binds to this machine only: `localhost` or a loopback address."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class SettingsError(ValueError):
    """A setting has a value the emulator cannot run with; `option` names the CLI option."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"{option}: {message}")
        self.option = option
        self.message = message


@dataclass(frozen=True, kw_only=True)
class EmulatorSettings:
    """Everything that makes one emulated vault differ from another."""

    state_dir: Path
    host: str = "127.0.0.1"
    port: int = 8443
    region: str = "eastus"
    geo: str = "us"
    sku: str = "standard"
    throttle: str = "off"
    latency_ms: int = 0
    events_to: tuple[str, ...] = field(default_factory=tuple)
    retention_days: int = 90
    purge_protection: bool = False
    allow_remote: bool = False
    # RBAC mode (emulator/rbac.py): role assignments enforced, tokens signed and checked.
    rbac_file: Path | None = None

    def __post_init__(self) -> None:
        if not self.allow_remote and not is_loopback(self.host):
            raise SettingsError(
                "--host",
                f"{self.host!r} is not a loopback address; the emulator has no access "
                "control, so it listens on 127.0.0.1, ::1 or localhost only. Pass "
                "--allow-remote to serve it beyond this machine anyway",
            )
        if not 0 <= self.port <= 65535:
            raise SettingsError("--port", f"{self.port} is not a TCP port (0-65535)")
        if self.sku not in SKUS:
            raise SettingsError("--sku", f"{self.sku!r} is not one of {', '.join(SKUS)}")
        if self.throttle not in THROTTLE_MODES:
            raise SettingsError(
                "--throttle", f"{self.throttle!r} is not one of {', '.join(THROTTLE_MODES)}"
            )
        if self.latency_ms < 0:
            raise SettingsError("--latency", f"{self.latency_ms} must be 0 or more milliseconds")
        if not MIN_RETENTION_DAYS <= self.retention_days <= MAX_RETENTION_DAYS:
            raise SettingsError(
                "--retention-days",
                f"{self.retention_days} is outside Azure's range "
                f"{MIN_RETENTION_DAYS}-{MAX_RETENTION_DAYS}",
            )
        for name, value in (("--region", self.region), ("--geo", self.geo)):
            if not value or not all(c.isalnum() or c == "-" for c in value):
                raise SettingsError(name, f"{value!r} must be letters, digits and hyphens")
        for url in self.events_to:
            if not url.startswith(("http://", "https://")):
                raise SettingsError("--events-to", f"{url!r} is not an http(s) URL")

    @property
    def vault_name(self) -> str:
        """The vault's name as it appears in Event Grid topics and messages."""
        return f"kvdr-{self.region}"

    @property
    def recovery_level(self) -> str:
        """Key Vault's `recoveryLevel` attribute for this vault's objects."""
        return "Recoverable" if self.purge_protection else "Recoverable+Purgeable"
