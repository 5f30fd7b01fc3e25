"""Settings of the failover part (built by kvdr from `[failover]`)."""

from __future__ import annotations

from dataclasses import dataclass

from storage.settings import StorageSettings

FENCE_KINDS = ("none", "emulator-readonly", "azure-network-deny")


@dataclass(frozen=True)
class FailoverSettings:
    """`control_stores` empty: the control records live in the main `[storage]`.
    Otherwise one or three stores, ideally each in another region, and every
    transition needs a majority of them. `store_timeout_seconds` bounds each call to a
    control store, so an unreachable region costs one timeout, not the transition."""

    control_stores: tuple[StorageSettings, ...] = ()
    store_timeout_seconds: float = 5.0
    # How a region that is not active is fenced (failover/fencing.py): "none",
    # "emulator-readonly" or "azure-network-deny"; and kvdr's own addresses, which the
    # network fence keeps allowed and `check` looks for in a secondary's rules.
    fence: str = "none"
    fence_allow_ips: tuple[str, ...] = ()
    # Azure Resource Manager's base URL (a region's management_url overrides it).
    management_url: str = "https://management.azure.com"

    def __post_init__(self) -> None:
        if len(self.control_stores) not in (0, 1, 3):
            raise ValueError(
                f"failover control_stores must be one or three, got {len(self.control_stores)}"
            )
        if self.fence not in FENCE_KINDS:
            raise ValueError(f"failover fence {self.fence!r} is not one of {FENCE_KINDS}")
        if self.store_timeout_seconds <= 0:
            raise ValueError("failover store_timeout must be longer than zero")
