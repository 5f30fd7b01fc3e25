"""Reading certificate material that a caller brings: PFX, PEM, or a merge's x5c.

The inverse of `emulator.certmaterial`: an import request's `value` becomes a
`CertificateMaterial` (leaf first, then the rest of the chain), and a certificate's
extensions become the `x509_props` Key Vault reports for it. Errors name the input and
say what is wrong with it, never what the key holds.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from emulator.certmaterial import (
    CONTENT_TYPES,
    KEY_USAGES,
    PEM,
    UPN_OID,
    CertificateMaterial,
    CertMaterialError,
    PrivateKey,
    SubjectAltNames,
    X509Spec,
    describe_key,
    format_name,
    public_keys_match,
)


def months_between(start: dt.datetime, end: dt.datetime) -> int:
    """Whole months from start to end, rounded to the nearest (at least 1)."""
    months = (end.year - start.year) * 12 + (end.month - start.month)
    if end.day - start.day > 15:
        months += 1
    elif start.day - end.day > 15:
        months -= 1
    return max(months, 1)


def _read_der_utf8(data: bytes) -> str | None:
    if len(data) < 2 or data[0] != 0x0C:
        return None
    if data[1] < 0x80:
        return data[2 : 2 + data[1]].decode(errors="replace")
    size = data[1] & 0x7F
    length = int.from_bytes(data[2 : 2 + size], "big")
    return data[2 + size : 2 + size + length].decode(errors="replace")


def x509_spec_of(cert: x509.Certificate) -> X509Spec:
    """The x509_props a certificate satisfies, as Key Vault reports them for an import."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = x509.SubjectAlternativeName([])
    upns = []
    for other in san.get_values_for_type(x509.OtherName):
        if other.type_id == UPN_OID and (text := _read_der_utf8(other.value)) is not None:
            upns.append(text)
    sans = SubjectAltNames(
        dns_names=tuple(san.get_values_for_type(x509.DNSName)),
        emails=tuple(san.get_values_for_type(x509.RFC822Name)),
        upns=tuple(upns),
        uris=tuple(san.get_values_for_type(x509.UniformResourceIdentifier)),
        ip_addresses=tuple(str(a) for a in san.get_values_for_type(x509.IPAddress)),
    )
    try:
        ekus = tuple(
            o.dotted_string
            for o in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        )
    except x509.ExtensionNotFound:
        ekus = ()
    return X509Spec(
        subject=format_name(cert.subject),
        sans=sans,
        ekus=ekus,
        key_usage=_key_usage_names(cert),
        validity_months=months_between(cert.not_valid_before_utc, cert.not_valid_after_utc),
    )


