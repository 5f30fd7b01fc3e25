"""Certificate conformance through the official SDK: managed objects, delete/recover/
purge, backup and restore, paging, persistence, bad input and events. Create, import,
policies, contacts, issuers and merges are in test_certificates.py."""

from __future__ import annotations

import asyncio

import pytest
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from azure.keyvault.certificates import (
    CertificateContact,
    CertificatePolicy,
    KeyVaultCertificate,
    WellKnownIssuerNames,
)

# The SDK's poller sleeps this long between polls; the emulator needs none.
from tests.emulator.test_certificates import NO_WAIT, _create, _policy, _sign_csr
from tests.fixtures.emulator import (
    EmulatorFactory,
    EmulatorProcess,
    aio_certificate_client,
    aio_key_client,
    aio_secret_client,
    certificate_client,
    key_client,
    secret_client,
)
from tests.fixtures.event_receiver import EventReceiver


class TestManagedObjects:
    """The certificate's key and secret cannot be changed or deleted on their own."""

    def test_refused_on_their_own(self, emulator: EmulatorProcess) -> None:
        """Deleting or setting the managed secret, or deleting the managed key, is 403."""
        _create(emulator, "guarded", _policy())
        with secret_client(emulator) as secrets:
            for call in (
                lambda: secrets.begin_delete_secret("guarded"),
                lambda: secrets.set_secret("guarded", "overwrite"),
            ):
                with pytest.raises(HttpResponseError) as info:
                    call()
                assert info.value.status_code == 403
        with key_client(emulator) as keys:
            with pytest.raises(HttpResponseError) as info:
                keys.begin_delete_key("guarded")
            assert info.value.status_code == 403

    def test_name_held_by_plain_secret(self, emulator: EmulatorProcess) -> None:
        """A certificate cannot take the name of a secret it does not manage (409)."""
        with secret_client(emulator) as secrets:
            secrets.set_secret("plain-name", "v")
        with certificate_client(emulator) as client, pytest.raises(ResourceExistsError):
            client.begin_create_certificate("plain-name", _policy(), **NO_WAIT)


class TestDeleteRecoverPurge:
    """Soft delete, recovery and purge carry the key and the secret along."""

    def test_delete_recover(self, emulator: EmulatorProcess) -> None:
        """Deleted: certificate, key and secret are gone and listed deleted; recover: back."""
        cert = _create(emulator, "doomed", _policy())
        with certificate_client(emulator) as client:
            deleted = client.begin_delete_certificate("doomed", **NO_WAIT).result()
            assert deleted.recovery_id is not None and deleted.deleted_on is not None
            assert deleted.scheduled_purge_date is not None
            assert "doomed" in [d.name for d in client.list_deleted_certificates()]
            with pytest.raises(ResourceNotFoundError):
                client.get_certificate("doomed")
            with pytest.raises(ResourceExistsError):
                client.begin_create_certificate("doomed", _policy(), **NO_WAIT)
        with secret_client(emulator) as secrets:
            with pytest.raises(ResourceNotFoundError):
                secrets.get_secret("doomed")
            assert secrets.get_deleted_secret("doomed").name == "doomed"
        with certificate_client(emulator) as client:
            recovered = client.begin_recover_deleted_certificate("doomed", **NO_WAIT).result()
            assert recovered.cer == cert.cer
        with secret_client(emulator) as secrets:
            assert secrets.get_secret("doomed").properties.managed is True
        with key_client(emulator) as keys:
            assert keys.get_key("doomed").id == cert.key_id

    async def test_purge_frees_name_aio(self, emulator: EmulatorProcess) -> None:
        """After purge the certificate, key and secret are gone and the name is free."""
        async with aio_certificate_client(emulator) as client:
            await client.create_certificate("purged", _policy(), **NO_WAIT)
            await client.delete_certificate("purged")
            await client.purge_deleted_certificate("purged")
            with pytest.raises(ResourceNotFoundError):
                await client.get_deleted_certificate("purged")
        async with aio_secret_client(emulator) as secrets:
            with pytest.raises(ResourceNotFoundError):
                await secrets.get_deleted_secret("purged")
        async with aio_key_client(emulator) as keys:
            with pytest.raises(ResourceNotFoundError):
                await keys.get_deleted_key("purged")
        async with aio_certificate_client(emulator) as client:
            recreated = await client.create_certificate("purged", _policy(), **NO_WAIT)
            assert isinstance(recreated, KeyVaultCertificate)


