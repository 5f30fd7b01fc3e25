"""The daemon as a real process: change feed paths, HTTP surfaces, SIGTERM (kvdr/daemon.py)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from tests.fixtures.daemon import DaemonProcess, free_port, write_config
from tests.fixtures.regions import WorldFactory
from tests.fixtures.waiting import wait_for
from vault.adapter import KeyVaultAdapter
from vault.errors import ItemNotFound
from vault.models import Attributes, ItemKind

VALUE_MARKER = "daemon-leak-marker-0f9e"


async def has_secret(vault: KeyVaultAdapter, name: str, value: str) -> bool:
    try:
        return (await vault.get_secret(name)).value == value
    except ItemNotFound:
        return False


class TestChangeFeedPaths:
    async def test_event_driven_path_converges_without_polling(
        self, make_world: WorldFactory, tmp_path: Path
    ) -> None:
        """With polling and reconciliation an hour away, an Event Grid event alone brings
        a new version across."""
        port = free_port()
        world = await make_world(events_to=[f"http://127.0.0.1:{port}/events"])
        config = write_config(
            world, tmp_path / "kvdr.toml", port=port, poll_interval="1h", reconcile_interval="1h"
        )
        daemon = DaemonProcess(config, port).start()
        try:
            await wait_for(
                lambda: daemon.status()["pairs"][0]["last_reconcile"],
                20,
                "the start-up reconciliation",
            )
            await world.vaults["eastus"].set_secret("by-event", "event-value", Attributes())
            await wait_for(
                lambda: has_secret(world.vaults["westus"], "by-event", "event-value"),
                15,
                "the event-driven copy",
            )
        finally:
            assert daemon.terminate() == 0
        assert "subscription_validated" in daemon.logs()

    async def test_polling_only_path_converges(
        self, make_world: WorldFactory, tmp_path: Path
    ) -> None:
        """Without events, polling finds and mirrors a new version and an attribute change."""
        port = free_port()
        world = await make_world()
        config = write_config(world, tmp_path / "kvdr.toml", port=port, poll_interval="500ms")
        daemon = DaemonProcess(config, port).start()
        primary, target = world.vaults["eastus"], world.vaults["westus"]
        try:
            await primary.set_secret("by-poll", "poll-value", Attributes())
            await wait_for(lambda: has_secret(target, "by-poll", "poll-value"), 15, "the copy")
            version = (await primary.list_versions(ItemKind.SECRET, "by-poll"))[-1].version
            await primary.update_properties(
                ItemKind.SECRET, "by-poll", version, Attributes(tags={"owner": "team-a"})
            )

            async def tagged() -> bool:
                props = (await target.list_versions(ItemKind.SECRET, "by-poll"))[-1]
                return props.tags.get("owner") == "team-a"

            await wait_for(tagged, 15, "the attribute change")
        finally:
            assert daemon.terminate() == 0


class TestSurfaces:
    async def test_http_endpoints_and_no_values_anywhere(
        self, make_world: WorldFactory, tmp_path: Path
    ) -> None:
        """healthz, readyz, metrics, status and the dashboard answer, and none of them
        (nor the daemon's log) carries a secret value."""
        port = free_port()
        world = await make_world()
        await world.vaults["eastus"].set_secret("leaky", VALUE_MARKER, Attributes())
        config = write_config(world, tmp_path / "kvdr.toml", port=port)
        daemon = DaemonProcess(config, port).start()
        try:
            await wait_for(
                lambda: has_secret(world.vaults["westus"], "leaky", VALUE_MARKER), 15, "the copy"
            )
            code, _ = daemon.get("/healthz")
            assert code == 200
            code, _ = daemon.get("/readyz")
            assert code == 200
            code, metrics = daemon.get("/metrics")
            text = metrics.decode()
            assert code == 200
            assert 'kvdr_rpo_seconds{pair="app"}' in text
            assert 'kvdr_replication_lag_seconds{pair="app",target="westus"}' in text
            assert 'kvdr_changes_applied_total{kind="secret",op="new_version",pair="app"' in text
            assert 'kvdr_region_up{region="eastus"} 1.0' in text
            assert "kvdr_vault_requests_total" in text
            status = daemon.status()
            assert status["pairs"][0]["name"] == "app"
            assert {r["region"] for r in status["regions"]} == {"eastus", "westus"}
            code, page = daemon.get("/")
            assert code == 200 and b"<title>kvdr</title>" in page
            for body in (metrics, json.dumps(status).encode(), page):
                assert VALUE_MARKER.encode() not in body
        finally:
            assert daemon.terminate() == 0
        assert "secret.mirrored" in daemon.logs()
        assert VALUE_MARKER not in daemon.logs()

    async def test_event_endpoint_answers_validation_handshake(
        self, make_world: WorldFactory, tmp_path: Path
    ) -> None:
        """Event Grid's subscription validation gets its code back; junk gets 400."""
        import urllib.request

        port = free_port()
        world = await make_world()
        daemon = DaemonProcess(write_config(world, tmp_path / "kvdr.toml", port=port), port)
        daemon.start()
        try:
            body = json.dumps(
                [
                    {
                        "id": "1",
                        "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
                        "data": {"validationCode": "abc-123"},
                        "subject": "",
                        "dataVersion": "1",
                    }
                ]
            ).encode()
            request = urllib.request.Request(
                daemon.url + "/events",
                data=body,
                method="POST",
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=5) as response:
                assert json.loads(response.read()) == {"validationResponse": "abc-123"}
            bad = urllib.request.Request(
                daemon.url + "/events",
                data=b"{not json",
                method="POST",
                headers={"Content-Type": "application/json"},
            )
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(bad, timeout=5)
            assert err.value.code == 400
        finally:
            daemon.terminate()


class TestStopping:
    async def test_sigterm_writes_checkpoint_and_exits_zero(
        self, make_world: WorldFactory, tmp_path: Path
    ) -> None:
        """SIGTERM mid-sync: exit 0 within the drain bound, checkpoint written; a restart
        finishes the job without duplicate versions."""
        port = free_port()
        world = await make_world(latency_ms=20)
        primary = world.vaults["eastus"]
        names = [f"drain-{i:03d}" for i in range(120)]
        await asyncio.gather(*(primary.set_secret(n, f"v-{n}", Attributes()) for n in names))
        config = write_config(world, tmp_path / "kvdr.toml", port=port)
        daemon = DaemonProcess(config, port).start()
        await wait_for(
            lambda: daemon.status()["pairs"][0]["targets"][0]["last_success"],
            20,
            "the first applied item",
        )
        started = time.monotonic()
        assert daemon.terminate() == 0
        assert time.monotonic() - started < 15
        saved = await world.checkpoints.load("app", "westus")
        assert saved.items, "checkpoint was not written on SIGTERM"

        daemon = DaemonProcess(config, port).start()
        try:

            async def all_there() -> bool:
                listed = await world.vaults["westus"].list_items(ItemKind.SECRET)
                return len(listed) == len(names)

            await wait_for(all_there, 30, "all secrets after the restart")
        finally:
            assert daemon.terminate() == 0
        for name in names[:20]:
            assert len(await world.vaults["westus"].list_versions(ItemKind.SECRET, name)) == 1


class TestJournalInStatus:
    async def test_status_shows_journal_position(
        self, make_world: WorldFactory, tmp_path: Path
    ) -> None:
        """With [backups] configured, /status shows each journal's sequence and flushes."""
        port = free_port()
        world = await make_world()
        await world.vaults["eastus"].set_secret("journaled", "value-j", Attributes())
        extra = (
            '\n[backups]\nflush_interval = "500ms"\n\n[[backups.keks]]\nkind = "file"\n'
            f'path = "{tmp_path / "backup.key"}"\ncreate = true\n'
            '\n[[backups.signers]]\nkind = "file"\n'
            f'path = "{tmp_path / "backup-signing.key"}"\ncreate = true\n'
        )
        config = write_config(world, tmp_path / "kvdr.toml", port=port, extra=extra)
        daemon = DaemonProcess(config, port).start()
        try:

            async def journaled() -> bool:
                journal = daemon.status()["journal"]
                return bool(journal) and journal[0]["durable_sequence"] >= 1

            await wait_for(journaled, 20, "the journal to record the secret")
            entry = daemon.status()["journal"][0]
            assert entry["pair"] == "app" and entry["last_error"] is None
            assert "journaled" not in json.dumps(daemon.status()["journal"])
        finally:
            assert daemon.terminate() == 0
