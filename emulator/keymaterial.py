"""Key material of emulated Key Vault keys: generation, JWK import/export, operations.

One `KeyMaterial` holds one private key (RSA, EC or an AES secret for ``oct``) and does
what Key Vault does with it: encrypt/decrypt, wrap/unwrap, sign/verify (the algorithms
themselves are in `emulator.keyalgorithms`). The REST layer only maps HTTP to these
calls and `KeyMaterialError` to a 400 ``BadParameter``.

The material never leaves this module except through `private_jwk()` (for storage and
backup blobs) and `private_key()` (for the certificates part); `repr()` and every error
message name only the key type, size, curve, algorithm or JWK field, never a value.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
from collections.abc import Mapping
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from emulator.keyalgorithms import (
    COORDINATE_BYTES,
    CipherOutput,
    KeyMaterialError,
    aes_decrypt,
    aes_encrypt,
    aes_unwrap,
    aes_wrap,
    ecdsa_sign,
    ecdsa_verify,
    int_bytes,
    rsa_decrypt,
    rsa_encrypt,
    rsa_sign,
    rsa_verify,
)
from emulator.rsakeygen import generate_rsa_key

__all__ = [
    "DEFAULT_KEY_OPS",
    "EC_CURVES",
    "OCT_SIZES",
    "RSA_SIZES",
    "CipherOutput",
    "KeyMaterial",
    "KeyMaterialError",
    "b64url_decode",
    "b64url_encode",
    "random_bytes",
]

# Key Vault creates RSA keys of these sizes only; 2048 is its default.
RSA_SIZES: Final = (2048, 3072, 4096)
# Managed HSM creates AES keys of these sizes only; 256 is its default.
OCT_SIZES: Final = (128, 192, 256)
# Key Vault's curve names and the cryptography curve behind each.
EC_CURVES: Final[dict[str, type[ec.EllipticCurve]]] = {
    "P-256": ec.SECP256R1,
    "P-384": ec.SECP384R1,
    "P-521": ec.SECP521R1,
    "P-256K": ec.SECP256K1,
}
_CURVE_BY_CRYPTOGRAPHY_NAME: Final[dict[str, str]] = {
    "secp256r1": "P-256",
    "secp384r1": "P-384",
    "secp521r1": "P-521",
    "secp256k1": "P-256K",
}
# What Key Vault lists as key_ops when a key is created without them.
DEFAULT_KEY_OPS: Final[dict[str, tuple[str, ...]]] = {
    "RSA": ("encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"),
    "EC": ("sign", "verify"),
    "oct": ("encrypt", "decrypt", "wrapKey", "unwrapKey"),
}
_RSA_EXPONENTS: Final = (3, 65537)
# The largest public exponent a Managed HSM key may have here: the REST field is int32.
MAX_RSA_EXPONENT: Final = 2**31 - 1
# Managed HSM's limit for one random-bytes request.
MAX_RANDOM_BYTES: Final = 128


def b64url_encode(data: bytes) -> str:
    """Base64url without padding, as JWK and Key Vault's REST bodies use."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: object, field: str) -> bytes:
    """Decode base64url (padding optional; plain base64 accepted too) or name the field."""
    if not isinstance(text, str):
        raise KeyMaterialError(f"'{field}' must be a base64url string")
    cleaned = text.strip().replace("+", "-").replace("/", "_").rstrip("=")
    try:
        # validate=True: the default silently drops characters outside the alphabet.
        return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KeyMaterialError(f"'{field}' is not valid base64url") from exc


def random_bytes(count: int) -> bytes:
    """`count` bytes from the OS's CSPRNG (Managed HSM allows 1-128 per request)."""
    if not 1 <= count <= MAX_RANDOM_BYTES:
        raise KeyMaterialError(f"'count' must be between 1 and {MAX_RANDOM_BYTES}, got {count}")
    return os.urandom(count)


def _jwk_int(jwk: Mapping[str, Any], field: str) -> int:
    raw = b64url_decode(jwk.get(field), f"key.{field}")
    if not raw:
        raise KeyMaterialError(f"'key.{field}' must not be empty")
    return int.from_bytes(raw, "big")


def _base_kty(kty: object) -> str:
    """'RSA-HSM' -> 'RSA'; Key Vault spells the HSM variants with a suffix."""
    if not isinstance(kty, str):
        raise KeyMaterialError("'kty' must be a string")
    base = kty[: -len("-HSM")] if kty.upper().endswith("-HSM") else kty
    for known in DEFAULT_KEY_OPS:
        if base.lower() == known.lower():
            return known
    raise KeyMaterialError(f"kty '{kty}' is not supported; use RSA, RSA-HSM, EC, EC-HSM or oct-HSM")


