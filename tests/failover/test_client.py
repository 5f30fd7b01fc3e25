"""failover.client: FailoverSecretClient against two real emulators, Azurite holding the
control record, and the fault proxy between the client and each vault."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from chaos.api import FaultProxy
from chaos.faults import Faults
from failover.client import (
    FailoverClientSettings,
    FailoverSecretClient,
    FailoverSecretClientSync,
    SecretUnavailable,
)
from failover.control_stores import ControlStores
from failover.control_transitions import begin_switchover, finish_switchover, initial_record
from storage import AzureBlobStore
from tests.fixtures.azurite import Azurite, fresh_container
from tests.fixtures.clock import ManualClock
from tests.fixtures.emulator import (
    AsyncStaticTokenCredential,
    EmulatorFactory,
    EmulatorProcess,
    secret_client,
)
from tests.fixtures.regions import ca_bundle

PAIR = "app"
REGIONS = ("eastus", "westus")
REFRESH = 10.0
TTL = 60.0
FAILURES = 3
COOLDOWN = 30.0
# Longer than the 1 s request timeout the breaker test gives the client.
SLOW_MS = 2500.0


@dataclass
class Rig:
    emulators: dict[str, EmulatorProcess]
    links: dict[str, str]  # region -> proxy link name
    faults: Faults
    control: ControlStores
    settings: FailoverClientSettings
    clock: ManualClock

    async def switch_to(self, region: str) -> None:
        """Make `region` active the way failover.switchover does: a new epoch through
        the control stores, then the finished record."""
        read = await self.control.read(PAIR, split_ok=True)
        base = read.base or initial_record(PAIR, "eastus", ("westus",))
        record = begin_switchover(
            base, region, by="test", reason="client test", highest_epoch=read.highest_epoch
        )
        await self.control.write(read, record)
        after = await self.control.read(PAIR)
        assert after.committed is not None
        await self.control.write(after, finish_switchover(after.committed, 0.1))

    def client(self, **overrides: Any) -> FailoverSecretClient:
        settings = self.settings
        if overrides:
            settings = FailoverClientSettings(**{**settings.__dict__, **overrides})
        return FailoverSecretClient(settings, AsyncStaticTokenCredential(), clock=self.clock)


def seed(emulators: dict[str, EmulatorProcess], name: str) -> None:
    """The same secret in both regions, each value naming its region (so a test can tell
    which region answered; a real pair holds equal values)."""
    for region, emu in emulators.items():
        with secret_client(emu) as client:
            client.set_secret(name, f"value-from-{region}")


@pytest.fixture
async def rig(
    make_emulator: EmulatorFactory,
    azurite: Azurite,
    tmp_path: Path,
) -> AsyncIterator[Rig]:
    async with FaultProxy("127.0.0.1", 0) as proxy, fresh_container(azurite) as store:
        faults = Faults(proxy.host, proxy.port)
        yield await _rig(make_emulator, faults, store, tmp_path)


async def _rig(
    make_emulator: EmulatorFactory, faults: Faults, store: AzureBlobStore, tmp_path: Path
) -> Rig:
    emulators = {r: make_emulator(region=r) for r in REGIONS}
    bundle = ca_bundle(list(emulators.values()), tmp_path / "ca.pem")
    urls = {}
    links = {}
    for region, emu in emulators.items():
        link = await faults.create_link(f"vault-{region}", f"127.0.0.1:{emu.port}")
        links[region] = link.name
        urls[region] = f"https://{link.listen}"
    settings = FailoverClientSettings(
        pair=PAIR,
        vaults=urls,
        control_stores=(store._settings,),
        refresh_seconds=REFRESH,
        cache_ttl_seconds=TTL,
        breaker_failures=FAILURES,
        breaker_cooldown_seconds=COOLDOWN,
        request_timeout_seconds=3.0,
        ca_file=str(bundle),
        verify_challenge_resource=False,
    )
    return Rig(emulators, links, faults, ControlStores([store]), settings, ManualClock(1000.0))


class TestFollowsTheActiveRegion:
    async def test_reads_from_the_configured_primary_before_any_transition(self, rig: Rig) -> None:
        """No control record yet: reads go to the first region (the primary)."""
        seed(rig.emulators, "db-password")
        async with rig.client() as client:
            secret = await client.get_secret("db-password")
        assert secret.value == "value-from-eastus"
        assert client.active_region == "eastus"

    async def test_follows_a_switchover_within_the_refresh_interval(self, rig: Rig) -> None:
        """The record moves to westus: the next read after the refresh interval goes there;
        an unchanged record is re-read as 'not modified' (304), not downloaded."""
        seed(rig.emulators, "api-key")
        async with rig.client() as client:
            assert (await client.get_secret("api-key")).value == "value-from-eastus"
            await rig.switch_to("westus")
            rig.clock.advance(REFRESH / 2)
            # Not due yet: the record is not read again before the interval.
            assert (await client.get_secret("api-key")).value == "value-from-eastus"
            rig.clock.advance(REFRESH / 2)
            assert (await client.get_secret("api-key")).value == "value-from-westus"
            assert client.active_region == "westus"
            assert client.epoch >= 1
            fetched = client.follower.stats.fetched
            rig.clock.advance(REFRESH)
            await client.get_secret("api-key")
            assert client.follower.stats.not_modified == 1
            assert client.follower.stats.fetched == fetched

    async def test_an_unreadable_record_keeps_the_last_one(
        self, rig: Rig, azurite: Azurite
    ) -> None:
        """Control store down: the client keeps following the region it knew."""
        seed(rig.emulators, "k")
        await rig.switch_to("westus")
        async with rig.client(store_timeout_seconds=2.0) as client:
            assert client.active_region == "westus"
            azurite.stop()
            try:
                rig.clock.advance(REFRESH)
                with capture_logs() as logs:
                    secret = await client.get_secret("k")
            finally:
                azurite.start()
        assert secret.value == "value-from-westus"
        assert any(e["event"] == "client.record_unreadable" for e in logs)


class TestRegionalOutage:
    async def test_a_cut_active_link_falls_back_to_the_other_region(self, rig: Rig) -> None:
        """eastus unreachable: reads keep answering from westus, no configuration change."""
        seed(rig.emulators, "conn")
        async with rig.client() as client:
            assert (await client.get_secret("conn")).value == "value-from-eastus"
            await rig.faults.set_down(rig.links["eastus"])
            for _ in range(5):
                assert (await client.get_secret("conn")).value == "value-from-westus"
            names = [p.name async for p in client.list_properties_of_secrets()]
            assert "conn" in names
        assert client.stats.fallbacks == 6
        assert client.breaker_state("eastus") == "open"

    async def test_both_cut_serves_the_cached_value_within_ttl_then_names_the_item(
        self, rig: Rig
    ) -> None:
        """Every region down: the last value within the TTL, logged by name only; after
        the TTL an error naming the item."""
        seed(rig.emulators, "token")
        async with rig.client() as client:
            await client.get_secret("token")
            for link in rig.links.values():
                await rig.faults.set_down(link)
            rig.clock.advance(TTL - 1)
            with capture_logs() as logs:
                stale = await client.get_secret("token")
            assert stale.value == "value-from-eastus"
            assert client.stats.stale_served == 1
            warning = next(e for e in logs if e["event"] == "client.stale")
            assert warning["name"] == "token"
            assert "value-from" not in repr(logs)
            rig.clock.advance(2)
            with pytest.raises(SecretUnavailable, match="'token'") as caught:
                await client.get_secret("token")
            assert "value-from" not in str(caught.value)
            assert set(caught.value.problems) == set(REGIONS)

    async def test_the_breaker_stops_asking_a_dead_region(
        self, rig: Rig, make_emulator: EmulatorFactory
    ) -> None:
        """A region that takes requests and never answers in time is asked
        `breaker_failures` times, then not until the cool-down, then once (half-open);
        the requests are counted at that region's emulator."""
        # The dead region: an emulator answering only after the client's timeout, so
        # every attempt reaches it (and is counted) but fails.
        slow = make_emulator(region="eastus", latency_ms=int(SLOW_MS))
        link = await rig.faults.create_link("vault-slow", f"127.0.0.1:{slow.port}")
        bundle = Path(rig.settings.ca_file or "")
        bundle.write_text(bundle.read_text() + slow.ca_path.read_text())
        seed({"westus": rig.emulators["westus"]}, "s")
        vaults = {"eastus": f"https://{link.listen}", "westus": rig.settings.vaults["westus"]}
        async with rig.client(vaults=vaults, request_timeout_seconds=1.0) as client:
            slow.reset_stats()
            for _ in range(20):
                assert (await client.get_secret("s")).value == "value-from-westus"
            assert client.breaker_state("eastus") == "open"
            rig.clock.advance(COOLDOWN)
            for _ in range(5):
                assert (await client.get_secret("s")).value == "value-from-westus"
        # The emulator counts a request when it answers (after its latency).
        await asyncio.sleep(SLOW_MS / 1000 + 0.5)
        assert slow.stats()["total"] == FAILURES + 1
        assert client.stats.region_failures["eastus"] == FAILURES + 1
        assert client.stats.reads["westus"] == 25

    async def test_a_missing_secret_is_the_sdks_404_not_a_fallback(self, rig: Rig) -> None:
        """A 4xx is the vault's answer: raised as the SDK raises it, westus not asked."""
        from azure.core.exceptions import ResourceNotFoundError

        async with rig.client() as client:
            rig.emulators["westus"].reset_stats()
            with pytest.raises(ResourceNotFoundError):
                await client.get_secret("nope")
        assert rig.emulators["westus"].stats()["total"] == 0


