"""Secrets through the official SecretClient (sync and aio) against a real emulator."""

from __future__ import annotations

import asyncio
import datetime
import uuid

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.keyvault.certificates import CertificatePolicy
from azure.keyvault.secrets import ContentType

from tests.fixtures.emulator import (
    EmulatorFactory,
    EmulatorProcess,
    aio_secret_client,
    certificate_client,
    secret_client,
)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class TestSetAndGet:
    """set / get / versions, sync."""

    def test_set_then_get_latest_and_by_version(self, emulator: EmulatorProcess) -> None:
        """A set secret reads back by latest and by its version, with its metadata."""
        client = secret_client(emulator)
        name = unique("db-password")
        first = client.set_secret(name, "s3cret", content_type="text/plain", tags={"env": "t"})
        second = client.set_secret(name, "s3cret-2")
        assert first.properties.version != second.properties.version
        assert len(first.properties.version or "") == 32
        assert client.get_secret(name).value == "s3cret-2"
        old = client.get_secret(name, first.properties.version)
        assert old.value == "s3cret"
        assert old.properties.content_type == "text/plain"
        assert old.properties.tags == {"env": "t"}
        assert old.id == f"{emulator.url}/secrets/{name}/{first.properties.version}"
        assert old.properties.vault_url == emulator.url
        assert old.properties.recovery_level == "Recoverable+Purgeable"
        assert old.properties.recoverable_days == 90

    def test_attributes_round_trip(self, emulator: EmulatorProcess) -> None:
        """enabled, not_before and expires_on come back as they were set."""
        client = secret_client(emulator)
        name = unique("attrs")
        nbf = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
        exp = datetime.datetime(2031, 1, 1, tzinfo=datetime.UTC)
        client.set_secret(name, "v", not_before=nbf, expires_on=exp)
        props = client.get_secret(name).properties
        assert props.not_before == nbf
        assert props.expires_on == exp
        assert props.enabled is True
        assert props.created_on is not None and props.updated_on is not None

    def test_names_are_case_insensitive(self, emulator: EmulatorProcess) -> None:
        """Like Key Vault, MySecret and mysecret are the same secret."""
        client = secret_client(emulator)
        name = unique("CaseName")
        client.set_secret(name, "one")
        client.set_secret(name.lower(), "two")
        assert client.get_secret(name.upper()).value == "two"
        assert len(list(client.list_properties_of_secret_versions(name))) == 2

    def test_unknown_version_is_secret_not_found(self, emulator: EmulatorProcess) -> None:
        """An unknown version answers 404 SecretNotFound."""
        client = secret_client(emulator)
        name = unique("ver")
        client.set_secret(name, "v")
        with pytest.raises(ResourceNotFoundError) as caught:
            client.get_secret(name, "0" * 32)
        assert caught.value.error is not None and caught.value.error.code == "SecretNotFound"

    def test_unknown_name_is_secret_not_found(self, emulator: EmulatorProcess) -> None:
        """A name never set answers 404 SecretNotFound."""
        with pytest.raises(ResourceNotFoundError) as caught:
            secret_client(emulator).get_secret(unique("missing"))
        assert caught.value.error is not None and caught.value.error.code == "SecretNotFound"

    def test_list_versions(self, emulator: EmulatorProcess) -> None:
        """Every version is listed, without values."""
        client = secret_client(emulator)
        name = unique("versions")
        made = [client.set_secret(name, f"v{i}").properties.version for i in range(5)]
        listed = list(client.list_properties_of_secret_versions(name, max_page_size=2))
        assert sorted(p.version or "" for p in listed) == sorted(v or "" for v in made)
        assert all(p.name == name for p in listed)


