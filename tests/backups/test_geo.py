"""Geo-redundant storage: with the storage account's primary endpoint unreachable, listing
and restoring work from its secondary (read) endpoint."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from structlog.testing import capture_logs

from backups.catalog import load_catalog
from backups.restore import RestoreScope, apply_plan, read_target, scoped, state_at
from backups.restore_plan import plan_restore
from tests.backups.conftest import RING, make_journal, open_adapter, secret_change
from tests.fixtures.azurite import Azurite, fresh_container, relayed_settings
from tests.fixtures.emulator import EmulatorFactory
from tests.storage.tcp_relay import TcpRelay
from vault.models import ItemKind

PAIR = "app"


class TestSecondaryEndpoint:
    async def test_list_and_restore_with_the_primary_down(
        self, azurite: Azurite, azurite_relay: TcpRelay, make_emulator: EmulatorFactory
    ) -> None:
        """Written through the primary; with it cut, the listing and a restore into a
        fresh vault are served by the secondary endpoint."""
        settings = relayed_settings(azurite, azurite_relay)
        now = datetime.now(UTC)
        async with fresh_container(azurite, **settings) as store:
            journal = make_journal(store)
            await journal.record(
                [
                    secret_change("db", "v1", "first", at=now - timedelta(minutes=3)),
                    secret_change("api", "a1", "token", at=now - timedelta(minutes=2)),
                ]
            )
            await journal.close()
            await azurite_relay.stop()
            with capture_logs() as logs:
                summary = (await load_catalog(store, PAIR)).summary()
                point = await state_at(store, RING, PAIR, now, now=now)
            assert any(e["event"] == "storage.read_fallback" for e in logs)
            assert summary["generations"][0]["last_sequence"] == 2
            fresh = make_emulator(region="westus")
            async with open_adapter(fresh) as target:
                scope = RestoreScope(frozenset(ItemKind))
                plan = plan_restore(
                    PAIR, scoped(point.state, scope), await read_target(target, scope)
                )
                report = await apply_plan(plan, point.state, target)
                assert report.ok and report.restored == 2
                assert (await target.get_secret("db")).value == "first"
