"""`[backups]`: the journal, snapshots, retention, key-encryption keys and replicas.

    [backups]
    durability = "interval"          # or "sync": record() returns once durable
    flush_interval = "2s"
    snapshot_interval = "1h"
    keep_all_hours = 48

    [[backups.keks]]                 # one per region: losing a region never locks backups
    kind = "vault"                   # or "recovery" (public_key), "file" (path, create)
    region = "eastus"
    key = "kvdr-backup"

    [[backups.signers]]              # one per region: an EC P-256 (ES256) or RSA (PS256)
    kind = "vault"                   # key the vault signs with, pinned by its public half;
    region = "eastus"                # or "file" (Ed25519, HMAC-SHA256), "public" (trusted,
    key = "kvdr-backup-signing"      # never signs)
    public_key = "/etc/kvdr/signing-eastus.pub.pem"

    [[backups.replicas]]             # a second account (the keys of [storage])
    account_url = "https://kvdrbackupwest.blob.core.windows.net"

KEKs and signers are discriminated unions on `kind`. Without the section, backups are
off; with it, at least one KEK and one signer are required.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

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
from kvdr._config_fields import Invalid, Problems, choice, integer, text
from kvdr._config_lines import KeyPath
from kvdr._config_model import (
    Check,
    Duration,
    Flag,
    KindSection,
    Section,
    Text,
    build,
    each,
    kind_of,
    kind_union,
    read_kind,
    read_section,
    setting,
    tables,
)
from kvdr._config_storage import read_storage
from storage.settings import StorageSettings
from vault.models import VaultRef

_KEY_NAME = re.compile(r"[0-9A-Za-z-]{1,127}")


def _key_name(value: object) -> str:
    name = text(value)
    if not _KEY_NAME.fullmatch(name):
        raise Invalid(f"{name!r} is not a Key Vault key name: 1-127 letters, digits and hyphens")
    return name


KeyName = Annotated[str, Check(_key_name, "string")]
_REGION_HINT = " (the region whose vault holds the key)"


_B = BackupSettings()
_P = RetentionPolicy()


class BackupsSection(Section):
    section = "backups"
    # Arrays of tables with references of their own below the section's.
    elsewhere = frozenset({"keks", "signers", "replicas"})

    enabled: Flag = setting(True, "`false` turns backups off")
    durability: Annotated[str, Check(choice(DURABILITY_MODES), "string")] = setting(
        _B.durability, '`"sync"`: `record()` returns once durable (group commit)'
    )
    flush_interval_seconds: Duration = setting(
        _B.flush_interval_seconds, "a segment at least this often"
    )
    flush_max_changes: Annotated[int, Check(integer(1, 100_000), "integer")] = setting(
        _B.flush_max_changes, "... or every this many changes (1-100,000)"
    )
    max_buffered_changes: Annotated[int, Check(integer(1, 10_000_000), "integer")] | None = setting(
        None,
        "beyond this, the journal waits for storage (backpressure)",
        shown=f"`{_B.max_buffered_changes}`",
    )
    snapshot_interval_seconds: Duration = setting(
        _B.snapshot_interval_seconds,
        "how often the journal compacts itself into a snapshot",
    )
    retention_interval_seconds: Duration = setting(
        _B.retention_interval_seconds, "how often retention runs"
    )
    keep_all_hours: Annotated[int, Check(integer(1, 24 * 366), "integer")] = setting(
        _P.keep_all_hours, "retention: every restore point this many hours back (1-8784)"
    )
    hourly_days: Annotated[int, Check(integer(0, 3660), "integer")] = setting(
        _P.hourly_days,
        "retention: then one point per hour, this many days back",
        alias="keep_hourly_days",
    )
    daily_days: Annotated[int, Check(integer(0, 3660), "integer")] = setting(
        _P.daily_days,
        "retention: then one point per day, this many days back",
        alias="keep_daily_days",
    )
    monthly_months: Annotated[int, Check(integer(0, 1200), "integer")] = setting(
        _P.monthly_months,
        "retention: then one point per month, this many months back",
        alias="keep_monthly_months",
    )
    # Each element is read on its own below, so one bad table does not hide the others.
    keks: Annotated[list[Any], tables("KEK", "backups.keks")] = []
    signers: Annotated[list[Any], tables("signer", "backups.signers")] = []
    replicas: Annotated[list[Any], tables("replica", "backups.replicas")] = []


_REGION = "a region of `[regions.*]`"
_PINNED_HALF = "PEM file with the public half that is pinned"


class VaultKek(KindSection):
    """a Key Vault RSA key wraps the data key"""

    hints = {"region": _REGION_HINT, "key": " (the name of an RSA key in that vault)"}
    kind: Literal["vault"] = "vault"
    region: Text = setting(..., _REGION)
    key: KeyName = setting(..., "the name of an RSA key in that region's vault")


class RecoveryKekTable(KindSection):
    """an offline recovery key's public half wraps it"""

    hints = {"public_key": " (a PEM file with the RSA public key)"}
    kind: Literal["recovery"] = "recovery"
    public_key: Text = setting(
        ...,
        "PEM file with the offline recovery key's public half (a private key is refused)",
    )


