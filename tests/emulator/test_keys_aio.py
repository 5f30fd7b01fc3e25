"""Keys through the aio KeyClient and CryptographyClient; throttling, events, persistence."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.keyvault.keys import (
    JsonWebKey,
    KeyRotationLifetimeAction,
    KeyRotationPolicy,
    KeyRotationPolicyAction,
)
from azure.keyvault.keys.aio import KeyClient as AioKeyClient
from azure.keyvault.keys.crypto import EncryptionAlgorithm, KeyWrapAlgorithm, SignatureAlgorithm

from emulator.keymaterial import KeyMaterial, b64url_decode
from tests.fixtures.emulator import EmulatorFactory, EmulatorProcess, aio_key_client, key_client
from tests.fixtures.event_receiver import EventReceiver

POLL = {"_polling_interval": 0.05}
DIGEST = hashlib.sha256(b"kvdr aio").digest()
WAIT_SECONDS = 15.0


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def akc(key_vault: EmulatorProcess) -> AsyncIterator[AioKeyClient]:
    """An aio KeyClient for each vault of the suite: a standard vault and a Managed HSM."""
    async with aio_key_client(key_vault) as client:
        yield client


class TestAioLifecycle:
    """Every KeyClient operation through the aio client."""

    async def test_create_get_list_update(self, akc: AioKeyClient) -> None:
        """create (RSA/EC/generic), get, list keys and versions, update properties."""
        name = unique("aio")
        first = await akc.create_rsa_key(name, size=2048)
        second = await akc.create_key(name, "RSA", size=3072)
        ec_key = await akc.create_ec_key(unique("aio-ec"), curve="P-384")
        assert ec_key.key.crv == "P-384"
        assert (await akc.get_key(name)).id == second.id
        assert (await akc.get_key(name, first.properties.version)).key.n == first.key.n
        names = [p.name async for p in akc.list_properties_of_keys()]
        assert name in names and ec_key.name in names
        versions = [p.version async for p in akc.list_properties_of_key_versions(name)]
        assert versions == [first.properties.version, second.properties.version]
        updated = await akc.update_key_properties(name, enabled=False, tags={"x": "y"})
        assert (updated.properties.enabled, updated.properties.tags) == (False, {"x": "y"})

    async def test_import(self, akc: AioKeyClient) -> None:
        """An imported EC JWK is served with its public point."""
        jwk = KeyMaterial.generate("EC", curve="P-256K").private_jwk()
        fields: dict[str, Any] = {
            k: (v if k in ("kty", "crv") else b64url_decode(v, k)) for k, v in jwk.items()
        }
        key = await akc.import_key(unique("aio-imp"), JsonWebKey(**fields))
        assert key.key.x == fields["x"] and key.key.crv == "P-256K"

    async def test_delete_recover_purge(self, akc: AioKeyClient) -> None:
        """delete, get/list deleted, recover, delete again, purge."""
        name = unique("aio-del")
        await akc.create_ec_key(name)
        deleted = await akc.delete_key(name, **POLL)
        assert deleted.name == name and deleted.recovery_id
        assert (await akc.get_deleted_key(name)).name == name
        assert name in [d.name async for d in akc.list_deleted_keys()]
        with pytest.raises(ResourceExistsError):
            await akc.create_ec_key(name)
        recovered = await akc.recover_deleted_key(name, **POLL)
        assert recovered.name == name
        await akc.delete_key(name, **POLL)
        await akc.purge_deleted_key(name)
        with pytest.raises(ResourceNotFoundError):
            await akc.get_deleted_key(name)

    async def test_backup_restore_material(self, akc: AioKeyClient) -> None:
        """Backup, delete, purge, restore; a signature made before verifies after."""
        name = unique("aio-bkp")
        key = await akc.create_ec_key(name)
        crypto = akc.get_cryptography_client(name, key_version=key.properties.version)
        signature = (await crypto.sign(SignatureAlgorithm.es256, DIGEST)).signature
        backup = await akc.backup_key(name)
        await akc.delete_key(name, **POLL)
        await akc.purge_deleted_key(name)
        restored = await akc.restore_key_backup(backup)
        assert restored.key.x == key.key.x
        after = akc.get_cryptography_client(name, key_version=key.properties.version)
        assert (await after.verify(SignatureAlgorithm.es256, DIGEST, signature)).is_valid

    async def test_rotation_and_policy(self, akc: AioKeyClient) -> None:
        """rotate_key, get and update the rotation policy."""
        name = unique("aio-rot")
        key = await akc.create_rsa_key(name)
        rotated = await akc.rotate_key(name)
        assert rotated.properties.version != key.properties.version
        assert len(rotated.key.n or b"") == 256
        policy = KeyRotationPolicy(
            expires_in="P60D",
            lifetime_actions=[
                KeyRotationLifetimeAction(KeyRotationPolicyAction.rotate, time_before_expiry="P14D")
            ],
        )
        await akc.update_key_rotation_policy(name, policy)
        got = await akc.get_key_rotation_policy(name)
        assert got.expires_in == "P60D"
        assert [(a.action, a.time_before_expiry) for a in got.lifetime_actions] == [
            ("Rotate", "P14D")
        ]

    async def test_random_bytes_and_not_implemented(self, akc: AioKeyClient) -> None:
        """get_random_bytes works; release_key and get_key_attestation answer 501."""
        assert len(await akc.get_random_bytes(64)) == 64
        name = (await akc.create_ec_key(unique("aio-501"))).name
        with pytest.raises(HttpResponseError) as caught:
            await akc.release_key(name, "token")
        assert caught.value.status_code == 501
        with pytest.raises(HttpResponseError) as caught:
            await akc.get_key_attestation(name)
        assert caught.value.status_code == 501


class TestAioCrypto:
    """CryptographyClient (aio): encrypt/decrypt, wrap/unwrap, sign/verify."""

    async def test_rsa_operations(self, akc: AioKeyClient) -> None:
        """Every RSA operation round-trips through the aio CryptographyClient."""
        key = await akc.create_rsa_key(unique("aio-crypto"))
        async with akc.get_cryptography_client(key.name) as crypto:
            encrypted = await crypto.encrypt(EncryptionAlgorithm.rsa_oaep_256, b"aio")
            decrypted = await crypto.decrypt(EncryptionAlgorithm.rsa_oaep_256, encrypted.ciphertext)
            assert decrypted.plaintext == b"aio"
            wrapped = await crypto.wrap_key(KeyWrapAlgorithm.rsa1_5, bytes(32))
            unwrapped = await crypto.unwrap_key(KeyWrapAlgorithm.rsa1_5, wrapped.encrypted_key)
            assert unwrapped.key == bytes(32)
            signed = await crypto.sign(SignatureAlgorithm.ps256, DIGEST)
            verified = await crypto.verify(SignatureAlgorithm.ps256, DIGEST, signed.signature)
            assert verified.is_valid

    async def test_oct_gcm_remote(self, make_emulator: EmulatorFactory) -> None:
        """On a Managed HSM, AES-GCM runs remotely through the aio CryptographyClient."""
        emu = make_emulator(sku="managed-hsm")
        async with aio_key_client(emu) as client:
            key = await client.create_oct_key(unique("aio-oct"), hardware_protected=True)
            crypto = client.get_cryptography_client(key.name)
            sealed = await crypto.encrypt(EncryptionAlgorithm.a256_gcm, b"gcm")
            opened = await crypto.decrypt(
                EncryptionAlgorithm.a256_gcm,
                sealed.ciphertext,
                iv=sealed.iv,
                authentication_tag=sealed.tag,
            )
            assert opened.plaintext == b"gcm"
            await crypto.close()


class TestThrottle:
    """Key create budgets per key type (--throttle azure)."""

    def test_software_create_limit(self, make_emulator: EmulatorFactory) -> None:
        """20 software key creates per 10 s pass, the 21st is 429 Throttled; reads still pass."""
        emu = make_emulator(throttle="azure")
        with key_client(emu, retry_total=0) as client:
            names = [client.create_ec_key(unique("t")).name for _ in range(20)]
            with pytest.raises(HttpResponseError) as caught:
                client.create_ec_key(unique("t"))
            assert caught.value.status_code == 429
            assert caught.value.error is not None and caught.value.error.code == "Throttled"
            assert caught.value.response is not None
            assert int(caught.value.response.headers["Retry-After"]) >= 1
            assert client.get_key(names[0]).name == names[0]

    def test_hsm_create_limit(self, make_emulator: EmulatorFactory) -> None:
        """On premium, 10 HSM key creates per 10 s pass and the 11th is 429."""
        emu = make_emulator(sku="premium", throttle="azure")
        with key_client(emu, retry_total=0) as client:
            for _ in range(10):
                client.create_ec_key(unique("h"), hardware_protected=True)
            with pytest.raises(HttpResponseError) as caught:
                client.create_ec_key(unique("h"), hardware_protected=True)
            assert caught.value.status_code == 429


class TestEventsAndPersistence:
    """KeyNewVersionCreated events; keys survive SIGKILL."""

    async def test_new_version_events(
        self, make_emulator: EmulatorFactory, event_receiver: EventReceiver
    ) -> None:
        """create, import and rotate each send Microsoft.KeyVault.KeyNewVersionCreated."""
        emu = make_emulator(events_to=[event_receiver.url])
        name = unique("evt")
        async with aio_key_client(emu) as client:
            created = await client.create_ec_key(name)
            rotated = await client.rotate_key(name)
        events = await event_receiver.wait_until(lambda events: len(events) >= 2, WAIT_SECONDS)
        assert [e["eventType"] for e in events] == ["Microsoft.KeyVault.KeyNewVersionCreated"] * 2
        assert [e["data"]["Version"] for e in events] == [
            created.properties.version,
            rotated.properties.version,
        ]
        assert all(e["data"]["ObjectType"] == "Key" and e["subject"] == name for e in events)

    def test_survives_sigkill(self, make_emulator: EmulatorFactory) -> None:
        """Keys and their material written before a SIGKILL are served after restart."""
        emu = make_emulator()
        with key_client(emu) as client:
            key = client.create_rsa_key(unique("kill"))
            ciphertext = (
                client.get_cryptography_client(key.name)
                .encrypt(EncryptionAlgorithm.rsa_oaep, b"durable")
                .ciphertext
            )
        emu.restart(kill=True)
        with key_client(emu) as client:
            crypto = client.get_cryptography_client(key.name, key_version=key.properties.version)
            assert crypto.decrypt(EncryptionAlgorithm.rsa_oaep, ciphertext).plaintext == (
                b"durable"
            )
