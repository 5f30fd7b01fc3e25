"""Local signing key files (development and the local stack): an Ed25519 key, or a
256-bit HMAC-SHA256 key, written once with mode 0600 (like the local KEK file) and never
overwritten. Whoever reads the file can sign. No repr here prints key material.
"""

from __future__ import annotations

import hmac
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from backups.key_files import read_key_file, write_key_file
from backups.signers import (
    ED25519,
    HMAC_SHA256,
    PinnedKey,
    Signer,
    short_id,
)

HMAC_KEY_BYTES = 32
ED25519_PREFIX = "kvdr-signing-ed25519-v1:"
HMAC_PREFIX = "kvdr-signing-hmac-v1:"


def _read_key_file(path: Path, prefix: str, size: int | None = None) -> bytes:
    kind = prefix.split("-")[2]
    return read_key_file(
        path, prefix, f"signing key file {str(path)!r}", f"is not a kvdr {kind} signing key", size
    )


def _write_key_file(path: Path, prefix: str, raw: bytes) -> None:
    """Write a new key file with mode 0600; never overwrite one (like the local KEK)."""
    write_key_file(path, prefix, raw, f"signing key file {str(path)!r}")


class Ed25519FileSigner:
    """An Ed25519 key in a local file. Whoever reads the file can sign: development and
    the local stack only."""

    def __init__(self, key: ed25519.Ed25519PrivateKey, source: str = "Ed25519 key") -> None:
        self._key = key
        self._pinned = PinnedKey(key.public_key(), source)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Ed25519FileSigner:
        file = Path(path)
        raw = _read_key_file(file, ED25519_PREFIX, 32)
        return cls(
            ed25519.Ed25519PrivateKey.from_private_bytes(raw), f"signing key file {str(file)!r}"
        )

    @staticmethod
    def create_key_file(path: str | os.PathLike[str]) -> Ed25519FileSigner:
        file = Path(path)
        key = ed25519.Ed25519PrivateKey.generate()
        raw = key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        _write_key_file(file, ED25519_PREFIX, raw)
        return Ed25519FileSigner(key, f"signing key file {str(file)!r}")

    @property
    def signer_id(self) -> str:
        return self._pinned.signer_id

    @property
    def algorithm(self) -> str:
        return ED25519

    @property
    def description(self) -> str:
        return self._pinned.description

    def public_pem(self) -> bytes:
        return self._pinned.public_pem()

    def check(self, digest: bytes, signature: bytes) -> bool:
        return self._pinned.check(digest, signature)

    async def sign(self, digest: bytes) -> bytes:
        return self._key.sign(digest)

    def __repr__(self) -> str:
        return f"Ed25519FileSigner({self.signer_id!r})"


class HmacFileSigner:
    """A 256-bit HMAC-SHA256 key in a local file; the same file checks. Its id is a
    digest of the key, so pinning the id pins the key without revealing it."""

    def __init__(self, key: bytes, source: str = "HMAC key") -> None:
        if len(key) != HMAC_KEY_BYTES:
            raise ValueError(f"{source} must hold a 256-bit key")
        self._key = key
        self._source = source
        self._id = f"hmac:{short_id(b'kvdr signing key id:' + key)}"

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> HmacFileSigner:
        file = Path(path)
        return cls(
            _read_key_file(file, HMAC_PREFIX, HMAC_KEY_BYTES), f"signing key file {str(file)!r}"
        )

    @staticmethod
    def create_key_file(path: str | os.PathLike[str]) -> HmacFileSigner:
        file = Path(path)
        key = os.urandom(HMAC_KEY_BYTES)
        _write_key_file(file, HMAC_PREFIX, key)
        return HmacFileSigner(key, f"signing key file {str(file)!r}")

    @property
    def signer_id(self) -> str:
        return self._id

    @property
    def algorithm(self) -> str:
        return HMAC_SHA256

    @property
    def description(self) -> str:
        return f"{self._source} ({self._id})"

    def public_pem(self) -> None:
        return None

    def check(self, digest: bytes, signature: bytes) -> bool:
        return hmac.compare_digest(hmac.digest(self._key, digest, "sha256"), signature)

    async def sign(self, digest: bytes) -> bytes:
        return hmac.digest(self._key, digest, "sha256")

    def __repr__(self) -> str:
        return f"HmacFileSigner({self._id!r})"


def create_or_load(path: str | os.PathLike[str], algorithm: str, create: bool) -> Signer:
    """The file signer at `path` (`algorithm` Ed25519 or HMAC-SHA256), written first
    when `create` and absent."""
    kinds: dict[str, type[Ed25519FileSigner] | type[HmacFileSigner]] = {
        ED25519: Ed25519FileSigner,
        HMAC_SHA256: HmacFileSigner,
    }
    kind = kinds.get(algorithm)
    if kind is None:
        raise ValueError(f"signing algorithm {algorithm!r} is not one of {', '.join(kinds)}")
    if create and not Path(path).exists():
        return kind.create_key_file(path)
    return kind.from_file(path)
