"""Fence actions (failover/fencing.py) and the management client (failover/management.py)
against real emulators: kvdr uses its real credential (the emulator's managed-identity
endpoint) from 127.0.0.1; an application uses its own principal from 127.0.0.2."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import aiohttp
import pytest
from azure.core.exceptions import HttpResponseError
from azure.core.pipeline.transport import AioHttpTransport
from azure.keyvault.secrets.aio import SecretClient

from failover.fencing import (
    AzureNetworkDeny,
    EmulatorReadOnly,
    FenceAction,
    FenceError,
    FenceResult,
    NoFence,
    open_fence,
)
from failover.management import (
    ManagementError,
    NetworkRules,
    VaultManagement,
    management_session,
)
from failover.settings import FailoverSettings
from tests.fixtures.daemon import free_port
from tests.fixtures.emulator import (
    AsyncStaticTokenCredential,
    EmulatorFactory,
    EmulatorProcess,
    aio_secret_client,
)
from vault.credentials import build_credential
from vault.models import VaultRef
from vault.settings import CredentialSettings

KVDR_ADDRESS = "127.0.0.1"
APP_ADDRESS = "127.0.0.2"


def rid(emu: EmulatorProcess) -> str:
    return (
        "/subscriptions/0000/resourceGroups/rg-kv/providers/Microsoft.KeyVault/vaults/"
        f"kvdr-{emu.region}"
    )


def region_ref(emu: EmulatorProcess) -> VaultRef:
    return VaultRef(emu.region, emu.url, emu.sku, resource_id=rid(emu), management_url=emu.url)


def app_client(emu: EmulatorProcess) -> SecretClient:
    connector = aiohttp.TCPConnector(ssl=emu.ssl_context(), local_addr=(APP_ADDRESS, 0))
    return SecretClient(
        emu.url,
        AsyncStaticTokenCredential("application"),
        transport=AioHttpTransport(session=aiohttp.ClientSession(connector=connector)),
        verify_challenge_resource=False,
    )


async def refused(client: SecretClient, name: str) -> dict[str, Any]:
    """The error of a write that must be refused: status and inner code."""
    with pytest.raises(HttpResponseError) as caught:
        await client.set_secret(name, "v")
    error = caught.value.error
    return {
        "status": caught.value.status_code,
        "inner": (error.innererror or {}).get("code") if error is not None else None,
    }


@pytest.fixture
async def kvdr_credential(emulator: EmulatorProcess) -> AsyncIterator[Any]:
    settings = CredentialSettings(
        kind="emulator", emulator_state_dir=str(emulator.state_dir), ca_file=str(emulator.ca_path)
    )
    async with build_credential(settings) as credential:
        yield credential


@pytest.fixture
def emulator(make_emulator: EmulatorFactory) -> EmulatorProcess:
    return make_emulator(region="westus")


async def open_action(
    stack: AsyncExitStack, emu: EmulatorProcess, credential: Any, kind: str
) -> FenceAction:
    settings = FailoverSettings(fence=kind, fence_allow_ips=(KVDR_ADDRESS,))
    return await stack.enter_async_context(
        open_fence(settings, {emu.region: region_ref(emu)}, credential, str(emu.ca_path))
    )


class TestManagement:
    async def test_properties_of_two_vaults(self, make_emulator: EmulatorFactory) -> None:
        """SKU, purge protection, retention and location as each emulator was started."""
        premium = make_emulator(region="eastus", sku="premium", purge_protection=True)
        standard = make_emulator(region="westus", retention_days=7)
        credential = AsyncStaticTokenCredential()
        async with management_session(str(premium.ca_path)) as session:
            a = await VaultManagement(
                rid(premium), credential, session, base_url=premium.url
            ).properties()
        async with management_session(str(standard.ca_path)) as session:
            b = await VaultManagement(
                rid(standard), credential, session, base_url=standard.url
            ).properties()
        assert (a.sku, a.purge_protection, a.location, a.soft_delete) == (
            "premium",
            True,
            "eastus",
            True,
        )
        assert (b.sku, b.purge_protection, b.soft_delete_retention_days) == ("standard", False, 7)
        assert a.network_rules == NetworkRules() and not a.network_rules.denies_by_default

    async def test_errors_are_one_line_naming_the_vault(self, emulator: EmulatorProcess) -> None:
        """A vault the plane does not know (404) and a plane that does not answer: one
        line each, naming the vault, without SDK or aiohttp traceback text."""
        credential = AsyncStaticTokenCredential()
        wrong = rid(emulator).replace("kvdr-westus", "no-such-vault")
        async with management_session(str(emulator.ca_path)) as session:
            with pytest.raises(ManagementError) as missing:
                await VaultManagement(
                    wrong, credential, session, base_url=emulator.url
                ).properties()
            dead = f"https://127.0.0.1:{free_port()}"
            with pytest.raises(ManagementError) as unreachable:
                await VaultManagement(
                    rid(emulator), credential, session, base_url=dead
                ).properties()
        for message in (str(missing.value), str(unreachable.value)):
            assert "\n" not in message and "Traceback" not in message
        assert str(missing.value).startswith(
            "vault no-such-vault: GET answered 404 ResourceNotFound"
        )
        assert str(unreachable.value).startswith("vault kvdr-westus: management plane")
        assert "unreachable" in str(unreachable.value)

    def test_resource_id_shape_is_checked(self) -> None:
        """A string that is not a vault's resource id is refused when the client is made."""
        with pytest.raises(ValueError, match="Key Vault resource id"):
            VaultManagement("kvdr-westus", AsyncStaticTokenCredential(), None)  # type: ignore[arg-type]


