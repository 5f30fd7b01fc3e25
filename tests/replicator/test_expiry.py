"""The expiry watch (replicator/expiry.py): pure selection and grouping, items expiring in
any region in status and metrics on real emulators, names hidden, and the daemon's
status, /metrics and dashboard (headless Chromium) showing them."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from kvdr.config import ConfigError, parse_config
from replicator.expiry import ExpiringItem, earliest_by_group, expiring_items
from replicator.guard import hidden_name
from tests.fixtures.daemon import DaemonProcess, free_port, write_config
from tests.fixtures.regions import World, WorldFactory
from tests.kvdr.test_dashboard_browser import browse
from tests.replicator.test_guard import pair_status, wait_for, with_replication
from vault.models import Attributes, ItemKind, ItemProperties

NOW = datetime(2026, 6, 1, tzinfo=UTC)
DAY = 86400.0


def props(name: str, days: float | None, **kw: Any) -> ItemProperties:
    expires = NOW + timedelta(days=days) if days is not None else None
    kind = kw.pop("kind", ItemKind.SECRET)
    return ItemProperties(kind=kind, name=name, version="v", expires_on=expires, **kw)


def metric(pair: str, region: str, kind: str = "secret") -> float | None:
    return REGISTRY.get_sample_value(
        "kvdr_item_expiry_timestamp_seconds", {"pair": pair, "region": region, "kind": kind}
    )


def in_days(days: float) -> datetime:
    return datetime.now(UTC).replace(microsecond=0) + timedelta(days=days)


class TestExpiringItems:
    def test_selects_enabled_unmanaged_items_within_the_horizon(self) -> None:
        """Within the horizon (expired ones included) and enabled, not certificate-backed,
        selected by the pair; soonest first."""
        listings = {
            "eastus": [
                props("soon", 3),
                props("later", 29),
                props("beyond", 31),
                props("never", None),
                props("disabled", 1, enabled=False),
                props("cert-backed", 1, managed=True),
                props("expired", -2),
                props("other-pair", 1),
            ],
            "westus": [props("soon", 2, kind=ItemKind.KEY)],
        }
        found = expiring_items(
            listings, NOW.timestamp(), 30 * DAY, lambda p: not p.name.startswith("other")
        )
        assert [(i.region, i.name) for i in found] == [
            ("eastus", "expired"),
            ("westus", "soon"),
            ("eastus", "soon"),
            ("eastus", "later"),
        ]
        shown = found[0].view(NOW.timestamp(), hide_names=False)
        assert shown["expired"] is True and shown["days_left"] == -2.0
        assert found[1].view(NOW.timestamp(), hide_names=True)["name"] == hidden_name("soon")

    @given(
        st.lists(
            st.tuples(
                st.sampled_from(["eastus", "westus"]),
                st.sampled_from(list(ItemKind)),
                st.integers(-5, 40),
            )
        )
    )
    def test_one_series_per_region_and_kind_at_the_earliest_expiry(
        self, rows: list[tuple[str, ItemKind, int]]
    ) -> None:
        """Each (region, kind) group has one value: the earliest expiry among its items,
        never later than any of them."""
        items = [
            ExpiringItem(region, kind, f"n{i}", NOW + timedelta(days=days))
            for i, (region, kind, days) in enumerate(rows)
        ]
        earliest = earliest_by_group(items)
        assert set(earliest) == {(i.region, i.kind) for i in items}
        for item in items:
            assert earliest[(item.region, item.kind)] <= item.expires_on.timestamp()
        for group, at in earliest.items():
            assert any(
                (i.region, i.kind) == group and i.expires_on.timestamp() == at for i in items
            )


CONFIG = """
[credential]
kind = "default"
[regions.eastus]
vault_url = "https://east.example"
[regions.westus]
vault_url = "https://west.example"
[storage]
path = "/tmp/kvdr-state"
[replication]
{replication}
[[pairs]]
name = "app"
primary = "eastus"
secondaries = ["westus"]
{pair}
"""


class TestExpiryConfig:
    def test_keys_in_replication_and_per_pair(self) -> None:
        """Horizon in days or as a duration, guard limits and hide_names are read; a
        pair's own keys win over [replication]'s."""
        config = parse_config(
            CONFIG.format(
                replication='expiry_horizon = "14d"\ndeletion_guard_fraction = "40%"\n'
                'deletion_sweep_interval = "2m"\ndeletion_guard_min_items = 5',
                pair='expiry_horizon = "48h"\nhide_names = true\ndeletion_guard_fraction = 0.1',
            ),
            "kvdr.toml",
        )
        settings = config.replicator
        assert settings.expiry_horizon_seconds == 14 * DAY
        assert settings.deletion_guard_fraction == 0.4
        assert settings.deletion_sweep_interval_seconds == 120.0
        assert settings.deletion_guard_min_items == 5
        pair = settings.pairs[0]
        assert pair.expiry_horizon_seconds == 2 * DAY and pair.hide_names is True
        assert pair.deletion_guard_fraction == 0.1 and pair.deletion_guard_min_items is None

    def test_bad_values_are_named(self) -> None:
        """A fraction above 100%, a negative minimum and a zero horizon are errors at
        their keys."""
        with pytest.raises(ConfigError) as err:
            parse_config(
                CONFIG.format(
                    replication='deletion_guard_fraction = "150%"',
                    pair='deletion_guard_min_items = -1\nexpiry_horizon = "0d"',
                ),
                "kvdr.toml",
            )
        text = str(err.value)
        assert "replication.deletion_guard_fraction" in text and "at most 1" in text
        assert "pairs[0].deletion_guard_min_items" in text
        assert "pairs[0].expiry_horizon" in text and "longer than zero" in text


class TestExpiryOnVaults:
    async def test_expiring_on_the_secondary_only_shows_in_status_and_metrics(
        self, world: World
    ) -> None:
        """Items that expire soon only on the secondary are listed for that region; the
        metric carries the earliest of them; a group with nothing left loses its series."""
        primary, target = world.vaults["eastus"], world.vaults["westus"]
        await primary.set_secret("far-off", "v-far", Attributes(expires_on=in_days(45)))
        pair = world.pair(name="expiry-secondary")
        replicator = world.replicator(pair)
        await replicator.load()
        await replicator.reconcile()
        soonest = in_days(3)
        await target.set_secret("dr-only", "v-dr", Attributes(expires_on=soonest))
        await target.set_secret("dr-later", "v-dr2", Attributes(expires_on=in_days(10)))

        await replicator.sweep()
        replicator.publish_metrics()
        expiring = replicator.status()["expiring"]
        assert [(e["region"], e["name"]) for e in expiring] == [
            ("westus", "dr-only"),
            ("westus", "dr-later"),
        ]
        assert 2.9 < expiring[0]["days_left"] <= 3.0
        assert metric("expiry-secondary", "westus") == soonest.timestamp()
        assert metric("expiry-secondary", "eastus") is None

        for name in ("dr-only", "dr-later"):
            latest = (await target.list_versions(ItemKind.SECRET, name))[-1]
            await target.update_properties(
                ItemKind.SECRET, name, latest.version, Attributes(expires_on=in_days(90))
            )
        await replicator.sweep()
        replicator.publish_metrics()
        assert replicator.status()["expiring"] == []
        assert metric("expiry-secondary", "westus") is None

    async def test_series_go_when_the_pair_moves_away(self, world: World) -> None:
        """After forget_metrics (the pair runs on another daemon now) neither the guard
        nor the expiry series of the pair are exported here."""
        await world.vaults["eastus"].set_secret("soon", "v-soon", Attributes(expires_on=in_days(1)))
        replicator = world.replicator(world.pair(name="expiry-moved"))
        await replicator.load()
        await replicator.sweep()
        replicator.publish_metrics()
        assert metric("expiry-moved", "eastus") is not None
        assert (
            REGISTRY.get_sample_value("kvdr_deletion_guard_tripped", {"pair": "expiry-moved"})
            == 0.0
        )
        replicator.deletions.forget_metrics()
        assert metric("expiry-moved", "eastus") is None
        assert (
            REGISTRY.get_sample_value("kvdr_deletion_guard_tripped", {"pair": "expiry-moved"})
            is None
        )

    async def test_hidden_names_in_status(self, world: World) -> None:
        """With hide_names the listed names are `sha256:` hashes and the real name is
        nowhere in the pair's status."""
        await world.vaults["eastus"].set_secret(
            "payments-api-key", "v-pay", Attributes(expires_on=in_days(5))
        )
        replicator = world.replicator(world.pair(name="expiry-hidden", hide_names=True))
        await replicator.load()
        await replicator.reconcile()
        await replicator.sweep()
        status = replicator.status()
        assert {e["name"] for e in status["expiring"]} == {hidden_name("payments-api-key")}
        assert {e["region"] for e in status["expiring"]} == {"eastus", "westus"}
        assert "payments-api-key" not in json.dumps(status)


