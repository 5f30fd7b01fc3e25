"""Error mapping for faults the emulator does not produce: 5xx, 501, a server hanging up.

A small real HTTPS server (aiohttp, its own throwaway CA) answers the SDK's challenge
like Key Vault and then misbehaves on purpose, one path per fault.
"""

from __future__ import annotations

import base64
import ipaddress
import ssl
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.vault.conftest import open_at
from vault import BadRequest, NoAnswer, ServerError, VaultRefused, VaultSettings
from vault.models import Attributes, CertificateMaterial

CHALLENGE = (
    'Bearer authorization="https://login.microsoftonline.com/tenant", '
    'resource="https://vault.azure.net"'
)


def _tls_files(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (it is its own CA) and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class FaultyVault:
    """Answers the challenge, then: 503 on `unavailable`, 501 on `unsupported`, hangs up
    on `hangup`; counts the authenticated hits per secret name."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()

    async def secret(self, request: web.Request) -> web.StreamResponse:
        if "Authorization" not in request.headers:
            return web.Response(status=401, headers={"WWW-Authenticate": CHALLENGE})
        name = request.match_info["name"]
        self.hits[name] += 1
        if name == "unavailable":
            return _error(503, "ServiceUnavailable", "try later")
        if name == "unsupported":
            return _error(501, "NotImplemented", "not here")
        if name == "hangup":
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        return _error(404, "SecretNotFound", "no such secret")

    async def echo(self, request: web.Request) -> web.StreamResponse:
        """Refuses a write and echoes what it was sent, as a careless server might:
        `echo-whole` the whole value, `echo-part` only its first 40 characters."""
        if "Authorization" not in request.headers:
            return web.Response(status=401, headers={"WWW-Authenticate": CHALLENGE})
        value = str((await request.json())["value"])
        if request.match_info["name"] == "echo-part":
            value = value[:40]
        return _error(400, "BadParameter", f"the value '{value}' is not valid here")


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


@pytest.fixture
async def faulty(tmp_path: Path) -> AsyncIterator[tuple[str, str, FaultyVault]]:
    """(url, ca_file, server) of a running FaultyVault."""
    cert, key = _tls_files(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    vault = FaultyVault()
    app = web.Application()
    app.router.add_get("/secrets/{name}/{version:.*}", vault.secret)
    app.router.add_get("/secrets/{name}", vault.secret)
    app.router.add_put("/secrets/{name}", vault.echo)
    app.router.add_post("/certificates/{name}/import", vault.echo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"https://127.0.0.1:{port}", str(cert), vault
    finally:
        await runner.cleanup()


def _settings(ca: str) -> VaultSettings:
    return VaultSettings(
        ca_file=ca, verify_challenge_resource=False, max_attempts=3, backoff_base_seconds=0.01
    )


class TestServerFaults:
    async def test_5xx_is_retried_then_server_error(
        self, faulty: tuple[str, str, FaultyVault]
    ) -> None:
        """503 is transient: tried max_attempts times, then ServerError with the vault's code."""
        url, ca, server = faulty
        async with open_at(url, _settings(ca)) as vault:
            with pytest.raises(ServerError) as info:
                await vault.get_secret("unavailable")
        assert server.hits["unavailable"] == 3
        assert (info.value.status, info.value.code) == (503, "ServiceUnavailable")
        assert "get_secret secret/unavailable" in str(info.value)

    async def test_501_is_not_retried(self, faulty: tuple[str, str, FaultyVault]) -> None:
        """501 Not Implemented will not change on retry: one attempt, a plain refusal."""
        url, ca, server = faulty
        async with open_at(url, _settings(ca)) as vault:
            with pytest.raises(VaultRefused) as info:
                await vault.get_secret("unsupported")
        assert server.hits["unsupported"] == 1
        assert not info.value.transient and info.value.status == 501

    async def test_hang_up_after_request_is_no_answer(
        self, faulty: tuple[str, str, FaultyVault]
    ) -> None:
        """A server closing the connection after reading the request is NoAnswer, retried."""
        url, ca, server = faulty
        async with open_at(url, _settings(ca)) as vault:
            with pytest.raises(NoAnswer):
                await vault.get_secret("hangup")
        # kvdr tried 3 times; aiohttp itself re-sends an idempotent request once when a
        # reused keep-alive connection turns out closed (RFC 9112 9.3.1), below kvdr.
        assert 3 <= server.hits["hangup"] <= 6


class TestScrubbing:
    @pytest.mark.parametrize("name", ["echo-whole", "echo-part"])
    async def test_an_echoed_long_value_never_reaches_the_error(
        self, faulty: tuple[str, str, FaultyVault], name: str
    ) -> None:
        """A 400-character value echoed whole (longer than the 300 characters of the
        vault's message kept) or in part: no stretch of it is in the error."""
        url, ca, _ = faulty
        value = "".join(f"{i:03d}" for i in range(134))[:400]
        async with open_at(url, _settings(ca)) as vault:
            with pytest.raises(BadRequest) as refused:
                await vault.set_secret(name, value, Attributes())
        message = str(refused.value)
        assert "400 BadParameter" in message
        assert not any(value[i : i + 12] in message for i in range(len(value) - 11))

    @pytest.mark.parametrize("name", ["echo-whole", "echo-part"])
    async def test_echoed_certificate_material_never_reaches_the_error(
        self, faulty: tuple[str, str, FaultyVault], name: str, tmp_path: Path
    ) -> None:
        """A PEM bundle with a private key, echoed by the vault that refuses the import."""
        url, ca, _ = faulty
        (tmp_path / "material").mkdir()
        _, key_path = _tls_files(tmp_path / "material")
        pem = key_path.read_bytes()
        material = CertificateMaterial(name, "", "application/x-pem-file", pem)
        async with open_at(url, _settings(ca)) as vault:
            with pytest.raises(BadRequest) as refused:
                await vault.import_certificate(name, material, Attributes())
        message = str(refused.value)
        # The SDK sends the bytes in base64; a server may echo that or the text itself.
        for sent in (base64.b64encode(pem).decode(), b"".join(pem.splitlines()[1:-1]).decode()):
            assert not any(sent[i : i + 12] in message for i in range(len(sent) - 11))

    def test_long_value_is_replaced_in_service_message(self) -> None:
        """A value the service echoes is replaced; the rest of the message stays readable."""
        from vault._azure_errors import _scrub

        value = "hunter2-but-longer"
        assert _scrub(f"bad value {value} in vault", [value]) == "bad value <redacted> in vault"

    def test_short_value_withholds_the_message(self) -> None:
        """A short value would match inside words; the whole message is withheld instead."""
        from vault._azure_errors import _scrub

        text = _scrub("Operation SetSecret is not allowed: the vault is read-only", ["v"])
        assert text == "<message withheld: it contains the value written>"
