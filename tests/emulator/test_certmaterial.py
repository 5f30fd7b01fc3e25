"""Certificate material: key generation, self-signed build, secret values, import, policy."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from emulator import certimport, certpolicy
from emulator.certmaterial import (
    PEM,
    PKCS12,
    UPN_OID,
    CertificateMaterial,
    CertMaterialError,
    KeySpec,
    SubjectAltNames,
    X509Spec,
    add_months,
    build_csr,
    build_self_signed,
    format_name,
    generate_private_key,
    parse_subject,
    public_keys_match,
    thumbprint,
)

NOW = dt.datetime(2025, 1, 31, 12, 0, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    key = generate_private_key(KeySpec())
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


@pytest.fixture(scope="module")
def rsa_material(rsa_key: rsa.RSAPrivateKey) -> CertificateMaterial:
    spec = X509Spec(subject="CN=unit.example, O=Contoso", sans=SubjectAltNames(dns_names=("a.x",)))
    return CertificateMaterial(rsa_key, build_self_signed(rsa_key, spec, NOW))


def _ca_chain() -> tuple[CertificateMaterial, ec.EllipticCurvePrivateKey]:
    """A leaf signed by a separate CA, so imports carry a real two-certificate chain."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Unit CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(7)
        .not_valid_before(NOW)
        .not_valid_after(NOW + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP384R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "leaf")]))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(8)
        .not_valid_before(NOW)
        .not_valid_after(NOW + dt.timedelta(days=30))
        .sign(ca_key, hashes.SHA256())
    )
    return CertificateMaterial(leaf_key, leaf, (ca,)), leaf_key


class TestKeyGeneration:
    """Keys of the types, sizes and curves Key Vault certificates use."""

    @pytest.mark.parametrize("size", [2048, 3072])
    def test_rsa_size(self, size: int) -> None:
        """An RSA spec yields an RSA key of exactly the size asked."""
        key = generate_private_key(KeySpec(kty="RSA", key_size=size))
        assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == size

    @pytest.mark.parametrize(
        ("curve", "bits"), [("P-256", 256), ("P-384", 384), ("P-521", 521), ("P-256K", 256)]
    )
    def test_ec_curve(self, curve: str, bits: int) -> None:
        """An EC spec yields a key on the named curve."""
        key = generate_private_key(KeySpec(kty="EC-HSM", key_size=None, curve=curve))
        assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size == bits

    def test_bad_size_named(self) -> None:
        """An RSA size Key Vault does not offer is refused, naming the size."""
        with pytest.raises(CertMaterialError, match="1024"):
            generate_private_key(KeySpec(kty="RSA", key_size=1024))

    def test_bad_kty_named(self) -> None:
        """A symmetric key type cannot back a certificate."""
        with pytest.raises(CertMaterialError, match="oct"):
            generate_private_key(KeySpec(kty="oct"))


class TestSubject:
    """Policy subjects in Key Vault's X.500 string form."""

    def test_order_and_quotes(self) -> None:
        """Attributes keep the order written; quoted values may contain commas."""
        name = parse_subject('CN=web, O="Contoso, Ltd", S=WA; C=US')
        labels = [(a.oid, a.value) for a in name]
        assert labels == [
            (NameOID.COMMON_NAME, "web"),
            (NameOID.ORGANIZATION_NAME, "Contoso, Ltd"),
            (NameOID.STATE_OR_PROVINCE_NAME, "WA"),
            (NameOID.COUNTRY_NAME, "US"),
        ]
        assert format_name(name) == 'CN=web, O="Contoso, Ltd", S=WA, C=US'

    def test_oid_label(self) -> None:
        """A dotted OID works as an attribute label."""
        name = parse_subject("2.5.4.3=by-oid")
        assert name.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "by-oid"

    @pytest.mark.parametrize(
        ("subject", "fragment"),
        [("XYZ=1", "XYZ"), ("CN", "NAME=value"), ('CN="open', "quote"), ("C=USA", "C=")],
    )
    def test_bad_subject_named(self, subject: str, fragment: str) -> None:
        """Each malformed subject gets an error that points at the bad part."""
        with pytest.raises(CertMaterialError, match=fragment):
            parse_subject(subject)