class TestUpdate:
    """update_secret_properties."""

    def test_update_latest_properties(self, emulator: EmulatorProcess) -> None:
        """Tags, content type and enabled change; the value does not."""
        client = secret_client(emulator)
        name = unique("upd")
        client.set_secret(name, "keep-me")
        props = client.update_secret_properties(
            name, content_type="application/json", tags={"a": "b"}
        )
        assert props.content_type == "application/json"
        assert props.tags == {"a": "b"}
        assert client.get_secret(name).value == "keep-me"

    def test_update_named_version_and_disable(self, emulator: EmulatorProcess) -> None:
        """Disabling an old version leaves the latest readable; the old one is refused."""
        client = secret_client(emulator)
        name = unique("dis")
        old = client.set_secret(name, "old").properties.version
        client.set_secret(name, "new")
        props = client.update_secret_properties(name, old, enabled=False)
        assert props.enabled is False and props.version == old
        assert client.get_secret(name).value == "new"
        with pytest.raises(HttpResponseError) as caught:
            client.get_secret(name, old)
        assert caught.value.status_code == 403
        assert caught.value.error is not None and caught.value.error.code == "Forbidden"

    def test_update_unknown_secret(self, emulator: EmulatorProcess) -> None:
        """Updating a secret that does not exist is 404."""
        with pytest.raises(ResourceNotFoundError):
            secret_client(emulator).update_secret_properties(unique("nope"), enabled=False)


class TestSoftDelete:
    """delete, deleted listing, recover, purge."""

    def test_delete_recover_cycle(self, emulator: EmulatorProcess) -> None:
        """A deleted secret is listed as deleted, blocks its name, and recovers whole."""
        client = secret_client(emulator)
        name = unique("del")
        client.set_secret(name, "v1")
        client.set_secret(name, "v2")
        deleted = client.begin_delete_secret(name).result()
        assert deleted.name == name
        assert deleted.recovery_id == f"{emulator.url}/deletedsecrets/{name}"
        assert deleted.deleted_date is not None and deleted.scheduled_purge_date is not None
        assert (deleted.scheduled_purge_date - deleted.deleted_date).days == 90
        with pytest.raises(ResourceNotFoundError):
            client.get_secret(name)
        assert name in {d.name for d in client.list_deleted_secrets()}
        assert client.get_deleted_secret(name).name == name
        with pytest.raises(ResourceExistsError) as caught:
            client.set_secret(name, "v3")
        error = caught.value.error
        assert error is not None and error.code == "Conflict"
        assert error.innererror["code"] == "ObjectIsDeletedButRecoverable"
        recovered = client.begin_recover_deleted_secret(name).result()
        assert recovered.name == name
        assert client.get_secret(name).value == "v2"
        assert len(list(client.list_properties_of_secret_versions(name))) == 2

    def test_purge_frees_the_name(self, emulator: EmulatorProcess) -> None:
        """After purge the name is free and the old versions are gone."""
        client = secret_client(emulator)
        name = unique("purge")
        client.set_secret(name, "old")
        client.begin_delete_secret(name).result()
        client.purge_deleted_secret(name)
        with pytest.raises(ResourceNotFoundError):
            client.get_deleted_secret(name)
        client.set_secret(name, "new")
        assert [p.name for p in client.list_properties_of_secret_versions(name)] == [name]

    def test_delete_unknown_is_not_found(self, emulator: EmulatorProcess) -> None:
        """Deleting, recovering or purging a missing secret is 404."""
        client = secret_client(emulator)
        with pytest.raises(ResourceNotFoundError):
            client.begin_delete_secret(unique("nope")).result()
        with pytest.raises(ResourceNotFoundError):
            client.begin_recover_deleted_secret(unique("nope")).result()
        with pytest.raises(ResourceNotFoundError):
            client.purge_deleted_secret(unique("nope"))

    def test_purge_protection_refuses_purge(self, make_emulator: EmulatorFactory) -> None:
        """With --purge-protection a purge is 403 and the secret stays recoverable."""
        emu = make_emulator(purge_protection=True, retention_days=7)
        client = secret_client(emu)
        client.set_secret("guarded", "v")
        deleted = client.begin_delete_secret("guarded").result()
        assert deleted.properties.recovery_level == "Recoverable"
        assert deleted.scheduled_purge_date is not None and deleted.deleted_date is not None
        assert (deleted.scheduled_purge_date - deleted.deleted_date).days == 7
        with pytest.raises(HttpResponseError) as caught:
            client.purge_deleted_secret("guarded")
        assert caught.value.status_code == 403
        client.begin_recover_deleted_secret("guarded").result()
        assert client.get_secret("guarded").value == "v"


