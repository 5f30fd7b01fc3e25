"""Merges and pending operations as Azure answers them, through the sync and aio SDK clients.

Covers x5c entries that are base64 of PEM body text (the DER base64-encoded twice, as
azure-sdk-for-python's own recorded merge test sends them) and platform-managed policies
without subject or SANs. The rest of the certificate API is in test_certificates.py.
"""

from __future__ import annotations

import base64
import uuid

import pytest
from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest
from azure.keyvault.certificates import (
    CertificateClient,
    CertificateOperation,
    CertificatePolicy,
    PlatformManaged,
    WellKnownIssuerNames,
)
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.emulator.test_certificates import NO_WAIT, _self_signed, _sign_csr
from tests.fixtures.emulator import EmulatorProcess, aio_certificate_client, certificate_client


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def pem_body(der: bytes) -> bytes:
    """What several SDK samples pass as a certificate: the PEM's base64 lines, no header."""
    return base64.b64encode(der)


def pem_body_with_line_breaks(der: bytes) -> bytes:
    """The PEM body as it stands in a .pem file: 64-character lines."""
    text = base64.b64encode(der).decode()
    return "\n".join(text[i : i + 64] for i in range(0, len(text), 64)).encode()


def unknown_policy(subject: str) -> CertificatePolicy:
    return CertificatePolicy(issuer_name=WellKnownIssuerNames.unknown, subject=subject)


def pending_and_signed(client: CertificateClient, name: str) -> tuple[bytes, bytes]:
    """Start certificate `name` with issuer Unknown; a CA's (leaf, CA) DER for its CSR."""
    operation = client.begin_create_certificate(
        name, unknown_policy(f"CN={name}.example"), **NO_WAIT
    ).result()
    return _sign_csr(bytes(operation.csr))


def platform_policy() -> CertificatePolicy:
    """A policy that sets only the platform-managed flag: no subject, no SANs."""
    return CertificatePolicy(
        issuer_name=WellKnownIssuerNames.self,
        platform_managed=PlatformManaged(
            certificate_usage="tls-server", metadata={"owner": "kvdr", "days": 30}
        ),
    )


class TestMergeX5c:
    """merge_certificate takes DER or base64 text of DER, and refuses anything else."""

    def test_double_base64_merges(self, emulator: EmulatorProcess) -> None:
        """Leaf and chain given as PEM body text merge into the certificate (201)."""
        name = unique("pem-body")
        with certificate_client(emulator) as client:
            leaf, ca = pending_and_signed(client, name)
            merged = client.merge_certificate(name, [pem_body(leaf), pem_body_with_line_breaks(ca)])
            assert bytes(merged.cer or b"") == leaf
            assert client.get_certificate_operation(name).status == "completed"

    def test_still_refused(self, emulator: EmulatorProcess) -> None:
        """A full PEM block, base64 of junk, or another key's certificate stay 400."""
        name = unique("refused")
        with certificate_client(emulator) as client:
            leaf, _ = pending_and_signed(client, name)
            pem = serialization.Encoding.PEM
            other = _self_signed(ec.generate_private_key(ec.SECP256R1())).public_bytes(pem)
            full_pem = (
                b"-----BEGIN CERTIFICATE-----\n"
                + pem_body_with_line_breaks(leaf)
                + b"\n-----END CERTIFICATE-----\n"
            )
            for x5c, named in (
                ([full_pem], "x5c[0]"),
                ([pem_body(b"not a certificate")], "x5c[0]"),
                ([leaf, b"junk text"], "x5c[1]"),
                ([pem_body(_der_of_pem(other))], "public key"),
            ):
                with pytest.raises(HttpResponseError) as caught:
                    client.merge_certificate(name, x5c)
                assert caught.value.status_code == 400, named
                assert named in str(caught.value.message)
            assert client.get_certificate_operation(name).status == "inProgress"

    async def test_double_base64_merges_aio(self, emulator: EmulatorProcess) -> None:
        """The aio client merges a PEM-body leaf as well."""
        name = unique("pem-aio")
        async with aio_certificate_client(emulator) as client:
            operation = await client.create_certificate(
                name, unknown_policy("CN=aio.example"), **NO_WAIT
            )
            assert isinstance(operation, CertificateOperation)
            leaf, ca = _sign_csr(bytes(operation.csr or b""))
            merged = await client.merge_certificate(name, [pem_body(leaf), ca])
            assert bytes(merged.cer or b"") == leaf


def _der_of_pem(pem: bytes) -> bytes:
    lines = [line for line in pem.decode().splitlines() if not line.startswith("-----")]
    return base64.b64decode("".join(lines))


class TestPlatformManaged:
    """A platform-managed policy without subject or SANs: accepted, never issued."""

    def test_accepted_and_policy_returned(self, emulator: EmulatorProcess) -> None:
        """The create is accepted; the operation fails saying why; the policy reads back."""
        name = unique("platform")
        with certificate_client(emulator) as client:
            result = client.begin_create_certificate(name, platform_policy(), **NO_WAIT).result()
            assert isinstance(result, CertificateOperation)
            assert result.status == "failed" and result.error is not None
            assert "platform" in (result.status_details or "").lower()
            assert "internal use" in (result.error.message or "")
            policy = client.get_certificate_policy(name)
            assert policy.platform_managed is not None
            assert policy.platform_managed.certificate_usage == "tls-server"
            assert policy.platform_managed.metadata == {"owner": "kvdr", "days": 30}
            assert not policy.subject and not policy.san_dns_names
            assert name not in [c.name for c in client.list_properties_of_certificates()]

    def test_without_flag_subject_still_required(self, emulator: EmulatorProcess) -> None:
        """Without the flag, a policy with neither subject nor SANs is still refused (400)."""
        with certificate_client(emulator) as client:
            response = client.send_request(
                _create_request(unique("nothing"), {"issuer": {"name": "Self"}})
            )
            assert response.status_code == 400
            assert "subject" in response.json()["error"]["message"]

    async def test_accepted_aio(self, emulator: EmulatorProcess) -> None:
        """The aio client gets the same failed operation and the policy as given."""
        name = unique("platform-aio")
        async with aio_certificate_client(emulator) as client:
            result = await client.create_certificate(name, platform_policy(), **NO_WAIT)
            assert isinstance(result, CertificateOperation) and result.status == "failed"
            operation = await client.get_certificate_operation(name)
            assert operation.error is not None and operation.error.message
            policy = await client.get_certificate_policy(name)
            assert policy.platform_managed is not None
            assert policy.platform_managed.certificate_usage == "tls-server"


def _create_request(name: str, policy: dict[str, object]) -> HttpRequest:
    return HttpRequest("POST", f"/certificates/{name}/create", json={"policy": policy})