class KeyMaterial:
    """One private key: RSA, EC or an AES key (``oct``). Its repr never shows material."""

    __slots__ = ("_key",)

    def __init__(self, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | bytes) -> None:
        if isinstance(key, bytes):
            if len(key) * 8 not in OCT_SIZES:
                raise KeyMaterialError(
                    f"oct key size {len(key) * 8} is not supported; use 128, 192 or 256 bits"
                )
        elif isinstance(key, rsa.RSAPrivateKey):
            if key.key_size not in RSA_SIZES:
                raise KeyMaterialError(
                    f"RSA key size {key.key_size} is not supported; use 2048, 3072 or 4096"
                )
        elif isinstance(key, ec.EllipticCurvePrivateKey):
            if key.curve.name not in _CURVE_BY_CRYPTOGRAPHY_NAME:
                raise KeyMaterialError(
                    f"curve '{key.curve.name}' is not supported; use P-256, P-384, P-521 or P-256K"
                )
        else:
            raise KeyMaterialError("key must be an RSA or EC private key or AES key bytes")
        self._key = key

    # ----- construction -----------------------------------------------------------------

    @classmethod
    def generate(
        cls,
        kty: str,
        *,
        size: int | None = None,
        curve: str | None = None,
        public_exponent: int | None = None,
        any_exponent: bool = False,
    ) -> KeyMaterial:
        """New key of the base type ``RSA``, ``EC`` or ``oct`` (``-HSM`` suffix allowed).

        Key Vault creates RSA keys with the public exponent 65537 (or 3); a Managed HSM
        (`any_exponent`) also with any other odd one up to 2^31 - 1 (the REST field is
        an int32).
        """
        base = _base_kty(kty)
        if base == "RSA":
            bits = 2048 if size is None else size
            if bits not in RSA_SIZES:
                raise KeyMaterialError(
                    f"key_size {bits} is not supported for RSA; use 2048, 3072 or 4096"
                )
            exponent = 65537 if public_exponent is None else public_exponent
            if any_exponent:
                if not 3 <= exponent <= MAX_RSA_EXPONENT or exponent % 2 == 0:
                    raise KeyMaterialError(
                        f"public_exponent {exponent} is not supported; use an odd number "
                        f"from 3 to {MAX_RSA_EXPONENT}"
                    )
            elif exponent not in _RSA_EXPONENTS:
                raise KeyMaterialError(
                    f"public_exponent {exponent} is not supported; use 3 or 65537"
                )
            return cls(generate_rsa_key(exponent, bits))
        if base == "EC":
            if size is not None:
                raise KeyMaterialError("key_size is not supported for EC keys; use crv")
            name = "P-256" if curve is None else curve
            curve_cls = EC_CURVES.get(name)
            if curve_cls is None:
                raise KeyMaterialError(
                    f"crv '{name}' is not supported; use P-256, P-384, P-521 or P-256K"
                )
            return cls(ec.generate_private_key(curve_cls()))
        bits = 256 if size is None else size
        if bits not in OCT_SIZES:
            raise KeyMaterialError(
                f"key_size {bits} is not supported for oct-HSM; use 128, 192 or 256"
            )
        return cls(os.urandom(bits // 8))

    @classmethod
    def from_private_key(cls, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> KeyMaterial:
        """Wrap a cryptography private key (the certificates part generates its own)."""
        return cls(key)

    @classmethod
    def from_jwk(cls, jwk: Mapping[str, Any], *, trusted: bool = False) -> KeyMaterial:
        """Import a private JWK: RSA (with or without CRT parameters), EC or oct.

        `trusted` skips the RSA consistency check (about 50 ms per RSA-2048 key) for
        material this emulator wrote itself: its own store, or a backup blob whose
        authenticated encryption proves an emulator sealed it. User imports are checked.
        """
        if not isinstance(jwk, Mapping):
            raise KeyMaterialError("'key' must be a JSON Web Key object")
        base = _base_kty(jwk.get("kty"))
        if base == "oct":
            if jwk.get("k") is None:
                raise KeyMaterialError("'key.k' is required to import an oct key")
            return cls(b64url_decode(jwk["k"], "key.k"))
        if jwk.get("d") is None:
            raise KeyMaterialError("'key.d' is required: Key Vault imports private keys only")
        if base == "RSA":
            return cls(_rsa_from_jwk(jwk, trusted=trusted))
        return cls(_ec_from_jwk(jwk))

    # ----- description ------------------------------------------------------------------

    @property
    def kty(self) -> str:
        """Base key type: ``RSA``, ``EC`` or ``oct`` (the store adds ``-HSM``)."""
        if isinstance(self._key, rsa.RSAPrivateKey):
            return "RSA"
        if isinstance(self._key, ec.EllipticCurvePrivateKey):
            return "EC"
        return "oct"

    @property
    def key_size(self) -> int | None:
        """Bits for RSA and oct keys; None for EC (the curve says it)."""
        if isinstance(self._key, rsa.RSAPrivateKey):
            return self._key.key_size
        if isinstance(self._key, bytes):
            return len(self._key) * 8
        return None

    @property
    def curve(self) -> str | None:
        """Key Vault's curve name for EC keys, else None."""
        if isinstance(self._key, ec.EllipticCurvePrivateKey):
            return _CURVE_BY_CRYPTOGRAPHY_NAME[self._key.curve.name]
        return None

    @property
    def public_exponent(self) -> int | None:
        if isinstance(self._key, rsa.RSAPrivateKey):
            return self._key.public_key().public_numbers().e
        return None

    def __repr__(self) -> str:
        detail = f"curve={self.curve!r}" if self.curve else f"size={self.key_size}"
        return f"KeyMaterial(kty={self.kty!r}, {detail})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KeyMaterial):
            return NotImplemented
        # Constant-time, so equality checks cannot become an oracle in tests or tools.
        return hmac.compare_digest(
            repr(sorted(self.private_jwk().items())).encode(),
            repr(sorted(other.private_jwk().items())).encode(),
        )

    __hash__ = None  # type: ignore[assignment]

    # ----- export -----------------------------------------------------------------------

    def public_jwk(self) -> dict[str, str]:
        """The public half as JWK fields (``kty`` is the base type; oct exposes no ``k``)."""
        key = self._key
        if isinstance(key, rsa.RSAPrivateKey):
            numbers = key.public_key().public_numbers()
            return {
                "kty": "RSA",
                "n": b64url_encode(int_bytes(numbers.n)),
                "e": b64url_encode(int_bytes(numbers.e)),
            }
        if isinstance(key, ec.EllipticCurvePrivateKey):
            crv = _CURVE_BY_CRYPTOGRAPHY_NAME[key.curve.name]
            length = COORDINATE_BYTES[crv]
            point = key.public_key().public_numbers()
            return {
                "kty": "EC",
                "crv": crv,
                "x": b64url_encode(int_bytes(point.x, length)),
                "y": b64url_encode(int_bytes(point.y, length)),
            }
        return {"kty": "oct"}

    def private_jwk(self) -> dict[str, str]:
        """The full key as JWK fields, for storage and backup blobs only."""
        key = self._key
        jwk = self.public_jwk()
        if isinstance(key, rsa.RSAPrivateKey):
            numbers = key.private_numbers()
            for field, value in (
                ("d", numbers.d),
                ("p", numbers.p),
                ("q", numbers.q),
                ("dp", numbers.dmp1),
                ("dq", numbers.dmq1),
                ("qi", numbers.iqmp),
            ):
                jwk[field] = b64url_encode(int_bytes(value))
        elif isinstance(key, ec.EllipticCurvePrivateKey):
            length = COORDINATE_BYTES[jwk["crv"]]
            jwk["d"] = b64url_encode(int_bytes(key.private_numbers().private_value, length))
        else:
            jwk["k"] = b64url_encode(key)
        return jwk

    def private_key(self) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
        """The cryptography private key (RSA and EC only)."""
        if isinstance(self._key, bytes):
            raise KeyMaterialError("an oct key has no asymmetric private key")
        return self._key

    # ----- operations (the algorithms live in emulator.keyalgorithms) --------------------

    def encrypt(
        self,
        algorithm: str,
        plaintext: bytes,
        *,
        iv: bytes | None = None,
        aad: bytes | None = None,
    ) -> CipherOutput:
        """Encrypt one block as Key Vault does; AES IVs are generated when not given."""
        key = self._key
        if isinstance(key, rsa.RSAPrivateKey):
            return rsa_encrypt(key, algorithm, plaintext, iv, aad)
        if isinstance(key, bytes):
            return aes_encrypt(key, algorithm, plaintext, iv, aad)
        raise self._unsupported(algorithm)

    def decrypt(
        self,
        algorithm: str,
        ciphertext: bytes,
        *,
        iv: bytes | None = None,
        tag: bytes | None = None,
        aad: bytes | None = None,
    ) -> bytes:
        """Decrypt one block; any failure is one error that does not say why (no oracle)."""
        key = self._key
        if isinstance(key, rsa.RSAPrivateKey):
            return rsa_decrypt(key, algorithm, ciphertext, iv, aad)
        if isinstance(key, bytes):
            return aes_decrypt(key, algorithm, ciphertext, iv, tag, aad)
        raise self._unsupported(algorithm)

    def wrap_key(self, algorithm: str, key: bytes) -> bytes:
        """Wrap a key: RSA algorithms for RSA keys, AES key wrap for oct keys."""
        own = self._key
        if isinstance(own, rsa.RSAPrivateKey):
            return rsa_encrypt(own, algorithm, key, None, None).ciphertext
        if isinstance(own, bytes):
            return aes_wrap(own, algorithm, key)
        raise self._unsupported(algorithm)

    def unwrap_key(self, algorithm: str, wrapped: bytes) -> bytes:
        """Unwrap what `wrap_key` produced with the same algorithm."""
        own = self._key
        if isinstance(own, rsa.RSAPrivateKey):
            return rsa_decrypt(own, algorithm, wrapped, None, None)
        if isinstance(own, bytes):
            return aes_unwrap(own, algorithm, wrapped)
        raise self._unsupported(algorithm)

    def sign(self, algorithm: str, digest: bytes) -> bytes:
        """Sign a digest; ECDSA signatures come back as raw r||s, as Key Vault returns them."""
        key = self._key
        if isinstance(key, rsa.RSAPrivateKey):
            return rsa_sign(key, algorithm, digest)
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return ecdsa_sign(key, _CURVE_BY_CRYPTOGRAPHY_NAME[key.curve.name], algorithm, digest)
        raise self._unsupported(algorithm)

    def verify(self, algorithm: str, digest: bytes, signature: bytes) -> bool:
        """True when `signature` is valid for `digest`; a bad signature is False, not an error."""
        key = self._key
        if isinstance(key, rsa.RSAPrivateKey):
            return rsa_verify(key, algorithm, digest, signature)
        if isinstance(key, ec.EllipticCurvePrivateKey):
            curve = _CURVE_BY_CRYPTOGRAPHY_NAME[key.curve.name]
            return ecdsa_verify(key, curve, algorithm, digest, signature)
        raise self._unsupported(algorithm)

    def _unsupported(self, algorithm: str) -> KeyMaterialError:
        return KeyMaterialError(f"algorithm '{algorithm}' is not supported for {self.kty} keys")


def _rsa_from_jwk(jwk: Mapping[str, Any], *, trusted: bool = False) -> rsa.RSAPrivateKey:
    n, e, d = (_jwk_int(jwk, field) for field in ("n", "e", "d"))
    crt_fields = ("p", "q", "dp", "dq", "qi")
    present = [field for field in crt_fields if jwk.get(field) is not None]
    try:
        if len(present) == len(crt_fields):
            p, q, dp, dq, qi = (_jwk_int(jwk, field) for field in crt_fields)
        elif present:
            raise KeyMaterialError(
                "'key' has some RSA CRT parameters but not all of p, q, dp, dq, qi"
            )
        else:
            p, q = rsa.rsa_recover_prime_factors(n, e, d)
            dp, dq, qi = rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q), rsa.rsa_crt_iqmp(p, q)
        numbers = rsa.RSAPrivateNumbers(p, q, d, dp, dq, qi, rsa.RSAPublicNumbers(e, n))
        return numbers.private_key(unsafe_skip_rsa_key_validation=trusted)
    except KeyMaterialError:
        raise
    except (ValueError, TypeError) as exc:
        raise KeyMaterialError("'key' is not a consistent RSA private key") from exc


def _ec_from_jwk(jwk: Mapping[str, Any]) -> ec.EllipticCurvePrivateKey:
    crv = jwk.get("crv")
    # Key Vault's 2016-10-01 API spelled P-256K as SECP256K1; accept both.
    if isinstance(crv, str) and crv.upper() == "SECP256K1":
        crv = "P-256K"
    if not isinstance(crv, str) or crv not in EC_CURVES:
        raise KeyMaterialError(f"'key.crv' must be one of P-256, P-384, P-521, P-256K, got {crv!r}")
    x, y, d = (_jwk_int(jwk, field) for field in ("x", "y", "d"))
    try:
        public = ec.EllipticCurvePublicNumbers(x, y, EC_CURVES[crv]())
        return ec.EllipticCurvePrivateNumbers(d, public).private_key()
    except ValueError as exc:
        raise KeyMaterialError(f"'key' is not a consistent EC private key on {crv}") from exc