class TestPaging:
    """list with maxresults and nextLink."""

    def test_pages_over_many_secrets(self, make_emulator: EmulatorFactory) -> None:
        """110 secrets come back exactly once each over 10-item pages."""
        emu = make_emulator()
        client = secret_client(emu)
        names = {f"page-{i:03d}" for i in range(110)}
        for name in names:
            client.set_secret(name, "v")
        pages = list(client.list_properties_of_secrets(max_page_size=10).by_page())
        listed = [p.name for page in pages for p in page]
        assert len(pages) == 11
        assert sorted(listed) == sorted(names)
        # list returns properties only: the SDK's SecretProperties has no value at all,
        # and the ids carry no version.
        first = next(iter(client.list_properties_of_secrets(max_page_size=1)))
        assert first.version is None

    def test_maxresults_out_of_range(self, emulator: EmulatorProcess) -> None:
        """maxresults above 25 is 400 BadParameter."""
        with pytest.raises(HttpResponseError) as caught:
            list(secret_client(emulator).list_properties_of_secrets(max_page_size=26))
        assert caught.value.status_code == 400
        assert caught.value.error is not None and caught.value.error.code == "BadParameter"

    def test_deleted_paging(self, make_emulator: EmulatorFactory) -> None:
        """Deleted secrets page like live ones."""
        emu = make_emulator()
        client = secret_client(emu)
        for i in range(12):
            client.set_secret(f"gone-{i}", "v")
            client.begin_delete_secret(f"gone-{i}").result()
        listed = [d.name for d in client.list_deleted_secrets(max_page_size=5)]
        assert sorted(listed) == sorted(f"gone-{i}" for i in range(12))


class TestBackupRestore:
    """backup_secret / restore_secret_backup."""

    def test_round_trip_keeps_every_version(self, emulator: EmulatorProcess) -> None:
        """backup -> delete -> purge -> restore brings back all versions and values."""
        client = secret_client(emulator)
        name = unique("bk")
        versions = [client.set_secret(name, f"value-{i}").properties.version for i in range(3)]
        blob = client.backup_secret(name)
        assert b"value-0" not in blob  # the blob is encrypted
        client.begin_delete_secret(name).result()
        client.purge_deleted_secret(name)
        restored = client.restore_secret_backup(blob)
        assert restored.name == name and restored.version == versions[-1]
        for i, version in enumerate(versions):
            assert client.get_secret(name, version).value == f"value-{i}"

    def test_restore_refuses_live_and_deleted_names(self, emulator: EmulatorProcess) -> None:
        """Restore is 409 while the name is in use, also while it is soft-deleted."""
        client = secret_client(emulator)
        name = unique("bk-conflict")
        client.set_secret(name, "v")
        blob = client.backup_secret(name)
        with pytest.raises(ResourceExistsError):
            client.restore_secret_backup(blob)
        client.begin_delete_secret(name).result()
        with pytest.raises(ResourceExistsError) as caught:
            client.restore_secret_backup(blob)
        assert caught.value.error is not None
        assert caught.value.error.innererror["code"] == "ObjectIsDeletedButRecoverable"

    def test_same_geo_other_vault_restores(self, make_emulator: EmulatorFactory) -> None:
        """A backup from eastus restores into westus of the same geography."""
        east = make_emulator(region="eastus", geo="us")
        west = make_emulator(region="westus", geo="us")
        secret_client(east).set_secret("moving", "along")
        blob = secret_client(east).backup_secret("moving")
        secret_client(west).restore_secret_backup(blob)
        assert secret_client(west).get_secret("moving").value == "along"

    def test_other_geo_is_refused(self, make_emulator: EmulatorFactory) -> None:
        """A backup from geography us cannot be restored in geography eu."""
        us = make_emulator(geo="us")
        eu = make_emulator(region="westeurope", geo="eu")
        secret_client(us).set_secret("stay", "home")
        blob = secret_client(us).backup_secret("stay")
        with pytest.raises(HttpResponseError) as caught:
            secret_client(eu).restore_secret_backup(blob)
        assert caught.value.status_code == 400
        assert "geography us" in str(caught.value) and "geography eu" in str(caught.value)

    def test_garbage_blob_is_bad_parameter(self, emulator: EmulatorProcess) -> None:
        """A blob that is not a backup is 400 BadParameter."""
        with pytest.raises(HttpResponseError) as caught:
            secret_client(emulator).restore_secret_backup(b"not a backup at all")
        assert caught.value.status_code == 400


