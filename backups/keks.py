"""Key-encryption keys (KEKs): what wraps each backup object's data key.

Every object gets a fresh AES-256 data key, wrapped by every configured KEK, so any one
of them opens it (restic and Kopia keep the same split between data keys and the keys
that protect them):

- `VaultKek`: an RSA key in one region's Key Vault, RSA-OAEP-256 wrap/unwrap through the
  vault seam. One per region, so losing a region never locks the backups.
- `RecoveryKek`: an offline RSA public key (PEM) for break-glass recovery. kvdr wraps
  with the public half; the private half is only loaded by a restore that is given it.
- `LocalFileKek`: a 256-bit key in a local file (AES key wrap, RFC 3394), for
  development and the local stack.

`KekRing` holds the configured KEKs: it wraps with all of them and unwraps with the
first that can. It also carries the `SignerRing` (backups.signers) that every sealed
object is signed and checked with, so whatever seals or opens an object has both. No
repr here prints key material.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import structlog
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from backups.errors import KekUnavailable, NoUsableKek
from backups.key_files import read_key_file, write_key_file
from backups.signers import SignerRing
from vault.client import VaultCrypto
from vault.errors import VaultError

log = structlog.get_logger("kvdr.backups")

RSA_OAEP_256 = "RSA-OAEP-256"
AES_KW = "A256KW"
DATA_KEY_BYTES = 32
# NIST SP 800-57: RSA below 2048 bits no longer protects anything for long.
MIN_RSA_BITS = 2048
LOCAL_KEY_PREFIX = "kvdr-local-kek-v1:"


@dataclass(frozen=True)
class Wrap:
    """One wrapped copy of a data key, as stored in an object's header."""

    kek: str
    algorithm: str
    key: bytes = field(repr=False)


class KeyEncryptionKey(Protocol):
    """One KEK: wraps data keys; unwraps the wraps it recognises (when it holds a
    private or secret half)."""

    @property
    def description(self) -> str:
        """What this KEK is, for messages (no key material)."""
        ...

    @property
    def local(self) -> bool:
        """True when unwrapping needs no network (tried before vault KEKs)."""
        ...

    def recognises(self, wrap: Wrap) -> bool:
        """True when `wrap` was made by this KEK (so unwrap may succeed)."""
        ...

    async def wrap(self, data_key: bytes) -> Wrap: ...

    async def unwrap(self, wrap: Wrap) -> bytes: ...


def _oaep() -> padding.OAEP:
    return padding.OAEP(
        mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None
    )


