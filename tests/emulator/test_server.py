"""Server behaviour seen by SDK users: challenge auth, bad input, read-only, latency, MI."""

from __future__ import annotations

import json
import time
import uuid

import pytest
import requests
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.core.rest import HttpRequest
from azure.identity import ManagedIdentityCredential
from azure.identity.aio import ManagedIdentityCredential as AioManagedIdentityCredential
from azure.keyvault.secrets import SecretClient
from azure.keyvault.secrets._shared.http_challenge import HttpChallenge
from azure.keyvault.secrets._shared.http_challenge_cache import remove_challenge_for_url
from azure.keyvault.secrets.aio import SecretClient as AioSecretClient

from emulator.auth import principal_of
from tests.fixtures.emulator import (
    EmulatorFactory,
    EmulatorProcess,
    StaticTokenCredential,
    client_kwargs,
    secret_client,
)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def error_of(response: object) -> dict[str, object]:
    body = json.loads(response.text())  # type: ignore[attr-defined]
    error: dict[str, object] = body["error"]
    return error


class TestChallenge:
    """Key Vault's bearer challenge."""

    def test_unauthenticated_request_gets_the_challenge(self, emulator: EmulatorProcess) -> None:
        """No token: 401 with a WWW-Authenticate the SDK's parser accepts."""
        resp = requests.get(
            f"{emulator.url}/secrets?api-version=7.5", verify=str(emulator.ca_path), timeout=10
        )
        assert resp.status_code == 401
        header = resp.headers["WWW-Authenticate"]
        challenge = HttpChallenge(f"{emulator.url}/secrets", header)
        assert challenge.is_bearer_challenge()
        assert challenge.get_resource() == "https://vault.azure.net"
        assert challenge.tenant_id
        assert resp.json()["error"]["code"] == "Unauthorized"

    def test_sdk_answers_the_challenge_with_a_token(self, emulator: EmulatorProcess) -> None:
        """The SDK asks its credential for a token once and then succeeds."""
        credential = StaticTokenCredential()
        client = secret_client(emulator, credential)
        name = unique("auth")
        client.set_secret(name, "v")
        client.get_secret(name)
        assert credential.calls == 1

    def test_any_bearer_token_is_accepted(self, emulator: EmulatorProcess) -> None:
        """An opaque token works: the emulator does not validate tokens."""
        resp = requests.get(
            f"{emulator.url}/secrets?api-version=7.5",
            headers={"Authorization": "Bearer opaque-token"},
            verify=str(emulator.ca_path),
            timeout=10,
        )
        assert resp.status_code == 200


