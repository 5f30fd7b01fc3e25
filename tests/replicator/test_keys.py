"""Key replication end to end against real emulators and Azurite (replicator/key_mirror.py).

Material is proven equal with the keys themselves: each vault decrypts or verifies what
the other's key encrypted or signed, through the SDK's CryptographyClient.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from azure.keyvault.keys import KeyRotationLifetimeAction, KeyRotationPolicy
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from replicator.pair import PairReplicator
from replicator.settings import ReplicatorSettings
from tests.fixtures.daemon import DaemonProcess, free_port, write_config
from tests.fixtures.emulator import EmulatorProcess, aio_key_client
from tests.fixtures.regions import World, WorldFactory
from tests.fixtures.waiting import wait_for
from tests.replicator.crypto_proof import prove_same_material
from tests.replicator.test_sinks import RecordingSink
from vault.models import Attributes, ChangeOp, ItemKind, ItemProperties
from vault.policies import RotationAction, RotationPolicy

KEYS = frozenset({ItemKind.KEY})
SOON = datetime.now(UTC).replace(microsecond=0) + timedelta(days=40)


async def versions(world: World, region: str, name: str) -> list[ItemProperties]:
    return await world.vaults[region].list_versions(ItemKind.KEY, name)


async def version_ids(world: World, region: str, name: str) -> list[str]:
    return [v.version for v in await versions(world, region, name)]


async def create_rsa(emu: EmulatorProcess, name: str, size: int, count: int = 1) -> list[str]:
    async with aio_key_client(emu) as keys:
        return [
            (await keys.create_rsa_key(name, size=size)).properties.version or ""
            for _ in range(count)
        ]


async def create_ec(emu: EmulatorProcess, name: str, curve: str, count: int = 1) -> list[str]:
    async with aio_key_client(emu) as keys:
        return [
            (await keys.create_ec_key(name, curve=curve)).properties.version or ""
            for _ in range(count)
        ]


def blocked_gauge(pair: str, target: str, kind: str = "key") -> float:
    labels = {"pair": pair, "target": target, "kind": kind}
    return REGISTRY.get_sample_value("kvdr_replication_blocked", labels) or 0.0


class TestRestore:
    async def test_rsa_and_ec_keys_arrive_with_identical_material(self, world: World) -> None:
        """RSA 2048/3072/4096 and EC P-256/384/521 keys with several versions arrive with
        the same version ids, and every version decrypts/verifies across the regions."""
        east, west = world.emulators["eastus"], world.emulators["westus"]
        rsa = {"rsa-2048": (2048, 3), "rsa-3072": (3072, 2), "rsa-4096": (4096, 1)}
        ec = {"ec-p256": ("P-256", 3), "ec-p384": ("P-384", 2), "ec-p521": ("P-521", 2)}
        created = await asyncio.gather(
            *(create_rsa(east, name, size, count) for name, (size, count) in rsa.items()),
            *(create_ec(east, name, curve, count) for name, (curve, count) in ec.items()),
        )
        replicator = world.replicator(world.pair(kinds=KEYS))
        await replicator.load()
        report = await replicator.reconcile()
        assert report.errors == 0 and report.conflicts == 0 and report.blocked == 0
        assert report.copied == sum(len(c) for c in created)

        curves = {name: None for name in rsa} | {name: curve for name, (curve, _) in ec.items()}
        for name, ids in zip([*rsa, *ec], created, strict=True):
            assert await version_ids(world, "westus", name) == ids, name
            for version in ids:
                await prove_same_material(east, west, name, version, curves[name])
            source_type = (await world.vaults["eastus"].get_key(name)).key_type
            assert (await world.vaults["westus"].get_key(name)).key_type == source_type

    async def test_second_pass_changes_nothing(self, world: World) -> None:
        """A second reconcile from a fresh replicator restores, updates and writes nothing."""
        await create_rsa(world.emulators["eastus"], "steady", 2048, 2)
        pair = world.pair(kinds=KEYS)
        first = world.replicator(pair)
        await first.load()
        await first.reconcile()
        second = world.replicator(pair)
        await second.load()
        world.emulators["westus"].reset_stats()
        report = await second.reconcile()
        assert report.copied == 0 and report.updated == 0 and report.unchanged == 1
        stats = world.emulators["westus"].stats()
        writes = [op for op in stats["by_op"] if not op.startswith(("Get", "List"))]
        assert not writes, stats

    async def test_attribute_and_tag_changes_update_in_place(self, world: World) -> None:
        """Disabling a version, moving its expiry and changing tags on the primary reach
        the copy by update, keeping every version id (no restore)."""
        east = world.vaults["eastus"]
        first, second = await create_rsa(world.emulators["eastus"], "attrs", 2048, 2)
        replicator = world.replicator(world.pair(kinds=KEYS))
        await replicator.load()
        await replicator.reconcile()
        await east.update_properties(ItemKind.KEY, "attrs", first, Attributes(enabled=False))
        await east.update_properties(
            ItemKind.KEY, "attrs", second, Attributes(expires_on=SOON, tags={"team": "payments"})
        )
        report = await replicator.poll()
        assert report.updated == 2 and report.copied == 0 and report.errors == 0
        target = {v.version: v for v in await versions(world, "westus", "attrs")}
        assert list(target) == [first, second]
        assert target[first].enabled is False
        assert target[second].expires_on == SOON and target[second].tags == {"team": "payments"}

    async def test_rotation_policy_is_copied(self, world: World) -> None:
        """The primary's rotation policy arrives (backups do not carry it) and a later
        change to it follows on the next full pass."""
        name = "rotating"
        await create_rsa(world.emulators["eastus"], name, 2048)
        async with aio_key_client(world.emulators["eastus"]) as keys:
            await keys.update_key_rotation_policy(
                name,
                KeyRotationPolicy(),
                lifetime_actions=[KeyRotationLifetimeAction("Rotate", time_after_create="P90D")],
                expires_in="P1Y",
            )
        replicator = world.replicator(world.pair(kinds=KEYS))
        await replicator.load()
        await replicator.reconcile()
        expected = RotationPolicy(
            actions=(RotationAction("Rotate", time_after_create="P90D"),), expires_in="P1Y"
        )
        assert await world.vaults["westus"].get_rotation_policy(name) == expected

        changed = RotationPolicy(
            actions=(RotationAction("Rotate", time_after_create="P60D"),), expires_in="P2Y"
        )
        await world.vaults["eastus"].set_rotation_policy(name, changed)
        report = await replicator.reconcile()
        assert report.updated == 1
        assert await world.vaults["westus"].get_rotation_policy(name) == changed


class TestRotation:
    async def test_rotation_reaches_a_purge_allowed_target(self, world: World) -> None:
        """A rotated key replaces kvdr's copy (delete, purge, restore): every version id
        arrives, the new version's material matches and the absence is logged."""
        east, west = world.emulators["eastus"], world.emulators["westus"]
        old = await create_rsa(east, "rotated", 2048, 2)
        replicator = world.replicator(world.pair(kinds=KEYS))
        await replicator.load()
        await replicator.reconcile()
        world.advance_clock()  # whole-second timestamps: let the poll see the change
        async with aio_key_client(east) as keys:
            new = (await keys.rotate_key("rotated")).properties.version or ""
        with capture_logs() as logs:
            report = await replicator.poll()
        assert report.copied == 1 and report.errors == 0 and report.blocked == 0
        assert await version_ids(world, "westus", "rotated") == [*old, new]
        await prove_same_material(east, west, "rotated", new)
        replaced = [e for e in logs if e["event"] == "key.replaced"]
        assert len(replaced) == 1 and replaced[0]["absence_ms"] > 0
        assert await world.vaults["westus"].list_deleted(ItemKind.KEY) == []

    async def test_purge_protected_target_reports_blocked(self, make_world: WorldFactory) -> None:
        """With purge protection on the target, a rotation is reported as blocked (reason
        and remedy in status, the gauge set) while the pair goes on and the journal gets
        the new backup; kvdr's copy stays as it was."""
        world = await make_world(per_region={"westus": {"purge_protection": True}})
        east = world.emulators["eastus"]
        old = await create_rsa(east, "guarded", 2048)
        sink = RecordingSink()
        pair = world.pair(kinds=frozenset({ItemKind.KEY, ItemKind.SECRET}))
        replicator = PairReplicator(
            pair,
            ReplicatorSettings(pairs=(pair,)),
            world.vaults["eastus"],
            {"westus": world.vaults["westus"]},
            world.checkpoints,
            sinks=[sink],
        )
        await replicator.load()
        assert (await replicator.reconcile()).copied == 1
        world.advance_clock()
        async with aio_key_client(east) as keys:
            new = (await keys.rotate_key("guarded")).properties.version or ""
        await world.vaults["eastus"].set_secret("still-flows", "value", Attributes())
        report = await replicator.poll()
        replicator.publish_metrics()

        assert report.blocked == 1 and report.errors == 0 and report.copied == 1
        target = replicator.status()["targets"][0]
        (blocked,) = target["blocked"]
        assert blocked["item"] == "key/guarded"
        assert "purge" in blocked["reason"] and "Remedy" in blocked["reason"]
        assert blocked_gauge("app", "westus") == 1.0
        assert await version_ids(world, "westus", "guarded") == old
        assert (await world.vaults["westus"].get_secret("still-flows")).value == "value"
        journaled = [
            c
            for c in sink.changes
            if c.op is ChangeOp.NEW_VERSION and c.properties and c.properties.version == new
        ]
        assert len(journaled) == 1 and isinstance(journaled[0].payload, bytes)

    async def test_replace_is_abandoned_when_the_target_changed_meanwhile(
        self, world: World
    ) -> None:
        """A version written on the target between planning and replacing makes kvdr
        leave the key alone (nothing deleted or purged) and report it."""
        east, west = world.emulators["eastus"], world.emulators["westus"]
        await create_rsa(east, "raced", 2048)
        replicator = world.replicator(world.pair(kinds=KEYS))
        await replicator.load()
        await replicator.reconcile()
        world.advance_clock()
        await create_rsa(east, "raced", 2048)
        target = world.vaults["westus"]
        listings = 0

        class RacingTarget:
            """The real target adapter; someone writes a version after kvdr's first look."""

            def __getattr__(self, attr: str) -> object:
                return getattr(target, attr)

            async def list_versions(self, kind: ItemKind, name: str) -> list[ItemProperties]:
                nonlocal listings
                listings += 1
                if listings == 2:
                    await create_rsa(west, name, 2048)
                return await target.list_versions(kind, name)

        pair = world.pair(kinds=KEYS)
        racing = PairReplicator(
            pair,
            ReplicatorSettings(pairs=(pair,)),
            world.vaults["eastus"],
            {"westus": RacingTarget()},  # type: ignore[dict-item]
            world.checkpoints,
        )
        await racing.load()
        report = await racing.poll()
        assert report.errors == 1 and report.copied == 0
        (error,) = racing.status()["targets"][0]["recent_errors"]
        assert error["item"] == "key/raced" and "changed on the target" in error["message"]
        assert len(await version_ids(world, "westus", "raced")) == 2
        assert await target.list_deleted(ItemKind.KEY) == []

    async def test_soft_deleted_copy_is_recovered_then_replaced(self, world: World) -> None:
        """A copy someone soft-deleted on the target is recovered (no 409 loop), then
        replaced with the rotated key."""
        east = world.emulators["eastus"]
        old = await create_rsa(east, "phoenix", 2048)
        replicator = world.replicator(world.pair(kinds=KEYS))
        await replicator.load()
        await replicator.reconcile()
        await world.vaults["westus"].delete_item(ItemKind.KEY, "phoenix")
        world.advance_clock()
        new = await create_rsa(east, "phoenix", 2048)
        report = await replicator.poll()
        assert report.errors == 0
        assert await version_ids(world, "westus", "phoenix") == old + new

    async def test_key_kvdr_did_not_restore_is_never_purged(self, world: World) -> None:
        """A target key with versions the primary lacks is a conflict: not deleted, not
        purged, not overwritten, even where purge is allowed."""
        await create_rsa(world.emulators["eastus"], "shared-name", 2048)
        foreign = await create_rsa(world.emulators["westus"], "shared-name", 2048)
        replicator = world.replicator(world.pair(kinds=KEYS))
        await replicator.load()
        report = await replicator.reconcile()
        assert report.conflicts == 1 and report.copied == 0
        assert await version_ids(world, "westus", "shared-name") == foreign
        (conflict,) = replicator.status()["targets"][0]["conflicts"]
        assert conflict["item"] == "key/shared-name" and "neither overwrites" in conflict["reason"]


