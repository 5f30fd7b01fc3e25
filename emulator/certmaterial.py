"""X.509 material behind the emulator's certificates.

Pure functions over `cryptography`: generate the key a policy asks for, build a
self-signed certificate (or a CSR for issuer "Unknown"), turn a certificate and its key
into the secret value Key Vault stores (PFX as base64 without password, or PEM with the
private key first), and compute `x5t` and `cer`. Reading an imported PFX or PEM back
lives in `emulator.certimport`.

No function here logs, and no error message or repr carries key bytes: the material
only leaves through `secret_value()` and `private_key`, which the caller stores.
"""

from __future__ import annotations

import base64
import calendar
import datetime as dt
import hashlib
import ipaddress
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

PKCS12 = "application/x-pkcs12"
PEM = "application/x-pem-file"
CONTENT_TYPES = (PKCS12, PEM)

RSA_KEY_TYPES = ("RSA", "RSA-HSM")
EC_KEY_TYPES = ("EC", "EC-HSM")
RSA_KEY_SIZES = (2048, 3072, 4096)
CURVES: dict[str, ec.EllipticCurve] = {
    "P-256": ec.SECP256R1(),
    "P-384": ec.SECP384R1(),
    "P-521": ec.SECP521R1(),
    "P-256K": ec.SECP256K1(),
}
# Key Vault infers the curve from key_size when only the size is given.
CURVE_BY_SIZE = {256: "P-256", 384: "P-384", 521: "P-521"}
_CURVE_BY_OPENSSL_NAME = {
    "secp256r1": "P-256",
    "secp384r1": "P-384",
    "secp521r1": "P-521",
    "secp256k1": "P-256K",
}

# Key Vault's key usage names, in the order the extension lists its bits.
KEY_USAGES = (
    "digitalSignature",
    "nonRepudiation",
    "keyEncipherment",
    "dataEncipherment",
    "keyAgreement",
    "keyCertSign",
    "cRLSign",
    "encipherOnly",
    "decipherOnly",
)
SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH.dotted_string
CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH.dotted_string
# Microsoft's OID for a user principal name inside an otherName SAN.
UPN_OID = ObjectIdentifier("1.3.6.1.4.1.311.20.2.3")
_OID_TEXT = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")

# Short names accepted in a policy subject, as Windows' X.500 strings spell them.
_NAME_OIDS: dict[str, ObjectIdentifier] = {
    "CN": NameOID.COMMON_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "L": NameOID.LOCALITY_NAME,
    "S": NameOID.STATE_OR_PROVINCE_NAME,
    "ST": NameOID.STATE_OR_PROVINCE_NAME,
    "C": NameOID.COUNTRY_NAME,
    "E": NameOID.EMAIL_ADDRESS,
    "EMAIL": NameOID.EMAIL_ADDRESS,
    "EMAILADDRESS": NameOID.EMAIL_ADDRESS,
    "DC": NameOID.DOMAIN_COMPONENT,
    "STREET": NameOID.STREET_ADDRESS,
    "SERIALNUMBER": NameOID.SERIAL_NUMBER,
    "G": NameOID.GIVEN_NAME,
    "GIVENNAME": NameOID.GIVEN_NAME,
    "SN": NameOID.SURNAME,
    "T": NameOID.TITLE,
    "TITLE": NameOID.TITLE,
    "POSTALCODE": NameOID.POSTAL_CODE,
}
_NAME_LABELS: dict[ObjectIdentifier, str] = {
    NameOID.COMMON_NAME: "CN",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.LOCALITY_NAME: "L",
    NameOID.STATE_OR_PROVINCE_NAME: "S",
    NameOID.COUNTRY_NAME: "C",
    NameOID.EMAIL_ADDRESS: "E",
    NameOID.DOMAIN_COMPONENT: "DC",
    NameOID.STREET_ADDRESS: "STREET",
    NameOID.SERIAL_NUMBER: "SERIALNUMBER",
    NameOID.GIVEN_NAME: "G",
    NameOID.SURNAME: "SN",
    NameOID.TITLE: "T",
    NameOID.POSTAL_CODE: "PostalCode",
}

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class CertMaterialError(ValueError):
    """Input that cannot become certificate material; the message names the input."""


@dataclass(frozen=True)
class KeySpec:
    """The key a policy asks for (`key_props`), already validated."""

    kty: str = "RSA"
    key_size: int | None = 2048
    curve: str | None = None
    exportable: bool = True
    reuse_key: bool = False


@dataclass(frozen=True)
class SubjectAltNames:
    """Subject alternative names of a policy (`x509_props.sans`)."""

    dns_names: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    upns: tuple[str, ...] = ()
    uris: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.dns_names or self.emails or self.upns or self.uris or self.ip_addresses)


@dataclass(frozen=True)
class X509Spec:
    """The certificate a policy asks for (`x509_props`), already validated."""

    subject: str = ""
    sans: SubjectAltNames = field(default_factory=SubjectAltNames)
    ekus: tuple[str, ...] = (SERVER_AUTH, CLIENT_AUTH)
    key_usage: tuple[str, ...] = ("digitalSignature", "keyEncipherment")
    validity_months: int = 12