class TestBadInput:
    """Bad requests get Azure's status and code, and the server keeps serving."""

    def test_malformed_json(self, emulator: EmulatorProcess) -> None:
        """A body that is not JSON is 400 BadParameter."""
        client = secret_client(emulator)
        request = HttpRequest(
            "PUT",
            f"{emulator.url}/secrets/{unique('json')}",
            content=b'{"value": "unterminated',
            headers={"Content-Type": "application/json"},
        )
        response = client.send_request(request)
        assert response.status_code == 400
        assert error_of(response)["code"] == "BadParameter"
        assert "unterminated" not in str(error_of(response)["message"])

    def test_oversized_value(self, emulator: EmulatorProcess) -> None:
        """A value above 25,600 bytes is 400 BadParameter; exactly 25,600 is fine."""
        client = secret_client(emulator)
        client.set_secret(unique("max"), "x" * 25_600)
        with pytest.raises(HttpResponseError) as caught:
            client.set_secret(unique("big"), "x" * 25_601)
        assert caught.value.status_code == 400
        assert caught.value.error is not None and caught.value.error.code == "BadParameter"
        assert "25600" in str(caught.value)

    def test_content_type_too_long(self, emulator: EmulatorProcess) -> None:
        """contentType above 255 characters is 400 naming contentType."""
        with pytest.raises(HttpResponseError) as caught:
            secret_client(emulator).set_secret(unique("ct"), "v", content_type="t" * 256)
        assert caught.value.status_code == 400
        assert caught.value.error is not None
        assert (caught.value.error.code, caught.value.error.message) == (
            "BadParameter",
            "contentType is 256 characters; at most 255 are allowed.",
        )

    @pytest.mark.parametrize("name", ["has_underscore", "dot.name", "x" * 128, "sp ace"])
    def test_invalid_names(self, emulator: EmulatorProcess, name: str) -> None:
        """Names outside 1-127 letters, digits and hyphens are 400 BadParameter."""
        with pytest.raises(HttpResponseError) as caught:
            secret_client(emulator).set_secret(name, "v")
        assert caught.value.status_code == 400
        assert caught.value.error is not None and caught.value.error.code == "BadParameter"

    def test_longest_valid_name(self, emulator: EmulatorProcess) -> None:
        """A 127-character name is accepted."""
        name = "n" * 120 + uuid.uuid4().hex[:7]
        client = secret_client(emulator)
        made = client.set_secret(name, "v")
        assert (made.name, made.id) == (
            name,
            f"{emulator.url}/secrets/{name}/{made.properties.version}",
        )
        assert client.get_secret(name).value == "v"

    def test_wrong_api_version(self, emulator: EmulatorProcess) -> None:
        """An api-version the vault does not know is 400 BadParameter."""
        client = secret_client(emulator)
        response = client.send_request(
            HttpRequest("GET", f"{emulator.url}/secrets?api-version=9.9")
        )
        assert response.status_code == 400
        error = error_of(response)
        assert error["code"] == "BadParameter"
        assert "9.9" in str(error["message"])

    def test_missing_api_version(self, emulator: EmulatorProcess) -> None:
        """A request without api-version is 400 BadParameter."""
        resp = requests.get(
            f"{emulator.url}/secrets",
            headers={"Authorization": "Bearer t"},
            verify=str(emulator.ca_path),
            timeout=10,
        )
        assert resp.status_code == 400
        assert resp.json()["error"]["code"] == "BadParameter"

    def test_unknown_route(self, emulator: EmulatorProcess) -> None:
        """A path the vault does not serve is 404 in Key Vault's error shape."""
        client = secret_client(emulator)
        response = client.send_request(HttpRequest("GET", f"{emulator.url}/nothing/here"))
        assert response.status_code == 404
        assert error_of(response)["code"] == "NotFound"

    def test_wrong_method(self, emulator: EmulatorProcess) -> None:
        """A known path with a method it does not take is 405 in Key Vault's error shape."""
        client = secret_client(emulator)
        response = client.send_request(HttpRequest("PUT", f"{emulator.url}/deletedsecrets"))
        assert response.status_code == 405
        assert error_of(response)["code"] == "MethodNotAllowed"

    def test_bad_tags_and_attributes(self, emulator: EmulatorProcess) -> None:
        """tags that are not strings and nbf after exp are 400 naming the field."""
        client = secret_client(emulator)
        for body, field in (
            ({"value": "v", "tags": {"a": 1}}, "tags"),
            ({"value": "v", "attributes": {"nbf": 20, "exp": 10}}, "nbf"),
            ({"value": "v", "attributes": {"enabled": "yes"}}, "enabled"),
            ({"novalue": "v"}, "value"),
        ):
            response = client.send_request(
                HttpRequest("PUT", f"{emulator.url}/secrets/{unique('bad')}", json=body)
            )
            assert response.status_code == 400
            assert field in str(error_of(response)["message"])

    def test_server_still_answers_after_bad_input(self, emulator: EmulatorProcess) -> None:
        """After a burst of bad requests the vault serves normally."""
        client = secret_client(emulator)
        for _ in range(20):
            client.send_request(
                HttpRequest("PUT", f"{emulator.url}/secrets/x", content=b"\xff\xfe{")
            )
        name = unique("after")
        client.set_secret(name, "fine")
        assert client.get_secret(name).value == "fine"
        assert emulator.health()["status"] == "ok"


class TestReadOnly:
    """The read-only fence of the management API."""

    def test_writes_refused_reads_served(self, make_emulator: EmulatorFactory) -> None:
        """Read-only: set/delete are 403, get/list/backup still work; off again restores."""
        emu = make_emulator()
        client = secret_client(emu)
        client.set_secret("fenced", "v")
        emu.set_read_only(True)
        with pytest.raises(HttpResponseError) as caught:
            client.set_secret("fenced", "v2")
        assert caught.value.status_code == 403
        assert "read-only" in str(caught.value)
        with pytest.raises(HttpResponseError):
            client.begin_delete_secret("fenced").result()
        assert client.get_secret("fenced").value == "v"
        assert [p.name for p in client.list_properties_of_secrets()] == ["fenced"]
        client.backup_secret("fenced")
        emu.set_read_only(False)
        client.set_secret("fenced", "v2")
        assert client.get_secret("fenced").value == "v2"

    def test_exempt_principal_may_write(self, make_emulator: EmulatorFactory) -> None:
        """A principal named in exempt_principals keeps writing; others are refused."""
        emu = make_emulator()
        emu.set_read_only(True, exempt_principals=["kvdr-replicator"])
        exempt = secret_client(emu, StaticTokenCredential("kvdr-replicator"))
        other = secret_client(emu, StaticTokenCredential("some-app"))
        exempt.set_secret("mirrored", "v")
        with pytest.raises(HttpResponseError) as caught:
            other.set_secret("mirrored", "x")
        assert caught.value.status_code == 403
        assert emu.management("GET", "read-only") == {
            "read_only": True,
            "exempt_principals": ["kvdr-replicator"],
        }


