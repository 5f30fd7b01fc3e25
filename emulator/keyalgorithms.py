"""Key Vault's algorithms, one function per operation and key family.

RSA: RSA1_5, RSA-OAEP, RSA-OAEP-256 (encrypt and wrap), RS256/384/512 and PS256/384/512.
EC: ES256, ES256K, ES384, ES512 with signatures as raw r||s (RFC 7518), not DER.
AES (Managed HSM oct keys): A*GCM, A*CBC, A*CBCPAD, A*KW, CKM_AES_KEY_WRAP(_PAD).

`emulator.keymaterial.KeyMaterial` picks the function for its key. Every refusal is a
`KeyMaterialError` naming the algorithm, field or length; failures to decrypt or unwrap
say only "failed" so that errors are no oracle, and no message carries key bytes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed,
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap,
    aes_key_unwrap_with_padding,
    aes_key_wrap,
    aes_key_wrap_with_padding,
)

# Byte length of one coordinate (and of r and of s in a signature) per curve.
COORDINATE_BYTES: Final = {"P-256": 32, "P-384": 48, "P-521": 66, "P-256K": 32}
_HASHES: Final[dict[str, type[hashes.HashAlgorithm]]] = {
    "256": hashes.SHA256,
    "384": hashes.SHA384,
    "512": hashes.SHA512,
}
# Which curve each ECDSA algorithm needs, and the digest it signs.
_ECDSA: Final[dict[str, tuple[str, type[hashes.HashAlgorithm]]]] = {
    "ES256": ("P-256", hashes.SHA256),
    "ES256K": ("P-256K", hashes.SHA256),
    "ES384": ("P-384", hashes.SHA384),
    "ES512": ("P-521", hashes.SHA512),
}
_RSA_ENCRYPTION: Final = ("RSA1_5", "RSA-OAEP", "RSA-OAEP-256")
# AES algorithms that name their key size: the key must be exactly that size.
_AES_BITS: Final = {"A128": 128, "A192": 192, "A256": 256}
_CKM_WRAP: Final = ("CKM_AES_KEY_WRAP", "CKM_AES_KEY_WRAP_PAD")
# Key Vault generates a 96-bit IV for AES-GCM and returns a 128-bit tag.
_GCM_IV_BYTES: Final = 12
_GCM_TAG_BYTES: Final = 16
_CBC_IV_BYTES: Final = 16


class KeyMaterialError(ValueError):
    """A request the key material cannot serve; the message names the input, never a value."""


@dataclass(frozen=True)
class CipherOutput:
    """What an encryption returns besides the ciphertext (AES modes only)."""

    ciphertext: bytes
    iv: bytes | None = None
    tag: bytes | None = None
    aad: bytes | None = None

    def __repr__(self) -> str:
        return f"CipherOutput(ciphertext=<{len(self.ciphertext)} bytes>)"


def int_bytes(value: int, length: int | None = None) -> bytes:
    """Big-endian bytes of `value`, left-padded to `length` when given."""
    size = length if length is not None else max(1, (value.bit_length() + 7) // 8)
    return value.to_bytes(size, "big")


def _check_digest(algorithm: str, digest: bytes, hash_algorithm: hashes.HashAlgorithm) -> None:
    if len(digest) != hash_algorithm.digest_size:
        raise KeyMaterialError(
            f"digest must be {hash_algorithm.digest_size} bytes for {algorithm}, got {len(digest)}"
        )


# ----- RSA ---------------------------------------------------------------------------------


def _rsa_padding(algorithm: str) -> asym_padding.AsymmetricPadding:
    if algorithm == "RSA1_5":
        return asym_padding.PKCS1v15()
    if algorithm == "RSA-OAEP":
        return asym_padding.OAEP(asym_padding.MGF1(hashes.SHA1()), hashes.SHA1(), None)
    if algorithm == "RSA-OAEP-256":
        return asym_padding.OAEP(asym_padding.MGF1(hashes.SHA256()), hashes.SHA256(), None)
    raise KeyMaterialError(
        f"algorithm '{algorithm}' is not supported for RSA keys; "
        "use RSA1_5, RSA-OAEP or RSA-OAEP-256"
    )


def _refuse_aes_params(algorithm: str, iv: bytes | None, aad: bytes | None) -> None:
    if algorithm in _RSA_ENCRYPTION and (iv is not None or aad is not None):
        raise KeyMaterialError(f"'iv' and 'aad' are not supported for {algorithm}")


def rsa_encrypt(
    key: rsa.RSAPrivateKey, algorithm: str, plaintext: bytes, iv: bytes | None, aad: bytes | None
) -> CipherOutput:
    """RSA1_5 / RSA-OAEP / RSA-OAEP-256 with the public half (also used to wrap keys)."""
    chosen = _rsa_padding(algorithm)
    _refuse_aes_params(algorithm, iv, aad)
    try:
        return CipherOutput(key.public_key().encrypt(plaintext, chosen))
    except ValueError as exc:
        raise KeyMaterialError(
            f"plaintext is too long for {algorithm} with a {key.key_size}-bit key"
        ) from exc


def rsa_decrypt(
    key: rsa.RSAPrivateKey, algorithm: str, ciphertext: bytes, iv: bytes | None, aad: bytes | None
) -> bytes:
    """The inverse of `rsa_encrypt`; any failure is one uninformative error."""
    chosen = _rsa_padding(algorithm)
    _refuse_aes_params(algorithm, iv, aad)
    try:
        return key.decrypt(ciphertext, chosen)
    except ValueError as exc:
        raise KeyMaterialError(f"decryption with {algorithm} failed") from exc


def _rsa_signature(
    algorithm: str, digest: bytes
) -> tuple[asym_padding.AsymmetricPadding, hashes.HashAlgorithm]:
    family, suffix = algorithm[:2], algorithm[2:]
    if family not in ("RS", "PS") or suffix not in _HASHES:
        raise KeyMaterialError(
            f"algorithm '{algorithm}' is not supported for RSA keys; "
            "use RS256, RS384, RS512, PS256, PS384 or PS512"
        )
    hash_algorithm = _HASHES[suffix]()
    _check_digest(algorithm, digest, hash_algorithm)
    if family == "RS":
        return asym_padding.PKCS1v15(), hash_algorithm
    # Key Vault's PSS uses a salt as long as the digest (RFC 7518 section 3.5).
    chosen = asym_padding.PSS(
        mgf=asym_padding.MGF1(hash_algorithm), salt_length=hash_algorithm.digest_size
    )
    return chosen, hash_algorithm


def rsa_sign(key: rsa.RSAPrivateKey, algorithm: str, digest: bytes) -> bytes:
    """RS* (PKCS#1 v1.5) or PS* (PSS) signature over a digest."""
    chosen, hash_algorithm = _rsa_signature(algorithm, digest)
    return key.sign(digest, chosen, Prehashed(hash_algorithm))


def rsa_verify(key: rsa.RSAPrivateKey, algorithm: str, digest: bytes, signature: bytes) -> bool:
    """True for a valid RS*/PS* signature; a bad signature is False, not an error."""
    chosen, hash_algorithm = _rsa_signature(algorithm, digest)
    try:
        key.public_key().verify(signature, digest, chosen, Prehashed(hash_algorithm))
    except InvalidSignature:
        return False
    return True


# ----- ECDSA -------------------------------------------------------------------------------


def _ecdsa_hash(curve: str, algorithm: str, digest: bytes) -> hashes.HashAlgorithm:
    spec = _ECDSA.get(algorithm)
    if spec is None:
        raise KeyMaterialError(
            f"algorithm '{algorithm}' is not supported for EC keys; "
            "use ES256, ES256K, ES384 or ES512"
        )
    needed_curve, hash_cls = spec
    if needed_curve != curve:
        raise KeyMaterialError(
            f"algorithm '{algorithm}' needs curve {needed_curve}; this key uses {curve}"
        )
    hash_algorithm = hash_cls()
    _check_digest(algorithm, digest, hash_algorithm)
    return hash_algorithm


def ecdsa_sign(key: ec.EllipticCurvePrivateKey, curve: str, algorithm: str, digest: bytes) -> bytes:
    """ECDSA over a digest, returned as fixed-width r||s as Key Vault returns it."""
    hash_algorithm = _ecdsa_hash(curve, algorithm, digest)
    r, s = decode_dss_signature(key.sign(digest, ec.ECDSA(Prehashed(hash_algorithm))))
    length = COORDINATE_BYTES[curve]
    return int_bytes(r, length) + int_bytes(s, length)


def ecdsa_verify(
    key: ec.EllipticCurvePrivateKey, curve: str, algorithm: str, digest: bytes, signature: bytes
) -> bool:
    """True for a valid r||s signature; a bad or wrongly sized one is False."""
    hash_algorithm = _ecdsa_hash(curve, algorithm, digest)
    length = COORDINATE_BYTES[curve]
    if len(signature) != 2 * length:
        return False
    der = encode_dss_signature(
        int.from_bytes(signature[:length], "big"), int.from_bytes(signature[length:], "big")
    )
    try:
        key.public_key().verify(der, digest, ec.ECDSA(Prehashed(hash_algorithm)))
    except InvalidSignature:
        return False
    return True


# ----- AES ---------------------------------------------------------------------------------


def _aes_mode(key: bytes, operation: str, algorithm: str) -> str:
    """The mode of an A128/192/256 GCM/CBC/CBCPAD algorithm that fits this key."""
    bits = _AES_BITS.get(algorithm[:4])
    mode = algorithm[4:]
    if bits is None or mode not in ("GCM", "CBC", "CBCPAD"):
        raise KeyMaterialError(
            f"algorithm '{algorithm}' is not supported for {operation} with oct keys; use "
            "A128GCM, A192GCM, A256GCM, A128CBC, ..., A256CBCPAD"
        )
    if bits != len(key) * 8:
        raise KeyMaterialError(
            f"algorithm '{algorithm}' needs a {bits}-bit key; this key has {len(key) * 8} bits"
        )
    return mode


def aes_encrypt(
    key: bytes, algorithm: str, plaintext: bytes, iv: bytes | None, aad: bytes | None
) -> CipherOutput:
    """AES-GCM (IV always generated), AES-CBC / CBC-PAD (IV generated when not given)."""
    mode = _aes_mode(key, "encrypt", algorithm)
    if mode == "GCM":
        if iv is not None:
            raise KeyMaterialError(f"'iv' must not be given for {algorithm}: Key Vault makes it")
        nonce = os.urandom(_GCM_IV_BYTES)
        sealed = AESGCM(key).encrypt(nonce, plaintext, aad)
        return CipherOutput(
            sealed[:-_GCM_TAG_BYTES], iv=nonce, tag=sealed[-_GCM_TAG_BYTES:], aad=aad
        )
    # CBC authenticates nothing, and Managed HSM ignores an `aad` given with it: recorded
    # exchanges (azure-sdk-for-python, test_crypto_client ... test_symmetric_encrypt_and_
    # decrypt[7.3_mhsm]) encrypt A256CBC and A256CBCPAD with aad, get 200 without aad in
    # the answer, and decrypt without aad to the plaintext. The same recording shows
    # A256CBC zero-padding a plaintext that is not a whole number of blocks.
    vector = os.urandom(_CBC_IV_BYTES) if iv is None else iv
    if len(vector) != _CBC_IV_BYTES:
        raise KeyMaterialError(f"'iv' must be 16 bytes for {algorithm}")
    data = plaintext
    if mode == "CBCPAD":
        padder = padding.PKCS7(128).padder()
        data = padder.update(plaintext) + padder.finalize()
    elif len(data) % 16:
        data += bytes(16 - len(data) % 16)
    encryptor = Cipher(algorithms.AES(key), modes.CBC(vector)).encryptor()
    return CipherOutput(encryptor.update(data) + encryptor.finalize(), iv=vector)


def aes_decrypt(
    key: bytes,
    algorithm: str,
    ciphertext: bytes,
    iv: bytes | None,
    tag: bytes | None,
    aad: bytes | None,
) -> bytes:
    """The inverse of `aes_encrypt`; a wrong tag, IV or padding is one "failed" error."""
    mode = _aes_mode(key, "decrypt", algorithm)
    if iv is None:
        raise KeyMaterialError(f"'iv' is required for {algorithm}")
    failed = KeyMaterialError(f"decryption with {algorithm} failed")
    if mode == "GCM":
        if tag is None:
            raise KeyMaterialError(f"'tag' is required for {algorithm}")
        try:
            return AESGCM(key).decrypt(iv, ciphertext + tag, aad)
        except (InvalidTag, ValueError):
            raise failed from None
    if len(iv) != _CBC_IV_BYTES or len(ciphertext) % 16:
        raise failed
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    data = decryptor.update(ciphertext) + decryptor.finalize()
    if mode == "CBC":
        return data
    try:
        unpadder = padding.PKCS7(128).unpadder()
        return unpadder.update(data) + unpadder.finalize()
    except ValueError:
        raise failed from None


def _check_wrap(key: bytes, algorithm: str) -> None:
    if algorithm in _CKM_WRAP:
        return
    bits = _AES_BITS.get(algorithm[:4])
    if bits is None or algorithm[4:] != "KW":
        raise KeyMaterialError(
            f"algorithm '{algorithm}' is not supported for key wrapping with oct keys; "
            "use A128KW, A192KW, A256KW, CKM_AES_KEY_WRAP or CKM_AES_KEY_WRAP_PAD"
        )
    if bits != len(key) * 8:
        raise KeyMaterialError(
            f"algorithm '{algorithm}' needs a {bits}-bit key; this key has {len(key) * 8} bits"
        )


def aes_wrap(key: bytes, algorithm: str, plain_key: bytes) -> bytes:
    """AES key wrap (RFC 3394), or with padding (RFC 5649) for CKM_AES_KEY_WRAP_PAD."""
    _check_wrap(key, algorithm)
    try:
        if algorithm == "CKM_AES_KEY_WRAP_PAD":
            return aes_key_wrap_with_padding(key, plain_key)
        return aes_key_wrap(key, plain_key)
    except ValueError:
        raise KeyMaterialError(
            f"{algorithm} cannot wrap a key of {len(plain_key)} bytes "
            "(at least 16 bytes, a multiple of 8)"
        ) from None


def aes_unwrap(key: bytes, algorithm: str, wrapped: bytes) -> bytes:
    """The inverse of `aes_wrap`; integrity failures are one "failed" error."""
    _check_wrap(key, algorithm)
    try:
        if algorithm == "CKM_AES_KEY_WRAP_PAD":
            return aes_key_unwrap_with_padding(key, wrapped)
        return aes_key_unwrap(key, wrapped)
    except (InvalidUnwrap, ValueError):
        raise KeyMaterialError(f"unwrapping with {algorithm} failed") from None
