"""Key conformance through the official SDK (sync): import, Managed HSM specifics,
the lifecycle (delete, recover, purge, backup, restore), rotation, and what the
emulator does not implement. Create, read and crypto are in test_keys.py."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.keyvault.keys import (
    JsonWebKey,
    KeyClient,
    KeyRotationLifetimeAction,
    KeyRotationPolicy,
    KeyRotationPolicyAction,
)
from azure.keyvault.keys.crypto import (
    EncryptionAlgorithm,
    SignatureAlgorithm,
)
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature

from emulator.keymaterial import KeyMaterial
from tests.emulator.conftest import is_managed_hsm
from tests.emulator.test_keys import DIGEST, POLL, b64, error_code, remote, unb64, unique
from tests.fixtures.emulator import (
    EmulatorFactory,
    EmulatorProcess,
    key_client,
)


class TestImport:
    """import_key of RSA (with and without CRT parameters), EC and oct JWKs."""

    def test_rsa_import_decrypts_local_ciphertext(self, kc: KeyClient) -> None:
        """An imported RSA key decrypts what plain cryptography encrypted to its public key."""
        private = rsa.generate_private_key(65537, 2048)
        jwk = KeyMaterial.from_private_key(private).private_jwk()
        for fields in (jwk, {k: v for k, v in jwk.items() if k in ("kty", "n", "e", "d")}):
            sdk_jwk = {k: (unb64(v) if k != "kty" else v) for k, v in fields.items()}
            key = kc.import_key(unique("imp"), JsonWebKey(**sdk_jwk))
            assert key.key.n == unb64(jwk["n"])
            ciphertext = private.public_key().encrypt(
                b"imported", padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None)
            )
            crypto = kc.get_cryptography_client(key.name)
            assert crypto.decrypt(EncryptionAlgorithm.rsa_oaep_256, ciphertext).plaintext == (
                b"imported"
            )

    def test_ec_import_signs_for_cryptography(self, kc: KeyClient) -> None:
        """An imported P-384 key signs digests plain cryptography verifies."""
        private = ec.generate_private_key(ec.SECP384R1())
        jwk = KeyMaterial.from_private_key(private).private_jwk()
        sdk_jwk = {k: (unb64(v) if k not in ("kty", "crv") else v) for k, v in jwk.items()}
        key = kc.import_key(unique("imp-ec"), JsonWebKey(key_ops=["sign", "verify"], **sdk_jwk))
        signature = (
            kc.get_cryptography_client(key.name)
            .sign(SignatureAlgorithm.es384, DIGEST[384])
            .signature
        )
        der = encode_dss_signature(
            int.from_bytes(signature[:48], "big"), int.from_bytes(signature[48:], "big")
        )
        private.public_key().verify(der, DIGEST[384], ec.ECDSA(Prehashed(hashes.SHA384())))

    def test_public_only_and_hsm_refused(self, kc: KeyClient, key_vault: EmulatorProcess) -> None:
        """A public-only JWK, or an HSM import into a standard vault, is 400 BadParameter."""
        private = rsa.generate_private_key(65537, 2048)
        jwk = KeyMaterial.from_private_key(private).private_jwk()
        public = JsonWebKey(kty="RSA", n=unb64(jwk["n"]), e=unb64(jwk["e"]))
        with pytest.raises(HttpResponseError) as caught:
            kc.import_key(unique("pub"), public)
        assert caught.value.status_code == 400 and "key.d" in str(caught.value.message)
        if is_managed_hsm(key_vault):
            return
        full = JsonWebKey(**{k: (unb64(v) if k != "kty" else v) for k, v in jwk.items()})
        with pytest.raises(HttpResponseError) as caught:
            kc.import_key(unique("hsm"), full, hardware_protected=True)
        assert caught.value.status_code == 400 and "RSA-HSM" in str(caught.value.message)

    def test_material_never_in_log(self, kc: KeyClient, key_vault: EmulatorProcess) -> None:
        """After imports, bad imports and operations, no private JWK part is in the log."""
        jwk = KeyMaterial.generate("RSA").private_jwk()
        broken = dict(jwk, d=jwk["p"])
        for fields in (jwk, broken):
            sdk_jwk = {k: (unb64(v) if k != "kty" else v) for k, v in fields.items()}
            try:
                kc.import_key(unique("log"), JsonWebKey(**sdk_jwk))
            except HttpResponseError as exc:
                for part in ("d", "p", "q", "dp", "dq", "qi"):
                    assert jwk[part] not in str(exc.message)
        log = Path(key_vault.log_path).read_text(errors="replace")
        for part in ("d", "p", "q", "dp", "dq", "qi"):
            assert jwk[part] not in log


class TestManagedHsm:
    """oct-HSM keys on a Managed HSM: AES-GCM, AES-CBC(PAD), AES key wrap, all remote."""

    @pytest.mark.parametrize("bits", [128, 192, 256])
    def test_oct_operations(self, mhsm: EmulatorProcess, bits: int) -> None:
        """AES-GCM through CryptographyClient, CBCPAD and KW through the REST operations."""
        with key_client(mhsm) as client:
            key = client.create_oct_key(unique("oct"), size=bits, hardware_protected=True)
            assert key.key_type == "oct-HSM" and key.key.k is None
            crypto = client.get_cryptography_client(key.name, key_version=key.properties.version)
            gcm = EncryptionAlgorithm(f"A{bits}GCM")
            sealed = crypto.encrypt(gcm, b"hsm data", additional_authenticated_data=b"ctx")
            assert sealed.iv is not None and sealed.tag is not None
            opened = crypto.decrypt(
                gcm,
                sealed.ciphertext,
                iv=sealed.iv,
                authentication_tag=sealed.tag,
                additional_authenticated_data=b"ctx",
            )
            assert opened.plaintext == b"hsm data"
            iv = bytes(16)
            enc = remote(
                client,
                key,
                "encrypt",
                {"alg": f"A{bits}CBCPAD", "value": b64(b"odd"), "iv": b64(iv)},
            )
            dec = remote(
                client,
                key,
                "decrypt",
                {"alg": f"A{bits}CBCPAD", "value": enc["value"], "iv": enc["iv"]},
            )
            assert unb64(dec["value"]) == b"odd"
            wrapped = remote(client, key, "wrapkey", {"alg": f"A{bits}KW", "value": b64(iv * 2)})
            unwrapped = remote(
                client, key, "unwrapkey", {"alg": f"A{bits}KW", "value": wrapped["value"]}
            )
            assert unb64(unwrapped["value"]) == iv * 2


class TestLifecycle:
    """delete, deleted keys, recover, purge, backup and restore."""

    def test_delete_recover(self, kc: KeyClient) -> None:
        """A deleted key is listed as deleted, blocks its name (409), and recovers whole."""
        name = unique("del")
        kc.create_ec_key(name)
        kc.create_ec_key(name)
        deleted = kc.begin_delete_key(name, **POLL).result()
        assert deleted.recovery_id and deleted.deleted_date and deleted.scheduled_purge_date
        assert kc.get_deleted_key(name).key.crv == "P-256"
        assert name in {d.name for d in kc.list_deleted_keys()}
        with pytest.raises(ResourceNotFoundError):
            kc.get_key(name)
        with pytest.raises(ResourceExistsError) as caught:
            kc.create_ec_key(name)
        assert caught.value.status_code == 409
        kc.begin_recover_deleted_key(name, **POLL).result()
        assert len(list(kc.list_properties_of_key_versions(name))) == 2

    def test_purge(self, kc: KeyClient) -> None:
        """A purged key is gone and its name is free again."""
        name = unique("purge")
        kc.create_ec_key(name)
        kc.begin_delete_key(name, **POLL).wait()
        kc.purge_deleted_key(name)
        with pytest.raises(ResourceNotFoundError):
            kc.get_deleted_key(name)
        assert kc.create_ec_key(name).name == name

    def test_backup_delete_purge_restore_keeps_material(self, kc: KeyClient) -> None:
        """After backup, delete, purge and restore, old ciphertext still decrypts."""
        name = unique("bkp")
        first = kc.create_rsa_key(name, tags={"k": "v"})
        kc.rotate_key(name)
        ciphertext = (
            kc.get_cryptography_client(name, key_version=first.properties.version)
            .encrypt(EncryptionAlgorithm.rsa_oaep, b"before backup")
            .ciphertext
        )
        backup = kc.backup_key(name)
        kc.begin_delete_key(name, **POLL).wait()
        kc.purge_deleted_key(name)
        restored = kc.restore_key_backup(backup)
        assert restored.name == name and restored.properties.tags == {"k": "v"}
        assert len(list(kc.list_properties_of_key_versions(name))) == 2
        crypto = kc.get_cryptography_client(name, key_version=first.properties.version)
        plain = crypto.decrypt(EncryptionAlgorithm.rsa_oaep, ciphertext).plaintext
        assert plain == b"before backup"

    def test_restore_refuses_taken_names(self, kc: KeyClient) -> None:
        """Restore over a live or a soft-deleted name is 409."""
        name = unique("taken")
        kc.create_ec_key(name)
        backup = kc.backup_key(name)
        with pytest.raises(ResourceExistsError):
            kc.restore_key_backup(backup)
        kc.begin_delete_key(name, **POLL).wait()
        with pytest.raises(ResourceExistsError):
            kc.restore_key_backup(backup)

    def test_geography_refusal(
        self,
        kc: KeyClient,
        key_vault: EmulatorProcess,
        make_emulator: EmulatorFactory,
        premium: EmulatorProcess,
    ) -> None:
        """A backup restores in the same geography only; HSM keys not into standard."""
        name = unique("geo")
        kc.create_ec_key(name)
        backup = kc.backup_key(name)
        with key_client(make_emulator(geo="eu")) as eu, pytest.raises(HttpResponseError) as caught:
            eu.restore_key_backup(backup)
        assert caught.value.status_code == 400 and "geography" in str(caught.value.message)
        with key_client(premium) as client:
            assert client.restore_key_backup(backup).name == name
            hsm = client.create_ec_key(unique("geo-hsm"), hardware_protected=True)
            hsm_backup = client.backup_key(hsm.name)
        if is_managed_hsm(key_vault):
            return
        with pytest.raises(HttpResponseError) as caught:
            kc.restore_key_backup(hsm_backup)
        assert caught.value.status_code == 400 and "EC-HSM" in str(caught.value.message)

    def test_missing_deleted_key(self, kc: KeyClient) -> None:
        """Deleted-key operations on a name not deleted are 404 KeyNotFound."""
        with pytest.raises(ResourceNotFoundError) as caught:
            kc.get_deleted_key(unique("none"))
        assert error_code(caught.value) == "KeyNotFound"
        with pytest.raises(ResourceNotFoundError):
            kc.purge_deleted_key(unique("none"))


class TestRotation:
    """rotate_key and the rotation policy."""

    def test_rotate_keeps_type_size_ops_tags(self, kc: KeyClient) -> None:
        """A rotation makes a new version of the same type, size, key_ops and tags."""
        name = unique("rotate")
        first = kc.create_rsa_key(
            name, size=3072, tags={"t": "1"}, key_operations=["encrypt", "decrypt"]
        )
        rotated = kc.rotate_key(name)
        assert rotated.properties.version != first.properties.version
        assert rotated.key_type == "RSA" and len(rotated.key.n or b"") == 384
        assert rotated.key.n != first.key.n
        assert rotated.key_operations == ["encrypt", "decrypt"]
        assert rotated.properties.tags == {"t": "1"}
        ec_key = kc.create_ec_key(unique("rotate-ec"), curve="P-521")
        assert kc.rotate_key(ec_key.name).key.crv == "P-521"

    def test_policy_default_update_and_expiry(self, kc: KeyClient) -> None:
        """The default policy notifies; a set policy is returned and sets exp on rotation."""
        name = unique("policy")
        kc.create_ec_key(name)
        default = kc.get_key_rotation_policy(name)
        assert [a.action for a in default.lifetime_actions] == ["Notify"]
        policy = KeyRotationPolicy(
            expires_in="P90D",
            lifetime_actions=[
                KeyRotationLifetimeAction(KeyRotationPolicyAction.rotate, time_after_create="P30D"),
                KeyRotationLifetimeAction(KeyRotationPolicyAction.notify, time_before_expiry="P7D"),
            ],
        )
        kc.update_key_rotation_policy(name, policy)
        got = kc.get_key_rotation_policy(name)
        assert got.expires_in == "P90D" and got.created_on is not None
        assert {
            (a.action, a.time_after_create, a.time_before_expiry) for a in got.lifetime_actions
        } == {("Rotate", "P30D", None), ("Notify", None, "P7D")}
        rotated = kc.rotate_key(name)
        expires = rotated.properties.expires_on
        assert expires is not None
        in_days = (expires - datetime.datetime.now(datetime.UTC)).total_seconds() / 86400
        assert 89 < in_days <= 90

    def test_bad_policy(self, kc: KeyClient) -> None:
        """An expiry under 28 days or a non-duration is 400 naming the field."""
        name = unique("bad-policy")
        kc.create_ec_key(name)
        for policy, named in (
            (KeyRotationPolicy(expires_in="P1D"), "expiryTime"),
            (KeyRotationPolicy(expires_in="90 days"), "expiryTime"),
        ):
            with pytest.raises(HttpResponseError) as caught:
                kc.update_key_rotation_policy(name, policy)
            assert caught.value.status_code == 400 and named in str(caught.value.message)

    def test_rotate_unknown(self, kc: KeyClient) -> None:
        """Rotating or reading the policy of an unknown key is 404 KeyNotFound."""
        with pytest.raises(ResourceNotFoundError):
            kc.rotate_key(unique("ghost"))
        with pytest.raises(ResourceNotFoundError):
            kc.get_key_rotation_policy(unique("ghost"))


class TestNotImplemented:
    """Operations the emulator answers with 501 NotImplemented."""

    def test_release_and_attestation(self, kc: KeyClient) -> None:
        """release_key and get_key_attestation answer 501 NotImplemented."""
        name = kc.create_ec_key(unique("rel")).name
        for call in (
            lambda: kc.release_key(name, "attestation-token"),
            lambda: kc.get_key_attestation(name),
        ):
            with pytest.raises(HttpResponseError) as caught:
                call()
            assert caught.value.status_code == 501
            assert error_code(caught.value) == "NotImplemented"
