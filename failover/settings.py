"""Settings of the failover part (built by kvdr from `[failover]`)."""

from __future__ import annotations

from dataclasses import dataclass

from failover.hooks import Hook
from storage.settings import StorageSettings

MODES = ("manual", "automatic")
FENCE_KINDS = ("none", "emulator-readonly", "azure-network-deny")


@dataclass(frozen=True)
class FailoverSettings:
    """`control_stores` empty: the control records live in the main `[storage]`.
    Otherwise one or three stores, ideally each in another region, and every
    transition needs a majority of them. `store_timeout_seconds` bounds each call to a
    control store, so an unreachable region costs one timeout, not the transition."""

    control_stores: tuple[StorageSettings, ...] = ()
    store_timeout_seconds: float = 5.0
    # The epoch fence (failover/epoch_watch.py): a daemon reads each pair's record this
    # often, and writes only while its last reading is younger than the validity.
    epoch_check_interval_seconds: float = 1.0
    epoch_validity_seconds: float = 3.0
    # Change control: promote and switchover need this many distinct approvals, each
    # younger than the window (`kvdr failover approve`); 0: none needed.
    require_approvals: int = 0
    approval_window_seconds: float = 3600.0
    # "manual": a person promotes. "automatic": the pair's lease holder promotes when
    # the active region has been down for `automatic_after`, the target's lag at the
    # last contact was within the pair's RPO objective and the control record's
    # majority takes the new epoch.
    mode: str = "manual"
    automatic_after_seconds: float = 10.0
    # Region health (failover/health.py): a probe per region every interval; down after
    # `down_after` failures within `down_window`, up again after `up_after` successes
    # in a row.
    probe_interval_seconds: float = 2.0
    probe_timeout_seconds: float = 2.0
    down_after: int = 3
    down_window_seconds: float = 10.0
    up_after: int = 2
    # A canary secret every probe reads (absent: one authenticated listing page).
    canary_secret: str | None = None
    # How a region that is not active is fenced (failover/fencing.py): "none",
    # "emulator-readonly" or "azure-network-deny"; and kvdr's own addresses, which the
    # network fence keeps allowed and `check` looks for in a secondary's rules.
    fence: str = "none"
    fence_allow_ips: tuple[str, ...] = ()
    # Azure Resource Manager's base URL (a region's management_url overrides it).
    management_url: str = "https://management.azure.com"
    # Run after every committed transition (failover.hooks); they never block it.
    hooks: tuple[Hook, ...] = ()

    def __post_init__(self) -> None:
        if len(self.control_stores) not in (0, 1, 3):
            raise ValueError(
                f"failover control_stores must be one or three, got {len(self.control_stores)}"
            )
        if self.fence not in FENCE_KINDS:
            raise ValueError(f"failover fence {self.fence!r} is not one of {FENCE_KINDS}")
        if self.store_timeout_seconds <= 0:
            raise ValueError("failover store_timeout must be longer than zero")
        if self.epoch_validity_seconds <= self.epoch_check_interval_seconds:
            raise ValueError("failover epoch_validity must be longer than epoch_check_interval")
        if self.mode not in MODES:
            raise ValueError(f"failover mode must be one of {', '.join(MODES)}")