class TestKeyTypes:
    async def test_hsm_key_into_standard_target_refused_at_start(
        self, make_world: WorldFactory
    ) -> None:
        """A pair whose primary holds an RSA-HSM key and whose target is standard does not
        start: status names the pair, the key and the target, and nothing is copied."""
        world = await make_world(per_region={"eastus": {"sku": "premium"}})
        async with aio_key_client(world.emulators["eastus"]) as keys:
            await keys.create_rsa_key("signing-hsm", hardware_protected=True)
            await keys.create_rsa_key("plain", size=2048)
        replicator = world.replicator(world.pair(kinds=KEYS))
        stop = asyncio.Event()
        with capture_logs() as logs:
            task = asyncio.create_task(replicator.run(stop))
            await wait_for(lambda: replicator.refused, 5.0, "the pair refused at start")
        refused = replicator.status()["refused"]
        assert refused and "'app'" in refused and "'signing-hsm'" in refused
        assert "'westus'" in refused and "RSA-HSM" in refused
        assert any(e["event"] == "pair.refused" and e["log_level"] == "error" for e in logs)
        assert not task.done()  # waits for the stop, so the daemon's other pairs run on
        stop.set()
        await asyncio.wait_for(task, 10)
        assert await world.vaults["westus"].list_items(ItemKind.KEY) == []

    async def test_hsm_key_created_later_is_blocked_not_failed(
        self, make_world: WorldFactory
    ) -> None:
        """An HSM key that appears after start is blocked on a standard target with the
        reason; a premium target takes it."""
        world = await make_world(
            regions=("eastus", "westus", "centralus"),
            per_region={"eastus": {"sku": "premium"}, "centralus": {"sku": "premium"}},
        )
        replicator = world.replicator(world.pair(kinds=KEYS, secondaries=("westus", "centralus")))
        await replicator.load()
        assert await replicator.check_start() == []
        async with aio_key_client(world.emulators["eastus"]) as keys:
            await keys.create_ec_key("late-hsm", curve="P-256", hardware_protected=True)
        report = await replicator.reconcile()
        assert report.errors == 0 and report.blocked == 1 and report.copied == 1
        targets = {t["region"]: t for t in replicator.status()["targets"]}
        (blocked,) = targets["westus"]["blocked"]
        assert "EC-HSM" in blocked["reason"] and "regions.westus.sku" in blocked["reason"]
        assert not targets["centralus"]["blocked"]
        assert (await world.vaults["centralus"].get_key("late-hsm")).key_type == "EC-HSM"