class TestBackupRestore:
    """Backups restore the certificate with its key and secret, in the same geography only."""

    def test_backup_purge_restore(self, emulator: EmulatorProcess) -> None:
        """backup -> delete -> purge -> restore brings back every version and the same key."""
        _create(emulator, "saved", _policy())
        second = _create(emulator, "saved", _policy())
        with secret_client(emulator) as secrets:
            value_before = secrets.get_secret("saved").value
        with certificate_client(emulator) as client:
            blob = client.backup_certificate("saved")
            with pytest.raises(ResourceExistsError):
                client.restore_certificate_backup(blob)
            client.begin_delete_certificate("saved", **NO_WAIT).result()
            with pytest.raises(ResourceExistsError):
                client.restore_certificate_backup(blob)
            client.purge_deleted_certificate("saved")
            restored = client.restore_certificate_backup(blob)
            assert restored.cer == second.cer and restored.key_id == second.key_id
            assert len(list(client.list_properties_of_certificate_versions("saved"))) == 2
        with secret_client(emulator) as secrets:
            assert secrets.get_secret("saved").value == value_before

    def test_other_geography_refused(
        self, emulator: EmulatorProcess, make_emulator: EmulatorFactory
    ) -> None:
        """A backup taken in geography us does not restore into geography eu (400)."""
        _create(emulator, "travels", _policy())
        with certificate_client(emulator) as client:
            blob = client.backup_certificate("travels")
        europe = make_emulator(geo="eu", region="westeurope")
        with certificate_client(europe) as client:
            with pytest.raises(HttpResponseError) as info:
                client.restore_certificate_backup(blob)
            assert info.value.status_code == 400
            assert "geography" in str(info.value.message)
            with pytest.raises(ResourceNotFoundError):
                client.get_certificate("travels")


class TestPaging:
    """Listing over many certificates follows nextLink across pages."""

    async def test_list_35_certificates(self, make_emulator: EmulatorFactory) -> None:
        """35 certificates come back once each over pages of 10 (sync and aio)."""
        emu = make_emulator()
        policy = _policy(key_type="EC", key_curve_name="P-256")
        async with aio_certificate_client(emu) as client:

            async def create(index: int) -> None:
                await client.create_certificate(f"page-{index:02d}", policy, **NO_WAIT)

            await asyncio.gather(*(create(i) for i in range(35)))
            names = [c.name async for c in client.list_properties_of_certificates(max_page_size=10)]
        assert names == [f"page-{i:02d}" for i in range(35)]
        with certificate_client(emu) as client:
            pages = list(client.list_properties_of_certificates(max_page_size=10).by_page())
            assert [len(list(p)) for p in pages] == [10, 10, 10, 5]
        stats = emu.stats()
        assert "GetCertificates" in str(stats)


class TestPersistence:
    """What the vault acknowledged survives a SIGKILL."""

    def test_kill_restart(self, make_emulator: EmulatorFactory) -> None:
        """Certificate, secret, policy, contacts and a pending CSR survive a killed process."""
        emu = make_emulator()
        cert = _create(emu, "durable", _policy(validity_in_months=2))
        unknown = CertificatePolicy(issuer_name=WellKnownIssuerNames.unknown, subject="CN=p.ex")
        with certificate_client(emu) as client:
            client.begin_create_certificate("half-done", unknown, **NO_WAIT).result()
            client.set_contacts([CertificateContact(email="ops@example.com")])
        emu.restart(kill=True)
        with certificate_client(emu) as client:
            again = client.get_certificate("durable")
            assert again.cer == cert.cer and again.policy is not None
            assert again.policy.validity_in_months == 2
            operation = client.get_certificate_operation("half-done")
            assert operation.status == "inProgress" and operation.csr
            assert [c.email for c in client.get_contacts()] == ["ops@example.com"]
            leaf, _ = _sign_csr(bytes(operation.csr))
            assert bytes(client.merge_certificate("half-done", [leaf]).cer or b"") == leaf
        with secret_client(emu) as secrets:
            assert secrets.get_secret("durable").properties.managed is True