class TestAzureNetworkDeny:
    async def test_apply_blocks_applications_not_kvdr_and_lift_restores(
        self, emulator: EmulatorProcess, kvdr_credential: Any
    ) -> None:
        """Before: allow by default with an IP rule and a subnet rule of the operator's.
        apply: an application on 127.0.0.2 is refused (ForbiddenByFirewall) while kvdr
        on 127.0.0.1 writes; a second apply changes nothing. The result goes through
        JSON (as into the control record); lift writes exactly the old rules back and
        the application writes again; a second lift changes nothing."""
        previous = NetworkRules(
            default_action="Allow",
            bypass="AzureServices",
            ip_rules=("10.1.0.0/16",),
            virtual_network_rules=(("/subscriptions/0000/x/subnets/apps", True),),
        )
        async with AsyncExitStack() as stack:
            session = await stack.enter_async_context(management_session(str(emulator.ca_path)))
            vault = VaultManagement(rid(emulator), kvdr_credential, session, base_url=emulator.url)
            await vault.set_network_rules(previous)
            fence = await open_action(stack, emulator, kvdr_credential, "azure-network-deny")
            assert isinstance(fence, AzureNetworkDeny)
            assert await fence.observe("westus") is False

            applied = await fence.apply("westus")
            assert applied.changed and "denies by default" in applied.done
            assert await fence.observe("westus") is True
            again = await fence.apply("westus")
            assert not again.changed and again.saved is None
            app = await stack.enter_async_context(app_client(emulator))
            kvdr = await stack.enter_async_context(
                aio_secret_client(emulator, credential=kvdr_credential)
            )
            assert await refused(app, "app-write") == {
                "status": 403,
                "inner": "ForbiddenByFirewall",
            }
            assert (await kvdr.set_secret("kvdr-write", "v")).name == "kvdr-write"

            stored = FenceResult.from_json(json.loads(json.dumps(applied.to_json())))
            assert stored == applied
            lifted = await fence.lift("westus", stored.saved)
            assert lifted.changed
            assert (await vault.properties()).network_rules == previous
            assert (await app.set_secret("app-write", "v")).name == "app-write"
            assert not (await fence.lift("westus", stored.saved)).changed
            assert await fence.observe("westus") is False

    async def test_lift_without_saved_rules_is_refused(
        self, emulator: EmulatorProcess, kvdr_credential: Any
    ) -> None:
        """A fenced vault whose earlier rules were not kept is not opened up blindly."""
        async with AsyncExitStack() as stack:
            fence = await open_action(stack, emulator, kvdr_credential, "azure-network-deny")
            await fence.apply("westus")
            with pytest.raises(FenceError, match="were not saved"):
                await fence.lift("westus", None)
            assert await fence.observe("westus") is True

    async def test_unreachable_and_unconfigured(self, kvdr_credential: Any) -> None:
        """observe is None when the plane does not answer; apply says why it cannot; a
        region without resource_id cannot be fenced."""
        async with management_session(None) as session:
            dead = VaultManagement(
                "/subscriptions/0/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/gone",
                kvdr_credential,
                session,
                base_url=f"https://127.0.0.1:{free_port()}",
            )
            fence = AzureNetworkDeny({"eastus": dead}, (KVDR_ADDRESS,))
            assert await fence.observe("eastus") is None
            with pytest.raises(FenceError, match="eastus: vault gone: management plane"):
                await fence.apply("eastus")
            with pytest.raises(FenceError, match="no resource_id"):
                await fence.apply("westus")


class TestEmulatorReadOnly:
    async def test_blocks_an_application_principal_not_kvdrs(
        self, emulator: EmulatorProcess, kvdr_credential: Any
    ) -> None:
        """apply: the application's writes answer 403 VaultReadOnly, its reads go on,
        kvdr's principal (the oid of its own token) still writes; lift undoes it."""
        async with AsyncExitStack() as stack:
            fence = await open_action(stack, emulator, kvdr_credential, "emulator-readonly")
            assert isinstance(fence, EmulatorReadOnly)
            kvdr = await stack.enter_async_context(
                aio_secret_client(emulator, credential=kvdr_credential)
            )
            app = await stack.enter_async_context(
                aio_secret_client(emulator, credential=AsyncStaticTokenCredential("application"))
            )
            await kvdr.set_secret("shared", "v1")
            applied = await fence.apply("westus")
            assert applied.changed and "kvdr-local" in applied.done
            assert emulator.management("GET", "read-only")["exempt_principals"] == ["kvdr-local"]
            assert await fence.observe("westus") is True
            assert not (await fence.apply("westus")).changed
            assert await refused(app, "shared") == {"status": 403, "inner": "VaultReadOnly"}
            assert (await app.get_secret("shared")).value == "v1"
            assert (await kvdr.set_secret("shared", "v2")).name == "shared"

            lifted = await fence.lift("westus", applied.saved)
            assert lifted.changed and await fence.observe("westus") is False
            assert (await app.set_secret("shared", "v3")).name == "shared"
            assert not (await fence.lift("westus", applied.saved)).changed


class TestNoFence:
    async def test_does_nothing_and_says_so(self) -> None:
        """fence = "none": apply and lift change nothing and say no fence is configured."""
        fence = NoFence()
        assert (await fence.apply("eastus")).done == "eastus: no fence configured"
        assert not (await fence.lift("eastus")).changed
        assert await fence.observe("eastus") is False