class TestSelfSigned:
    """The self-signed certificate built from a policy's x509_props."""

    def test_fields_follow_spec(self, rsa_material: CertificateMaterial) -> None:
        """Subject, issuer, validity, SANs, key usage and EKUs are what the spec asked."""
        cert = rsa_material.certificate
        assert cert.subject == cert.issuer
        assert cert.not_valid_before_utc == NOW
        # 12 months from 31 January clamps to the last day of next January's month.
        assert cert.not_valid_after_utc == dt.datetime(2026, 1, 31, 12, tzinfo=dt.UTC)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == ["a.x"]
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        assert usage.digital_signature and usage.key_encipherment and not usage.key_cert_sign
        ekus = list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
        assert ekus == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
        assert public_keys_match(rsa_material.private_key, cert)

    def test_signature_verifies(self, rsa_material: CertificateMaterial) -> None:
        """The certificate's signature verifies with its own public key."""
        cert = rsa_material.certificate
        public = cert.public_key()
        assert isinstance(public, rsa.RSAPublicKey)
        assert cert.signature_hash_algorithm is not None
        public.verify(
            cert.signature,
            cert.tbs_certificate_bytes,
            padding.PKCS1v15(),
            cert.signature_hash_algorithm,
        )

    def test_sans_only_all_kinds(self) -> None:
        """With no subject, every SAN kind lands in a critical SAN extension."""
        key = generate_private_key(KeySpec(kty="EC", key_size=None, curve="P-384"))
        sans = SubjectAltNames(
            dns_names=("d.example",),
            emails=("m@example.com",),
            upns=("user@corp.example",),
            uris=("https://u.example/x",),
            ip_addresses=("10.1.2.3", "::1"),
        )
        cert = build_self_signed(key, X509Spec(sans=sans, key_usage=("digitalSignature",)), NOW)
        extension = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        assert extension.critical and len(cert.subject) == 0
        assert certimport.x509_spec_of(cert).sans == sans
        assert isinstance(cert.signature_hash_algorithm, hashes.SHA384)
        upn = extension.value.get_values_for_type(x509.OtherName)[0]
        assert upn.type_id == UPN_OID

    def test_needs_subject_or_san(self) -> None:
        """A spec with neither subject nor SAN is refused."""
        key = generate_private_key(KeySpec(kty="EC", key_size=None))
        with pytest.raises(CertMaterialError, match="subject"):
            build_self_signed(key, X509Spec(), NOW)

    def test_bad_eku_and_ip_named(self, rsa_key: rsa.RSAPrivateKey) -> None:
        """A non-OID EKU and a non-IP address are refused by name."""
        with pytest.raises(CertMaterialError, match="serverAuth"):
            build_self_signed(rsa_key, X509Spec(subject="CN=x", ekus=("serverAuth",)), NOW)
        sans = SubjectAltNames(ip_addresses=("not-an-ip",))
        with pytest.raises(CertMaterialError, match="not-an-ip"):
            build_self_signed(rsa_key, X509Spec(subject="CN=x", sans=sans), NOW)

    def test_csr(self, rsa_key: rsa.RSAPrivateKey) -> None:
        """The CSR for a pending certificate is signed and carries the subject."""
        csr = build_csr(rsa_key, X509Spec(subject="CN=pending"))
        assert csr.is_signature_valid
        assert csr.subject.rfc4514_string() == "CN=pending"

    def test_add_months_clamps(self) -> None:
        """Adding months clamps the day to the target month's length."""
        assert add_months(NOW, 1).date() == dt.date(2025, 2, 28)
        assert add_months(NOW, 13).date() == dt.date(2026, 2, 28)
        assert add_months(NOW, 0) == NOW