class TestBadInput:
    """Invalid requests get Key Vault's status and error code, and the vault stays up."""

    @pytest.mark.parametrize(
        ("policy", "fragment"),
        [
            (_policy(key_type="RSA", key_size=1024), "key_size 1024"),
            (_policy(key_type="EC", key_curve_name="P-999"), "crv"),
            (_policy(validity_in_months=0), "validity_months"),
            (_policy(subject="XX=unknown"), "XX"),
            (_policy(key_type="EC-HSM"), "Premium"),
        ],
    )
    def test_bad_policy(
        self, emulator: EmulatorProcess, policy: CertificatePolicy, fragment: str
    ) -> None:
        """Each invalid policy is 400 BadParameter naming the field."""
        with certificate_client(emulator) as client, pytest.raises(HttpResponseError) as info:
            client.begin_create_certificate("bad-policy", policy, **NO_WAIT)
        assert info.value.status_code == 400
        assert info.value.error is not None and info.value.error.code == "BadParameter"
        assert fragment in str(info.value.message)

    def test_names_and_versions(self, emulator: EmulatorProcess) -> None:
        """Invalid names are 400; unknown certificates and versions are 404."""
        with certificate_client(emulator) as client:
            with pytest.raises(HttpResponseError) as info:
                client.begin_create_certificate("bad_name!", _policy(), **NO_WAIT)
            assert info.value.status_code == 400
            with pytest.raises(ResourceNotFoundError):
                client.get_certificate("never-created")
            _create(emulator, "versioned", _policy())
            with pytest.raises(ResourceNotFoundError):
                client.get_certificate_version("versioned", "0" * 32)
            with pytest.raises(ResourceNotFoundError):
                client.get_certificate_policy("never-created")
        assert emulator.health()

    def test_hsm_on_premium(self, make_emulator: EmulatorFactory) -> None:
        """A premium vault creates an RSA-HSM certificate whose key is RSA-HSM."""
        emu = make_emulator(sku="premium")
        cert = _create(emu, "hsm", _policy(key_type="RSA-HSM"))
        assert cert.policy is not None and cert.policy.key_type == "RSA-HSM"
        with key_client(emu) as keys:
            assert keys.get_key("hsm").key_type == "RSA-HSM"


class TestEvents:
    """Event Grid: a new certificate version is announced with its key and secret."""

    async def test_new_version_events(
        self, make_emulator: EmulatorFactory, event_receiver: EventReceiver
    ) -> None:
        """CertificateNewVersionCreated (and Key/Secret) carry the certificate's version."""
        emu = make_emulator(events_to=[event_receiver.url])
        async with aio_certificate_client(emu) as client:
            cert = await client.create_certificate("announced", _policy(), **NO_WAIT)
        wanted = {
            "Microsoft.KeyVault.CertificateNewVersionCreated",
            "Microsoft.KeyVault.KeyNewVersionCreated",
            "Microsoft.KeyVault.SecretNewVersionCreated",
        }
        events = await event_receiver.wait_until(
            lambda events: wanted <= {e["eventType"] for e in events}
        )
        event = next(
            e for e in events if e["eventType"] == "Microsoft.KeyVault.CertificateNewVersionCreated"
        )
        assert event["subject"] == "announced"
        assert event["data"]["ObjectName"] == "announced"
        assert event["data"]["Version"] == cert.properties.version