def _key_usage_names(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return ()
    bits = [
        usage.digital_signature,
        usage.content_commitment,
        usage.key_encipherment,
        usage.data_encipherment,
        usage.key_agreement,
        usage.key_cert_sign,
        usage.crl_sign,
        usage.key_agreement and usage.encipher_only,
        usage.key_agreement and usage.decipher_only,
    ]
    return tuple(name for name, bit in zip(KEY_USAGES, bits, strict=True) if bit)


def _order_chain(
    key: PrivateKey, certs: Sequence[x509.Certificate], what: str
) -> tuple[x509.Certificate, tuple[x509.Certificate, ...]]:
    """The certificate holding the key's public half first, the others in their order."""
    for index, cert in enumerate(certs):
        if public_keys_match(key, cert):
            return cert, tuple(certs[:index]) + tuple(certs[index + 1 :])
    if not certs:
        raise CertMaterialError(f"the {what} content holds no certificate")
    raise CertMaterialError(f"no certificate in the {what} content matches its private key")


def load_pkcs12(data: bytes, password: str | None) -> CertificateMaterial:
    """Read a PFX: the leaf is the certificate matching the private key."""
    if not _looks_like_der_sequence(data):
        raise CertMaterialError("the certificate content is not valid PKCS#12 (PFX) data")
    secret = password.encode() if password else None
    try:
        bundle = pkcs12.load_pkcs12(data, secret)
    except ValueError:
        if password:
            raise CertMaterialError(
                "the PKCS#12 content cannot be decrypted with the given password"
            ) from None
        raise CertMaterialError(
            "the PKCS#12 content is password-protected or damaged; give its password"
        ) from None
    key = bundle.key
    if key is None:
        raise CertMaterialError("the PKCS#12 content holds no private key")
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise CertMaterialError("the PKCS#12 private key is neither RSA nor EC")
    describe_key(key)
    certs = [c.certificate for c in ([bundle.cert] if bundle.cert else [])]
    certs += [c.certificate for c in bundle.additional_certs]
    leaf, chain = _order_chain(key, certs, "PKCS#12")
    return CertificateMaterial(key, leaf, chain)


def _looks_like_der_sequence(data: bytes) -> bool:
    """A DER SEQUENCE spanning the whole buffer, which every PFX is."""
    if len(data) < 2 or data[0] != 0x30:
        return False
    if data[1] < 0x80:
        return 2 + data[1] == len(data)
    size = data[1] & 0x7F
    if size == 0 or size > 4 or len(data) < 2 + size:
        return False
    return 2 + size + int.from_bytes(data[2 : 2 + size], "big") == len(data)


_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----.+?-----END \1-----", re.DOTALL)


def load_pem(data: bytes, password: str | None) -> CertificateMaterial:
    """Read PEM text holding one private key and one or more certificates, in any order."""
    keys: list[PrivateKey] = []
    certs: list[x509.Certificate] = []
    for match in _PEM_BLOCK.finditer(data):
        label = match.group(1).decode()
        block = match.group(0)
        if label == "CERTIFICATE":
            try:
                certs.append(x509.load_pem_x509_certificate(block))
            except ValueError:
                raise CertMaterialError("a PEM CERTIFICATE block cannot be parsed") from None
        elif label.endswith("PRIVATE KEY"):
            keys.append(_load_pem_key(block, label, password))
    if not keys:
        raise CertMaterialError("the PEM content holds no private key")
    if len(keys) > 1:
        raise CertMaterialError("the PEM content holds more than one private key")
    leaf, chain = _order_chain(keys[0], certs, "PEM")
    return CertificateMaterial(keys[0], leaf, chain)


def _load_pem_key(block: bytes, label: str, password: str | None) -> PrivateKey:
    encrypted = label.startswith("ENCRYPTED") or b"Proc-Type: 4,ENCRYPTED" in block
    if encrypted and not password:
        raise CertMaterialError("the PEM private key is encrypted; give its password")
    try:
        key = serialization.load_pem_private_key(
            block, password.encode() if encrypted and password else None
        )
    except (ValueError, TypeError):
        if encrypted:
            raise CertMaterialError(
                "the PEM private key cannot be decrypted with the given password"
            ) from None
        raise CertMaterialError(f"the PEM {label} block cannot be parsed") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise CertMaterialError("the PEM private key is neither RSA nor EC")
    describe_key(key)
    return key


def load_import(value: str, password: str | None, content_type: str) -> CertificateMaterial:
    """Read the `value` of an import request as the policy's content type says.

    The SDK sends base64 of the file's bytes; PEM text sent as-is is accepted as well.
    """
    if content_type not in CONTENT_TYPES:
        raise CertMaterialError(f"contentType {content_type!r} is not one of {CONTENT_TYPES}")
    text = value.strip()
    if content_type == PEM and text.startswith("-----BEGIN"):
        return load_pem(text.encode(), password)
    try:
        data = base64.b64decode(text, validate=True)
    except ValueError:
        raise CertMaterialError("value is not base64-encoded certificate content") from None
    if content_type == PEM:
        if b"-----BEGIN" not in data:
            raise CertMaterialError(
                f"the certificate content is not PEM, but the policy's contentType is {PEM}"
            )
        return load_pem(data, password)
    if data.lstrip().startswith(b"-----BEGIN"):
        raise CertMaterialError(
            f"the certificate content is PEM; set the policy's contentType to {PEM}"
        )
    return load_pkcs12(data, password)


def _base64_text(blob: bytes) -> bytes | None:
    """The bytes that `blob`, read as base64 text (line breaks allowed), stands for."""
    try:
        text = blob.decode("ascii")
    except UnicodeDecodeError:
        return None
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except ValueError:
        return None


def load_certificates_der(blobs: Sequence[bytes]) -> list[x509.Certificate]:
    """A merge request's x5c: each entry DER, or the base64 text of DER.

    Several SDK samples, and azure-sdk-for-python's own recorded merge test, pass the PEM
    body (the base64 lines without the BEGIN/END lines) as the certificate's bytes; the
    SDK base64-encodes them again and Key Vault accepts the result. Anything else (a PEM
    block with its header lines, text that is not base64, base64 of something that is
    no certificate) is refused, naming the entry.
    """
    certs = []
    for index, blob in enumerate(blobs):
        for candidate in (blob, _base64_text(blob)):
            if candidate is None:
                continue
            try:
                certs.append(x509.load_der_x509_certificate(candidate))
                break
            except ValueError:
                continue
        else:
            raise CertMaterialError(
                f"x5c[{index}] is not a DER X.509 certificate (nor the base64 text of one)"
            )
    return certs
