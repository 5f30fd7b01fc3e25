"""RBAC mode (`kvdr emulator --rbac FILE`, emulator/rbac.py) through the official SDKs:
tokens from the managed-identity endpoint carry the principal and are checked (signature,
audience, expiry); a request without the role's data action is a 403 `Forbidden` with
inner code `ForbiddenByRbac` naming the action; a changed file takes effect."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError
from azure.keyvault.secrets.aio import SecretClient

from emulator.rbac import DATA_ACTIONS, ROLES
from tests.fixtures.cli import run_kvdr
from tests.fixtures.emulator import AsyncStaticTokenCredential, EmulatorProcess
from vault.credentials import app_service_identity

MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")


def write_rbac(path: Path, *assignments: tuple[str, str]) -> Path:
    doc = {
        "token_key_file": "tenant.key",
        "assignments": [{"principal": p, "role": r, "scope": "*"} for p, r in assignments],
    }
    path.write_text(json.dumps(doc))
    return path


def client_as(emu: EmulatorProcess, principal: str) -> SecretClient:
    credential = app_service_identity(
        emu.endpoint["identity_endpoint"],
        emu.endpoint["identity_header"],
        client_id=principal,
        ca_file=emu.endpoint["ca"],
    )
    return SecretClient(
        emu.url, credential, verify_challenge_resource=False, connection_verify=emu.endpoint["ca"]
    )


def client_with_token(emu: EmulatorProcess, token: str) -> SecretClient:
    class Fixed(AsyncStaticTokenCredential):
        async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
            return AccessToken(token, int(time.time()) + 600)

    return SecretClient(
        emu.url, Fixed(), verify_challenge_resource=False, connection_verify=emu.endpoint["ca"]
    )


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed(key: bytes, **claims: Any) -> str:
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    signature = hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(signature)}"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def rbac_vault(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[EmulatorProcess, Path]]:
    folder = tmp_path_factory.mktemp("rbac")
    path = write_rbac(
        folder / "rbac.json",
        ("admin", "Key Vault Administrator"),
        ("app", "Key Vault Secrets User"),
        ("auditor", "Key Vault Reader"),
    )
    emu = EmulatorProcess(folder / "vault", extra_args=["--rbac", str(path)]).start()
    try:
        async with client_as(emu, "admin") as admin:
            await admin.set_secret("db", "rbac-guarded-value")
        yield emu, path
    finally:
        emu.stop()


async def refused(call: Any) -> HttpResponseError:
    with pytest.raises(HttpResponseError) as caught:
        await call
    return caught.value


@MODULE_LOOP
class TestRoles:
    async def test_secrets_user_reads_but_cannot_write(
        self, rbac_vault: tuple[EmulatorProcess, Path]
    ) -> None:
        emu, _ = rbac_vault
        async with client_as(emu, "app") as app:
            assert (await app.get_secret("db")).value == "rbac-guarded-value"
            denied = await refused(app.set_secret("db", "overwritten"))
        assert denied.status_code == 403 and denied.error is not None
        assert denied.error.code == "Forbidden"
        assert "ForbiddenByRbac" in str(denied)
        assert "Microsoft.KeyVault/vaults/secrets/setSecret/action" in str(denied)
        assert "oid=app" in str(denied) and "rbac-guarded-value" not in str(denied)

    async def test_reader_lists_metadata_but_gets_no_value(
        self, rbac_vault: tuple[EmulatorProcess, Path]
    ) -> None:
        emu, _ = rbac_vault
        async with client_as(emu, "auditor") as auditor:
            names = [p.name async for p in auditor.list_properties_of_secrets()]
            assert names == ["db"]
            denied = await refused(auditor.get_secret("db"))
        assert denied.status_code == 403
        assert "secrets/getSecret/action" in str(denied)

    async def test_a_principal_without_assignments_gets_nothing(
        self, rbac_vault: tuple[EmulatorProcess, Path]
    ) -> None:
        emu, _ = rbac_vault
        async with client_as(emu, "stranger") as stranger:
            denied = await refused(stranger.get_secret("db"))
        assert denied.status_code == 403 and "oid=stranger" in str(denied)

    async def test_a_changed_file_takes_effect(
        self, rbac_vault: tuple[EmulatorProcess, Path], tmp_path: Path
    ) -> None:
        """Granting Secrets Officer lets the principal write; taking it away refuses
        again (re-read within about a second)."""
        emu, path = rbac_vault
        before = path.read_text()
        doc = json.loads(before)
        doc["assignments"].append({"principal": "writer", "role": "Key Vault Secrets Officer"})
        try:
            path.write_text(json.dumps(doc))
            async with client_as(emu, "writer") as writer:
                deadline = time.monotonic() + 10
                while True:
                    try:
                        await writer.set_secret("written", "by-writer")
                        break
                    except HttpResponseError:
                        assert time.monotonic() < deadline, "the grant never took effect"
                        await asyncio.sleep(0.3)
        finally:
            path.write_text(before)
        async with client_as(emu, "writer") as writer:
            deadline = time.monotonic() + 10
            while True:
                try:
                    await writer.set_secret("written", "again")
                except HttpResponseError as exc:
                    assert exc.status_code == 403
                    break
                assert time.monotonic() < deadline, "the role was never taken away"
                await asyncio.sleep(0.3)


@MODULE_LOOP
class TestTokens:
    async def test_unsigned_forged_expired_and_foreign_tokens_are_401(
        self, rbac_vault: tuple[EmulatorProcess, Path]
    ) -> None:
        emu, path = rbac_vault
        key = (path.parent / "tenant.key").read_bytes().strip()
        now = int(time.time())
        good = {"oid": "admin", "aud": "https://vault.azure.net", "exp": now + 600}
        tokens = {
            "unsigned": None,
            "forged": signed(b"x" * 64, **good),
            "expired": signed(key, **{**good, "exp": now - 5}),
            "another audience": signed(key, **{**good, "aud": "https://storage.azure.com"}),
        }
        for what, token in tokens.items():
            client = (
                SecretClient(
                    emu.url,
                    AsyncStaticTokenCredential("admin"),
                    verify_challenge_resource=False,
                    connection_verify=emu.endpoint["ca"],
                )
                if token is None
                else client_with_token(emu, token)
            )
            async with client:
                denied = await refused(client.get_secret("db"))
            assert denied.status_code == 401, what
        async with client_with_token(emu, signed(key, **good)) as admin:
            assert (await admin.get_secret("db")).value == "rbac-guarded-value"


class TestRoleModel:
    def test_every_operation_has_an_action_some_role_grants(self) -> None:
        """No vault operation is left to the 'needs Administrator' fallback, and each
        data action is granted by Administrator and by at least one narrower role."""
        from emulator.rbac import _pattern

        for operation, action in DATA_ACTIONS.items():
            granting = [
                role
                for role, (_, _, data) in ROLES.items()
                if any(_pattern(a).fullmatch(action) for a in data)
            ]
            assert "Key Vault Administrator" in granting, operation
            if operation != "GetRandomBytes":
                assert len(granting) >= 2, (operation, granting)

    def test_a_broken_file_is_a_usage_error(self, tmp_path: Path) -> None:
        bad = tmp_path / "rbac.json"
        bad.write_text(json.dumps({"assignments": [{"principal": "p", "role": "Owner"}]}))
        result = run_kvdr(
            "emulator", "--port", "0", "--state-dir", str(tmp_path / "s"), "--rbac", str(bad)
        )
        assert result.returncode == 2
        assert "--rbac" in result.stderr and "'Owner' is not one of" in result.stderr