class TestSecretValue:
    """The managed secret's value: PFX base64 or PEM, as Key Vault stores it."""

    def test_pkcs12_roundtrip(self, rsa_material: CertificateMaterial) -> None:
        """The PFX opens without password and holds the same key and certificate."""
        pfx = base64.b64decode(rsa_material.secret_value(PKCS12))
        key, cert, extra = pkcs12.load_key_and_certificates(pfx, None)
        assert cert == rsa_material.certificate and not extra
        assert isinstance(key, rsa.RSAPrivateKey)
        assert key.private_numbers() == rsa_material.private_key.private_numbers()

    def test_pem_key_first(self, rsa_material: CertificateMaterial) -> None:
        """The PEM starts with an unencrypted PKCS#8 key, then the certificate."""
        pem = rsa_material.secret_value(PEM)
        assert pem.startswith("-----BEGIN PRIVATE KEY-----")
        assert pem.index("BEGIN CERTIFICATE") > pem.index("END PRIVATE KEY")
        cert = x509.load_pem_x509_certificate(pem[pem.index("-----BEGIN CERT") :].encode())
        assert cert == rsa_material.certificate

    def test_without_private_key(self, rsa_material: CertificateMaterial) -> None:
        """A non-exportable certificate's secret holds certificates only."""
        pem = rsa_material.secret_value(PEM, include_private_key=False)
        assert "PRIVATE KEY" not in pem and "BEGIN CERTIFICATE" in pem
        pfx = base64.b64decode(rsa_material.secret_value(PKCS12, include_private_key=False))
        key, cert, extra = pkcs12.load_key_and_certificates(pfx, None)
        # Without a key, OpenSSL files the certificate among the extra certificates.
        assert key is None and [c for c in (cert, *extra) if c] == [rsa_material.certificate]

    def test_unknown_content_type(self, rsa_material: CertificateMaterial) -> None:
        """Any content type besides PFX and PEM is refused by name."""
        with pytest.raises(CertMaterialError, match="text/plain"):
            rsa_material.secret_value("text/plain")

    def test_x5t_and_cer(self, rsa_material: CertificateMaterial) -> None:
        """x5t is the base64url SHA-1 of `cer`, which is the DER certificate."""
        der = rsa_material.certificate.public_bytes(serialization.Encoding.DER)
        assert rsa_material.cer == der
        expected = base64.urlsafe_b64encode(hashlib.sha1(der).digest()).rstrip(b"=").decode()
        assert rsa_material.x5t == expected == thumbprint(rsa_material.certificate)
        assert "=" not in rsa_material.x5t and len(rsa_material.x5t) == 27

    def test_repr_hides_key(self, rsa_material: CertificateMaterial) -> None:
        """repr() names the subject and thumbprint, never the private key."""
        text = repr(rsa_material)
        assert "unit.example" in text and rsa_material.x5t in text
        number = str(rsa_material.private_key.private_numbers().d)
        assert number[:20] not in text and "PRIVATE" not in text


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class TestImport:
    """Reading an import request's PFX or PEM."""

    def test_pfx_with_password_and_chain(self) -> None:
        """A password-protected PFX with a CA certificate yields leaf first, CA after."""
        material, key = _ca_chain()
        pfx = pkcs12.serialize_key_and_certificates(
            b"friendly",
            key,
            material.certificate,
            list(material.chain),
            serialization.BestAvailableEncryption(b"s3cret"),
        )
        loaded = certimport.load_import(_b64(pfx), "s3cret", PKCS12)
        assert loaded.certificate == material.certificate and loaded.chain == material.chain
        assert public_keys_match(loaded.private_key, loaded.certificate)

    def test_pfx_wrong_or_missing_password(self) -> None:
        """A wrong or missing password is told apart from damaged data."""
        material, key = _ca_chain()
        pfx = pkcs12.serialize_key_and_certificates(
            None, key, material.certificate, None, serialization.BestAvailableEncryption(b"pw")
        )
        with pytest.raises(CertMaterialError, match="given password"):
            certimport.load_import(_b64(pfx), "wrong", PKCS12)
        with pytest.raises(CertMaterialError, match="give its password"):
            certimport.load_import(_b64(pfx), None, PKCS12)
        with pytest.raises(CertMaterialError, match="not valid PKCS#12"):
            certimport.load_import(_b64(b"\x30\x03\x02\x01\x03junk"), None, PKCS12)
        with pytest.raises(CertMaterialError, match="base64"):
            certimport.load_import("%%%not-base64", None, PKCS12)

    def test_unsupported_key_size(self) -> None:
        """An RSA-1024 PFX is refused by size before anything is stored."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
        cert = build_self_signed(key, X509Spec(subject="CN=small"), NOW)
        pfx = pkcs12.serialize_key_and_certificates(
            None, key, cert, None, serialization.NoEncryption()
        )
        with pytest.raises(CertMaterialError, match="1024"):
            certimport.load_import(_b64(pfx), None, PKCS12)

    def test_pfx_without_key(self, rsa_material: CertificateMaterial) -> None:
        """A PFX with only a certificate cannot be imported: Key Vault needs the key."""
        value = rsa_material.secret_value(PKCS12, include_private_key=False)
        with pytest.raises(CertMaterialError, match="no private key"):
            certimport.load_import(value, None, PKCS12)

    def test_pem_any_order_encrypted_key(self) -> None:
        """PEM with the CA first and an encrypted key last still finds the leaf."""
        material, key = _ca_chain()
        pem = material.chain[0].public_bytes(serialization.Encoding.PEM)
        pem += material.certificate.public_bytes(serialization.Encoding.PEM)
        pem += key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pw"),
        )
        loaded = certimport.load_import(_b64(pem), "pw", PEM)
        assert loaded.certificate == material.certificate and loaded.chain == material.chain
        # Raw PEM text (not base64) is accepted too.
        assert certimport.load_import(pem.decode(), "pw", PEM).x5t == material.x5t
        with pytest.raises(CertMaterialError, match="given password"):
            certimport.load_import(_b64(pem), "nope", PEM)
        with pytest.raises(CertMaterialError, match="encrypted"):
            certimport.load_import(_b64(pem), None, PEM)

    def test_pem_problems_named(self, rsa_material: CertificateMaterial) -> None:
        """PEM without key, with a foreign key, or sent as PFX each get their own message."""
        cert_only = rsa_material.secret_value(PEM, include_private_key=False)
        with pytest.raises(CertMaterialError, match="no private key"):
            certimport.load_import(cert_only, None, PEM)
        other = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        with pytest.raises(CertMaterialError, match="matches its private key"):
            certimport.load_import(cert_only + other.decode(), None, PEM)
        full = rsa_material.secret_value(PEM)
        with pytest.raises(CertMaterialError, match="application/x-pem-file"):
            certimport.load_import(_b64(full.encode()), None, PKCS12)
        with pytest.raises(CertMaterialError, match="not PEM"):
            certimport.load_import(rsa_material.secret_value(PKCS12), None, PEM)

    def test_x509_spec_of_import(self, rsa_material: CertificateMaterial) -> None:
        """An imported certificate's x509_props are read back from its extensions."""
        spec = certimport.x509_spec_of(rsa_material.certificate)
        assert spec.subject == "CN=unit.example, O=Contoso"
        assert spec.sans.dns_names == ("a.x",)
        assert spec.key_usage == ("digitalSignature", "keyEncipherment")
        assert spec.validity_months == 12

    def test_merge_x5c(self, rsa_material: CertificateMaterial) -> None:
        """DER blobs of a merge parse; a broken one is named by index."""
        certs = certimport.load_certificates_der([rsa_material.cer])
        assert certs == [rsa_material.certificate]
        with pytest.raises(CertMaterialError, match=r"x5c\[1\]"):
            certimport.load_certificates_der([rsa_material.cer, b"junk"])


