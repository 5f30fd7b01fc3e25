"""Settings of the vault adapter: rate control and retry, per vault."""

from __future__ import annotations

from dataclasses import dataclass, field


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
    # The SDK checks that a 401 challenge's resource matches the vault's domain; the local
    # emulator (127.0.0.1) cannot pass that check, so it runs with False.
    verify_challenge_resource: bool = True


CREDENTIAL_KINDS = (
    "default",
    "managed-identity",
    "cli",
    "client-secret",
    "client-certificate",
    "emulator",
)


@dataclass(frozen=True)
class CredentialSettings:
    """Which Azure credential kvdr uses for vaults (and storage, without a connection string).

    `emulator` is the local emulator's managed-identity endpoint, read from the
    `endpoint.json` the emulator writes into its state folder (`emulator_state_dir`).
    """

    kind: str = "default"
    client_id: str | None = None
    tenant_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    certificate_path: str | None = None
    identity_endpoint: str | None = None
    identity_header: str | None = field(default=None, repr=False)
    emulator_state_dir: str | None = None
    ca_file: str | None = None
