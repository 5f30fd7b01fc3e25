"""The emulator's management plane (emulator/arm.py) and the firewall its network rules
make, through plain aiohttp and through the official aio SDK.

An application is told apart from kvdr by its source address: its client binds to
127.0.0.2 (an aiohttp connector's `local_addr`, handed to the SDK's transport), kvdr's
stays on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from azure.core.exceptions import HttpResponseError
from azure.core.pipeline.transport import AioHttpTransport
from azure.keyvault.secrets.aio import SecretClient

from tests.fixtures.emulator import (
    AsyncStaticTokenCredential,
    EmulatorFactory,
    EmulatorProcess,
    aio_secret_client,
)

SUB = "00000000-0000-0000-0000-0000000000aa"
API = "api-version=2023-07-01"
APP_ADDRESS = "127.0.0.2"


def arm_path(emu: EmulatorProcess, name: str | None = None) -> str:
    vault = name or f"kvdr-{emu.region}"
    return (
        f"{emu.url}/subscriptions/{SUB}/resourceGroups/rg-kv/providers/"
        f"Microsoft.KeyVault/vaults/{vault}"
    )


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer x.y."}) as s:
        yield s


async def arm(
    session: aiohttp.ClientSession,
    emu: EmulatorProcess,
    method: str = "GET",
    body: Any = None,
    query: str = API,
    name: str | None = None,
) -> tuple[int, dict[str, Any]]:
    url = f"{arm_path(emu, name)}?{query}" if query else arm_path(emu, name)
    async with session.request(method, url, json=body, ssl=emu.ssl_context()) as resp:
        return resp.status, await resp.json()


def app_client(emu: EmulatorProcess, address: str = APP_ADDRESS) -> SecretClient:
    """An application's SecretClient whose connections leave from `address`."""
    connector = aiohttp.TCPConnector(ssl=emu.ssl_context(), local_addr=(address, 0))
    transport = AioHttpTransport(session=aiohttp.ClientSession(connector=connector))
    return SecretClient(
        emu.url,
        AsyncStaticTokenCredential("application"),
        transport=transport,
        verify_challenge_resource=False,
    )


def deny(*allowed: str) -> dict[str, Any]:
    return {
        "properties": {
            "networkAcls": {
                "bypass": "None",
                "defaultAction": "Deny",
                "ipRules": [{"value": a} for a in allowed],
                "virtualNetworkRules": [],
            }
        }
    }


class TestVaultDocument:
    async def test_get_has_arms_shape(
        self, make_emulator: EmulatorFactory, session: aiohttp.ClientSession
    ) -> None:
        """GET answers ARM's Vault: id with the caller's subscription and group, the
        emulator's region as location, its SKU, retention and purge protection, and
        network rules that allow everything until set."""
        emu = make_emulator(
            region="westus", sku="premium", purge_protection=True, retention_days=30
        )
        status, doc = await arm(session, emu)
        assert status == 200
        assert doc["id"] == arm_path(emu).removeprefix(emu.url)
        assert (doc["name"], doc["type"], doc["location"]) == (
            "kvdr-westus",
            "Microsoft.KeyVault/vaults",
            "westus",
        )
        props = doc["properties"]
        assert props["sku"] == {"family": "A", "name": "premium"}
        assert props["vaultUri"].startswith(emu.url)
        assert props["enableSoftDelete"] is True
        assert props["softDeleteRetentionInDays"] == 30
        assert props["enablePurgeProtection"] is True
        assert props["networkAcls"] == {
            "bypass": "AzureServices",
            "defaultAction": "Allow",
            "ipRules": [],
            "virtualNetworkRules": [],
        }

    async def test_purge_protection_left_out_when_off(
        self, make_emulator: EmulatorFactory, session: aiohttp.ClientSession
    ) -> None:
        """Without --purge-protection the property is absent, as Azure leaves it out."""
        emu = make_emulator()
        _, doc = await arm(session, emu)
        assert "enablePurgeProtection" not in doc["properties"]
        assert doc["properties"]["sku"]["name"] == "standard"

    async def test_refusals_name_what_is_wrong(
        self, make_emulator: EmulatorFactory, session: aiohttp.ClientSession
    ) -> None:
        """No api-version, an unknown one, another vault's name, a property that cannot
        be patched, a malformed IP rule: each a 4xx in ARM's error shape naming it."""
        emu = make_emulator()
        status, doc = await arm(session, emu, query="")
        assert (status, doc["error"]["code"]) == (400, "MissingApiVersionParameter")
        status, doc = await arm(session, emu, query="api-version=1999-01-01")
        assert (status, doc["error"]["code"]) == (400, "InvalidApiVersionParameter")
        status, doc = await arm(session, emu, name="other-vault")
        assert (status, doc["error"]["code"]) == (404, "ResourceNotFound")
        assert "other-vault" in doc["error"]["message"]
        body = {"properties": {"enablePurgeProtection": True}}
        status, doc = await arm(session, emu, "PATCH", body)
        assert status == 400 and "enablePurgeProtection" in doc["error"]["message"]
        status, doc = await arm(session, emu, "PATCH", deny("not-an-ip"))
        assert status == 400 and "ipRules[0]" in doc["error"]["message"]
        _, doc = await arm(session, emu)
        assert doc["properties"]["networkAcls"]["defaultAction"] == "Allow"

    async def test_no_token_is_challenged(self, make_emulator: EmulatorFactory) -> None:
        """Without a bearer token the management plane answers 401, like the data plane."""
        emu = make_emulator()
        async with (
            aiohttp.ClientSession() as bare,
            bare.get(f"{arm_path(emu)}?{API}", ssl=emu.ssl_context()) as resp,
        ):
            assert resp.status == 401


