"""Keys through the official KeyClient and CryptographyClient (sync) against real emulators.

The aio clients are covered in test_keys_aio.py. CryptographyClient does encrypt, verify
and wrap locally when it holds the public key; `remote()` sends the same operations to
the emulator through the SDK's own pipeline (`KeyClient.send_request`) so the server
side of every operation is exercised too.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import uuid
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.core.rest import HttpRequest
from azure.keyvault.certificates import CertificatePolicy
from azure.keyvault.keys import (
    KeyClient,
    KeyVaultKey,
)
from azure.keyvault.keys.crypto import (
    EncryptionAlgorithm,
    KeyWrapAlgorithm,
    SignatureAlgorithm,
)
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from tests.emulator.conftest import is_managed_hsm
from tests.fixtures.emulator import (
    EmulatorFactory,
    EmulatorProcess,
    certificate_client,
    key_client,
)

POLL = {"_polling_interval": 0.05}
DIGEST = {
    256: hashlib.sha256(b"kvdr").digest(),
    384: hashlib.sha384(b"kvdr").digest(),
    512: hashlib.sha512(b"kvdr").digest(),
}
CURVES = {
    "P-256": ("ES256", 256),
    "P-256K": ("ES256K", 256),
    "P-384": ("ES384", 384),
    "P-521": ("ES512", 512),
}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def remote(client: KeyClient, key: KeyVaultKey, op: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST a key operation to the emulator through the SDK pipeline; raise on errors."""
    version = key.properties.version or ""
    response = client.send_request(
        HttpRequest("POST", f"/keys/{key.name}/{version}/{op}", json=body)
    )
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def error_code(exc: HttpResponseError) -> str | None:
    return exc.error.code if exc.error is not None else None


class TestCreate:
    """create_key / create_rsa_key / create_ec_key / create_oct_key and the vault's rules."""

    @pytest.mark.parametrize("size", [2048, 3072, 4096])
    def test_rsa_sizes(self, kc: KeyClient, size: int) -> None:
        """RSA keys of every size Key Vault creates come back with that modulus and e=65537."""
        key = kc.create_rsa_key(unique("rsa"), size=size)
        assert key.key_type == "RSA"
        assert key.key.n is not None and len(key.key.n) * 8 == size
        assert key.key.e == b"\x01\x00\x01"
        assert set(key.key_operations) == {
            "encrypt",
            "decrypt",
            "sign",
            "verify",
            "wrapKey",
            "unwrapKey",
        }

    @pytest.mark.parametrize("curve", list(CURVES))
    def test_ec_curves_sign_verify(self, kc: KeyClient, curve: str) -> None:
        """EC keys on every curve sign remotely; the raw r||s verifies locally and remotely."""
        key = kc.create_ec_key(unique("ec"), curve=curve)
        assert key.key_type == "EC" and key.key.crv == curve
        assert set(key.key_operations) == {"sign", "verify"}
        alg, bits = CURVES[curve]
        crypto = kc.get_cryptography_client(key.name, key_version=key.properties.version)
        signed = crypto.sign(SignatureAlgorithm(alg), DIGEST[bits])
        assert crypto.verify(SignatureAlgorithm(alg), DIGEST[bits], signed.signature).is_valid
        body = {"alg": alg, "digest": b64(DIGEST[bits]), "value": b64(signed.signature)}
        assert remote(kc, key, "verify", body) == {"value": True}
        body["value"] = b64(bytes(len(signed.signature)))
        assert remote(kc, key, "verify", body) == {"value": False}

    def test_same_name_makes_new_version(self, kc: KeyClient) -> None:
        """Creating an existing name adds a version; the latest is the newest."""
        name = unique("ver")
        first = kc.create_ec_key(name)
        second = kc.create_ec_key(name)
        assert first.properties.version != second.properties.version
        assert kc.get_key(name).id == second.id
        assert kc.get_key(name, first.properties.version).key.x == first.key.x

    def test_properties_on_create(self, kc: KeyClient, key_vault: EmulatorProcess) -> None:
        """enabled, expiry, tags and key_operations given on create are kept."""
        exp = datetime.datetime(2031, 1, 1, tzinfo=datetime.UTC)
        key = kc.create_rsa_key(
            unique("props"),
            enabled=False,
            expires_on=exp,
            tags={"team": "dr"},
            key_operations=["wrapKey", "unwrapKey"],
        )
        props = kc.get_key(key.name).properties
        assert (props.enabled, props.expires_on, props.tags) == (False, exp, {"team": "dr"})
        assert kc.get_key(key.name).key_operations == ["wrapKey", "unwrapKey"]
        assert props.recovery_level == "Recoverable+Purgeable"
        assert key.id == f"{key_vault.url}/keys/{key.name}/{key.properties.version}"

    def test_hsm_refused_on_standard(self, kc: KeyClient, key_vault: EmulatorProcess) -> None:
        """A standard vault refuses RSA-HSM and EC-HSM with 400 BadParameter naming the kty."""
        if is_managed_hsm(key_vault):
            pytest.skip("a Managed HSM holds HSM keys")
        for create, kty in ((kc.create_rsa_key, "RSA-HSM"), (kc.create_ec_key, "EC-HSM")):
            with pytest.raises(HttpResponseError) as caught:
                create(unique("hsm"), hardware_protected=True)
            assert caught.value.status_code == 400
            assert error_code(caught.value) == "BadParameter"
            assert kty in str(caught.value.message)

    def test_hsm_accepted_on_premium(self, premium: EmulatorProcess) -> None:
        """A premium vault creates RSA-HSM and EC-HSM keys and still refuses oct-HSM."""
        with key_client(premium) as client:
            rsa_key = client.create_rsa_key(unique("hsm"), hardware_protected=True)
            ec_key = client.create_ec_key(unique("hsm"), curve="P-384", hardware_protected=True)
            assert (rsa_key.key_type, ec_key.key_type) == ("RSA-HSM", "EC-HSM")
            with pytest.raises(HttpResponseError) as caught:
                client.create_oct_key(unique("oct"), hardware_protected=True)
            assert caught.value.status_code == 400 and "oct-HSM" in str(caught.value.message)

    @pytest.mark.parametrize(
        ("kwargs", "named"),
        [
            ({"key_type": "DSA"}, "DSA"),
            ({"key_type": "EC", "curve": "P-192"}, "P-192"),
            ({"key_type": "RSA", "size": 1024}, "1024"),
            ({"key_type": "RSA", "curve": "P-256"}, "crv"),
            ({"key_type": "RSA", "key_operations": ["encrypt", "launch"]}, "launch"),
        ],
    )
    def test_bad_parameters(self, kc: KeyClient, kwargs: dict[str, Any], named: str) -> None:
        """Bad kty, curve, size or key_ops: 400 BadParameter naming the input."""
        with pytest.raises(HttpResponseError) as caught:
            kc.create_key(unique("bad"), **kwargs)
        assert caught.value.status_code == 400
        assert error_code(caught.value) == "BadParameter"
        assert named in str(caught.value.message)

    def test_bad_name(self, kc: KeyClient) -> None:
        """A name with characters Key Vault refuses is 400 BadParameter."""
        with pytest.raises(HttpResponseError) as caught:
            kc.create_ec_key("no_underscores")
        assert caught.value.status_code == 400 and error_code(caught.value) == "BadParameter"