class TestExpiryInDaemon:
    @pytest.mark.browser
    async def test_status_metrics_and_dashboard_with_hidden_names(
        self, make_world: WorldFactory, tmp_path: Path
    ) -> None:
        """A real daemon lists an item expiring only on the secondary in /status, exports
        the earliest expiry per region and kind on /metrics, and the dashboard's expiring
        table shows it, all with hashed names."""
        port = free_port()
        world = await make_world()
        expires = in_days(2)
        await world.vaults["westus"].set_secret(
            "standby-db-password", "v-standby", Attributes(expires_on=expires)
        )
        config = with_replication(
            write_config(world, tmp_path / "kvdr.toml", port=port, extra="hide_names = true"),
            deletion_sweep_interval="1s",
        )
        daemon = DaemonProcess(config, port).start()
        try:
            await wait_for(lambda: pair_status(daemon).get("expiring"), 20, "the expiry watch")
            expiring = pair_status(daemon)["expiring"]
            assert [(e["region"], e["kind"], e["name"]) for e in expiring] == [
                ("westus", "secret", hidden_name("standby-db-password"))
            ]
            _, body = daemon.get("/metrics")
            metrics = body.decode()
            line = re.search(
                r'kvdr_item_expiry_timestamp_seconds\{kind="secret",pair="app",'
                r'region="westus"\} ([0-9.e+]+)',
                metrics,
            )
            assert line and float(line.group(1)) == expires.timestamp()
            assert not re.search(r'kvdr_item_expiry_timestamp_seconds\{[^}]*"eastus"', metrics)
            dom = await asyncio.to_thread(
                browse, f"http://127.0.0.1:{port}/", tmp_path / "profile", "--dump-dom"
            )
            assert 'data-expiry-region="westus"' in dom
            assert hidden_name("standby-db-password") in dom
            _, status_body = daemon.get("/status")
            for text in (metrics, dom, status_body.decode()):
                assert "standby-db-password" not in text
        finally:
            assert daemon.terminate() == 0
