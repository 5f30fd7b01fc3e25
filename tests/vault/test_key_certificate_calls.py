"""KeyVaultAdapter's key and certificate calls beyond backup and restore (rotation and
certificate policies, PFX material, import, issuers, contacts), against the emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from azure.keyvault.certificates import CertificatePolicy as SdkCertificatePolicy
from cryptography.hazmat.primitives.serialization import pkcs12

from tests.fixtures.emulator import EmulatorProcess, aio_certificate_client, aio_key_client
from tests.vault.conftest import open_adapter, unique
from vault import Attributes, BadRequest, Forbidden, ItemKind, ItemNotFound, KeyVaultAdapter
from vault.models import CertificateMaterial
from vault.policies import (
    PEM_CONTENT_TYPE,
    PFX_CONTENT_TYPE,
    CertificateContact,
    CertificateIssuer,
    IssuerContact,
    RotationAction,
    RotationPolicy,
)


@pytest.fixture
async def vault(emulator: EmulatorProcess) -> AsyncIterator[KeyVaultAdapter]:
    async with open_adapter(emulator) as adapter:
        yield adapter


async def create_certificate(
    emu: EmulatorProcess, name: str, *, exportable: bool = True, content_type: str | None = None
) -> str:
    policy = SdkCertificatePolicy(
        "Self",
        subject=f"CN={name}",
        exportable=exportable,
        # The SDK sends no key properties (so no `exportable: false`) without a key type.
        key_type="RSA",
        content_type=content_type,
        validity_in_months=12,
    )
    async with aio_certificate_client(emu) as certs:
        cert = await certs.create_certificate(name, policy)
        assert cert.properties is not None
        return cert.properties.version or ""


class TestKeyCalls:
    async def test_get_key_reports_its_type(
        self, emulator: EmulatorProcess, vault: KeyVaultAdapter
    ) -> None:
        """get_key answers the key type that listings leave out."""
        name = unique("kty")
        async with aio_key_client(emulator) as keys:
            await keys.create_ec_key(name, curve="P-384")
        assert (await vault.get_key(name)).key_type == "EC"
        listed = {p.name: p for p in await vault.list_items(ItemKind.KEY)}
        assert listed[name].key_type is None

    async def test_rotation_policy_round_trip(
        self, emulator: EmulatorProcess, vault: KeyVaultAdapter
    ) -> None:
        """A rotation policy written through the adapter reads back equal."""
        name = unique("rot")
        async with aio_key_client(emulator) as keys:
            await keys.create_rsa_key(name)
        policy = RotationPolicy(
            actions=(
                RotationAction("Rotate", time_after_create="P90D"),
                RotationAction("Notify", time_before_expiry="P30D"),
            ),
            expires_in="P1Y",
        )
        written = await vault.set_rotation_policy(name, policy)
        assert written == policy
        assert await vault.get_rotation_policy(name) == policy

    async def test_rotation_policy_of_unknown_key(self, vault: KeyVaultAdapter) -> None:
        """An unknown key's policy is ItemNotFound naming the key."""
        with pytest.raises(ItemNotFound, match="no-such-key"):
            await vault.get_rotation_policy("no-such-key")


