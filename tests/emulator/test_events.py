"""Event Grid delivery to a real subscriber (a small aiohttp receiver in the test)."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from tests.fixtures.emulator import EmulatorFactory, aio_secret_client

WAIT_SECONDS = 15.0


@dataclass
class Receiver:
    """An Event Grid webhook: answers the validation handshake, records notifications."""

    refuse_validations: int = 0
    fail_notifications: int = 0
    validations: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    headers: list[str] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.headers.append(request.headers.get("aeg-event-type", ""))
        event = body[0]
        if event["eventType"] == "Microsoft.EventGrid.SubscriptionValidationEvent":
            self.validations += 1
            if self.validations <= self.refuse_validations:
                return web.json_response({"validationResponse": "wrong"})
            return web.json_response({"validationResponse": event["data"]["validationCode"]})
        if self.fail_notifications > 0:
            self.fail_notifications -= 1
            return web.Response(status=503)
        self.events.extend(body)
        self.arrived.set()
        return web.Response(status=200)

    async def wait_for(self, event_type: str, count: int = 1) -> list[dict[str, Any]]:
        async def matching() -> list[dict[str, Any]]:
            while True:
                found = [e for e in self.events if e["eventType"] == event_type]
                if len(found) >= count:
                    return found
                self.arrived.clear()
                await self.arrived.wait()

        return await asyncio.wait_for(matching(), WAIT_SECONDS)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    recv = Receiver()
    app = web.Application()
    app.router.add_post("/events", recv.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    recv.url = f"http://127.0.0.1:{runner.addresses[0][1]}/events"
    yield recv
    await runner.cleanup()


class TestEvents:
    """SecretNewVersionCreated, NearExpiry, Expired; handshake and retries."""

    async def test_new_version_event(
        self, make_emulator: EmulatorFactory, receiver: Receiver
    ) -> None:
        """A set secret produces SecretNewVersionCreated with Key Vault's data fields."""
        emu = make_emulator(events_to=[receiver.url], region="eastus")
        async with aio_secret_client(emu) as client:
            made = await client.set_secret("evented", "v")
        (event,) = await receiver.wait_for("Microsoft.KeyVault.SecretNewVersionCreated")
        assert receiver.validations >= 1
        assert event["subject"] == "evented"
        assert event["topic"].endswith("/vaults/kvdr-eastus")
        assert event["dataVersion"] == "1" and event["metadataVersion"] == "1"
        data = event["data"]
        assert data["Id"] == made.id
        assert data["VaultName"] == "kvdr-eastus"
        assert data["ObjectType"] == "Secret"
        assert data["ObjectName"] == "evented"
        assert data["Version"] == made.properties.version
        assert "Notification" in receiver.headers
        assert "SubscriptionValidation" in receiver.headers

    async def test_handshake_retried_until_validated(
        self, make_emulator: EmulatorFactory, receiver: Receiver
    ) -> None:
        """Events wait for a successful handshake; failed deliveries are retried."""
        receiver.refuse_validations = 2
        receiver.fail_notifications = 2
        emu = make_emulator(events_to=[receiver.url])
        async with aio_secret_client(emu) as client:
            await client.set_secret("patient", "v")
        (event,) = await receiver.wait_for("Microsoft.KeyVault.SecretNewVersionCreated")
        assert receiver.validations == 3
        assert event["subject"] == "patient"

    async def test_near_expiry_and_expired(
        self, make_emulator: EmulatorFactory, receiver: Receiver
    ) -> None:
        """NearExpiry within 30 days of exp, Expired once the vault clock passes it; once each."""
        emu = make_emulator(events_to=[receiver.url])
        expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=10)
        async with aio_secret_client(emu) as client:
            made = await client.set_secret("short-lived", "v", expires_on=expires)
        (near,) = await receiver.wait_for("Microsoft.KeyVault.SecretNearExpiry")
        assert near["data"]["Version"] == made.properties.version
        assert near["data"]["EXP"] == int(expires.timestamp())
        emu.set_clock_offset(11 * 86400)
        (expired,) = await receiver.wait_for("Microsoft.KeyVault.SecretExpired")
        assert expired["data"]["ObjectName"] == "short-lived"
        await asyncio.sleep(2.5)  # two more watcher passes: nothing is sent twice
        assert len([e for e in receiver.events if e["eventType"].endswith("Expired")]) == 1
        assert len([e for e in receiver.events if e["eventType"].endswith("NearExpiry")]) == 1
