"""What only a Managed HSM (`--sku managed-hsm`) does with keys, through the SDK clients.

Every other key test runs against a standard vault and a Managed HSM (the `key_vault`
fixture); these check the Managed HSM's own rules, each as recorded or documented for
Azure (see docs/emulator-keys.md): kty RSA and EC, public exponents other than 65537,
and AES-CBC given additional authenticated data.
"""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest
from azure.keyvault.keys.crypto import EncryptionAlgorithm, SignatureAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from tests.emulator.test_keys import DIGEST, b64, remote, unb64, unique
from tests.fixtures.emulator import EmulatorFactory, EmulatorProcess, aio_key_client, key_client


class TestManagedHsmKeys:
    """kty RSA/EC, any RSA exponent and CBC with aad, through the sync clients."""

    def test_rsa_and_ec_key_types_accepted(self, mhsm: EmulatorProcess) -> None:
        """kty RSA and EC (not -HSM) create keys, returned as asked; plain oct is refused."""
        with key_client(mhsm) as client:
            rsa_key = client.create_rsa_key(unique("rsa"))
            ec_key = client.create_ec_key(unique("ec"), curve="P-384")
            assert (rsa_key.key_type, ec_key.key_type) == ("RSA", "EC")
            signature = client.get_cryptography_client(rsa_key.name).sign(
                SignatureAlgorithm.rs256, DIGEST[256]
            )
            assert remote(
                client,
                rsa_key,
                "verify",
                {"alg": "RS256", "digest": b64(DIGEST[256]), "value": b64(signature.signature)},
            ) == {"value": True}
            response = client.send_request(
                HttpRequest("POST", f"/keys/{unique('oct')}/create", json={"kty": "oct"})
            )
            assert response.status_code == 400 and "'oct'" in response.json()["error"]["message"]

    @pytest.mark.parametrize("exponent", [17, 3])
    def test_public_exponent(self, mhsm: EmulatorProcess, exponent: int) -> None:
        """RSA keys with exponent 17 or 3 are created, rotate with it, and sign for cryptography."""
        with key_client(mhsm) as client:
            key = client.create_rsa_key(
                unique("exp"), hardware_protected=True, public_exponent=exponent
            )
            assert key.key_type == "RSA-HSM"
            assert int.from_bytes(key.key.e or b"", "big") == exponent
            signature = (
                client.get_cryptography_client(key.name, key_version=key.properties.version)
                .sign(SignatureAlgorithm.ps256, DIGEST[256])
                .signature
            )
            public = rsa.RSAPublicNumbers(exponent, int.from_bytes(key.key.n or b"", "big"))
            hash_alg = hashes.SHA256()
            public.public_key().verify(
                signature,
                DIGEST[256],
                padding.PSS(padding.MGF1(hash_alg), salt_length=hash_alg.digest_size),
                Prehashed(hash_alg),
            )
            rotated = client.rotate_key(key.name)
            assert rotated.key.e == key.key.e and rotated.key.n != key.key.n

    def test_public_exponent_refused_on_standard(self, emulator: EmulatorProcess) -> None:
        """Outside a Managed HSM an exponent other than 65537 or 3 is 400 naming the field."""
        with key_client(emulator) as client, pytest.raises(HttpResponseError) as caught:
            client.create_rsa_key(unique("exp"), public_exponent=17)
        assert caught.value.status_code == 400
        assert "public_exponent" in str(caught.value.message)

    def test_cbc_with_aad(self, mhsm: EmulatorProcess) -> None:
        """AES-CBC and CBCPAD given aad answer 200 and ignore it, as Managed HSM does."""
        with key_client(mhsm) as client:
            key = client.create_oct_key(unique("cbc"), size=256, hardware_protected=True)
            crypto = client.get_cryptography_client(key.name, key_version=key.properties.version)
            iv = bytes(range(16))
            sealed = crypto.encrypt(
                EncryptionAlgorithm.a256_cbc,
                b"not a whole block",
                iv=iv,
                additional_authenticated_data=b"context",
            )
            assert sealed.iv == iv
            for aad in (None, b"other context"):
                opened = crypto.decrypt(
                    EncryptionAlgorithm.a256_cbc,
                    sealed.ciphertext,
                    iv=iv,
                    additional_authenticated_data=aad,
                )
                # Managed HSM zero-pads an A*CBC plaintext to whole blocks.
                assert opened.plaintext == b"not a whole block" + bytes(15)
            body = {"alg": "A256CBCPAD", "value": b64(b"padded"), "iv": b64(iv), "aad": b64(b"x")}
            enc = remote(client, key, "encrypt", body)
            assert "aad" not in enc
            dec = remote(client, key, "decrypt", {**body, "value": enc["value"]})
            assert unb64(dec["value"]) == b"padded"


