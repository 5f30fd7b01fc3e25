"""Wiring: builds the running parts (credential, vaults, blob store, replicators) from
the configuration, each entered in an `AsyncExitStack` so cleanup runs only for what
actually started. The daemon and the one-shot commands share it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import structlog
from azure.core.credentials_async import AsyncTokenCredential

from backups.journal import Journal
from backups.keks import KekRing, KeyEncryptionKey, LocalFileKek, RecoveryKek, VaultKek
from backups.settings import (
    BackupSettings,
    FileSignerSettings,
    LocalKekSettings,
    PinnedSignerSettings,
    RecoveryKekSettings,
)
from backups.signer_files import create_or_load
from backups.signers import PinnedKey, Signer, SignerRing, VaultSigner
from backups.stores import BackupStores
from failover.control_stores import ControlStores
from kvdr.audit_trail import AuditRecorder, open_audit_log
from kvdr.audit_vault import AuditedVault
from replicator import metrics as replication_metrics
from replicator.checkpoint import CheckpointStore
from replicator.pair import PairReplicator
from replicator.settings import PairSettings
from replicator.sink import version_fingerprint
from replicator.state_seal import StateSealer
from storage.errors import StorageError
from storage.open import open_store
from storage.store import BlobStore
from storage.unreachable import UnreachableStore
from vault.adapter import KeyVaultAdapter
from vault.client import VaultClient
from vault.credentials import build_credential
from vault.write_gate import GatedVault, WriteGate

if TYPE_CHECKING:
    from kvdr.config import KvdrConfig


class ReplicatorFactory(Protocol):
    """Builds a pair's replicator; after a failover, in the control record's direction
    (`active` the source, at `epoch`) with every target behind `gate`."""

    def __call__(
        self,
        pair: PairSettings,
        *,
        active: str | None = None,
        epoch: int = 0,
        gate: WriteGate | None = None,
        former: frozenset[str] = frozenset(),
    ) -> PairReplicator: ...


log = structlog.get_logger("kvdr.wiring")


class UnknownPair(ValueError):
    """`--pair` named a pair the configuration does not have."""


class BackupsNotConfigured(ValueError):
    """A backups command on a configuration without a `[backups]` section."""


@dataclass
class Parts:
    vaults: dict[str, VaultClient]
    blobs: BlobStore
    checkpoints: CheckpointStore
    replicators: list[PairReplicator]
    # A fresh replicator for a pair (the daemon makes one each time it takes a pair's
    # lease, so the checkpoints are loaded anew, and when the control record's epoch
    # moves: `ReplicatorFactory`).
    make_replicator: ReplicatorFactory
    # The control records' stores ([failover] control_stores, or [storage]).
    control: ControlStores
    # The journal every replicator hands its changes to (None without [backups]).
    journal: Journal | None = None
    # What records kvdr's actions in the audit trail (disabled without [audit]).
    audit: AuditRecorder | None = None


@dataclass
class BackupParts:
    """What reading or writing backups needs: the stores and the key-encryption keys."""

    stores: BackupStores
    keks: KekRing


async def open_parts(
    config: KvdrConfig,
    stack: AsyncExitStack,
    only_pair: str | None = None,
    *,
    supervised_journal: bool = False,
) -> Parts:
    """Open everything the configuration names; closed when `stack` closes.

    With `supervised_journal` the journal's loop is not started here: the caller (the
    daemon) runs `parts.journal.run(stop)` among the loops it supervises."""
    pairs = config.replicator.pairs
    if only_pair is not None:
        pairs = tuple(p for p in pairs if p.name == only_pair)
        if not pairs:
            known = ", ".join(p.name for p in config.replicator.pairs) or "none"
            raise UnknownPair(f"no pair named {only_pair!r} in the configuration (pairs: {known})")
    credential = build_credential(config.credential)
    await stack.enter_async_context(credential)
    regions = {p.primary.region for p in pairs} | {t.region for p in pairs for t in p.secondaries}
    vaults: dict[str, VaultClient] = {}
    for region in sorted(regions):
        ref = config.regions[region]
        vaults[region] = await stack.enter_async_context(
            KeyVaultAdapter.open(ref, credential, config.vault)
        )
    blobs = await stack.enter_async_context(open_store(config.storage, credential))
    checkpoints = CheckpointStore(blobs, state_sealer(config))
    control = await open_control_stores(config, stack, credential, blobs)
    journal: Journal | None = None
    if config.backups is not None:
        parts = await open_backups(config, stack, credential, vaults, blobs, config.backups)
        journal = await stack.enter_async_context(
            Journal(
                parts.stores,
                parts.keks,
                config.backups,
                fingerprint=version_fingerprint,
                on_failure=count_journal_failure,
                autostart=not supervised_journal,
            )
        )
    sinks = (journal,) if journal is not None else ()
    audit = AuditRecorder(
        config,
        await open_audit_log(
            config, stack, blobs, vaults, credential, retention=supervised_journal
        ),
        command=not supervised_journal,
    )

    def make_replicator(
        pair: PairSettings,
        *,
        active: str | None = None,
        epoch: int = 0,
        gate: WriteGate | None = None,
        former: frozenset[str] = frozenset(),
    ) -> PairReplicator:
        directed = pair.directed(active) if active is not None else pair
        if former:
            directed = replace(directed, adopt_regions=former - {directed.primary.region})
        targets = {t.region: vaults[t.region] for t in directed.secondaries}
        if gate is not None:
            targets = {r: GatedVault.wrap(v, r, gate) for r, v in targets.items()}
        # Outermost: a write the gate refuses is recorded as refused, too.
        targets = {
            r: AuditedVault.wrap(v, audit, pair=pair.name, region=r) for r, v in targets.items()
        }
        return PairReplicator(
            directed,
            config.replicator,
            vaults[directed.primary.region],
            targets,
            checkpoints,
            sinks=sinks,
            epoch=epoch,
            gate=gate,
            read_budget_per_10s=config.vault.other_ops_per_10s,
        )

    return Parts(
        vaults=vaults,
        blobs=blobs,
        checkpoints=checkpoints,
        replicators=[make_replicator(pair) for pair in pairs],
        make_replicator=make_replicator,
        control=control,
        journal=journal,
        audit=audit,
    )


async def open_control_stores(
    config: KvdrConfig,
    stack: AsyncExitStack,
    credential: AsyncTokenCredential,
    blobs: BlobStore | None = None,
) -> ControlStores:
    """The stores of the control records: `[failover] control_stores`, or the main
    `[storage]` (`blobs` when it is open already)."""
    settings = config.failover
    if settings.control_stores:
        # One store that cannot be opened (its region is down) is one unreachable store
        # of the majority, not a failed command.
        stores: list[BlobStore] = []
        for index, one in enumerate(settings.control_stores):
            try:
                stores.append(await stack.enter_async_context(open_store(one, credential)))
            except StorageError as exc:
                log.warning("control.store_unopened", store=index, error=str(exc))
                stores.append(UnreachableStore(f"control store {index}", str(exc)))
    elif blobs is not None:
        stores = [blobs]
    else:
        stores = [await stack.enter_async_context(open_store(config.storage, credential))]
    return ControlStores(stores, timeout_seconds=settings.store_timeout_seconds)


@dataclass
class BackupSession:
    """What the backup commands work with: the credential, vault adapters by region (for
    vault KEKs; a restore target is opened on top), and the backup stores and KEKs."""

    credential: AsyncTokenCredential
    vaults: dict[str, VaultClient]
    blobs: BlobStore
    backups: BackupParts


async def open_backup_session(
    config: KvdrConfig,
    stack: AsyncExitStack,
    *,
    recovery_key: Path | None = None,
    recovery_password: bytes | None = None,
    allow_unsigned: bool = False,
) -> BackupSession:
    """Open the blob store and KEKs of `[backups]` (no replicator, no journal)."""
    if config.backups is None:
        raise BackupsNotConfigured(
            f"{config.source}: no [backups] section (or enabled = false): backups are off"
        )
    credential = build_credential(config.credential)
    await stack.enter_async_context(credential)
    blobs = await stack.enter_async_context(open_store(config.storage, credential))
    vaults: dict[str, VaultClient] = {}
    parts = await open_backups(
        config,
        stack,
        credential,
        vaults,
        blobs,
        config.backups,
        recovery_key=recovery_key,
        recovery_password=recovery_password,
        allow_unsigned=allow_unsigned,
    )
    return BackupSession(credential=credential, vaults=vaults, blobs=blobs, backups=parts)


async def open_backups(
    config: KvdrConfig,
    stack: AsyncExitStack,
    credential: AsyncTokenCredential,
    vaults: dict[str, VaultClient],
    blobs: BlobStore,
    settings: BackupSettings,
    *,
    recovery_key: Path | None = None,
    recovery_password: bytes | None = None,
    allow_unsigned: bool = False,
) -> BackupParts:
    """The backup stores (primary + replicas) and the KEK ring (with its signers) of
    `settings`.

    Vault KEKs use the region's adapter (opened here when no pair uses that region).
    `recovery_key` adds the offline recovery key's private half (a restore or verify that
    was handed it); it is the only way kvdr ever holds that half.
    """

    async def vault(region: str) -> VaultClient:
        if region not in vaults:
            vaults[region] = await stack.enter_async_context(
                KeyVaultAdapter.open(config.regions[region], credential, config.vault)
            )
        return vaults[region]

    ring = await open_signers(settings, vault, allow_unsigned=allow_unsigned)
    keks: list[KeyEncryptionKey] = []
    for kek in settings.keks:
        if isinstance(kek, LocalKekSettings):
            keks.append(_local_kek(kek))
        elif isinstance(kek, RecoveryKekSettings):
            keks.append(RecoveryKek.from_file(kek.public_key_path))
        else:
            keks.append(VaultKek(await vault(kek.region), kek.key))
    if recovery_key is not None:
        keks.append(RecoveryKek.from_file(recovery_key, recovery_password))
    replicas = [
        await stack.enter_async_context(open_store(replica, credential))
        for replica in settings.replicas
    ]
    return BackupParts(stores=BackupStores(blobs, replicas), keks=KekRing(keks, ring))


async def open_signers(
    settings: BackupSettings,
    vault: Callable[[str], Awaitable[VaultClient]],
    *,
    allow_unsigned: bool = False,
) -> SignerRing:
    """The `[[backups.signers]]` as a ring (`vault(region)` opens a region's adapter for
    vault signers); the audit trail is signed and checked with the same ring."""
    signers: list[Signer] = []
    pinned: list[PinnedKey] = []
    for signer in settings.signers:
        if isinstance(signer, FileSignerSettings):
            signers.append(create_or_load(signer.path, signer.algorithm, signer.create))
        elif isinstance(signer, PinnedSignerSettings):
            pinned.append(PinnedKey.from_file(signer.public_key_path))
        else:
            key = PinnedKey.from_file(signer.public_key_path)
            signers.append(VaultSigner(await vault(signer.region), signer.key, key))
    return SignerRing(signers, pinned, allow_unsigned=allow_unsigned)


def _local_kek(settings: LocalKekSettings) -> LocalFileKek:
    """The local key file, created on first use when the settings say so (local stack)."""
    file = Path(settings.path)
    if settings.create and not file.exists():
        return LocalFileKek.create_key_file(file)
    return LocalFileKek.from_file(file)


# The target label of a journal failure in kvdr_replication_errors_total: the journal
# is where every pair's changes go besides its secondaries.
JOURNAL_TARGET = "journal"


def count_journal_failure(pair: str, reason: str) -> None:
    """One failed journal attempt, in the replicator's error counter (the dashboard and
    the alerts watch that one); a failure of the loop itself counts under pair "*"."""
    replication_metrics.REPLICATION_ERRORS.labels(pair or "*", JOURNAL_TARGET, reason).inc()


def state_sealer(config: KvdrConfig) -> StateSealer | None:
    """What seals the checkpoints and deletion guards: the configured state key, or None
    (written in the clear; `kvdr config check` warns)."""
    key = config.replicator.state_key
    if not key:
        log.warning(
            "state.names_in_clear",
            reason="no replication.state_key_env or state_key_file: the checkpoints and "
            "deletion guards in blob storage name every mirrored item in plain text",
        )
        return None
    return StateSealer(key)
