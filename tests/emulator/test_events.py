"""Event Grid delivery to a real subscriber (a small aiohttp receiver in the test)."""

from __future__ import annotations

import asyncio
import datetime

from tests.fixtures.emulator import EmulatorFactory, aio_secret_client
from tests.fixtures.event_receiver import EventReceiver

WAIT_SECONDS = 15.0


class TestEvents:
    """SecretNewVersionCreated, NearExpiry, Expired; handshake and retries."""

    async def test_new_version_event(
        self, make_emulator: EmulatorFactory, event_receiver: EventReceiver
    ) -> None:
        """A set secret produces SecretNewVersionCreated with Key Vault's data fields."""
        emu = make_emulator(events_to=[event_receiver.url], region="eastus")
        async with aio_secret_client(emu) as client:
            made = await client.set_secret("evented", "v")
        (event,) = await event_receiver.wait_for("Microsoft.KeyVault.SecretNewVersionCreated")
        assert event_receiver.validations == 1
        assert event["subject"] == "evented"
        assert event["topic"].endswith("/vaults/kvdr-eastus")
        assert event["dataVersion"] == "1" and event["metadataVersion"] == "1"
        data = event["data"]
        assert data["Id"] == made.id
        assert data["VaultName"] == "kvdr-eastus"
        assert data["ObjectType"] == "Secret"
        assert data["ObjectName"] == "evented"
        assert data["Version"] == made.properties.version
        assert "Notification" in event_receiver.headers
        assert "SubscriptionValidation" in event_receiver.headers

    async def test_handshake_retried_until_validated(
        self, make_emulator: EmulatorFactory, event_receiver: EventReceiver
    ) -> None:
        """Events wait for a successful handshake; failed deliveries are retried."""
        event_receiver.refuse_validations = 2
        event_receiver.fail_notifications = 2
        emu = make_emulator(events_to=[event_receiver.url])
        async with aio_secret_client(emu) as client:
            await client.set_secret("patient", "v")
        (event,) = await event_receiver.wait_for("Microsoft.KeyVault.SecretNewVersionCreated")
        assert event_receiver.validations == 3
        assert event["subject"] == "patient"

    async def test_near_expiry_and_expired(
        self, make_emulator: EmulatorFactory, event_receiver: EventReceiver
    ) -> None:
        """NearExpiry within 30 days of exp, Expired once the vault clock passes it; once each."""
        emu = make_emulator(events_to=[event_receiver.url])
        expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=10)
        async with aio_secret_client(emu) as client:
            made = await client.set_secret("short-lived", "v", expires_on=expires)
        (near,) = await event_receiver.wait_for("Microsoft.KeyVault.SecretNearExpiry")
        assert near["data"]["Version"] == made.properties.version
        assert near["data"]["EXP"] == int(expires.timestamp())
        emu.set_clock_offset(11 * 86400)
        (expired,) = await event_receiver.wait_for("Microsoft.KeyVault.SecretExpired")
        assert expired["data"]["ObjectName"] == "short-lived"
        await asyncio.sleep(2.5)  # two more watcher passes: nothing is sent twice
        assert len([e for e in event_receiver.events if e["eventType"].endswith("Expired")]) == 1
        assert len([e for e in event_receiver.events if e["eventType"].endswith("NearExpiry")]) == 1