class TestFirewall:
    async def test_deny_blocks_other_addresses_only(
        self, make_emulator: EmulatorFactory, session: aiohttp.ClientSession
    ) -> None:
        """With defaultAction Deny and 127.0.0.1 allowed, an application on 127.0.0.2
        gets 403 ForbiddenByFirewall (reads and writes) while kvdr's client on
        127.0.0.1 still writes; /_emulator/ stays reachable; the rules persist."""
        emu = make_emulator()
        status, doc = await arm(session, emu, "PATCH", deny("127.0.0.1"))
        assert status == 200 and doc["properties"]["networkAcls"]["defaultAction"] == "Deny"
        async with app_client(emu) as app, aio_secret_client(emu) as kvdr:
            with pytest.raises(HttpResponseError) as refused:
                await app.set_secret("app-write", "v1")
            assert refused.value.status_code == 403
            assert refused.value.error is not None
            assert refused.value.error.code == "Forbidden"
            assert refused.value.error.innererror == {"code": "ForbiddenByFirewall"}
            assert "Client address: 127.0.0.2" in str(refused.value.message)
            with pytest.raises(HttpResponseError):
                await app.get_secret("kvdr-write")
            written = await kvdr.set_secret("kvdr-write", "v1")
            assert written.name == "kvdr-write"
        assert emu.health()["status"] == "ok"
        emu.restart()
        _, doc = await arm(session, emu)
        assert doc["properties"]["networkAcls"]["ipRules"] == [{"value": "127.0.0.1"}]
        async with app_client(emu) as app:
            with pytest.raises(HttpResponseError):
                await app.set_secret("app-write", "v2")

    async def test_cidr_rule_and_allow_again(
        self, make_emulator: EmulatorFactory, session: aiohttp.ClientSession
    ) -> None:
        """A CIDR range admits the addresses in it; defaultAction Allow admits all again."""
        emu = make_emulator()
        await arm(session, emu, "PATCH", deny("127.0.0.0/30"))
        async with app_client(emu) as app:
            assert (await app.set_secret("in-range", "v")).name == "in-range"
        async with app_client(emu, "127.0.0.5") as outside:
            with pytest.raises(HttpResponseError):
                await outside.set_secret("out-of-range", "v")
        allow = {"properties": {"networkAcls": {"defaultAction": "Allow"}}}
        await arm(session, emu, "PATCH", allow)
        async with app_client(emu, "127.0.0.5") as outside:
            assert (await outside.set_secret("out-of-range", "v")).name == "out-of-range"