class TestAioManagedHsm:
    """What a Managed HSM does that a vault does not, through the aio clients."""

    async def test_rsa_and_ec_key_types(self, mhsm: EmulatorProcess) -> None:
        """kty RSA and EC are created on a Managed HSM and returned as asked."""
        async with aio_key_client(mhsm) as client:
            rsa_key = await client.create_key(unique("aio-rsa"), "RSA", size=3072)
            ec_key = await client.create_ec_key(unique("aio-ec"))
            assert (rsa_key.key_type, ec_key.key_type) == ("RSA", "EC")
            assert len(rsa_key.key.n or b"") == 384
            async with client.get_cryptography_client(ec_key.name) as crypto:
                signed = await crypto.sign(SignatureAlgorithm.es256, DIGEST[256])
                assert (
                    await crypto.verify(SignatureAlgorithm.es256, DIGEST[256], signed.signature)
                ).is_valid

    async def test_public_exponent_17(self, mhsm: EmulatorProcess) -> None:
        """An RSA key with exponent 17 is created and decrypts what was encrypted to it."""
        async with aio_key_client(mhsm) as client:
            key = await client.create_rsa_key(
                unique("aio-exp"), hardware_protected=True, public_exponent=17
            )
            assert key.key.e == b"\x11"
            async with client.get_cryptography_client(key.name) as crypto:
                sealed = await crypto.encrypt(EncryptionAlgorithm.rsa_oaep_256, b"e is 17")
                opened = await crypto.decrypt(EncryptionAlgorithm.rsa_oaep_256, sealed.ciphertext)
                assert opened.plaintext == b"e is 17"

    async def test_cbc_with_aad(self, mhsm: EmulatorProcess) -> None:
        """AES-CBCPAD and AES-CBC given aad encrypt (the aad ignored) and decrypt without it."""
        async with aio_key_client(mhsm) as client:
            key = await client.create_oct_key(unique("aio-cbc"), size=128, hardware_protected=True)
            version = key.properties.version
            iv = bytes(16)
            body = {"alg": "A128CBCPAD", "value": "cGFk", "iv": "A" * 22, "aad": "eA"}
            response = await client.send_request(
                HttpRequest("POST", f"/keys/{key.name}/{version}/encrypt", json=body)
            )
            assert response.status_code == 200 and "aad" not in response.json()
            body = {"alg": "A128CBCPAD", "value": response.json()["value"], "iv": "A" * 22}
            response = await client.send_request(
                HttpRequest("POST", f"/keys/{key.name}/{version}/decrypt", json=body)
            )
            assert response.status_code == 200 and response.json()["value"] == "cGFk"
            # Last: closing the aio CryptographyClient closes the transport it shares.
            async with client.get_cryptography_client(key.name) as crypto:
                sealed = await crypto.encrypt(
                    EncryptionAlgorithm.a128_cbc,
                    b"sixteen bytes!!!",
                    iv=iv,
                    additional_authenticated_data=b"ctx",
                )
                opened = await crypto.decrypt(
                    EncryptionAlgorithm.a128_cbc, sealed.ciphertext, iv=iv
                )
                assert opened.plaintext == b"sixteen bytes!!!"


class TestManagedHsmThrottle:
    """On a Managed HSM every key is an HSM key, whatever its kty says."""

    def test_software_kty_draws_on_hsm_create_budget(self, make_emulator: EmulatorFactory) -> None:
        """10 creates of kty EC per 10 s pass on a Managed HSM, the 11th is 429 Throttled."""
        emu = make_emulator(sku="managed-hsm", throttle="azure")
        with key_client(emu, retry_total=0) as client:
            for _ in range(10):
                client.create_ec_key(unique("t"))
            with pytest.raises(HttpResponseError) as caught:
                client.create_ec_key(unique("t"))
            assert caught.value.status_code == 429
