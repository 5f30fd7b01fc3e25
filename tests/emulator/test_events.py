"""Event Grid delivery to a real subscriber (a small aiohttp receiver in the test)."""

from __future__ import annotations

import collections
import datetime
from typing import Any

from tests.fixtures.emulator import EmulatorFactory, aio_secret_client
from tests.fixtures.event_receiver import EventReceiver

WAIT_SECONDS = 15.0


def sent(events: list[dict[str, Any]], event_type: str, subject: str) -> bool:
    return any(
        e["eventType"] == f"Microsoft.KeyVault.{event_type}" and e["subject"] == subject
        for e in events
    )


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
        # Two more watcher passes, each proven by an event only it can send (a subscriber
        # gets its events in order): nothing is sent twice.
        vault_now = float(emu.management("GET", "clock")["vault_time"])
        async with aio_secret_client(emu) as client:
            marker_expires = datetime.datetime.fromtimestamp(vault_now + 86400, datetime.UTC)
            await client.set_secret("marker", "v", expires_on=marker_expires)
        await event_receiver.wait_until(lambda events: sent(events, "SecretNearExpiry", "marker"))
        emu.set_clock_offset(13 * 86400)
        await event_receiver.wait_until(lambda events: sent(events, "SecretExpired", "marker"))
        kinds = collections.Counter(
            (e["eventType"].removeprefix("Microsoft.KeyVault."), e["subject"])
            for e in event_receiver.events
        )
        assert kinds == {
            (kind, name): 1
            for kind in ("SecretNewVersionCreated", "SecretNearExpiry", "SecretExpired")
            for name in ("short-lived", "marker")
        }