class TestAio:
    """The same operations through the aio SecretClient."""

    async def test_aio_full_cycle(self, emulator: EmulatorProcess) -> None:
        """set, get, update, list, delete, recover, backup, purge, restore via aio."""
        name = unique("aio")
        async with aio_secret_client(emulator) as client:
            first = await client.set_secret(name, "a1")
            await client.set_secret(name, "a2", tags={"k": "v"})
            assert (await client.get_secret(name)).value == "a2"
            assert (await client.get_secret(name, first.properties.version)).value == "a1"
            props = await client.update_secret_properties(name, content_type="x/y")
            assert props.content_type == "x/y"
            versions = [p async for p in client.list_properties_of_secret_versions(name)]
            assert len(versions) == 2
            names = [p.name async for p in client.list_properties_of_secrets(max_page_size=3)]
            assert name in names
            blob = await client.backup_secret(name)
            deleted = await client.delete_secret(name)
            assert deleted.name == name
            assert name in [d.name async for d in client.list_deleted_secrets()]
            assert (await client.get_deleted_secret(name)).name == name
            await client.recover_deleted_secret(name)
            assert (await client.get_secret(name)).value == "a2"
            await client.delete_secret(name)
            await client.purge_deleted_secret(name)
            restored = await client.restore_secret_backup(blob)
            assert restored.name == name
            assert (await client.get_secret(name, first.properties.version)).value == "a1"

    async def test_aio_concurrent_sets(self, emulator: EmulatorProcess) -> None:
        """50 concurrent sets all land as versions of one secret."""
        name = unique("conc")
        async with aio_secret_client(emulator) as client:
            await asyncio.gather(*(client.set_secret(name, f"v{i}") for i in range(50)))
            versions = [p async for p in client.list_properties_of_secret_versions(name)]
            assert len(versions) == 50

    async def test_aio_errors_map_to_sdk_exceptions(self, emulator: EmulatorProcess) -> None:
        """404 and 409 surface as the SDK's ResourceNotFoundError / ResourceExistsError."""
        name = unique("aio-err")
        async with aio_secret_client(emulator) as client:
            with pytest.raises(ResourceNotFoundError):
                await client.get_secret(name)
            await client.set_secret(name, "v")
            await client.delete_secret(name)
            with pytest.raises(ResourceExistsError):
                await client.set_secret(name, "again")


class TestCertificateBacked:
    """Secrets that belong to a certificate (written by the certificates module)."""

    def test_managed_secret_reads_and_converts(self, emulator: EmulatorProcess) -> None:
        """The certificate's secret is managed, readable, and converts PFX to PEM on request."""
        name = unique("cert")
        certificate_client(emulator).begin_create_certificate(
            name, CertificatePolicy.get_default()
        ).result()
        client = secret_client(emulator)
        pfx = client.get_secret(name)
        assert pfx.properties.managed is True
        assert pfx.properties.content_type == "application/x-pkcs12"
        assert pfx.properties.key_id is not None and f"/keys/{name}/" in pfx.properties.key_id
        pem = client.get_secret(name, out_content_type=ContentType.PEM)
        assert pem.properties.content_type == "application/x-pem-file"
        assert "-----BEGIN PRIVATE KEY-----" in (pem.value or "")
        listed = {p.name: p for p in client.list_properties_of_secrets()}
        assert listed[name].managed is True

    def test_managed_secret_cannot_be_changed_alone(self, emulator: EmulatorProcess) -> None:
        """set, update and delete of a certificate's secret are 403."""
        name = unique("cert-guard")
        certificate_client(emulator).begin_create_certificate(
            name, CertificatePolicy.get_default()
        ).result()
        client = secret_client(emulator)
        for attempt in (
            lambda: client.set_secret(name, "overwrite"),
            lambda: client.update_secret_properties(name, tags={"a": "b"}),
            lambda: client.begin_delete_secret(name).result(),
        ):
            with pytest.raises(HttpResponseError) as caught:
                attempt()
            assert caught.value.status_code == 403
