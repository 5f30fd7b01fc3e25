"""Encrypted point-in-time backups: journal, snapshots, envelope encryption, retention,
verification and restore-to-timestamp (DESIGN.md; docs/backups.md).

    Journal          the replicator's change sink: write-once encrypted segments
    create_snapshot  compaction of a snapshot plus the journal after it
    state_at         the state of a pair at a time T, every object checked
    plan_restore     pure diff of that state against a target vault
    apply_plan       idempotent, resumable application of a plan
    verify_pair      names, contiguity, digests, links (and a restore test)
    plan_retention   pure retention plan (apply_retention deletes)

Modules: `envelope` and `keks` (encryption), `signers`, `signer_files` and `head` (who
wrote what), `paths` (blob names), `records`, `state` and `index` (plaintext and replay
rules), `objects` (segments and snapshots), `catalog` (listings), `replay`,
`point_in_time` and `restore`, `pair_log`, `stores` (primary + replicas), `export`,
`metrics`, `settings`, `errors`.
"""

from backups.errors import (
    BackupError,
    ChainBroken,
    JournalFenced,
    JournalGap,
    JournalUnavailable,
    KekUnavailable,
    NoUsableKek,
    ObjectUnreadable,
    RestoreRefused,
    SignatureRefused,
    SignerUnavailable,
    TamperedObject,
    UnknownFormat,
)
from backups.journal import Journal
from backups.keks import KekRing, LocalFileKek, RecoveryKek, VaultKek
from backups.restore import (
    PointInTime,
    RestoreReport,
    RestoreScope,
    apply_plan,
    check_target,
    read_target,
    state_at,
)
from backups.restore_plan import RestorePlan, plan_restore
from backups.retention import RetentionPlan, apply_retention, plan_retention
from backups.settings import BackupSettings, RetentionPolicy
from backups.signers import SignerRing
from backups.snapshot import SnapshotMade, create_snapshot
from backups.stores import BackupStores
from backups.verify import VerifyReport, restore_test, verify_pair

__all__ = [
    "BackupError",
    "BackupSettings",
    "BackupStores",
    "ChainBroken",
    "Journal",
    "JournalFenced",
    "JournalGap",
    "JournalUnavailable",
    "KekRing",
    "KekUnavailable",
    "LocalFileKek",
    "NoUsableKek",
    "ObjectUnreadable",
    "PointInTime",
    "RecoveryKek",
    "RestorePlan",
    "RestoreRefused",
    "RestoreReport",
    "RestoreScope",
    "RetentionPlan",
    "RetentionPolicy",
    "SignatureRefused",
    "SignerRing",
    "SignerUnavailable",
    "SnapshotMade",
    "TamperedObject",
    "UnknownFormat",
    "VaultKek",
    "VerifyReport",
    "apply_plan",
    "apply_retention",
    "check_target",
    "create_snapshot",
    "plan_restore",
    "plan_retention",
    "read_target",
    "restore_test",
    "state_at",
    "verify_pair",
]
