"""Settings of the vault adapter: rate control and retry, per vault."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VaultSettings:
    """Limits kvdr keeps to, per vault.

    Budgets default to 90% of Key Vault's published limits per vault per region per 10 s
    (secret create 300, other transactions 4,000) so kvdr leaves headroom for the
    applications that share the vault.
    """

    max_concurrency: int = 16
    secret_creates_per_10s: int = 270
    other_ops_per_10s: int = 3600
    # Exponential backoff 1-2-4-8-16 s with jitter, as Microsoft advises for 429.
    backoff_base_seconds: float = 1.0
    backoff_max_seconds: float = 16.0
    max_attempts: int = 6
    request_timeout_seconds: float = 30.0
    # Path of a CA bundle to trust (the local emulator's CA); None = system trust.
    ca_file: str | None = None
