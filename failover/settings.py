"""Settings of the failover part (built by kvdr from `[failover]`)."""

from __future__ import annotations

from dataclasses import dataclass

from failover.hooks import Hook
from storage.settings import StorageSettings


@dataclass(frozen=True)
class FailoverSettings:
    """`control_stores` empty: the control records live in the main `[storage]`.
    Otherwise one or three stores, ideally each in another region, and every
    transition needs a majority of them. `store_timeout_seconds` bounds each call to a
    control store, so an unreachable region costs one timeout, not the transition."""

    control_stores: tuple[StorageSettings, ...] = ()
    store_timeout_seconds: float = 5.0
    # Run after every committed transition (failover.hooks); they never block it.
    hooks: tuple[Hook, ...] = ()

    def __post_init__(self) -> None:
        if len(self.control_stores) not in (0, 1, 3):
            raise ValueError(
                f"failover control_stores must be one or three, got {len(self.control_stores)}"
            )
        if self.store_timeout_seconds <= 0:
            raise ValueError("failover store_timeout must be longer than zero")