class TestRefusedAtStart:
    async def test_daemon_and_sync_refuse_the_pair_with_a_clear_message(
        self, make_world: WorldFactory, tmp_path: Path
    ) -> None:
        """`kvdr run` keeps running but does not start the pair (status and the error log
        name pair, key and target); `kvdr sync --once` exits 2 with the same message."""
        world = await make_world(per_region={"eastus": {"sku": "premium"}})
        async with aio_key_client(world.emulators["eastus"]) as keys:
            await keys.create_ec_key("hsm-signer", curve="P-256", hardware_protected=True)
        port = free_port()
        config = write_config(world, tmp_path / "kvdr.toml", port=port, extra='kinds = ["key"]')
        sync = subprocess.run(
            [sys.executable, "-m", "kvdr", "sync", "--once", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert sync.returncode == 2, sync.stderr
        assert "'app'" in sync.stderr and "'hsm-signer'" in sync.stderr
        assert "'westus'" in sync.stderr and "sku standard" in sync.stderr

        daemon = DaemonProcess(config, port)
        daemon.start()
        try:

            def refusal() -> str | None:
                pairs = daemon.status()["pairs"]
                return pairs[0].get("refused") if pairs else None

            refused = await wait_for(refusal, 30, "the pair's refusal in status")
            assert refused and "'hsm-signer'" in refused and "'westus'" in refused
            assert daemon.get("/readyz")[0] == 200
            lines = [
                json.loads(line) for line in daemon.logs().splitlines() if line.startswith("{")
            ]
            assert any(
                e.get("event") == "pair.refused" and e.get("level") == "error" for e in lines
            )
        finally:
            assert daemon.terminate() == 0
        assert await world.vaults["westus"].list_items(ItemKind.KEY) == []
