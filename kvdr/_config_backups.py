"""`[backups]`: the journal, snapshots, retention, key-encryption keys and replicas.

    [backups]
    durability = "interval"          # or "sync": record() returns once durable
    flush_interval = "2s"
    flush_max_changes = 500
    snapshot_interval = "1h"
    retention_interval = "1h"
    keep_all_hours = 48
    keep_hourly_days = 7
    keep_daily_days = 35
    keep_monthly_months = 12

    [[backups.keks]]                 # one per region: losing a region never locks backups
    kind = "vault"
    region = "eastus"
    key = "kvdr-backup"

    [[backups.keks]]                 # the offline recovery key's public half
    kind = "recovery"
    public_key = "/etc/kvdr/recovery.pub.pem"

    [[backups.keks]]                 # development and the local stack only
    kind = "file"
    path = ".kvdr/backup.key"
    create = true

    [[backups.signers]]              # one per region: an EC P-256 (ES256) or RSA (PS256)
    kind = "vault"                   # key the vault signs with, pinned by its public half
    region = "eastus"
    key = "kvdr-backup-signing"
    public_key = "/etc/kvdr/signing-eastus.pub.pem"

    [[backups.signers]]              # development and the local stack only
    kind = "file"
    algorithm = "Ed25519"            # or "HMAC-SHA256"
    path = ".kvdr/backup-signing.key"
    create = true

    [[backups.signers]]              # trusted, never signs (retired key, break-glass host)
    kind = "public"
    public_key = "/etc/kvdr/signing-old.pub.pem"

    [[backups.replicas]]             # a second account (same keys as [storage])
    account_url = "https://kvdrbackupwest.blob.core.windows.net"

Without the section, backups are off. With it, at least one KEK and one signer are
required.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import TypeVar

from backups.keks import LocalFileKek, RecoveryKek
from backups.settings import (
    DURABILITY_MODES,
    BackupSettings,
    FileSignerSettings,
    KekSettings,
    LocalKekSettings,
    PinnedSignerSettings,
    RecoveryKekSettings,
    RetentionPolicy,
    SignerSettings,
    VaultKekSettings,
    VaultSignerSettings,
)
from backups.signer_files import create_or_load
from backups.signers import ES256, FILE_ALGORITHMS, PS256, PinnedKey
from kvdr._config_fields import (
    Invalid,
    Problems,
    Table,
    boolean,
    choice,
    duration,
    integer,
    text,
)
from kvdr._config_lines import KeyPath
from kvdr._config_schema import read_storage
from storage.settings import StorageSettings
from vault.models import VaultRef

_KEYS = (
    "enabled",
    "durability",
    "flush_interval",
    "flush_max_changes",
    "max_buffered_changes",
    "snapshot_interval",
    "retention_interval",
    "keep_all_hours",
    "keep_hourly_days",
    "keep_daily_days",
    "keep_monthly_months",
    "keks",
    "signers",
    "replicas",
)
KEK_KINDS = ("vault", "recovery", "file")
_KEK_KEYS = {
    "vault": ("kind", "region", "key"),
    "recovery": ("kind", "public_key"),
    "file": ("kind", "path", "create"),
}
SIGNER_KINDS = ("vault", "file", "public")
_SIGNER_KEYS = {
    "vault": ("kind", "region", "key", "public_key"),
    "file": ("kind", "path", "algorithm", "create", "public_key", "key_id"),
    "public": ("kind", "public_key"),
}
T = TypeVar("T")
_KEY_NAME = re.compile(r"[0-9A-Za-z-]{1,127}")


def _key_name(value: object) -> str:
    name = text(value)
    if not _KEY_NAME.fullmatch(name):
        raise Invalid(f"{name!r} is not a Key Vault key name: 1-127 letters, digits and hyphens")
    return name


def read_backups(
    raw: object,
    regions: Mapping[str, VaultRef],
    declared: set[str],
    env: Mapping[str, str],
    problems: Problems,
    writer: str = "",
) -> BackupSettings | None:
    """The `[backups]` section, or None when it is absent or `enabled = false`."""
    if raw is None:
        return None
    path: KeyPath = ("backups",)
    table = Table(raw, path, problems, _KEYS)
    if not isinstance(raw, dict):
        return None
    enabled = table.get("enabled", boolean)
    base = BackupSettings()
    policy = RetentionPolicy()
    retention = RetentionPolicy(
        keep_all_hours=_pick(
            table.get("keep_all_hours", integer(1, 24 * 366)), policy.keep_all_hours
        ),
        hourly_days=_pick(table.get("keep_hourly_days", integer(0, 3660)), policy.hourly_days),
        daily_days=_pick(table.get("keep_daily_days", integer(0, 3660)), policy.daily_days),
        monthly_months=_pick(
            table.get("keep_monthly_months", integer(0, 1200)), policy.monthly_months
        ),
    )
    keks = _read_keks(raw.get("keks"), (*path, "keks"), regions, declared, problems)
    signers = _read_signers(raw.get("signers"), (*path, "signers"), declared, problems)
    replicas = _read_replicas(raw.get("replicas"), (*path, "replicas"), env, problems)
    flush_max = _pick(table.get("flush_max_changes", integer(1, 100_000)), base.flush_max_changes)
    buffered = _pick(
        table.get("max_buffered_changes", integer(1, 10_000_000)),
        max(base.max_buffered_changes, flush_max),
    )
    if buffered < flush_max:
        problems.error(
            (*path, "max_buffered_changes"), "must not be smaller than flush_max_changes"
        )
        buffered = flush_max
    settings = BackupSettings(
        enabled=enabled if enabled is not None else True,
        keks=keks,
        signers=signers,
        durability=table.get("durability", choice(DURABILITY_MODES)) or base.durability,
        flush_interval_seconds=_pick(
            table.get("flush_interval", duration()), base.flush_interval_seconds
        ),
        flush_max_changes=flush_max,
        max_buffered_changes=buffered,
        snapshot_interval_seconds=_pick(
            table.get("snapshot_interval", duration()), base.snapshot_interval_seconds
        ),
        retention_interval_seconds=_pick(
            table.get("retention_interval", duration()), base.retention_interval_seconds
        ),
        retention=retention,
        replicas=replicas,
        writer=writer,
    )
    if settings.enabled and not keks and not problems.errors_under((*path, "keks")):
        problems.error(
            (*path, "keks"),
            "backups need at least one key-encryption key: add a [[backups.keks]] table "
            '(kind = "vault", "recovery" or "file")',
        )
    if settings.enabled and not signers and not problems.errors_under((*path, "signers")):
        problems.error(
            (*path, "signers"),
            "backups need at least one signer, or anyone who can write the container could "
            'forge backups: add a [[backups.signers]] table (kind = "vault", "file" or '
            '"public")',
        )
    elif settings.enabled and signers and all(isinstance(s, PinnedSignerSettings) for s in signers):
        problems.warning(
            (*path, "signers"),
            'no signer can sign (all are kind = "public"): backups can be verified and '
            "restored with this configuration, not written",
        )
    return settings if settings.enabled else None


def _pinned(where: KeyPath, table: Table, problems: Problems, required: bool) -> PinnedKey | None:
    """The PEM file at `public_key`, loaded (None when absent or bad: reported)."""
    what = "a PEM file with the signing key's public half"
    file = table.require("public_key", text, what) if required else table.get("public_key", text)
    if file is None:
        return None
    try:
        return PinnedKey.from_file(file)
    except ValueError as exc:
        problems.error((*where, "public_key"), str(exc))
        return None


def _read_signer(
    body: dict[str, object], where: KeyPath, declared: set[str], problems: Problems
) -> SignerSettings | None:
    kind = body.get("kind")
    known = _SIGNER_KEYS.get(kind, ("kind",)) if isinstance(kind, str) else ("kind",)
    table = Table(body, where, problems, known)
    chosen = table.require("kind", choice(SIGNER_KINDS), "vault, file or public")
    if chosen == "vault":
        region = table.require("region", text, "the region whose vault holds the key")
        key = table.require("key", _key_name, "the name of an EC P-256 or RSA key in that vault")
        pinned = _pinned(where, table, problems, required=True)
        if region is not None and region not in declared:
            problems.error(
                (*where, "region"),
                f"unknown region {region!r} (regions: {', '.join(sorted(declared)) or 'none'})",
            )
        elif pinned is not None and pinned.algorithm not in (ES256, PS256):
            problems.error(
                (*where, "public_key"),
                f"{pinned.description} is an {pinned.algorithm} key: a vault signing key is "
                "EC P-256 (ES256) or RSA (PS256)",
            )
        elif region is not None and key is not None and pinned is not None:
            return VaultSignerSettings(region, key, str(table.get("public_key", text)))
        return None
    if chosen == "public":
        pinned = _pinned(where, table, problems, required=True)
        file = table.get("public_key", text)
        return PinnedSignerSettings(file) if pinned is not None and file else None
    if chosen != "file":
        return None
    file = table.require("path", text, "the local signing key file")
    algorithm = table.get("algorithm", choice(FILE_ALGORITHMS)) or FILE_ALGORITHMS[0]
    create = bool(table.get("create", boolean))
    key_id = table.get("key_id", text)
    pinned = _pinned(where, table, problems, required=False)
    if file is None or problems.errors_under(where):
        return None
    if key_id is not None and algorithm != "HMAC-SHA256":
        problems.error((*where, "key_id"), "pins an HMAC-SHA256 key; use public_key for Ed25519")
    if pinned is not None and algorithm != "Ed25519":
        problems.error((*where, "public_key"), "an HMAC-SHA256 key has no public half: pin key_id")
    if not create or Path(file).exists():
        try:
            signer = create_or_load(file, algorithm, create=False)
        except ValueError as exc:
            problems.error((*where, "path"), str(exc))
            return None
        if key_id is not None and signer.signer_id != key_id:
            problems.error(
                (*where, "key_id"),
                f"{signer.description} is not the pinned key {key_id!r}: replaced or wrong file",
            )
        if pinned is not None and signer.signer_id != pinned.signer_id:
            problems.error(
                (*where, "public_key"),
                f"{signer.description} does not match {pinned.description}: replaced or wrong file",
            )
    if problems.errors_under(where):
        return None
    public = table.get("public_key", text) if pinned is not None else None
    return FileSignerSettings(file, algorithm, create, public, key_id)


def _read_signers(
    raw: object, path: KeyPath, declared: set[str], problems: Problems
) -> tuple[SignerSettings, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        problems.error(
            path, "expected an array of tables: write each signer as [[backups.signers]]"
        )
        return ()
    signers: list[SignerSettings] = []
    for index, body in enumerate(raw):
        if not isinstance(body, dict):
            Table(body, (*path, index), problems, ("kind",))
            continue
        signer = _read_signer(body, (*path, index), declared, problems)
        if signer is not None:
            signers.append(signer)
    return tuple(signers)


def _read_keks(
    raw: object,
    path: KeyPath,
    regions: Mapping[str, VaultRef],
    declared: set[str],
    problems: Problems,
) -> tuple[KekSettings, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        problems.error(path, "expected an array of tables: write each KEK as [[backups.keks]]")
        return ()
    keks: list[KekSettings] = []
    for index, body in enumerate(raw):
        where = (*path, index)
        kind = body.get("kind") if isinstance(body, dict) else None
        known = _KEK_KEYS.get(kind, ("kind",)) if isinstance(kind, str) else ("kind",)
        table = Table(body, where, problems, known)
        if not isinstance(body, dict):
            continue
        chosen = table.require("kind", choice(KEK_KINDS), "vault, recovery or file")
        if chosen == "vault":
            region = table.require("region", text, "the region whose vault holds the key")
            key = table.require("key", _key_name, "the name of an RSA key in that vault")
            if region is not None and region not in declared:
                problems.error(
                    (*where, "region"),
                    f"unknown region {region!r} (regions: {', '.join(sorted(declared)) or 'none'})",
                )
            elif region is not None and key is not None and region in regions:
                keks.append(VaultKekSettings(region=region, key=key))
        elif chosen == "recovery":
            public = table.require("public_key", text, "a PEM file with the RSA public key")
            if public is not None:
                try:
                    kek = RecoveryKek.from_file(public)
                except ValueError as exc:
                    problems.error((*where, "public_key"), str(exc))
                else:
                    if kek.can_unwrap:
                        problems.error(
                            (*where, "public_key"),
                            "is a private key: configure only the public half; the private "
                            "half stays offline and is given to `kvdr restore --recovery-key`",
                        )
                    else:
                        keks.append(RecoveryKekSettings(public_key_path=public))
        elif chosen == "file":
            file = table.require("path", text, "the local key file")
            create = bool(table.get("create", boolean))
            if file is not None:
                if not create or Path(file).exists():
                    try:
                        LocalFileKek.from_file(file)
                    except ValueError as exc:
                        problems.error((*where, "path"), str(exc))
                        continue
                keks.append(LocalKekSettings(path=file, create=create))
    return tuple(keks)


def _read_replicas(
    raw: object, path: KeyPath, env: Mapping[str, str], problems: Problems
) -> tuple[StorageSettings, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        problems.error(
            path, "expected an array of tables: write each replica as [[backups.replicas]]"
        )
        return ()
    replicas: list[StorageSettings] = []
    for index, body in enumerate(raw):
        # The replica table takes the keys of [storage]; its problems are re-homed here.
        found = Problems()
        try:
            settings = read_storage(body, env, found)
        except (ValueError, TypeError) as exc:
            problems.error((*path, index), str(exc))
            continue
        for problem in found.items:
            where = (*path, index, *problem.path[1:])
            if problem.severity == "error":
                problems.error(where, problem.message, problem.variable)
            else:
                problems.warning(where, problem.message)
        if settings is not None and not found.has_errors:
            replicas.append(settings)
    return tuple(replicas)


def _pick(value: T | None, default: T) -> T:
    return default if value is None else value
