"""Signing keys: who wrote a backup object.

Envelope encryption with public-key KEKs proves confidentiality, not origin: anyone who
may read a KEK's public half can seal an object. So every object (and the journal head)
also carries a signature made by a key kvdr can use but not read, and readers accept
only signatures of the signers pinned in the configuration (restic and Kopia
authenticate every object with a key the repository owner holds, likewise):

- `VaultSigner`: an EC P-256 (ES256) or RSA (PS256) key in one region's Key Vault; the
  vault signs (the private half never leaves it), anyone checks with the pinned public
  half, also with no vault at hand (break-glass).
- `Ed25519FileSigner` and `HmacFileSigner` (`backups.signer_files`): a local key file
  (mode 0600), development and the local stack; an HMAC key has no public half, so
  checking needs the same file.
- `PinnedKey`: a public half only (a retired signer, or a machine that only reads).

What is signed is a SHA-256 over canonical JSON of the object's envelope header (its
binding, wraps and nonce), its plaintext digest and its predecessor's digest
(`signing_digest`). The signature travels inside the encrypted body, so it is no oracle
for guesses of the plaintext. `SignerRing` signs with the first signer that answers and
checks against every pinned one. No repr here prints key material.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import structlog
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed,
    encode_dss_signature,
)

from backups.errors import BadSignature, SignerUnavailable, UnpinnedSigner, Unsigned
from vault.client import VaultCrypto
from vault.errors import VaultError

log = structlog.get_logger("kvdr.backups")

ED25519 = "Ed25519"
HMAC_SHA256 = "HMAC-SHA256"
ES256 = "ES256"
PS256 = "PS256"
FILE_ALGORITHMS = (ED25519, HMAC_SHA256)
P256_COORDINATE = 32
MIN_RSA_BITS = 2048
SIGNATURE_VERSION = 1
# (signer id, algorithm) -> the digest to sign: the header names the signer.
SigningInput = Callable[[str, str], bytes]


@dataclass(frozen=True)
class SignatureBlock:
    """A signature as an object carries it: which signer, which algorithm, the bytes."""

    signer: str
    algorithm: str
    value: bytes = field(repr=False)


def _canonical(doc: dict[str, object]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")


def signing_digest(kind: str, header: bytes, digest: str, prev: str) -> bytes:
    """The 32 bytes a signer signs: SHA-256 over what identifies the object (`header`:
    its clear envelope header, or the head's fields), its content digest (hex) and its
    predecessor's digest (hex, "" for none). `kind` keeps a segment's signature from
    ever checking out as a head's."""
    return hashlib.sha256(
        _canonical(
            {
                "kvdr-signature": SIGNATURE_VERSION,
                "kind": kind,
                "header": hashlib.sha256(header).hexdigest(),
                "digest": digest,
                "prev": prev,
            }
        )
    ).digest()


def short_id(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _spki(key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


class Verifier(Protocol):
    """A pinned signer: checks signatures of its own id."""

    @property
    def signer_id(self) -> str: ...

    @property
    def algorithm(self) -> str: ...

    @property
    def description(self) -> str:
        """What this signer is, for messages (no key material)."""
        ...

    def public_pem(self) -> bytes | None:
        """The public half for the offline recovery kit (None for HMAC)."""
        ...

    def check(self, digest: bytes, signature: bytes) -> bool: ...


class Signer(Verifier, Protocol):
    """A pinned signer that can also sign (it holds the key, or a vault does)."""

    async def sign(self, digest: bytes) -> bytes: ...


class PinnedKey:
    """A public half (PEM): ES256 for EC P-256, PS256 for RSA, or Ed25519. Checks
    signatures locally: no vault, no private half."""

    def __init__(
        self,
        key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey,
        source: str = "pinned public key",
    ) -> None:
        if isinstance(key, ec.EllipticCurvePublicKey):
            if not isinstance(key.curve, ec.SECP256R1):
                raise ValueError(f"{source} is an EC key on {key.curve.name}; ES256 needs P-256")
            self._algorithm = ES256
        elif isinstance(key, rsa.RSAPublicKey):
            if key.key_size < MIN_RSA_BITS:
                raise ValueError(
                    f"{source} is RSA-{key.key_size}; at least RSA-{MIN_RSA_BITS} is required"
                )
            self._algorithm = PS256
        else:
            self._algorithm = ED25519
        self._key = key
        self._source = source
        self._id = f"{self._algorithm.lower()}:{short_id(_spki(key))}"

    @classmethod
    def from_pem(cls, pem: bytes, source: str = "pinned public key") -> PinnedKey:
        if b"PRIVATE KEY" in pem:
            raise ValueError(f"{source} is a private key: pin only the public half")
        try:
            key = serialization.load_pem_public_key(pem)
        except (ValueError, UnsupportedAlgorithm):
            raise ValueError(f"{source} is not a PEM public key") from None
        if not isinstance(
            key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey
        ):
            raise ValueError(f"{source} is not an EC P-256, RSA or Ed25519 public key")
        return cls(key, source)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> PinnedKey:
        file = Path(path)
        source = f"public key {str(file)!r}"
        try:
            pem = file.read_bytes()
        except OSError as exc:
            raise ValueError(f"{source}: cannot read ({exc.strerror})") from None
        return cls.from_pem(pem, source)

    @property
    def signer_id(self) -> str:
        return self._id

    @property
    def algorithm(self) -> str:
        return self._algorithm

    @property
    def description(self) -> str:
        return f"{self._source} ({self._id})"

    def public_pem(self) -> bytes:
        return self._key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def check(self, digest: bytes, signature: bytes) -> bool:
        try:
            if isinstance(self._key, ed25519.Ed25519PublicKey):
                self._key.verify(signature, digest)
            elif isinstance(self._key, ec.EllipticCurvePublicKey):
                # Key Vault's ES256 signatures are fixed-width r || s (JWA), not DER.
                if len(signature) != 2 * P256_COORDINATE:
                    return False
                r = int.from_bytes(signature[:P256_COORDINATE], "big")
                s = int.from_bytes(signature[P256_COORDINATE:], "big")
                self._key.verify(
                    encode_dss_signature(r, s), digest, ec.ECDSA(Prehashed(hashes.SHA256()))
                )
            else:
                self._key.verify(signature, digest, _pss(), Prehashed(hashes.SHA256()))
        except InvalidSignature:
            return False
        return True

    def __repr__(self) -> str:
        return f"PinnedKey({self._id!r})"


def _pss() -> padding.PSS:
    # RFC 7518 3.5 (what Key Vault's PS256 does): MGF1-SHA256, salt as long as the hash.
    return padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)


class VaultSigner:
    """A key in one region's Key Vault, pinned by its public half: the vault signs, the
    pinned half checks (locally)."""

    def __init__(self, vault: VaultCrypto, key_name: str, pinned: PinnedKey) -> None:
        if pinned.algorithm not in (ES256, PS256):
            raise ValueError(
                f"{pinned.description}: a vault signing key is EC P-256 (ES256) or RSA (PS256)"
            )
        self._vault = vault
        self._name = key_name
        self._pinned = pinned

    @property
    def signer_id(self) -> str:
        return self._pinned.signer_id

    @property
    def algorithm(self) -> str:
        return self._pinned.algorithm

    @property
    def description(self) -> str:
        return (
            f"vault key {self._name!r} in region {self._vault.ref.region} "
            f"({self._pinned.signer_id})"
        )

    def public_pem(self) -> bytes:
        return self._pinned.public_pem()

    def check(self, digest: bytes, signature: bytes) -> bool:
        return self._pinned.check(digest, signature)

    async def sign(self, digest: bytes) -> bytes:
        try:
            made = await self._vault.sign(self._name, self.algorithm, digest)
        except VaultError as exc:
            raise SignerUnavailable(f"cannot sign with {self.description}: {exc}") from exc
        if not self._pinned.check(digest, made.value):
            # Most likely the key was rotated: its new version is not what is pinned.
            version = urlsplit(made.key_id).path.rstrip("/").rsplit("/", 1)[-1]
            raise SignerUnavailable(
                f"{self.description}: key version {version} does not match the pinned "
                "public key (rotated?): pin the new public half, keep the old one pinned"
            )
        return made.value

    def __repr__(self) -> str:
        return f"VaultSigner({self._name!r}, {self.signer_id!r})"


class SignerRing:
    """The pinned signers: sign with the first that answers, check against all.

    `allow_unsigned` lets objects written before signing existed (no signature at all)
    be read; a signature that is present is always checked.
    """

    def __init__(
        self,
        signers: Sequence[Signer] = (),
        pinned: Sequence[Verifier] = (),
        *,
        allow_unsigned: bool = False,
    ) -> None:
        self.signers = tuple(signers)
        self.pinned: dict[str, Verifier] = {}
        for verifier in (*self.signers, *pinned):
            self.pinned.setdefault(verifier.signer_id, verifier)
        self.allow_unsigned = allow_unsigned

    def allowing_unsigned(self, allow: bool = True) -> SignerRing:
        return SignerRing(self.signers, tuple(self.pinned.values()), allow_unsigned=allow)

    @property
    def can_sign(self) -> bool:
        return bool(self.signers)

    async def sign(self, message: str, compute: SigningInput) -> SignatureBlock:
        """Sign with the first signer that answers. `compute(signer_id, algorithm)` gives
        the digest to sign (the header names the signer, so it depends on which one)."""
        if not self.signers:
            raise SignerUnavailable(
                f"{message}: no signing key configured (add a [[backups.signers]] table)"
            )
        failures: list[str] = []
        for signer in self.signers:
            digest = compute(signer.signer_id, signer.algorithm)
            try:
                value = await signer.sign(digest)
            except SignerUnavailable as exc:
                failures.append(str(exc))
                log.warning("backups.sign_failed", signer=signer.description, error=str(exc))
                continue
            return SignatureBlock(signer.signer_id, signer.algorithm, value)
        raise SignerUnavailable(f"{message}: no signing key could sign: " + "; ".join(failures))

    def check(self, block: SignatureBlock | None, digest: bytes, blob: str) -> bool:
        """Raise unless `block` is a valid signature of a pinned signer over `digest`.
        Returns False for an unsigned object that `allow_unsigned` lets through."""
        if block is None:
            if self.allow_unsigned:
                return False
            raise Unsigned(
                blob,
                "it is not signed (written before backups were signed, or forged): "
                "pass --allow-unsigned to use unsigned objects",
            )
        verifier = self.pinned.get(block.signer)
        if verifier is None:
            pinned = ", ".join(sorted(self.pinned)) or "none"
            raise UnpinnedSigner(
                blob, f"it is signed by {block.signer}, which is not pinned (pinned: {pinned})"
            )
        if block.algorithm != verifier.algorithm or not verifier.check(digest, block.value):
            raise BadSignature(
                blob, f"its signature does not match ({verifier.description}): forged or altered"
            )
        return True

    def kit(self) -> list[dict[str, str]]:
        """What the offline recovery kit records of each pinned signer."""
        out = []
        for verifier in self.pinned.values():
            pem = verifier.public_pem()
            entry = {"id": verifier.signer_id, "algorithm": verifier.algorithm}
            if pem is not None:
                entry["public_key"] = pem.decode("ascii")
            out.append(entry)
        return out
