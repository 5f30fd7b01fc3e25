"""build_credential: every kind builds, and the emulator kind authenticates for real."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from azure.identity.aio import (
    AzureCliCredential,
    CertificateCredential,
    ClientSecretCredential,
    DefaultAzureCredential,
    ManagedIdentityCredential,
)

from tests.fixtures.emulator import EmulatorProcess
from tests.vault.conftest import emulator_settings, unique
from vault import (
    Attributes,
    CredentialSettings,
    CredentialSettingsError,
    ItemKind,
    KeyVaultAdapter,
    VaultRef,
    build_credential,
)

VAULT_SCOPE = "https://vault.azure.net/.default"
MI_VARIABLES = ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT")


class TestEmulatorCredential:
    async def test_managed_identity_endpoint_serves_the_adapter(
        self, emulator: EmulatorProcess
    ) -> None:
        """The `emulator` kind gets a token from the emulator's App Service endpoint and works."""
        before = {k: os.environ.get(k) for k in MI_VARIABLES}
        credential = build_credential(
            CredentialSettings(kind="emulator", emulator_state_dir=str(emulator.state_dir))
        )
        assert isinstance(credential, ManagedIdentityCredential)
        # The endpoint was handed over without leaving anything in the environment.
        assert {k: os.environ.get(k) for k in MI_VARIABLES} == before
        async with credential:
            token = await credential.get_token(VAULT_SCOPE)
            assert token.token and token.expires_on > 0
            ref = VaultRef("mi-" + unique("region"), emulator.url)
            async with KeyVaultAdapter.open(ref, credential, emulator_settings(emulator)) as vault:
                name = unique("mi")
                await vault.set_secret(name, "via-managed-identity", Attributes())
                assert (await vault.get_secret(name)).value == "via-managed-identity"
                assert name in {p.name for p in await vault.list_items(ItemKind.SECRET)}

    async def test_managed_identity_kind_with_explicit_endpoint(
        self, emulator: EmulatorProcess
    ) -> None:
        """`managed-identity` with endpoint, header and CA given goes to that endpoint."""
        credential = build_credential(
            CredentialSettings(
                kind="managed-identity",
                identity_endpoint=emulator.identity_endpoint,
                identity_header=emulator.identity_header,
                ca_file=str(emulator.ca_path),
            )
        )
        async with credential:
            assert (await credential.get_token(VAULT_SCOPE)).token

    async def test_wrong_identity_header_is_refused(self, emulator: EmulatorProcess) -> None:
        """A wrong IDENTITY_HEADER gets no token: the endpoint really checks it."""
        credential = build_credential(
            CredentialSettings(
                kind="managed-identity",
                identity_endpoint=emulator.identity_endpoint,
                identity_header="not-the-header",
                ca_file=str(emulator.ca_path),
            )
        )
        async with credential:
            with pytest.raises(Exception):  # noqa: B017 - azure.identity's own error types
                await credential.get_token(VAULT_SCOPE)

    def test_missing_endpoint_file_is_named(self, tmp_path: Path) -> None:
        """No endpoint.json in the state folder: the error names the file."""
        with pytest.raises(CredentialSettingsError, match=r"endpoint\.json' does not exist"):
            build_credential(CredentialSettings(kind="emulator", emulator_state_dir=str(tmp_path)))

    def test_endpoint_file_without_identity_is_named(self, tmp_path: Path) -> None:
        """An endpoint.json lacking the identity endpoint is refused, naming the key."""
        (tmp_path / "endpoint.json").write_text(json.dumps({"url": "https://127.0.0.1:1"}))
        with pytest.raises(CredentialSettingsError, match="has no 'identity_endpoint'"):
            build_credential(CredentialSettings(kind="emulator", emulator_state_dir=str(tmp_path)))

    def test_emulator_kind_needs_a_state_dir(self) -> None:
        """The emulator kind without state dir or endpoint says what it needs."""
        with pytest.raises(CredentialSettingsError, match="emulator_state_dir"):
            build_credential(CredentialSettings(kind="emulator"))


class TestOtherKinds:
    async def test_each_kind_builds_its_azure_identity_class(self, tmp_path: Path) -> None:
        """Every configured kind yields the matching azure.identity aio credential."""
        cert = tmp_path / "client.pem"
        _write_self_signed(cert)
        built = {
            "default": build_credential(CredentialSettings(kind="default")),
            "cli": build_credential(CredentialSettings(kind="cli")),
            "managed-identity": build_credential(CredentialSettings(kind="managed-identity")),
            "client-secret": build_credential(
                CredentialSettings(
                    kind="client-secret",
                    tenant_id="00000000-0000-0000-0000-000000000001",
                    client_id="00000000-0000-0000-0000-000000000002",
                    client_secret="not-a-real-secret",
                )
            ),
            "client-certificate": build_credential(
                CredentialSettings(
                    kind="client-certificate",
                    tenant_id="00000000-0000-0000-0000-000000000001",
                    client_id="00000000-0000-0000-0000-000000000002",
                    certificate_path=str(cert),
                )
            ),
        }
        expected = {
            "default": DefaultAzureCredential,
            "cli": AzureCliCredential,
            "managed-identity": ManagedIdentityCredential,
            "client-secret": ClientSecretCredential,
            "client-certificate": CertificateCredential,
        }
        for kind, credential in built.items():
            assert isinstance(credential, expected[kind]), kind
            await credential.close()

    @pytest.mark.parametrize(
        ("settings", "message"),
        [
            (CredentialSettings(kind="password"), "credential kind 'password' is not one of"),
            (
                CredentialSettings(kind="client-secret", tenant_id="t"),
                "needs client_id, client_secret",
            ),
            (
                CredentialSettings(kind="client-certificate", tenant_id="t", client_id="c"),
                "needs certificate_path",
            ),
            (
                CredentialSettings(
                    kind="client-certificate",
                    tenant_id="t",
                    client_id="c",
                    certificate_path="/nonexistent/cert.pem",
                ),
                "certificate_path '/nonexistent/cert.pem' is not a readable file",
            ),
            (
                CredentialSettings(kind="managed-identity", identity_endpoint="https://x"),
                "needs identity_header",
            ),
        ],
    )
    def test_bad_settings_name_the_field(self, settings: CredentialSettings, message: str) -> None:
        """Each incomplete setting is refused with a message naming what is missing."""
        with pytest.raises(CredentialSettingsError, match=message):
            build_credential(settings)

    def test_client_secret_not_in_repr_or_errors(self) -> None:
        """The client secret stays out of the settings' repr and of build errors."""
        settings = CredentialSettings(kind="client-secret", client_secret="hush-hush-123")
        assert "hush-hush-123" not in repr(settings)
        with pytest.raises(CredentialSettingsError) as info:
            build_credential(settings)
        assert "hush-hush-123" not in str(info.value)


def _write_self_signed(path: Path) -> None:
    """A throwaway certificate + key PEM for CertificateCredential to load."""
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    # CertificateCredential signs with RS256, so it insists on an RSA key.
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kvdr-test")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        + cert.public_bytes(serialization.Encoding.PEM)
    )