def _short_id(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


class VaultKek:
    """An RSA key in one region's Key Vault; the vault does the unwrapping."""

    def __init__(self, vault: VaultCrypto, key_name: str) -> None:
        self._vault = vault
        self._name = key_name
        parts = urlsplit(vault.ref.url)
        self._host = (parts.netloc or "").lower()

    @property
    def description(self) -> str:
        return f"vault key {self._name!r} in region {self._vault.ref.region}"

    @property
    def local(self) -> bool:
        return False

    def _parse(self, wrap: Wrap) -> tuple[str, str, str] | None:
        """(host, key name, version) of a vault wrap's key id, or None."""
        if not wrap.kek.startswith("vault:"):
            return None
        parts = urlsplit(wrap.kek.removeprefix("vault:"))
        segments = parts.path.strip("/").split("/")
        if len(segments) != 3 or segments[0] != "keys":
            return None
        return (parts.netloc or "").lower(), segments[1], segments[2]

    def recognises(self, wrap: Wrap) -> bool:
        parsed = self._parse(wrap)
        return parsed is not None and parsed[0] == self._host and parsed[1] == self._name

    async def wrap(self, data_key: bytes) -> Wrap:
        try:
            wrapped = await self._vault.wrap_key(self._name, data_key)
        except VaultError as exc:
            raise KekUnavailable(f"cannot wrap with {self.description}: {exc}") from exc
        return Wrap(
            kek=f"vault:{wrapped.key_id}", algorithm=RSA_OAEP_256, key=wrapped.encrypted_key
        )

    async def unwrap(self, wrap: Wrap) -> bytes:
        parsed = self._parse(wrap)
        if parsed is None or not self.recognises(wrap):
            raise ValueError(f"{self.description} did not make this wrap")
        return await self._vault.unwrap_key(self._name, parsed[2], wrap.key)


class RecoveryKek:
    """The offline recovery key: kvdr wraps with its public half. The private half is
    only present when a restore was given it (`--recovery-key FILE`)."""

    def __init__(
        self, public_key: rsa.RSAPublicKey, private_key: rsa.RSAPrivateKey | None = None
    ) -> None:
        if public_key.key_size < MIN_RSA_BITS:
            raise ValueError(
                f"the recovery key is RSA-{public_key.key_size}; at least RSA-{MIN_RSA_BITS} "
                "is required"
            )
        self._public = public_key
        self._private = private_key
        der = public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.kek_id = f"recovery:{_short_id(der)}"

    @classmethod
    def from_public_pem(cls, pem: bytes, source: str = "recovery public key") -> RecoveryKek:
        try:
            key = serialization.load_pem_public_key(pem)
        except (ValueError, UnsupportedAlgorithm):
            raise ValueError(f"{source} is not a PEM public key") from None
        if not isinstance(key, rsa.RSAPublicKey):
            raise ValueError(f"{source} is not an RSA public key")
        return cls(key)

    @classmethod
    def from_private_pem(
        cls, pem: bytes, password: bytes | None = None, source: str = "recovery private key"
    ) -> RecoveryKek:
        try:
            key = serialization.load_pem_private_key(pem, password=password)
        except TypeError:
            raise ValueError(f"{source} is encrypted: a password is needed") from None
        except (ValueError, UnsupportedAlgorithm):
            # Never echo the file's content or the library's message (it may quote it).
            raise ValueError(
                f"{source} is not a PEM private key (or the password is wrong)"
            ) from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError(f"{source} is not an RSA private key")
        return cls(key.public_key(), key)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], password: bytes | None = None) -> RecoveryKek:
        """A public or private PEM file (which one decides whether it can unwrap)."""
        file = Path(path)
        try:
            pem = file.read_bytes()
        except OSError as exc:
            raise ValueError(f"recovery key {str(file)!r}: cannot read ({exc.strerror})") from None
        if b"PRIVATE KEY" in pem:
            return cls.from_private_pem(pem, password, source=f"recovery key {str(file)!r}")
        return cls.from_public_pem(pem, source=f"recovery key {str(file)!r}")

    @property
    def can_unwrap(self) -> bool:
        return self._private is not None

    @property
    def description(self) -> str:
        half = "private" if self._private else "public"
        return f"offline recovery key {self.kek_id} ({half} half)"

    @property
    def local(self) -> bool:
        return True

    def recognises(self, wrap: Wrap) -> bool:
        return wrap.kek == self.kek_id

    async def wrap(self, data_key: bytes) -> Wrap:
        return Wrap(
            kek=self.kek_id, algorithm=RSA_OAEP_256, key=self._public.encrypt(data_key, _oaep())
        )

    async def unwrap(self, wrap: Wrap) -> bytes:
        if self._private is None:
            raise ValueError(f"{self.description} cannot unwrap: its private half is offline")
        try:
            return self._private.decrypt(wrap.key, _oaep())
        except ValueError:
            raise ValueError(f"{self.description} could not unwrap the data key") from None

    def __repr__(self) -> str:
        return f"RecoveryKek({self.kek_id!r}, private={self._private is not None})"


