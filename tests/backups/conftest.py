"""Helpers for the backups tests: KEKs of every kind and adapters on real emulators."""

from __future__ import annotations

import functools
import itertools
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from backups.journal import Journal
from backups.keks import KekRing, KeyEncryptionKey, LocalFileKek, RecoveryKek
from backups.settings import BackupSettings
from backups.signer_files import Ed25519FileSigner
from backups.signers import SignerRing
from backups.stores import BackupStores
from replicator.sink import version_fingerprint
from storage.store import BlobStore
from tests.fixtures.emulator import AsyncStaticTokenCredential, EmulatorProcess, aio_key_client
from vault import KeyVaultAdapter, VaultRef, VaultSettings
from vault.models import Change, ChangeOp, ItemKind, ItemProperties, ItemRef

_names = itertools.count()


def unique(prefix: str) -> str:
    """A name no other test of the session uses."""
    return f"{prefix}-{next(_names)}"


@functools.cache
def recovery_private_pem() -> bytes:
    """One RSA-2048 recovery key pair for the whole session (generation takes a while)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def recovery_public_pem() -> bytes:
    key = serialization.load_pem_private_key(recovery_private_pem(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def ec_public_pem() -> bytes:
    """The public half of a fresh EC P-256 key (what a vault signing key pins)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def recovery_public() -> RecoveryKek:
    return RecoveryKek.from_public_pem(recovery_public_pem())


def recovery_private() -> RecoveryKek:
    return RecoveryKek.from_private_pem(recovery_private_pem())


def local_kek() -> LocalFileKek:
    """A fresh in-memory local KEK."""
    return LocalFileKek(os.urandom(32))


def emulator_settings(emu: EmulatorProcess, **overrides: Any) -> VaultSettings:
    base: dict[str, Any] = {"ca_file": str(emu.ca_path), "verify_challenge_resource": False}
    base.update(overrides)
    return VaultSettings(**base)


@asynccontextmanager
async def open_adapter(
    emu: EmulatorProcess, region: str | None = None, **overrides: Any
) -> AsyncIterator[KeyVaultAdapter]:
    """An adapter on `emu` (region label unique unless given, for separate metrics)."""
    ref = VaultRef(region or unique(emu.region), emu.url)
    async with KeyVaultAdapter.open(
        ref, AsyncStaticTokenCredential(), emulator_settings(emu, **overrides)
    ) as adapter:
        yield adapter


async def create_rsa_key(emu: EmulatorProcess, name: str) -> str:
    """Create an RSA-2048 key (a vault KEK) with the official SDK; returns its version."""
    async with aio_key_client(emu) as keys:
        return (await keys.create_rsa_key(name, size=2048)).properties.version or ""


# -- journals over a blob store -------------------------------------------------------


def journal_settings(**overrides: Any) -> BackupSettings:
    """Quick settings for tests: short flush interval, no background snapshots."""
    base: dict[str, Any] = {
        "flush_interval_seconds": 0.05,
        "flush_max_changes": 50,
        "snapshot_interval_seconds": 10_000.0,
        "retention_interval_seconds": 10_000.0,
        "writer": "tests",
    }
    base.update(overrides)
    return BackupSettings(**base)


def make_journal(
    store: BlobStore,
    keks: KekRing | None = None,
    replicas: Sequence[BlobStore] = (),
    clock: Callable[[], float] = time.time,
    **overrides: Any,
) -> Journal:
    return Journal(
        BackupStores(store, replicas),
        keks or RING,
        journal_settings(**overrides),
        fingerprint=version_fingerprint,
        clock=clock,
    )


FIXED_KEK = LocalFileKek(os.urandom(32), "test key")
# The signer every test journal signs with (pinned by the rings below).
SIGNER = Ed25519FileSigner(ed25519.Ed25519PrivateKey.generate(), "test signing key")
SIGNERS = SignerRing([SIGNER])
RING = KekRing([FIXED_KEK], SIGNERS)


def ring(*keks: KeyEncryptionKey, signers: SignerRing = SIGNERS) -> KekRing:
    """A KEK ring with the tests' pinned signer."""
    return KekRing(keks, signers)


def secret_change(
    name: str,
    version: str,
    value: str | None = "value",
    *,
    pair: str = "app",
    op: ChangeOp = ChangeOp.NEW_VERSION,
    at: datetime | None = None,
    kind: ItemKind = ItemKind.SECRET,
    payload: str | bytes | None = None,
    **props: Any,
) -> Change:
    """A change as the replicator hands it over (sequence 0: the journal assigns it)."""
    when = at or datetime.now(UTC)
    properties = None
    if op in (ChangeOp.NEW_VERSION, ChangeOp.UPDATE):
        properties = ItemProperties(
            kind=kind,
            name=name,
            version=version,
            created_on=when.replace(microsecond=0),
            updated_on=when.replace(microsecond=0),
            **props,
        )
    material = payload if payload is not None else (value if op is ChangeOp.NEW_VERSION else None)
    return Change(
        pair=pair,
        item=ItemRef(kind, name),
        op=op,
        observed_at=when,
        properties=properties,
        payload=material,
    )
