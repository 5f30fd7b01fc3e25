"""Certificates through the official CertificateClient (sync and aio), plus the managed
key and secret seen through SecretClient and KeyClient, against a real emulator process."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from typing import Any

import pytest
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from azure.keyvault.certificates import (
    AdministratorContact,
    CertificateContact,
    CertificateContentType,
    CertificateOperation,
    CertificatePolicy,
    KeyVaultCertificate,
    WellKnownIssuerNames,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from tests.fixtures.emulator import (
    EmulatorProcess,
    aio_certificate_client,
    aio_key_client,
    aio_secret_client,
    certificate_client,
    key_client,
    secret_client,
)

# The SDK's poller sleeps this long between polls; the emulator needs none.
NO_WAIT = {"_polling_interval": 0}
SPKI = serialization.PublicFormat.SubjectPublicKeyInfo


def _policy(subject: str = "CN=test.example", **kw: Any) -> CertificatePolicy:
    return CertificatePolicy(issuer_name=WellKnownIssuerNames.self, subject=subject, **kw)


def _create(emu: EmulatorProcess, name: str, policy: CertificatePolicy, **kw: Any) -> Any:
    with certificate_client(emu) as client:
        return client.begin_create_certificate(name, policy, **kw, **NO_WAIT).result()


def _spki(key: Any) -> bytes:
    return bytes(key.public_bytes(serialization.Encoding.DER, SPKI))


def _cert_of(bundle: KeyVaultCertificate) -> x509.Certificate:
    assert bundle.cer is not None
    return x509.load_der_x509_certificate(bytes(bundle.cer))


def _self_signed(key: Any, cn: str = "imported.example") -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=90))
        .sign(key, hashes.SHA256())
    )


class TestCreate:
    """Self-signed certificates from a policy, and what Key Vault stores beside them."""

    def test_rsa_self_signed(self, emulator: EmulatorProcess) -> None:
        """The poller completes with a certificate shaped by the policy; ids share a version."""
        policy = _policy(
            subject="CN=web.example, O=Contoso",
            san_dns_names=["web.example", "www.web.example"],
            validity_in_months=6,
        )
        cert = _create(emulator, "rsa-self", policy, tags={"team": "a"})
        parsed = _cert_of(cert)
        assert parsed.subject == parsed.issuer
        assert parsed.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "web.example"
        san = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == ["web.example", "www.web.example"]
        assert isinstance(parsed.public_key(), rsa.RSAPublicKey)
        assert parsed.public_key().key_size == 2048  # type: ignore[union-attr]
        assert cert.properties.x509_thumbprint == hashlib.sha1(bytes(cert.cer or b"")).digest()
        assert cert.properties.tags == {"team": "a"}
        assert cert.properties.expires_on == parsed.not_valid_after_utc
        version = cert.properties.version
        assert cert.key_id is not None and cert.key_id.endswith(f"/keys/rsa-self/{version}")
        assert cert.secret_id is not None and cert.secret_id.endswith(
            f"/secrets/rsa-self/{version}"
        )
        assert cert.policy is not None and cert.policy.validity_in_months == 6
        assert cert.policy.issuer_name == "Self" and cert.policy.exportable is True
        with certificate_client(emulator) as client:
            operation = client.get_certificate_operation("rsa-self")
        assert operation.status == "completed"
        assert operation.target is not None and operation.target.endswith("/certificates/rsa-self")

    def test_secret_holds_matching_private_key(self, emulator: EmulatorProcess) -> None:
        """The managed secret is a password-less PFX whose key matches the certificate."""
        cert = _create(emulator, "pfx-secret", _policy())
        with secret_client(emulator) as client:
            secret = client.get_secret("pfx-secret")
        assert secret.properties.content_type == "application/x-pkcs12"
        assert secret.properties.managed is True
        assert secret.properties.key_id == cert.key_id
        key, leaf, _ = pkcs12.load_key_and_certificates(base64.b64decode(secret.value or ""), None)
        assert key is not None and leaf is not None
        assert _spki(key.public_key()) == _spki(_cert_of(cert).public_key())
        assert leaf.public_bytes(serialization.Encoding.DER) == bytes(cert.cer or b"")

    async def test_ec_pem_aio(self, emulator: EmulatorProcess) -> None:
        """An EC P-384 PEM certificate through the aio clients: key first, then the cert."""
        policy = _policy(
            key_type="EC",
            key_curve_name="P-384",
            content_type=CertificateContentType.pem,
        )
        async with aio_certificate_client(emulator) as client:
            cert = await client.create_certificate("ec-pem", policy, **NO_WAIT)
            assert isinstance(cert, KeyVaultCertificate)
            fetched = await client.get_certificate("ec-pem")
        assert fetched.properties.x509_thumbprint == cert.properties.x509_thumbprint
        async with aio_secret_client(emulator) as secrets:
            secret = await secrets.get_secret("ec-pem")
        pem = (secret.value or "").encode()
        assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
        key = serialization.load_pem_private_key(pem, None)
        assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp384r1"
        assert _spki(key.public_key()) == _spki(_cert_of(cert).public_key())
        async with aio_key_client(emulator) as keys:
            managed_key = await keys.get_key("ec-pem")
        assert managed_key.properties.managed is True
        assert managed_key.key_type == "EC" and managed_key.key.crv == "P-384"
        assert managed_key.id == cert.key_id

    def test_not_exportable(self, emulator: EmulatorProcess) -> None:
        """A non-exportable certificate's secret holds no private key; its key still works."""
        _create(emulator, "no-export", _policy(exportable=False, key_type="RSA", key_size=3072))
        with secret_client(emulator) as client:
            secret = client.get_secret("no-export")
        key, leaf, extra = pkcs12.load_key_and_certificates(
            base64.b64decode(secret.value or ""), None
        )
        assert key is None and [c for c in (leaf, *extra) if c]
        with key_client(emulator) as keys:
            managed = keys.get_key("no-export")
        assert managed.key_type == "RSA" and managed.properties.managed is True

    def test_versions_and_reuse_key(self, emulator: EmulatorProcess) -> None:
        """A second create makes a new version; reuse_key keeps the key pair."""
        first = _create(emulator, "renewed", _policy(reuse_key=True))
        second = _create(emulator, "renewed", _policy(reuse_key=True))
        third = _create(emulator, "renewed", _policy(reuse_key=False))
        assert len({first.properties.version, second.properties.version}) == 2
        assert _spki(_cert_of(first).public_key()) == _spki(_cert_of(second).public_key())
        assert _spki(_cert_of(third).public_key()) != _spki(_cert_of(second).public_key())
        with certificate_client(emulator) as client:
            versions = list(client.list_properties_of_certificate_versions("renewed"))
            older = client.get_certificate_version("renewed", first.properties.version or "")
            latest = client.get_certificate("renewed")
        assert [v.version for v in versions] == [
            first.properties.version,
            second.properties.version,
            third.properties.version,
        ]
        assert older.cer == first.cer and latest.cer == third.cer


