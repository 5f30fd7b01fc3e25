"""Backup blobs: an object's full version list, sealed so only the same geography opens it.

Key Vault backups restore only within the geography (and subscription) they were taken
in. The blob is `header || AES-256-GCM(zlib(JSON payload))`; the clear header names the
format, kind and geography, and is bound into the AEAD as associated data. The key is
derived with HKDF from the geography's name, so two emulators started with the same
`--geo` open each other's backups and a different geography cannot (it gets Azure-style
refusal naming both geographies). This models Azure's rule; it is not meant to keep a
determined local user out.

Each kind's payload holds lists of `{"version", "doc"}` entries (`version_entries`,
`version_docs`); what else it holds is up to the kind.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import zlib
from collections.abc import Sequence
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from emulator.errors import KIND_TITLE, KeyVaultError, bad_parameter, not_found
from emulator.objects import check_name
from emulator.state import VaultState
from emulator.store import StoredVersion

MAGIC = b"KVDR-EMU-BACKUP1"
_SALT = b"kvdr emulator backup blob v1"
# Key Vault refuses backups of objects with more than 500 versions.
MAX_BACKUP_VERSIONS = 500
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


def geo_key(geo: str) -> bytes:
    """The 256-bit sealing key of a geography."""
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=_SALT, info=f"geo:{geo}".encode()
    ).derive(b"kvdr-emulator")


def seal(kind: str, geo: str, payload: dict[str, Any]) -> bytes:
    """Encrypt a backup payload (kind-specific JSON: all versions incl. material)."""
    header = json.dumps({"kind": kind, "geo": geo}, sort_keys=True).encode()
    nonce = os.urandom(12)
    body = AESGCM(geo_key(geo)).encrypt(
        nonce, zlib.compress(json.dumps(payload).encode()), MAGIC + header
    )
    return MAGIC + len(header).to_bytes(2, "big") + header + nonce + body


def geography_refused(taken_in: str, restoring_in: str) -> KeyVaultError:
    """Azure refuses a restore across geographies with 400 BadParameter."""
    return bad_parameter(
        f"backup was taken in geography {taken_in} and cannot be restored in geography "
        f"{restoring_in}: backups restore only within the geography they were taken in"
    )


def open_blob(kind: str, geo: str, blob: bytes) -> dict[str, Any]:
    """Decrypt a backup blob taken in `geo` for `kind`, or raise Key Vault's error."""
    corrupt = bad_parameter(f"the {kind} backup blob is malformed or was altered")
    if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + 2:
        raise corrupt
    offset = len(MAGIC)
    header_len = int.from_bytes(blob[offset : offset + 2], "big")
    header_bytes = blob[offset + 2 : offset + 2 + header_len]
    try:
        header = json.loads(header_bytes)
        taken_in = str(header["geo"])
        blob_kind = str(header["kind"])
    except (ValueError, KeyError, TypeError):
        raise corrupt from None
    if taken_in != geo:
        raise geography_refused(taken_in, geo)
    if blob_kind != kind:
        raise bad_parameter(f"the backup blob holds a {blob_kind}, not a {kind}")
    rest = blob[offset + 2 + header_len :]
    try:
        plain = AESGCM(geo_key(geo)).decrypt(rest[:12], rest[12:], MAGIC + header_bytes)
        payload = json.loads(zlib.decompress(plain))
    except (InvalidTag, ValueError, zlib.error):
        raise corrupt from None
    if not isinstance(payload, dict):
        raise corrupt
    return payload


def encode_value(blob: bytes) -> str:
    """The REST body's `value`: base64url without padding, as Key Vault sends it."""
    return base64.urlsafe_b64encode(blob).rstrip(b"=").decode()


def decode_value(value: object, kind: str) -> bytes:
    """The blob from a restore request's `value` (base64url, padding optional)."""
    if not isinstance(value, str) or not value:
        raise bad_parameter(f"value: the {kind} backup blob is required (base64url)")
    # Python's decoder skips characters outside the alphabet; Key Vault does not.
    if not _BASE64URL.fullmatch(value.rstrip("=")):
        raise bad_parameter(f"value: the {kind} backup blob is not valid base64url")
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raise bad_parameter(f"value: the {kind} backup blob is not valid base64url") from None


def open_request(body: dict[str, Any], kind: str, geo: str) -> dict[str, Any]:
    """The payload of a restore request's blob, or 400 as Key Vault refuses it."""
    return open_blob(kind, geo, decode_value(body.get("value"), kind))


def backup_body(kind: str, geo: str, payload: dict[str, Any]) -> dict[str, str]:
    """A backup response: the payload sealed for this geography, as base64url `value`."""
    return {"value": encode_value(seal(kind, geo, payload))}


def backup_versions(state: VaultState, kind: str, name: str) -> list[StoredVersion]:
    """Every live version of an object, oldest first: 404 for none, 400 above the limit."""
    versions = state.store.all_versions(kind, name)
    if not versions:
        raise not_found(kind, name)
    if len(versions) > MAX_BACKUP_VERSIONS:
        raise bad_parameter(
            f"{KIND_TITLE[kind]} {name} has {len(versions)} versions; backups hold at most "
            f"{MAX_BACKUP_VERSIONS}."
        )
    return versions


def version_entries(versions: Sequence[StoredVersion]) -> list[dict[str, Any]]:
    """The payload's list of versions, oldest first."""
    return [{"version": v.version, "doc": v.doc} for v in versions]


def version_docs(entries: Any) -> list[tuple[str, dict[str, Any]]]:
    """(version, doc) pairs from a payload's list, for `VersionStore.restore_versions`.

    A malformed list raises KeyError, TypeError or ValueError; the caller answers 400
    naming its kind, together with its other payload fields.
    """
    return [(str(v["version"]), dict(v["doc"])) for v in entries]


def named_versions(
    payload: dict[str, Any], kind: str
) -> tuple[str, list[tuple[str, dict[str, Any]]]]:
    """The name and (version, doc) pairs of a `{"name", "versions"}` payload, or 400."""
    try:
        name = check_name(str(payload["name"]))
        versions = version_docs(payload["versions"])
    except (KeyError, TypeError, ValueError):
        raise bad_parameter(f"the {kind} backup blob is malformed") from None
    if not versions:
        raise bad_parameter(f"the {kind} backup blob holds no versions")
    return name, versions
