"""The material of a certificate placeholder: a throwaway self-signed certificate.

When a certificate's latest version is disabled on the source, its PFX cannot be read,
so it cannot be imported; yet leaving the target at its older version would make the
target serve a certificate the primary refuses (`replicator.plan_certificates`). kvdr
imports this instead, disabled and tagged as a placeholder: a fresh key kvdr throws away,
the subject and dates of the source version where the policy and properties give them,
and the policy's key type and size, so the target's policy and listing still read like
the source's. No source material is in it.
"""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from vault.models import CertificateMaterial, ItemProperties
from vault.policies import PEM_CONTENT_TYPE, PFX_CONTENT_TYPE, CertificatePolicy

PLACEHOLDER_SUBJECT = "CN=kvdr-placeholder"

_CURVES: dict[str, type[ec.EllipticCurve]] = {
    "P-256": ec.SECP256R1,
    "P-384": ec.SECP384R1,
    "P-521": ec.SECP521R1,
    "P-256K": ec.SECP256K1,
}

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def _key(policy: CertificatePolicy) -> PrivateKey:
    if (policy.key_type or "RSA").upper().startswith("EC"):
        curve = _CURVES.get(policy.key_curve_name or "P-256", ec.SECP256R1)
        return ec.generate_private_key(curve())
    # Key Vault's RSA sizes are 2048, 3072 and 4096; anything else gets its default.
    size = policy.key_size if policy.key_size in (2048, 3072, 4096) else 2048
    return rsa.generate_private_key(public_exponent=65537, key_size=size)


def _subject(policy: CertificatePolicy) -> x509.Name:
    try:
        return x509.Name.from_rfc4514_string(policy.subject or PLACEHOLDER_SUBJECT)
    except ValueError:
        # A subject Key Vault accepts but RFC 4514 does not parse: the fixed one.
        return x509.Name.from_rfc4514_string(PLACEHOLDER_SUBJECT)


def placeholder_material(
    name: str, source: ItemProperties, policy: CertificatePolicy, now: dt.datetime
) -> CertificateMaterial:
    """A self-signed certificate for the placeholder of `source`, in the policy's secret
    format (PFX, or PEM with the key). CPU-bound (key generation): run it in a thread."""
    key = _key(policy)
    not_before = source.not_before or now
    not_after = source.expires_on or not_before + dt.timedelta(days=365)
    if not_after <= not_before:
        not_after = not_before + dt.timedelta(days=1)
    subject = _subject(policy)
    if not subject.get_attributes_for_oid(NameOID.COMMON_NAME):
        subject = x509.Name([*subject, x509.NameAttribute(NameOID.COMMON_NAME, "kvdr-placeholder")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    if policy.content_type == PEM_CONTENT_TYPE:
        data = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ) + cert.public_bytes(serialization.Encoding.PEM)
        content_type = PEM_CONTENT_TYPE
    else:
        data = pkcs12.serialize_key_and_certificates(
            None, key, cert, None, serialization.NoEncryption()
        )
        content_type = PFX_CONTENT_TYPE
    return CertificateMaterial(name=name, version="", content_type=content_type, data=data)