class TestImport:
    """Importing PFX (with and without password) and PEM files made with cryptography."""

    def test_pfx_without_password(self, emulator: EmulatorProcess) -> None:
        """A PFX imports as-is; the certificate and secret carry it, issuer Unknown."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        cert = _self_signed(key)
        pfx = pkcs12.serialize_key_and_certificates(
            None, key, cert, None, serialization.NoEncryption()
        )
        with certificate_client(emulator) as client:
            imported = client.import_certificate("imp-pfx", pfx, tags={"src": "pfx"})
        assert bytes(imported.cer or b"") == cert.public_bytes(serialization.Encoding.DER)
        assert imported.policy is not None and imported.policy.issuer_name == "Unknown"
        assert imported.policy.subject == "CN=imported.example"
        assert imported.properties.tags == {"src": "pfx"}
        with secret_client(emulator) as client:
            value = client.get_secret("imp-pfx").value or ""
        loaded_key, _, _ = pkcs12.load_key_and_certificates(base64.b64decode(value), None)
        assert isinstance(loaded_key, rsa.RSAPrivateKey)
        assert loaded_key.private_numbers() == key.private_numbers()

    async def test_pfx_with_password_aio(self, emulator: EmulatorProcess) -> None:
        """A password-protected PFX imports with its password; the stored PFX has none."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _self_signed(key, "pw.example")
        pfx = pkcs12.serialize_key_and_certificates(
            b"n", key, cert, None, serialization.BestAvailableEncryption(b"Pa55w0rd")
        )
        async with aio_certificate_client(emulator) as client:
            imported = await client.import_certificate("imp-pw", pfx, password="Pa55w0rd")
        assert imported.policy is not None and imported.policy.key_type == "EC"
        assert imported.policy.key_curve_name == "P-256"
        async with aio_secret_client(emulator) as secrets:
            value = (await secrets.get_secret("imp-pw")).value or ""
        loaded_key, _, _ = pkcs12.load_key_and_certificates(base64.b64decode(value), None)
        assert loaded_key is not None and _spki(loaded_key.public_key()) == _spki(key.public_key())

    def test_pem_with_chain(self, emulator: EmulatorProcess) -> None:
        """A PEM with key, leaf and CA imports; the secret returns the same chain."""
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = _self_signed(ca_key, "Test CA")
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = dt.datetime.now(dt.UTC)
        leaf = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "leaf.example")]))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=30))
            .sign(ca_key, hashes.SHA256())
        )
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        pem += leaf.public_bytes(serialization.Encoding.PEM)
        pem += ca.public_bytes(serialization.Encoding.PEM)
        policy = CertificatePolicy(content_type=CertificateContentType.pem)
        with certificate_client(emulator) as client:
            imported = client.import_certificate("imp-pem", pem, policy=policy)
        assert bytes(imported.cer or b"") == leaf.public_bytes(serialization.Encoding.DER)
        with secret_client(emulator) as client:
            secret = client.get_secret("imp-pem")
        assert secret.properties.content_type == "application/x-pem-file"
        certs = x509.load_pem_x509_certificates((secret.value or "").encode())
        assert certs == [leaf, ca]

    def test_bad_imports(self, emulator: EmulatorProcess) -> None:
        """Wrong password, damaged PFX and PEM sent as PFX are 400 BadParameter."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _self_signed(key)
        pfx = pkcs12.serialize_key_and_certificates(
            None, key, cert, None, serialization.BestAvailableEncryption(b"right")
        )
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ) + cert.public_bytes(serialization.Encoding.PEM)
        cases = [
            (pfx, "wrong", "given password"),
            (b"\x30\x82junk-not-a-pfx", None, "PKCS#12"),
            (pem, None, "application/x-pem-file"),
        ]
        with certificate_client(emulator) as client:
            for data, password, message in cases:
                with pytest.raises(HttpResponseError) as info:
                    client.import_certificate("imp-bad", data, password=password)
                assert info.value.status_code == 400
                assert info.value.error is not None and info.value.error.code == "BadParameter"
                assert message in str(info.value.message)
            with pytest.raises(ResourceNotFoundError):
                client.get_certificate("imp-bad")


class TestPropertiesAndPolicy:
    """Updating properties and the policy."""

    def test_disable_carries_to_secret(self, emulator: EmulatorProcess) -> None:
        """Disabling a certificate disables its secret: reading the PFX is refused."""
        _create(emulator, "toggle", _policy())
        with certificate_client(emulator) as client:
            updated = client.update_certificate_properties(
                "toggle", enabled=False, tags={"state": "off"}
            )
        assert updated.properties.enabled is False and updated.properties.tags == {"state": "off"}
        with secret_client(emulator) as secrets, pytest.raises(HttpResponseError) as info:
            secrets.get_secret("toggle")
        assert info.value.status_code == 403
        with certificate_client(emulator) as client:
            client.update_certificate_properties("toggle", enabled=True)
        with secret_client(emulator) as secrets:
            assert secrets.get_secret("toggle").value

    def test_policy_update_applies_to_next_version(self, emulator: EmulatorProcess) -> None:
        """An updated policy is returned and shapes the next created version."""
        _create(emulator, "pol", _policy())
        with certificate_client(emulator) as client:
            current = client.get_certificate_policy("pol")
            assert current.key_size == 2048 and current.validity_in_months == 12
            change = CertificatePolicy(key_type="EC", key_curve_name="P-256", validity_in_months=3)
            updated = client.update_certificate_policy("pol", change)
            assert updated.validity_in_months == 3 and updated.key_type == "EC"
            assert updated.subject == "CN=test.example" and updated.key_size == 256
            cert = client.begin_create_certificate("pol", updated, **NO_WAIT).result()
        assert isinstance(_cert_of(cert).public_key(), ec.EllipticCurvePublicKey)


class TestContactsAndIssuers:
    """Vault-wide contacts and issuers: stored, returned, deleted."""

    def test_contacts(self, emulator: EmulatorProcess) -> None:
        """Contacts set, read back, deleted; reading them afterwards is 404."""
        contacts = [
            CertificateContact(email="ops@example.com", name="Ops", phone="555"),
            CertificateContact(email="sec@example.com"),
        ]
        with certificate_client(emulator) as client:
            client.set_contacts(contacts)
            read = client.get_contacts()
            assert [c.email for c in read] == ["ops@example.com", "sec@example.com"]
            assert read[0].name == "Ops" and read[0].phone == "555"
            deleted = client.delete_contacts()
            assert len(deleted) == 2
            with pytest.raises(ResourceNotFoundError):
                client.get_contacts()

    async def test_issuers_aio(self, emulator: EmulatorProcess) -> None:
        """Issuers CRUD; the password is stored but never returned."""
        admin = AdministratorContact(first_name="A", last_name="B", email="a@b.example")
        async with aio_certificate_client(emulator) as client:
            created = await client.create_issuer(
                "digi",
                "DigiCert",
                account_id="acct",
                password="hunter2",
                organization_id="org-1",
                admin_contacts=[admin],
            )
            assert created.provider == "DigiCert" and created.account_id == "acct"
            assert created.password is None
            assert created.admin_contacts and created.admin_contacts[0].email == "a@b.example"
            updated = await client.update_issuer("digi", provider="GlobalSign", enabled=False)
            assert updated.provider == "GlobalSign" and updated.enabled is False
            assert updated.account_id == "acct"
            names = [i.name async for i in client.list_properties_of_issuers()]
            assert "digi" in names
            await client.delete_issuer("digi")
            with pytest.raises(ResourceNotFoundError):
                await client.get_issuer("digi")

    def test_named_issuer_is_not_contacted(self, emulator: EmulatorProcess) -> None:
        """A certificate from a CA issuer fails clearly instead of waiting forever."""
        with certificate_client(emulator) as client:
            client.create_issuer("ca-issuer", "DigiCert")
            policy = CertificatePolicy(issuer_name="ca-issuer", subject="CN=ca.example")
            result = client.begin_create_certificate("from-ca", policy, **NO_WAIT).result()
            assert isinstance(result, CertificateOperation)
            assert result.status == "failed" and result.error is not None
            assert result.error.code == "NotImplemented"
            with pytest.raises(HttpResponseError) as info:
                missing = CertificatePolicy(issuer_name="nobody", subject="CN=x")
                client.begin_create_certificate("from-nobody", missing, **NO_WAIT)
            assert info.value.status_code == 400


def _sign_csr(csr_der: bytes) -> tuple[bytes, bytes]:
    """A CA's signature over a pending certificate's CSR: (leaf DER, CA DER)."""
    csr = x509.load_der_x509_csr(csr_der)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _self_signed(ca_key, "Merge CA")
    now = dt.datetime.now(dt.UTC)
    leaf = (
        x509.CertificateBuilder()
        .subject_name(csr.subject)
        .issuer_name(ca.subject)
        .public_key(csr.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=60))
        .sign(ca_key, hashes.SHA256())
    )
    der = serialization.Encoding.DER
    return leaf.public_bytes(der), ca.public_bytes(der)


class TestPendingAndMerge:
    """Issuer Unknown: a CSR waits for a merge, or is cancelled and deleted."""

    def test_merge_completes_pending(self, emulator: EmulatorProcess) -> None:
        """The CSR's signed certificate merges into a certificate with the pending key."""
        policy = CertificatePolicy(issuer_name=WellKnownIssuerNames.unknown, subject="CN=m.ex")
        with certificate_client(emulator) as client:
            operation = client.begin_create_certificate("merged", policy, **NO_WAIT).result()
            assert isinstance(operation, CertificateOperation)
            assert operation.status == "inProgress" and operation.csr
            pending = [c.name for c in client.list_properties_of_certificates(include_pending=True)]
            assert "merged" in pending
            assert "merged" not in [c.name for c in client.list_properties_of_certificates()]
            with pytest.raises(ResourceNotFoundError):
                client.get_certificate("merged")
            leaf, ca = _sign_csr(bytes(operation.csr))
            merged = client.merge_certificate("merged", [leaf, ca])
            assert bytes(merged.cer or b"") == leaf
            assert client.get_certificate_operation("merged").status == "completed"
            with pytest.raises(HttpResponseError) as info:
                client.merge_certificate("merged", [leaf])
            assert info.value.status_code == 409
        with secret_client(emulator) as secrets:
            value = secrets.get_secret("merged").value or ""
        key, cert, chain = pkcs12.load_key_and_certificates(base64.b64decode(value), None)
        assert key is not None and cert is not None and len(chain) == 1
        assert cert.public_bytes(serialization.Encoding.DER) == leaf

    def test_merge_with_foreign_key_refused(self, emulator: EmulatorProcess) -> None:
        """A certificate for another key pair cannot be merged (400)."""
        policy = CertificatePolicy(issuer_name=WellKnownIssuerNames.unknown, subject="CN=f.ex")
        other = _self_signed(ec.generate_private_key(ec.SECP256R1()))
        with certificate_client(emulator) as client:
            client.begin_create_certificate("foreign", policy, **NO_WAIT).result()
            with pytest.raises(HttpResponseError) as info:
                client.merge_certificate(
                    "foreign", [other.public_bytes(serialization.Encoding.DER)]
                )
            assert info.value.status_code == 400
            client.delete_certificate_operation("foreign")

    async def test_cancel_and_delete_aio(self, emulator: EmulatorProcess) -> None:
        """Cancelling marks the operation; deleting it makes it 404 and frees the name."""
        policy = CertificatePolicy(issuer_name=WellKnownIssuerNames.unknown, subject="CN=c.ex")
        async with aio_certificate_client(emulator) as client:
            await client.create_certificate("cancelled", policy, **NO_WAIT)
            with pytest.raises(ResourceExistsError):
                await client.create_certificate("cancelled", policy, **NO_WAIT)
            cancelled = await client.cancel_certificate_operation("cancelled")
            assert cancelled.cancellation_requested is True
            assert cancelled.status == "cancelled"
            deleted = await client.delete_certificate_operation("cancelled")
            assert deleted.id is not None and deleted.id.endswith("/certificates/cancelled/pending")
            with pytest.raises(ResourceNotFoundError):
                await client.get_certificate_operation("cancelled")