def generate_private_key(spec: KeySpec) -> PrivateKey:
    """A fresh key of the type, size or curve the spec names."""
    if spec.kty in RSA_KEY_TYPES:
        size = spec.key_size or 2048
        if size not in RSA_KEY_SIZES:
            raise CertMaterialError(f"key_size {size} is not one of {RSA_KEY_SIZES} for {spec.kty}")
        return rsa.generate_private_key(public_exponent=65537, key_size=size)
    if spec.kty in EC_KEY_TYPES:
        curve = spec.curve or "P-256"
        if curve not in CURVES:
            raise CertMaterialError(f"curve {curve!r} is not one of {sorted(CURVES)}")
        return ec.generate_private_key(CURVES[curve])
    raise CertMaterialError(f"kty {spec.kty!r} is not one of {RSA_KEY_TYPES + EC_KEY_TYPES}")


def describe_key(key: PrivateKey) -> tuple[str, int, str | None]:
    """(kty, key_size, curve) of a key, as a policy's key_props would state them."""
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size not in RSA_KEY_SIZES:
            raise CertMaterialError(
                f"RSA key size {key.key_size} is not supported; Key Vault certificates use "
                f"{', '.join(map(str, RSA_KEY_SIZES))} bits"
            )
        return "RSA", key.key_size, None
    curve = _CURVE_BY_OPENSSL_NAME.get(key.curve.name)
    if curve is None:
        raise CertMaterialError(f"EC curve {key.curve.name} is not supported by Key Vault")
    return "EC", key.curve.key_size, curve


def parse_subject(subject: str) -> x509.Name:
    """A policy subject ("CN=a, O=b") as an X.509 name, in the order written."""
    attributes: list[x509.NameAttribute[str]] = []
    for part in _split_subject(subject):
        label, sep, value = part.partition("=")
        label, value = label.strip(), value.strip()
        if not sep or not label:
            raise CertMaterialError(f"subject part {part!r} is not of the form NAME=value")
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1].replace('""', '"')
        oid = _NAME_OIDS.get(label.upper())
        if oid is None and _OID_TEXT.match(label):
            oid = ObjectIdentifier(label)
        if oid is None:
            raise CertMaterialError(f"subject attribute {label!r} is not known")
        try:
            attributes.append(x509.NameAttribute(oid, value))
        except ValueError as exc:
            raise CertMaterialError(f"subject attribute {label}={value!r}: {exc}") from None
    return x509.Name(attributes)


def _split_subject(subject: str) -> list[str]:
    """Split on commas or semicolons outside double quotes; empty parts are dropped."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in subject:
        if char == '"':
            quoted = not quoted
        if char in ",;" and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if quoted:
        raise CertMaterialError("subject has an unclosed double quote")
    parts.append("".join(current))
    return [p for p in (p.strip() for p in parts) if p]


def format_name(name: x509.Name) -> str:
    """An X.509 name as Key Vault shows a subject: "CN=a, O=b", in encoded order."""
    parts = []
    for attribute in name:
        label = _NAME_LABELS.get(attribute.oid, attribute.oid.dotted_string)
        value = attribute.value if isinstance(attribute.value, str) else attribute.value.hex()
        if any(c in value for c in ',;"=+'):
            value = '"' + value.replace('"', '""') + '"'
        parts.append(f"{label}={value}")
    return ", ".join(parts)


def add_months(moment: dt.datetime, months: int) -> dt.datetime:
    """The same day and time `months` later; the day is clamped to the month's end."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def _general_names(sans: SubjectAltNames) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in sans.dns_names]
    names += [x509.RFC822Name(e) for e in sans.emails]
    names += [x509.OtherName(UPN_OID, _der_utf8(u)) for u in sans.upns]
    names += [x509.UniformResourceIdentifier(u) for u in sans.uris]
    for text in sans.ip_addresses:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(text)))
        except ValueError:
            raise CertMaterialError(
                f"sans ipAddresses entry {text!r} is not an IP address"
            ) from None
    return names


def _der_utf8(text: str) -> bytes:
    """DER encoding of a UTF8String, the value type of a UPN otherName."""
    data = text.encode()
    length = len(data)
    if length < 0x80:
        return bytes([0x0C, length]) + data
    size = (length.bit_length() + 7) // 8
    return bytes([0x0C, 0x80 | size]) + length.to_bytes(size, "big") + data


def _key_usage(names: Sequence[str]) -> x509.KeyUsage:
    unknown = [n for n in names if n not in KEY_USAGES]
    if unknown:
        raise CertMaterialError(f"key_usage {unknown} not among {list(KEY_USAGES)}")
    flags = {name: name in names for name in KEY_USAGES}
    agreement = flags["keyAgreement"]
    return x509.KeyUsage(
        digital_signature=flags["digitalSignature"],
        content_commitment=flags["nonRepudiation"],
        key_encipherment=flags["keyEncipherment"],
        data_encipherment=flags["dataEncipherment"],
        key_agreement=agreement,
        key_cert_sign=flags["keyCertSign"],
        crl_sign=flags["cRLSign"],
        # The extension only allows these two together with keyAgreement.
        encipher_only=agreement and flags["encipherOnly"],
        decipher_only=agreement and flags["decipherOnly"],
    )


