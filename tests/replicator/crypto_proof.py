"""Proof that two vaults hold the same key material: each vault's private operations
(decrypt, sign) run remotely through the SDK's CryptographyClient, against data the other
vault's key encrypted or is asked to verify. Used by the key and certificate tests."""

from __future__ import annotations

import hashlib
import os

from azure.keyvault.keys.crypto import EncryptionAlgorithm, SignatureAlgorithm
from azure.keyvault.keys.crypto.aio import CryptographyClient

from tests.fixtures.emulator import AsyncStaticTokenCredential, EmulatorProcess, aio_client_kwargs

EC_SIGNATURES = {
    "P-256": (SignatureAlgorithm.es256, hashlib.sha256),
    "P-384": (SignatureAlgorithm.es384, hashlib.sha384),
    "P-521": (SignatureAlgorithm.es512, hashlib.sha512),
}


def crypto_client(emu: EmulatorProcess, name: str, version: str) -> CryptographyClient:
    return CryptographyClient(
        f"{emu.url}/keys/{name}/{version}", AsyncStaticTokenCredential(), **aio_client_kwargs(emu)
    )


async def rsa_round_trip(
    a: EmulatorProcess, b: EmulatorProcess, name: str, version: str, b_version: str
) -> None:
    """Encrypt with `a`'s key, decrypt in `b`; sign in `b`, verify with `a`'s key."""
    plaintext = os.urandom(32)
    digest = hashlib.sha256(plaintext).digest()
    async with (
        crypto_client(a, name, version) as first,
        crypto_client(b, name, b_version) as second,
    ):
        encrypted = await first.encrypt(EncryptionAlgorithm.rsa_oaep_256, plaintext)
        decrypted = await second.decrypt(EncryptionAlgorithm.rsa_oaep_256, encrypted.ciphertext)
        assert decrypted.plaintext == plaintext, (name, version)
        signed = await second.sign(SignatureAlgorithm.rs256, digest)
        verified = await first.verify(SignatureAlgorithm.rs256, digest, signed.signature)
        assert verified.is_valid, (name, version)


async def ec_round_trip(
    a: EmulatorProcess, b: EmulatorProcess, name: str, version: str, b_version: str, curve: str
) -> None:
    """Sign in `a`, verify with `b`'s key, and the other way round."""
    algorithm, hash_function = EC_SIGNATURES[curve]
    digest = hash_function(os.urandom(32)).digest()
    async with (
        crypto_client(a, name, version) as first,
        crypto_client(b, name, b_version) as second,
    ):
        for signer, verifier in ((first, second), (second, first)):
            signed = await signer.sign(algorithm, digest)
            verified = await verifier.verify(algorithm, digest, signed.signature)
            assert verified.is_valid, (name, version, curve)


async def prove_same_material(
    a: EmulatorProcess,
    b: EmulatorProcess,
    name: str,
    version: str,
    curve: str | None = None,
    *,
    b_version: str | None = None,
) -> None:
    """Both directions between two vaults for one key version (RSA, or EC on `curve`);
    `b_version` when `b` holds the material under another version id (an import)."""
    other = b_version or version
    if curve is None:
        await rsa_round_trip(a, b, name, version, other)
        await rsa_round_trip(b, a, name, other, version)
    else:
        await ec_round_trip(a, b, name, version, other, curve)
