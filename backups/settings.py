"""Settings of the backups part: journal timing, snapshots, retention, KEKs, signers,
replicas."""

from __future__ import annotations

from dataclasses import dataclass, field

from storage.settings import StorageSettings

DURABILITY_MODES = ("interval", "sync")


@dataclass(frozen=True)
class RetentionPolicy:
    """How long restore points are kept (Litestream/restic-style tiers).

    Everything (every second) for `keep_all_hours`; then one point per hour up to
    `hourly_days`, one per day up to `daily_days`, one per month up to `monthly_months`.
    A point older than `keep_all_hours` is a snapshot; the newest snapshot is never
    deleted, nor any segment a kept point still needs.
    """

    keep_all_hours: int = 48
    hourly_days: int = 7
    daily_days: int = 35
    monthly_months: int = 12

    def __post_init__(self) -> None:
        for name in ("keep_all_hours", "hourly_days", "daily_days", "monthly_months"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"retention {name} must be an integer >= 0, got {value!r}")
        if self.keep_all_hours < 1:
            raise ValueError("retention keep_all_hours must be at least 1")


@dataclass(frozen=True)
class VaultKekSettings:
    """An RSA key named `key` in the vault of `region` (RSA-OAEP-256 wrap/unwrap)."""

    region: str
    key: str


@dataclass(frozen=True)
class RecoveryKekSettings:
    """The offline recovery key's public half (PEM file)."""

    public_key_path: str


@dataclass(frozen=True)
class LocalKekSettings:
    """A local key file; created on first use when `create` (the local stack)."""

    path: str
    create: bool = False


KekSettings = VaultKekSettings | RecoveryKekSettings | LocalKekSettings


@dataclass(frozen=True)
class VaultSignerSettings:
    """A signing key `key` (EC P-256: ES256, or RSA: PS256) in the vault of `region`,
    pinned by its public half (PEM file)."""

    region: str
    key: str
    public_key_path: str


@dataclass(frozen=True)
class FileSignerSettings:
    """A local signing key file (Ed25519 or HMAC-SHA256); created on first use when
    `create`. Pinned by `public_key_path` (Ed25519) or `key_id` (HMAC) when given."""

    path: str
    algorithm: str = "Ed25519"
    create: bool = False
    public_key_path: str | None = None
    key_id: str | None = None


@dataclass(frozen=True)
class PinnedSignerSettings:
    """A public half that is trusted but does not sign (a retired signer, or a machine
    that only verifies and restores)."""

    public_key_path: str


SignerSettings = VaultSignerSettings | FileSignerSettings | PinnedSignerSettings


@dataclass(frozen=True)
class BackupSettings:
    """The journal, snapshots and retention of every pair.

    Durability (`durability`):
    - "interval" (default): `record()` returns once the changes are buffered; they are
      durable in blob storage within `flush_interval_seconds` (the journal's own RPO).
      After a crash the journal restarts from what is durable and the replicator's next
      reconciliation records again whatever the primary still holds.
    - "sync": `record()` returns only once its changes are in blob storage; concurrent
      calls share one segment write (group commit).
    """

    enabled: bool = True
    keks: tuple[KekSettings, ...] = ()
    # Who signs objects and the head; every one is pinned (trusted when reading).
    signers: tuple[SignerSettings, ...] = ()
    flush_interval_seconds: float = 2.0
    flush_max_changes: int = 500
    # Backpressure: beyond this many unflushed changes `record()` waits for a flush.
    max_buffered_changes: int = 10_000
    durability: str = "interval"
    snapshot_interval_seconds: float = 3600.0
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    retention_interval_seconds: float = 3600.0
    # Second storage accounts (other regions) that receive a copy of every object.
    replicas: tuple[StorageSettings, ...] = ()
    # Who writes (logged in the head blob), e.g. the daemon's instance id.
    writer: str = ""

    def __post_init__(self) -> None:
        if self.durability not in DURABILITY_MODES:
            raise ValueError(
                f"backups durability {self.durability!r} is not one of "
                f"{', '.join(DURABILITY_MODES)}"
            )
        for name in (
            "flush_interval_seconds",
            "snapshot_interval_seconds",
            "retention_interval_seconds",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"backups {name} must be a number > 0, got {value!r}")
        for name in ("flush_max_changes", "max_buffered_changes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"backups {name} must be an integer >= 1, got {value!r}")
        if self.max_buffered_changes < self.flush_max_changes:
            raise ValueError("backups max_buffered_changes must be >= flush_max_changes")


@dataclass(frozen=True)
class AuditSettings:
    """The audit trail (`backups.audit_log`): how often it is written and how long it is
    kept. It is signed by the `[backups]` signers, so it exists only where they do."""

    flush_interval_seconds: float = 5.0
    flush_max_entries: int = 500
    # A bounded buffer: beyond this many unwritten events, new ones are dropped and
    # counted (the trail records how many once it can be written again).
    max_buffered: int = 10_000
    retention_seconds: float = 400 * 86400.0
    retention_interval_seconds: float = 86400.0