class FileKek(KindSection):
    """a local key file wraps it"""

    hints = {"path": " (the local key file)"}
    kind: Literal["file"] = "file"
    path: Text = setting(..., "the local key file")
    create: Flag = setting(False, "`true` writes the key file (0600) on first use")


_PUBLIC_HALF = " (a PEM file with the signing key's public half)"


class VaultSigner(KindSection):
    """a Key Vault key signs"""

    hints = {
        "region": _REGION_HINT,
        "key": " (the name of an EC P-256 or RSA key in that vault)",
        "public_key": _PUBLIC_HALF,
    }
    kind: Literal["vault"] = "vault"
    region: Text = setting(..., _REGION)
    key: KeyName = setting(
        ...,
        "the name of an EC P-256 (ES256) or RSA (PS256, at least 2048 bits) key in that "
        "region's vault",
    )
    public_key: Text = setting(..., _PINNED_HALF)


class FileSigner(KindSection):
    """a local key file signs"""

    hints = {"path": " (the local signing key file)"}
    kind: Literal["file"] = "file"
    path: Text = setting(..., "the signing key file")
    algorithm: Annotated[str, Check(choice(FILE_ALGORITHMS), "string")] = setting(
        FILE_ALGORITHMS[0], " or ".join(f'`"{name}"`' for name in FILE_ALGORITHMS)
    )
    create: Flag = setting(
        False, "`true` writes the key file (0600) on first use; never overwrites one"
    )
    public_key: Text | None = setting(
        None, _PINNED_HALF + " (Ed25519 only); it must match the key file"
    )
    key_id: Text | None = setting(
        None, "the pinned id (`hmac:<16 hex>`) the key file must have (HMAC-SHA256 only)"
    )


class PublicSigner(KindSection):
    """a pinned public half that never signs: a retired signer, or a break-glass host"""

    hints = {"public_key": _PUBLIC_HALF}
    kind: Literal["public"] = "public"
    public_key: Text = setting(..., _PINNED_HALF)


KEK_KINDS = {kind_of(m): m for m in (VaultKek, RecoveryKekTable, FileKek)}
SIGNER_KINDS = {kind_of(m): m for m in (VaultSigner, FileSigner, PublicSigner)}
Kek = kind_union(*KEK_KINDS.values())
Signer = kind_union(*SIGNER_KINDS.values())


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
    section = read_section(BackupsSection, raw, path, problems)
    if not isinstance(raw, dict):
        return None
    keks: list[KekSettings] = each(
        raw.get("keks"),
        (*path, "keks"),
        lambda body, where: _kek(body, where, regions, declared, problems),
    )
    signers: list[SignerSettings] = each(
        raw.get("signers"),
        (*path, "signers"),
        lambda body, where: _signer(body, where, declared, problems),
    )
    replicas: list[StorageSettings] = each(
        raw.get("replicas"),
        (*path, "replicas"),
        # A replica takes the keys of [storage].
        lambda body, where: read_storage(body, env, problems, where),
    )
    if section is None:
        return None
    buffered = section.max_buffered_changes
    if buffered is None:
        buffered = max(_B.max_buffered_changes, section.flush_max_changes)
    elif buffered < section.flush_max_changes:
        problems.error(
            (*path, "max_buffered_changes"), "must not be smaller than flush_max_changes"
        )
        return None
    settings = build(
        BackupSettings,
        section,
        max_buffered_changes=buffered,
        retention=build(RetentionPolicy, section),
        keks=tuple(keks),
        signers=tuple(signers),
        replicas=tuple(replicas),
        writer=writer,
    )
    if not settings.enabled:
        return None
    if not keks and not problems.errors_under((*path, "keks")):
        problems.error(
            (*path, "keks"),
            "backups need at least one key-encryption key: add a [[backups.keks]] table "
            '(kind = "vault", "recovery" or "file")',
        )
    if not signers and not problems.errors_under((*path, "signers")):
        problems.error(
            (*path, "signers"),
            "backups need at least one signer, or anyone who can write the container could "
            'forge backups: add a [[backups.signers]] table (kind = "vault", "file" or '
            '"public")',
        )
    elif signers and all(isinstance(s, PinnedSignerSettings) for s in signers):
        problems.warning(
            (*path, "signers"),
            'no signer can sign (all are kind = "public"): backups can be verified and '
            "restored with this configuration, not written",
        )
    return settings