class TestCertificateCalls:
    async def test_policy_round_trip(
        self, emulator: EmulatorProcess, vault: KeyVaultAdapter
    ) -> None:
        """A policy read from one certificate and written onto it again is unchanged."""
        name = unique("pol")
        await create_certificate(emulator, name)
        policy = await vault.get_certificate_policy(name)
        assert policy.issuer_name == "Self" and policy.subject == f"CN={name}"
        assert policy.key_exportable and policy.content_type == PFX_CONTENT_TYPE
        assert await vault.set_certificate_policy(name, policy) == policy

    async def test_material_is_the_pfx_with_its_key(
        self, emulator: EmulatorProcess, vault: KeyVaultAdapter
    ) -> None:
        """An exportable certificate's material is a PFX holding the private key; repr
        shows no bytes."""
        name = unique("pfx")
        version = await create_certificate(emulator, name)
        material = await vault.get_certificate_material(name, version)
        assert material.content_type == PFX_CONTENT_TYPE and material.version == version
        key, cert, _ = pkcs12.load_key_and_certificates(material.data, None)
        assert key is not None and cert is not None
        assert "redacted" in repr(material) and material.data.hex()[:16] not in repr(material)

    async def test_non_exportable_material_has_no_key(
        self, emulator: EmulatorProcess, vault: KeyVaultAdapter
    ) -> None:
        """A non-exportable certificate's secret holds the certificate only."""
        name = unique("nox")
        version = await create_certificate(emulator, name, exportable=False)
        material = await vault.get_certificate_material(name, version)
        key, cert, extra = pkcs12.load_key_and_certificates(material.data, None)
        # Without a key, the certificate is not "the key's certificate" but an extra one.
        assert key is None and (cert is not None or extra)

    async def test_import_makes_a_new_version_with_the_same_certificate(
        self, emulator: EmulatorProcess, vault: KeyVaultAdapter
    ) -> None:
        """Importing one certificate's PFX under another name keeps the X.509 and takes
        the given tags and enabled flag."""
        name, copy = unique("src"), unique("dst")
        version = await create_certificate(emulator, name)
        material = await vault.get_certificate_material(name, version)
        policy = await vault.get_certificate_policy(name)
        props = await vault.import_certificate(
            copy, material, Attributes(enabled=True, tags={"origin": "test"}), policy
        )
        assert props.name == copy and props.tags == {"origin": "test"}
        async with aio_certificate_client(emulator) as certs:
            original = await certs.get_certificate(name)
            imported = await certs.get_certificate(copy)
        assert original.cer == imported.cer

    async def test_import_pem(self, emulator: EmulatorProcess, vault: KeyVaultAdapter) -> None:
        """A PEM certificate's material imports with its content type."""
        name, copy = unique("pem"), unique("pemcopy")
        version = await create_certificate(emulator, name, content_type=PEM_CONTENT_TYPE)
        material = await vault.get_certificate_material(name, version)
        assert material.content_type == PEM_CONTENT_TYPE
        assert b"PRIVATE KEY" in material.data
        await vault.import_certificate(copy, material, Attributes())
        assert (await vault.get_certificate_policy(copy)).content_type == PEM_CONTENT_TYPE

    async def test_empty_material_is_refused_before_any_request(
        self, vault: KeyVaultAdapter
    ) -> None:
        """Empty material is a BadRequest naming the certificate."""
        empty = CertificateMaterial("c", "v", PFX_CONTENT_TYPE, b"")
        with pytest.raises(BadRequest, match="certificate/empty-one"):
            await vault.import_certificate("empty-one", empty, Attributes())

    async def test_disabled_version_material_is_forbidden(
        self, emulator: EmulatorProcess, vault: KeyVaultAdapter
    ) -> None:
        """A disabled certificate version's material cannot be read (403)."""
        name = unique("dis")
        version = await create_certificate(emulator, name)
        await vault.update_properties(
            ItemKind.CERTIFICATE, name, version, Attributes(enabled=False)
        )
        with pytest.raises(Forbidden):
            await vault.get_certificate_material(name, version)


class TestIssuersAndContacts:
    async def test_issuers_create_list_and_update(self, vault: KeyVaultAdapter) -> None:
        """An issuer is created, listed in full, and updated field by field."""
        name = unique("issuer")
        issuer = CertificateIssuer(
            name=name,
            provider="Test",
            account_id="acct-1",
            organization_id="org-1",
            admin_contacts=(IssuerContact(email="admin@example.com", first_name="Ada"),),
        )
        assert await vault.set_issuer(issuer) == issuer
        listed = {i.name: i for i in await vault.list_issuers()}
        assert listed[name] == issuer
        changed = CertificateIssuer(
            name=name, provider="Test", account_id="acct-1", organization_id="org-2"
        )
        assert await vault.set_issuer(changed, previous=issuer) == changed

    async def test_unchanged_issuer_sends_nothing(
        self, emulator: EmulatorProcess, vault: KeyVaultAdapter
    ) -> None:
        """Setting an issuer equal to the vault's makes no request."""
        issuer = CertificateIssuer(name=unique("same"), provider="Test")
        await vault.set_issuer(issuer)
        emulator.reset_stats()
        await vault.set_issuer(issuer, previous=issuer)
        assert emulator.stats()["total"] == 0

    async def test_contacts(self, vault: KeyVaultAdapter) -> None:
        """Contacts are () when unset, then read back as written."""
        assert await vault.get_contacts() == ()
        contacts = (
            CertificateContact(email="ops@example.com", name="Ops", phone="555-0100"),
            CertificateContact(email="sec@example.com"),
        )
        assert await vault.set_contacts(contacts) == contacts
        assert await vault.get_contacts() == contacts
        with pytest.raises(BadRequest, match="at least one contact"):
            await vault.set_contacts(())
