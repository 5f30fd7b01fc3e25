"""KeyVaultAdapter on keys and certificates, against the real emulator.

kvdr never creates keys or certificates itself (it copies them by backup and restore), so
the tests create them with the official SDK clients and then drive the adapter.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from azure.keyvault.certificates import CertificatePolicy, KeyVaultCertificate

from tests.fixtures.emulator import EmulatorProcess, aio_certificate_client, aio_key_client
from tests.vault.conftest import open_adapter, unique
from vault import Attributes, ItemKind, ItemNotFound, KeyVaultAdapter


@pytest.fixture
async def vault(emulator: EmulatorProcess) -> AsyncIterator[KeyVaultAdapter]:
    async with open_adapter(emulator) as adapter:
        yield adapter


async def create_key(emu: EmulatorProcess, name: str, versions: int = 1) -> list[str]:
    async with aio_key_client(emu) as keys:
        return [
            (await keys.create_rsa_key(name, size=2048)).properties.version or ""
            for _ in range(versions)
        ]


async def create_certificate(emu: EmulatorProcess, name: str) -> str:
    async with aio_certificate_client(emu) as certs:
        # The aio client waits for issuance itself and returns the certificate.
        cert = await certs.create_certificate(name, CertificatePolicy.get_default())
        assert isinstance(cert, KeyVaultCertificate) and cert.properties is not None
        return cert.properties.version or ""


class TestKeys:
    async def test_list_and_versions(
        self, emulator: EmulatorProcess, vault: KeyVaultAdapter
    ) -> None:
        """A key with three versions is listed once and its versions end on the current one."""
        name = unique("key")
        written = await create_key(emulator, name, versions=3)
        listed = {p.name: p for p in await vault.list_items(ItemKind.KEY)}
        assert listed[name].kind is ItemKind.KEY
        versions = await vault.list_versions(ItemKind.KEY, name)
        assert sorted(v.version for v in versions) == sorted(written)
        assert versions[-1].version == written[-1]

    async def test_update_properties(
        self, emulator: EmulatorProcess, vault: KeyVaultAdapter
    ) -> None:
        """Enabled, expiry and tags change on the given key version; its type is reported."""
        name = unique("keyupd")
        (version,) = await create_key(emulator, name)
        exp = datetime(2031, 5, 1, tzinfo=UTC)
        props = await vault.update_properties(
            ItemKind.KEY, name, version, Attributes(enabled=False, expires_on=exp, tags={"t": "1"})
        )
        assert (props.version, props.enabled, props.expires_on, props.tags) == (
            version,
            False,
            exp,
            {"t": "1"},
        )
        assert props.key_type is not None and props.key_type.startswith("RSA")

    async def test_delete_recover_purge_backup_restore(
        self, emulator: EmulatorProcess, vault: KeyVaultAdapter
    ) -> None:
        """The full lifecycle of a key through the adapter keeps every version."""
        name = unique("keylife")
        written = await create_key(emulator, name, versions=2)
        blob = await vault.backup_item(ItemKind.KEY, name)
        await vault.delete_item(ItemKind.KEY, name)
        assert await vault.get_deleted(ItemKind.KEY, name) is not None
        assert name in {d.name for d in await vault.list_deleted(ItemKind.KEY)}
        await vault.recover_item(ItemKind.KEY, name)
        assert await vault.get_deleted(ItemKind.KEY, name) is None
        await vault.delete_item(ItemKind.KEY, name)
        await vault.purge_item(ItemKind.KEY, name)
        with pytest.raises(ItemNotFound):
            await vault.backup_item(ItemKind.KEY, name)
        restored = await vault.restore_item(ItemKind.KEY, blob)
        assert restored.name == name
        versions = await vault.list_versions(ItemKind.KEY, name)
        assert sorted(v.version for v in versions) == sorted(written)


class TestCertificates:
    async def test_list_versions_update(
        self, emulator: EmulatorProcess, vault: KeyVaultAdapter
    ) -> None:
        """A certificate is listed, its version found, and enabled/tags updated."""
        name = unique("cert")
        version = await create_certificate(emulator, name)
        assert name in {p.name for p in await vault.list_items(ItemKind.CERTIFICATE)}
        versions = await vault.list_versions(ItemKind.CERTIFICATE, name)
        assert [v.version for v in versions] == [version]
        assert versions[0].expires_on is not None
        assert versions[0].expires_on > datetime.now(UTC) + timedelta(days=1)
        props = await vault.update_properties(
            ItemKind.CERTIFICATE, name, version, Attributes(enabled=False, tags={"o": "k"})
        )
        assert (props.enabled, props.tags) == (False, {"o": "k"})

    async def test_backing_secret_is_marked_managed(
        self, emulator: EmulatorProcess, vault: KeyVaultAdapter
    ) -> None:
        """The secret behind a certificate lists as managed, so mirrors leave it alone."""
        name = unique("certsecret")
        await create_certificate(emulator, name)
        secrets = {p.name: p for p in await vault.list_items(ItemKind.SECRET)}
        assert secrets[name].managed is True

    async def test_delete_recover_purge_backup_restore(
        self, emulator: EmulatorProcess, vault: KeyVaultAdapter
    ) -> None:
        """The lifecycle of a certificate through the adapter ends with it restored."""
        name = unique("certlife")
        version = await create_certificate(emulator, name)
        blob = await vault.backup_item(ItemKind.CERTIFICATE, name)
        await vault.delete_item(ItemKind.CERTIFICATE, name)
        deleted = await vault.get_deleted(ItemKind.CERTIFICATE, name)
        assert deleted is not None and deleted.kind is ItemKind.CERTIFICATE
        assert name in {d.name for d in await vault.list_deleted(ItemKind.CERTIFICATE)}
        await vault.recover_item(ItemKind.CERTIFICATE, name)
        await vault.delete_item(ItemKind.CERTIFICATE, name)
        await vault.purge_item(ItemKind.CERTIFICATE, name)
        assert await vault.get_deleted(ItemKind.CERTIFICATE, name) is None
        restored = await vault.restore_item(ItemKind.CERTIFICATE, blob)
        assert (restored.name, restored.version) == (name, version)