def _unknown_region(region: str, declared: set[str]) -> str:
    return f"unknown region {region!r} (regions: {', '.join(sorted(declared)) or 'none'})"


def _kek(
    body: object,
    where: KeyPath,
    regions: Mapping[str, VaultRef],
    declared: set[str],
    problems: Problems,
) -> KekSettings | None:
    table = read_kind(Kek, KEK_KINDS, body, where, problems)
    if isinstance(table, VaultKek):
        if table.region not in declared:
            problems.error((*where, "region"), _unknown_region(table.region, declared))
            return None
        return build(VaultKekSettings, table) if table.region in regions else None
    if isinstance(table, RecoveryKekTable):
        try:
            kek = RecoveryKek.from_file(table.public_key)
        except ValueError as exc:
            problems.error((*where, "public_key"), str(exc))
            return None
        if kek.can_unwrap:
            problems.error(
                (*where, "public_key"),
                "is a private key: configure only the public half; the private half stays "
                "offline and is given to `kvdr restore --recovery-key`",
            )
            return None
        return RecoveryKekSettings(public_key_path=table.public_key)
    if isinstance(table, FileKek):
        if not table.create or Path(table.path).exists():
            try:
                LocalFileKek.from_file(table.path)
            except ValueError as exc:
                problems.error((*where, "path"), str(exc))
                return None
        return LocalKekSettings(path=table.path, create=table.create)
    return None


def _pinned(file: str | None, where: KeyPath, problems: Problems) -> PinnedKey | None:
    """The PEM file at `public_key`, loaded (None when absent or bad: reported)."""
    if file is None:
        return None
    try:
        return PinnedKey.from_file(file)
    except ValueError as exc:
        problems.error((*where, "public_key"), str(exc))
        return None


def _signer(
    body: object, where: KeyPath, declared: set[str], problems: Problems
) -> SignerSettings | None:
    table = read_kind(Signer, SIGNER_KINDS, body, where, problems)
    if isinstance(table, VaultSigner):
        pinned = _pinned(table.public_key, where, problems)
        if table.region not in declared:
            problems.error((*where, "region"), _unknown_region(table.region, declared))
        elif pinned is not None and pinned.algorithm not in (ES256, PS256):
            problems.error(
                (*where, "public_key"),
                f"{pinned.description} is an {pinned.algorithm} key: a vault signing key is "
                "EC P-256 (ES256) or RSA (PS256)",
            )
        elif pinned is not None:
            return VaultSignerSettings(table.region, table.key, table.public_key)
        return None
    if isinstance(table, PublicSigner):
        pinned = _pinned(table.public_key, where, problems)
        return PinnedSignerSettings(table.public_key) if pinned is not None else None
    if isinstance(table, FileSigner):
        return _file_signer(table, where, problems)
    return None


def _file_signer(table: FileSigner, where: KeyPath, problems: Problems) -> SignerSettings | None:
    pinned = _pinned(table.public_key, where, problems)
    if table.public_key is not None and pinned is None:
        return None
    count = len(problems.items)
    if table.key_id is not None and table.algorithm != "HMAC-SHA256":
        problems.error((*where, "key_id"), "pins an HMAC-SHA256 key; use public_key for Ed25519")
    if pinned is not None and table.algorithm != "Ed25519":
        problems.error((*where, "public_key"), "an HMAC-SHA256 key has no public half: pin key_id")
    if not table.create or Path(table.path).exists():
        try:
            signer = create_or_load(table.path, table.algorithm, create=False)
        except ValueError as exc:
            problems.error((*where, "path"), str(exc))
            return None
        if table.key_id is not None and signer.signer_id != table.key_id:
            problems.error(
                (*where, "key_id"),
                f"{signer.description} is not the pinned key {table.key_id!r}: replaced or "
                "wrong file",
            )
        if pinned is not None and signer.signer_id != pinned.signer_id:
            problems.error(
                (*where, "public_key"),
                f"{signer.description} does not match {pinned.description}: replaced or wrong file",
            )
    if len(problems.items) != count:
        return None
    return build(FileSignerSettings, table, public_key_path=table.public_key)