class TestRead:
    """get_key, list_properties_of_keys (paged), versions, update_key_properties."""

    def test_unknown_key_and_version(self, kc: KeyClient) -> None:
        """Unknown names and versions are 404 KeyNotFound."""
        with pytest.raises(ResourceNotFoundError) as caught:
            kc.get_key(unique("missing"))
        assert error_code(caught.value) == "KeyNotFound"
        name = kc.create_ec_key(unique("known")).name
        with pytest.raises(ResourceNotFoundError) as caught:
            kc.get_key(name, "0" * 32)
        assert error_code(caught.value) == "KeyNotFound"

    def test_paging_over_many_keys(self, make_emulator: EmulatorFactory) -> None:
        """110 keys list completely over several pages of at most 25, without key material."""
        emu = make_emulator()
        with key_client(emu) as client:
            names = {client.create_ec_key(f"page-{i:03d}").name for i in range(110)}
            pages = list(client.list_properties_of_keys().by_page())
            listed = [p for page in pages for p in page]
            assert len(pages) >= 5
            assert {p.name for p in listed} == names
            assert all(p.version is None for p in listed)
            small = list(client.list_properties_of_keys(max_page_size=7).by_page())
            assert len(small) == 16 and sum(len(list(p)) for p in small) == 110

    def test_versions_listed_oldest_first(self, kc: KeyClient) -> None:
        """All versions of a key are listed with their ids."""
        name = unique("versions")
        made = [kc.create_ec_key(name).properties.version for _ in range(3)]
        listed = [p.version for p in kc.list_properties_of_key_versions(name)]
        assert listed == made

    def test_update_properties(self, kc: KeyClient) -> None:
        """enabled, expiry, tags and key_ops change on the given version only."""
        name = unique("upd")
        first = kc.create_rsa_key(name)
        kc.create_rsa_key(name)
        exp = datetime.datetime(2032, 6, 1, tzinfo=datetime.UTC)
        updated = kc.update_key_properties(
            name,
            first.properties.version,
            enabled=False,
            expires_on=exp,
            tags={"a": "b"},
            key_operations=["verify"],
        )
        assert (updated.properties.enabled, updated.properties.expires_on) == (False, exp)
        assert updated.key_operations == ["verify"] and updated.properties.tags == {"a": "b"}
        assert kc.get_key(name).properties.enabled is True
        latest = kc.update_key_properties(name, tags={"latest": "yes"})
        assert kc.get_key(name).properties.tags == {"latest": "yes"}
        assert latest.properties.version != first.properties.version