class TestSyncWrapper:
    async def test_works_from_a_plain_thread(self, rig: Rig) -> None:
        """FailoverSecretClientSync reads and lists from a thread with no event loop."""
        seed(rig.emulators, "sync-one")
        found: dict[str, Any] = {}

        def app() -> None:
            with FailoverSecretClientSync(rig.settings, AsyncStaticTokenCredential()) as client:
                found["value"] = client.get_secret("sync-one").value
                found["versions"] = len(client.list_properties_of_secret_versions("sync-one"))
                found["region"] = client.active_region

        # The fault proxy runs on this test's loop: wait for the thread without blocking it.
        thread = threading.Thread(target=app)
        thread.start()
        await asyncio.to_thread(thread.join, 60)
        assert found == {"value": "value-from-eastus", "versions": 1, "region": "eastus"}


class TestSettings:
    def test_bad_settings_name_the_field(self) -> None:
        """Each bad value is refused with the field named."""
        from storage import LocalFolderSettings

        stores = (LocalFolderSettings("/tmp/x"),)
        with pytest.raises(ValueError, match=r"vaults\.eastus: must be an https"):
            FailoverClientSettings("p", {"eastus": "http://x"}, stores)
        with pytest.raises(ValueError, match="primary 'north'"):
            FailoverClientSettings("p", {"eastus": "https://x"}, stores, primary="north")
        with pytest.raises(ValueError, match="one or three, got 2"):
            FailoverClientSettings("p", {"eastus": "https://x"}, stores * 2)
        with pytest.raises(ValueError, match="cache_ttl_seconds must be a number > 0"):
            FailoverClientSettings("p", {"eastus": "https://x"}, stores, cache_ttl_seconds=0)
        with pytest.raises(ValueError, match="breaker_failures must be an integer >= 1"):
            FailoverClientSettings("p", {"eastus": "https://x"}, stores, breaker_failures=0)