def _signature_hash(key: PrivateKey) -> hashes.SHA256 | hashes.SHA384 | hashes.SHA512:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.key_size > 384:
            return hashes.SHA512()
        if key.curve.key_size > 256:
            return hashes.SHA384()
    return hashes.SHA256()


def _extensions(spec: X509Spec, key: PrivateKey) -> list[tuple[x509.ExtensionType, bool]]:
    name = parse_subject(spec.subject)
    if not len(name) and not spec.sans:
        raise CertMaterialError(
            "x509_props needs a subject or at least one subject alternative name"
        )
    for eku in spec.ekus:
        if not _OID_TEXT.match(eku):
            raise CertMaterialError(f"ekus entry {eku!r} is not a dotted OID")
    extensions: list[tuple[x509.ExtensionType, bool]] = []
    if spec.sans:
        # RFC 5280: the SAN extension is critical when the subject is empty.
        extensions.append((x509.SubjectAlternativeName(_general_names(spec.sans)), not len(name)))
    if spec.key_usage:
        extensions.append((_key_usage(spec.key_usage), True))
    if spec.ekus:
        eku_oids = [ObjectIdentifier(e) for e in spec.ekus]
        extensions.append((x509.ExtendedKeyUsage(eku_oids), False))
    extensions.append((x509.BasicConstraints(ca=False, path_length=None), True))
    extensions.append((x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False))
    return extensions


def build_self_signed(key: PrivateKey, spec: X509Spec, now: dt.datetime) -> x509.Certificate:
    """A certificate for `spec`, signed by its own key, valid from `now` for the months asked."""
    if spec.validity_months < 1:
        raise CertMaterialError(f"validity_months {spec.validity_months} must be at least 1")
    name = parse_subject(spec.subject)
    not_before = now.astimezone(dt.UTC).replace(microsecond=0)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        # 159 random bits: positive, at most 20 octets, unpredictable (RFC 5280 4.1.2.2).
        .serial_number(secrets.randbits(159) | 1)
        .not_valid_before(not_before)
        .not_valid_after(add_months(not_before, spec.validity_months))
    )
    for extension, critical in _extensions(spec, key):
        builder = builder.add_extension(extension, critical=critical)
    builder = builder.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
    )
    return builder.sign(key, _signature_hash(key))


def build_csr(key: PrivateKey, spec: X509Spec) -> x509.CertificateSigningRequest:
    """The signing request Key Vault shows for a pending certificate (issuer "Unknown")."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(parse_subject(spec.subject))
    for extension, critical in _extensions(spec, key):
        if not isinstance(extension, x509.SubjectKeyIdentifier):
            builder = builder.add_extension(extension, critical=critical)
    return builder.sign(key, _signature_hash(key))


def thumbprint(cert: x509.Certificate) -> str:
    """x5t: SHA-1 of the DER certificate, base64url without padding."""
    digest = hashlib.sha1(cert.public_bytes(serialization.Encoding.DER)).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def public_keys_match(key: PrivateKey, cert: x509.Certificate) -> bool:
    """Whether a certificate carries the public half of `key`."""
    fmt = serialization.PublicFormat.SubjectPublicKeyInfo
    ours = key.public_key().public_bytes(serialization.Encoding.DER, fmt)
    return ours == cert.public_key().public_bytes(serialization.Encoding.DER, fmt)


@dataclass(frozen=True, repr=False)
class CertificateMaterial:
    """A leaf certificate, the certificates that follow it, and its private key.

    The repr shows the subject and thumbprint only: the private key never leaves through it.
    """

    private_key: PrivateKey
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()

    def __repr__(self) -> str:
        subject = format_name(self.certificate.subject)
        return f"CertificateMaterial(subject={subject!r}, x5t={self.x5t!r})"

    @property
    def cer(self) -> bytes:
        """The leaf certificate, DER-encoded (the bundle's `cer`, base64 on the wire)."""
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @property
    def x5t(self) -> str:
        return thumbprint(self.certificate)

    def secret_value(self, content_type: str, *, include_private_key: bool = True) -> str:
        """The value of the managed secret: base64 PFX (no password) or PEM, key first.

        A certificate whose key is not exportable stores only the certificates.
        """
        key = self.private_key if include_private_key else None
        if content_type == PKCS12:
            pfx = pkcs12.serialize_key_and_certificates(
                None,
                key,
                self.certificate,
                list(self.chain) or None,
                serialization.NoEncryption(),
            )
            return base64.b64encode(pfx).decode()
        if content_type == PEM:
            pem = b""
            if key is not None:
                pem += key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            for cert in (self.certificate, *self.chain):
                pem += cert.public_bytes(serialization.Encoding.PEM)
            return pem.decode()
        raise CertMaterialError(f"contentType {content_type!r} is not one of {CONTENT_TYPES}")