class TestLatency:
    """--latency delays every vault response."""

    def test_latency_is_added(self, make_emulator: EmulatorFactory) -> None:
        """With --latency 250 a get takes at least 250 ms more than without it."""
        fast = make_emulator()
        slow = make_emulator(latency_ms=250)

        def timed(emu: EmulatorProcess) -> float:
            client = secret_client(emu)
            client.set_secret("lat", "v")
            start = time.perf_counter()
            for _ in range(3):
                client.get_secret("lat")
            return (time.perf_counter() - start) / 3

        base, delayed = timed(fast), timed(slow)
        assert delayed >= 0.25
        assert delayed - base >= 0.2


class TestManagedIdentity:
    """ManagedIdentityCredential against the emulator's App Service token endpoint."""

    def test_sync_credential(
        self, make_emulator: EmulatorFactory, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The sync credential gets a token and the SDK works with it."""
        emu = make_emulator()
        monkeypatch.setenv("IDENTITY_ENDPOINT", emu.identity_endpoint)
        monkeypatch.setenv("IDENTITY_HEADER", emu.identity_header)
        credential = ManagedIdentityCredential(connection_verify=str(emu.ca_path))
        token = credential.get_token("https://vault.azure.net/.default")
        assert principal_of(token.token) == "kvdr-local"
        assert token.expires_on > time.time() + 3600
        client = SecretClient(emu.url, credential, **client_kwargs(emu))
        client.set_secret("mi", "works")
        assert client.get_secret("mi").value == "works"

    async def test_aio_credential_with_client_id(
        self, make_emulator: EmulatorFactory, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The aio credential with a client_id gets a token for that principal."""
        emu = make_emulator()
        monkeypatch.setenv("IDENTITY_ENDPOINT", emu.identity_endpoint)
        monkeypatch.setenv("IDENTITY_HEADER", emu.identity_header)
        emu.set_read_only(True, exempt_principals=["app-one"])
        credential = AioManagedIdentityCredential(
            client_id="app-one", connection_verify=str(emu.ca_path)
        )
        async with credential, AioSecretClient(emu.url, credential, **client_kwargs(emu)) as c:
            token = await credential.get_token("https://vault.azure.net/.default")
            assert principal_of(token.token) == "app-one"
            # Exempt from the read-only fence because the token carries its principal.
            await c.set_secret("mi-aio", "works")
            assert (await c.get_secret("mi-aio")).value == "works"

    def test_wrong_identity_header_is_refused(self, emulator: EmulatorProcess) -> None:
        """Without the right X-IDENTITY-HEADER the token endpoint answers 401."""
        resp = requests.get(
            emulator.identity_endpoint,
            params={"resource": "https://vault.azure.net", "api-version": "2019-08-01"},
            headers={"X-IDENTITY-HEADER": "wrong"},
            verify=str(emulator.ca_path),
            timeout=10,
        )
        assert resp.status_code == 401


class TestManagementApi:
    """health, clock and stats."""

    def test_health(self, emulator: EmulatorProcess) -> None:
        """health names the region and geography."""
        health = emulator.health()
        assert health["status"] == "ok"
        assert health["region"] == "eastus" and health["geo"] == "us"
        assert health["vault_url"] == emulator.url

    def test_clock_offset(self, make_emulator: EmulatorFactory) -> None:
        """The clock offset moves the times the vault stamps on new versions."""
        emu = make_emulator()
        emu.set_clock_offset(86400 * 10)
        client = secret_client(emu)
        created = client.set_secret("future", "v").properties.created_on
        assert created is not None and created.timestamp() > time.time() + 86400 * 9
        assert emu.management("GET", "clock")["offset_seconds"] == 86400 * 10

    def test_stats_count_requests(self, make_emulator: EmulatorFactory) -> None:
        """stats counts requests by operation and status (incl. the 401 challenge)."""
        emu = make_emulator()
        # The SDK caches a vault's challenge by host and port for the process: an
        # earlier emulator on the same port would spare this one its 401.
        remove_challenge_for_url(emu.url)
        client = secret_client(emu)
        client.set_secret("counted", "v")
        client.get_secret("counted")
        with pytest.raises(ResourceNotFoundError):
            client.get_secret("uncounted")
        stats = emu.stats()
        assert stats["by_op"]["SetSecret"] == {"200": 1, "401": 1}
        assert stats["by_op"]["GetSecret"] == {"200": 1, "404": 1}
        emu.reset_stats()
        assert emu.stats()["total"] == 0

    def test_bad_management_input(self, emulator: EmulatorProcess) -> None:
        """A non-numeric clock offset is refused with 400 naming the field."""
        with pytest.raises(Exception) as caught:
            emulator.management("PUT", "clock", {"offset_seconds": "soon"})
        assert "400" in str(caught.value)