class LocalFileKek:
    """A 256-bit key in a local file, AES key wrap (RFC 3394). Development and local
    stack only: whoever reads the file opens the backups."""

    def __init__(self, key: bytes, source: str = "local key") -> None:
        if len(key) != DATA_KEY_BYTES:
            raise ValueError(f"{source} must hold a 256-bit key")
        self._key = key
        self._source = source
        # The id is a digest of the key, not the key: it only says which file to use.
        self.kek_id = f"file:{_short_id(b'kvdr local kek id:' + key)}"

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> LocalFileKek:
        file = Path(path)
        source = f"local key file {str(file)!r}"
        key = read_key_file(
            file,
            LOCAL_KEY_PREFIX,
            source,
            "is not a kvdr local key (create one with create_key_file)",
        )
        return cls(key, source)

    @staticmethod
    def create_key_file(path: str | os.PathLike[str]) -> LocalFileKek:
        """Write a new random key to `path` (mode 0600); refuses to overwrite one."""
        file = Path(path)
        key = os.urandom(DATA_KEY_BYTES)
        write_key_file(file, LOCAL_KEY_PREFIX, key, f"local key file {str(file)!r}")
        return LocalFileKek(key, f"local key file {str(file)!r}")

    @property
    def description(self) -> str:
        return f"{self._source} ({self.kek_id})"

    @property
    def local(self) -> bool:
        return True

    def recognises(self, wrap: Wrap) -> bool:
        return wrap.kek == self.kek_id

    async def wrap(self, data_key: bytes) -> Wrap:
        return Wrap(kek=self.kek_id, algorithm=AES_KW, key=aes_key_wrap(self._key, data_key))

    async def unwrap(self, wrap: Wrap) -> bytes:
        try:
            return aes_key_unwrap(self._key, wrap.key)
        except (InvalidUnwrap, ValueError):
            raise ValueError(f"{self.description} could not unwrap the data key") from None

    def __repr__(self) -> str:
        return f"LocalFileKek({self.kek_id!r})"


class KekRing:
    """The configured KEKs: wrap with all, unwrap with the first that can; and the
    signers objects are signed and checked with (none: nothing can be sealed, and only
    unsigned objects open, when the ring allows them)."""

    def __init__(self, keks: Sequence[KeyEncryptionKey], signers: SignerRing | None = None) -> None:
        if not keks:
            raise ValueError("backups need at least one key-encryption key")
        self.keks = tuple(keks)
        self.signers = signers if signers is not None else SignerRing()

    def allowing_unsigned(self, allow: bool = True) -> KekRing:
        """The same KEKs and signers, with unsigned objects (older than signing) let
        through or not."""
        return KekRing(self.keks, self.signers.allowing_unsigned(allow))

    @property
    def wrapping(self) -> tuple[KeyEncryptionKey, ...]:
        """KEKs that wrap new objects (every configured one)."""
        return self.keks

    async def wrap_all(self, data_key: bytes) -> list[Wrap]:
        """One wrap per KEK that answers. A KEK that fails (its region is down) is
        logged and left out: requiring all would stop the journal in exactly the outage
        it exists for; the others still open the object."""
        results = await asyncio.gather(
            *(kek.wrap(data_key) for kek in self.keks), return_exceptions=True
        )
        wraps: list[Wrap] = []
        failures: list[str] = []
        for kek, result in zip(self.keks, results, strict=True):
            if isinstance(result, Wrap):
                wraps.append(result)
            elif isinstance(result, KekUnavailable):
                failures.append(str(result))
                log.warning("backups.kek_wrap_failed", kek=kek.description, error=str(result))
            elif isinstance(result, BaseException):
                raise result
        if not wraps:
            raise KekUnavailable("no key-encryption key could wrap: " + "; ".join(failures))
        return wraps

    async def unwrap(self, wraps: Sequence[Wrap], blob: str) -> bytes:
        """The data key from the first wrap a configured KEK opens (local KEKs first)."""
        tried: list[str] = []
        transient: list[str] = []
        for kek in sorted(self.keks, key=lambda k: not k.local):
            for wrap in wraps:
                if not kek.recognises(wrap):
                    continue
                try:
                    key = await kek.unwrap(wrap)
                except VaultError as exc:
                    (transient if exc.transient else tried).append(f"{kek.description}: {exc}")
                    continue
                except ValueError as exc:
                    tried.append(str(exc))
                    continue
                if len(key) == DATA_KEY_BYTES:
                    return key
                tried.append(f"{kek.description} produced a key of the wrong size")
        if transient and not tried:
            raise KekUnavailable(
                f"backup object {blob!r}: key-encryption keys unreachable: " + "; ".join(transient)
            )
        made_by = ", ".join(sorted({w.kek for w in wraps})) or "nothing"
        configured = ", ".join(k.description for k in self.keks)
        detail = f" ({'; '.join(tried + transient)})" if tried or transient else ""
        raise NoUsableKek(
            blob,
            f"no configured key-encryption key can open it: wrapped for {made_by}; "
            f"configured: {configured}{detail}",
        )