class TestPolicy:
    """Policy validation, defaults and updates."""

    def test_defaults(self) -> None:
        """A policy with just a subject gets Key Vault's defaults filled in."""
        policy = certpolicy.normalize_policy({"x509_props": {"subject": "CN=d"}}, "create")
        assert policy["key_props"] == {
            "exportable": True,
            "kty": "RSA",
            "key_size": 2048,
            "reuse_key": False,
        }
        assert policy["secret_props"] == {"contentType": PKCS12}
        assert policy["x509_props"]["validity_months"] == 12
        assert policy["issuer"] == {"name": "Self"}
        assert policy["lifetime_actions"][0]["action"]["action_type"] == "AutoRenew"

    def test_ec_curve_from_size(self) -> None:
        """EC with only key_size gets the matching curve; a mismatch is refused."""
        policy = certpolicy.normalize_policy(
            {"key_props": {"kty": "ec", "key_size": 384}, "x509_props": {"subject": "CN=e"}},
            "create",
        )
        assert policy["key_props"]["crv"] == "P-384" and policy["key_props"]["kty"] == "EC"
        assert certpolicy.x509_spec(policy).key_usage == ("digitalSignature",)
        with pytest.raises(CertMaterialError, match="does not match"):
            certpolicy.normalize_policy(
                {"key_props": {"kty": "EC", "key_size": 256, "crv": "P-521"}}, "create"
            )

    @pytest.mark.parametrize(
        ("policy", "field"),
        [
            ("nope", "policy must be an object"),
            ({"key_props": {"kty": "oct"}}, "policy.key_props.kty"),
            ({"key_props": {"key_size": 1024}}, "policy.key_props.key_size"),
            ({"key_props": {"exportable": "yes"}}, "policy.key_props.exportable"),
            ({"secret_props": {"contentType": "text/plain"}}, "contentType"),
            ({"x509_props": {"subject": "CN=x", "validity_months": 0}}, "validity_months"),
            ({"x509_props": {"subject": "CN=x", "key_usage": ["sign"]}}, "key_usage"),
            ({"x509_props": {"subject": "CN=x", "sans": {"dns_names": "a"}}}, "sans.dns_names"),
            ({"x509_props": {}}, "subject or at least one"),
            (
                {"x509_props": {"subject": "CN=x"}, "lifetime_actions": [{"trigger": {}}]},
                r"lifetime_actions\[0\].trigger",
            ),
            (
                {
                    "x509_props": {"subject": "CN=x"},
                    "lifetime_actions": [
                        {"trigger": {"lifetime_percentage": 50}, "action": {"action_type": "X"}}
                    ],
                },
                "action_type",
            ),
        ],
    )
    def test_bad_policy_named(self, policy: Any, field: str) -> None:
        """Each invalid field is refused with its path in the message."""
        with pytest.raises(CertMaterialError, match=field):
            certpolicy.normalize_policy(policy, "create")

    def test_import_defaults(self) -> None:
        """An import without policy is issuer Unknown and only emails contacts."""
        policy = certpolicy.normalize_policy(None, "import")
        assert policy["issuer"]["name"] == "Unknown"
        assert policy["lifetime_actions"][0]["action"]["action_type"] == "EmailContacts"

    def test_merge_update(self) -> None:
        """An update changes only the fields it carries, and switching kty drops the size."""
        base = certpolicy.normalize_policy(
            {"x509_props": {"subject": "CN=m", "sans": {"dns_names": ["m.example"]}}}, "create"
        )
        merged = certpolicy.merge_policy(
            base,
            {"key_props": {"kty": "EC"}, "x509_props": {"validity_months": 24, "sans": {}}},
        )
        assert merged["key_props"]["crv"] == "P-256"
        assert merged["x509_props"]["subject"] == "CN=m"
        assert merged["x509_props"]["sans"] == {"dns_names": ["m.example"]}
        assert merged["x509_props"]["validity_months"] == 24
        with pytest.raises(CertMaterialError, match="validity_months"):
            certpolicy.merge_policy(base, {"x509_props": {"validity_months": -1}})

    def test_key_ops(self) -> None:
        """The managed key's operations follow the key usage and key type."""
        rsa_policy = certpolicy.normalize_policy({"x509_props": {"subject": "CN=o"}}, "create")
        assert set(certpolicy.key_ops_for(rsa_policy)) == {
            "sign",
            "verify",
            "wrapKey",
            "unwrapKey",
            "encrypt",
            "decrypt",
        }
        ec_policy = certpolicy.normalize_policy(
            {"key_props": {"kty": "EC"}, "x509_props": {"subject": "CN=o"}}, "create"
        )
        assert certpolicy.key_ops_for(ec_policy) == ["sign", "verify"]