class TestCrypto:
    """encrypt/decrypt, wrap/unwrap, sign/verify, the gates before them, and rng."""

    @pytest.fixture(scope="class")
    @classmethod
    def rsa_key(cls, kc: KeyClient) -> KeyVaultKey:
        return kc.create_rsa_key(unique("crypto"))

    @pytest.mark.parametrize("alg", ["RSA1_5", "RSA-OAEP", "RSA-OAEP-256"])
    def test_encrypt_decrypt(self, kc: KeyClient, rsa_key: KeyVaultKey, alg: str) -> None:
        """Local and remote encryption both decrypt remotely to the plaintext."""
        crypto = kc.get_cryptography_client(rsa_key.name, key_version=rsa_key.properties.version)
        local = crypto.encrypt(EncryptionAlgorithm(alg), b"payload")
        server = remote(kc, rsa_key, "encrypt", {"alg": alg, "value": b64(b"payload")})
        assert server["kid"] == rsa_key.id
        for ciphertext in (local.ciphertext, unb64(server["value"])):
            assert crypto.decrypt(EncryptionAlgorithm(alg), ciphertext).plaintext == b"payload"

    @pytest.mark.parametrize("alg", ["RSA1_5", "RSA-OAEP", "RSA-OAEP-256"])
    def test_wrap_unwrap(self, kc: KeyClient, rsa_key: KeyVaultKey, alg: str) -> None:
        """Keys wrapped locally or remotely unwrap remotely."""
        crypto = kc.get_cryptography_client(rsa_key.name, key_version=rsa_key.properties.version)
        cek = bytes(range(32))
        local = crypto.wrap_key(KeyWrapAlgorithm(alg), cek)
        server = remote(kc, rsa_key, "wrapkey", {"alg": alg, "value": b64(cek)})
        for wrapped in (local.encrypted_key, unb64(server["value"])):
            assert crypto.unwrap_key(KeyWrapAlgorithm(alg), wrapped).key == cek

    @pytest.mark.parametrize("alg", ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"])
    def test_sign_verify(self, kc: KeyClient, rsa_key: KeyVaultKey, alg: str) -> None:
        """Remote signatures verify locally, remotely, and with plain cryptography."""
        crypto = kc.get_cryptography_client(rsa_key.name, key_version=rsa_key.properties.version)
        bits = int(alg[2:])
        signature = crypto.sign(SignatureAlgorithm(alg), DIGEST[bits]).signature
        assert crypto.verify(SignatureAlgorithm(alg), DIGEST[bits], signature).is_valid
        body = {"alg": alg, "digest": b64(DIGEST[bits]), "value": b64(signature)}
        assert remote(kc, rsa_key, "verify", body) == {"value": True}
        public = rsa.RSAPublicNumbers(
            int.from_bytes(rsa_key.key.e or b"", "big"), int.from_bytes(rsa_key.key.n or b"", "big")
        ).public_key()
        hash_alg = {256: hashes.SHA256(), 384: hashes.SHA384(), 512: hashes.SHA512()}[bits]
        pad: padding.AsymmetricPadding = (
            padding.PKCS1v15()
            if alg.startswith("RS")
            else (padding.PSS(padding.MGF1(hash_alg), salt_length=hash_alg.digest_size))
        )
        public.verify(signature, DIGEST[bits], pad, Prehashed(hash_alg))

    def test_old_version_decrypts_its_own_data(self, kc: KeyClient) -> None:
        """Data encrypted with version 1 decrypts with version 1 after a rotation, not with 2."""
        name = unique("rot-crypto")
        first = kc.create_rsa_key(name)
        ciphertext = (
            kc.get_cryptography_client(name, key_version=first.properties.version)
            .encrypt(EncryptionAlgorithm.rsa_oaep_256, b"old data")
            .ciphertext
        )
        kc.rotate_key(name)
        old = kc.get_cryptography_client(name, key_version=first.properties.version)
        assert old.decrypt(EncryptionAlgorithm.rsa_oaep_256, ciphertext).plaintext == b"old data"
        with pytest.raises(HttpResponseError) as caught:
            kc.get_cryptography_client(name).decrypt(EncryptionAlgorithm.rsa_oaep_256, ciphertext)
        assert caught.value.status_code == 400 and error_code(caught.value) == "BadParameter"

    def test_key_ops_enforced(self, kc: KeyClient) -> None:
        """An operation missing from key_ops is 403 Forbidden / KeyOperationForbidden."""
        key = kc.create_rsa_key(unique("ops"), key_operations=["sign", "verify"])
        with pytest.raises(HttpResponseError) as caught:
            remote(kc, key, "decrypt", {"alg": "RSA-OAEP", "value": b64(bytes(256))})
        assert caught.value.status_code == 403 and error_code(caught.value) == "Forbidden"
        assert "decrypt" in str(caught.value.message)

    def test_disabled_and_expired_keys(self, kc: KeyClient) -> None:
        """A disabled key refuses operations; an expired key refuses encrypt but decrypts."""
        disabled = kc.create_rsa_key(unique("off"), enabled=False)
        with pytest.raises(HttpResponseError) as caught:
            remote(kc, disabled, "sign", {"alg": "RS256", "value": b64(DIGEST[256])})
        assert caught.value.status_code == 403
        past = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
        expired = kc.create_rsa_key(unique("exp"), expires_on=past)
        with pytest.raises(HttpResponseError) as caught:
            remote(kc, expired, "encrypt", {"alg": "RSA-OAEP", "value": b64(b"x")})
        assert caught.value.status_code == 403
        public = rsa.RSAPublicNumbers(65537, int.from_bytes(expired.key.n or b"", "big"))
        ciphertext = public.public_key().encrypt(
            b"still readable", padding.OAEP(padding.MGF1(hashes.SHA1()), hashes.SHA1(), None)
        )
        result = remote(kc, expired, "decrypt", {"alg": "RSA-OAEP", "value": b64(ciphertext)})
        assert unb64(result["value"]) == b"still readable"

    def test_bad_algorithm_and_digest(self, kc: KeyClient, rsa_key: KeyVaultKey) -> None:
        """An algorithm the key cannot use or a digest of the wrong length is 400."""
        for op, body, named in (
            ("encrypt", {"alg": "A256GCM", "value": b64(b"x")}, "A256GCM"),
            ("sign", {"alg": "ES256", "value": b64(DIGEST[256])}, "ES256"),
            ("sign", {"alg": "RS384", "value": b64(DIGEST[256])}, "RS384"),
            ("encrypt", {"value": b64(b"x")}, "alg"),
            ("encrypt", {"alg": "RSA-OAEP", "value": "***"}, "value"),
        ):
            with pytest.raises(HttpResponseError) as caught:
                remote(kc, rsa_key, op, body)
            assert caught.value.status_code == 400, body
            assert named in str(caught.value.message)

    def test_versionless_operation_uses_latest(self, kc: KeyClient) -> None:
        """`/keys/{name}//sign` (no version) signs with the latest version and names it."""
        name = unique("nover")
        kc.create_ec_key(name)
        latest = kc.create_ec_key(name)
        body = {"alg": "ES256", "value": b64(DIGEST[256])}
        response = kc.send_request(HttpRequest("POST", f"/keys/{name}//sign", json=body))
        assert response.status_code == 200 and response.json()["kid"] == latest.id
        crypto = kc.get_cryptography_client(name, key_version=latest.properties.version)
        signature = unb64(response.json()["value"])
        assert crypto.verify(SignatureAlgorithm.es256, DIGEST[256], signature).is_valid

    def test_certificate_key_is_managed(self, key_vault: EmulatorProcess, kc: KeyClient) -> None:
        """A certificate's key signs, but update and delete through KeyClient are 403."""
        if is_managed_hsm(key_vault):
            pytest.skip("Azure's Managed HSM has no certificates")
        name = unique("cert")
        with certificate_client(key_vault) as certs:
            certs.begin_create_certificate(name, CertificatePolicy.get_default()).result()
        key = kc.get_key(name)
        assert key.properties.managed is True
        crypto = kc.get_cryptography_client(name)
        assert crypto.sign(SignatureAlgorithm.rs256, DIGEST[256]).signature
        for call in (
            lambda: kc.update_key_properties(name, enabled=False),
            lambda: kc.begin_delete_key(name, **POLL),
            lambda: kc.rotate_key(name),
        ):
            with pytest.raises(HttpResponseError) as caught:
                call()
            assert caught.value.status_code == 403

    def test_random_bytes(self, kc: KeyClient) -> None:
        """get_random_bytes returns the count asked for, different each time; 129 is 400."""
        first, second = kc.get_random_bytes(32), kc.get_random_bytes(32)
        assert len(first) == 32 and first != second
        response = kc.send_request(HttpRequest("POST", "/rng", json={"count": 129}))
        assert response.status_code == 400 and "count" in response.json()["error"]["message"]
