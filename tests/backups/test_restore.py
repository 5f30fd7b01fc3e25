"""Restore to a point in time (backups/restore.py) end to end: real emulators, Azurite,
journals fed the way the replicator feeds them."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio
from azure.keyvault.certificates import CertificatePolicy, KeyVaultCertificate
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from backups.catalog import load_catalog
from backups.errors import RestoreRefused
from backups.keks import KekRing
from backups.restore import (
    PointInTime,
    RestoreReport,
    RestoreScope,
    apply_plan,
    check_target,
    read_target,
    scoped,
    state_at,
)
from backups.restore_plan import RestorePlan, plan_restore
from storage import AzureBlobStore
from tests.backups.conftest import RING, local_kek, make_journal, open_adapter, ring, secret_change
from tests.backups.feed import record_deleted, record_items
from tests.fixtures.azurite import Azurite, fresh_container
from tests.fixtures.emulator import (
    EmulatorFactory,
    EmulatorProcess,
    aio_certificate_client,
    aio_key_client,
)
from vault import KeyVaultAdapter
from vault.models import Attributes, ItemKind, ItemRef

PAIR = "app"
pytestmark = pytest.mark.asyncio(loop_scope="module")
ALL = frozenset(ItemKind)
SECRET, KEY, CERT = (
    ItemRef(ItemKind.SECRET, "db-password"),
    ItemRef(ItemKind.KEY, "signing"),
    ItemRef(ItemKind.CERTIFICATE, "web"),
)


async def restore_into(
    store: AzureBlobStore,
    target: KeyVaultAdapter,
    at: datetime,
    *,
    keks: KekRing = RING,
    scope: RestoreScope | None = None,
    force: bool = False,
    allow_gap: bool = False,
) -> tuple[PointInTime, RestorePlan, RestoreReport]:
    """What `kvdr restore` does, step by step."""
    scope = scope or RestoreScope(ALL)
    point = await state_at(store, keks, PAIR, at, now=datetime.now(UTC), allow_gap=allow_gap)
    plan = plan_restore(PAIR, scoped(point.state, scope), await read_target(target, scope))
    check_target(plan, force)
    report = await apply_plan(plan, point.state, target)
    return point, plan, report


async def create_key(emu: EmulatorProcess, name: str) -> tuple[str, rsa.RSAPublicKey]:
    async with aio_key_client(emu) as keys:
        key = await keys.create_rsa_key(name, size=2048)
    assert key.key.n is not None and key.key.e is not None
    public = rsa.RSAPublicNumbers(
        int.from_bytes(key.key.e, "big"), int.from_bytes(key.key.n, "big")
    ).public_key()
    return key.properties.version or "", public


async def create_certificate(emu: EmulatorProcess, name: str) -> tuple[str, bytes]:
    async with aio_certificate_client(emu) as certs:
        cert = await certs.create_certificate(name, CertificatePolicy.get_default())
    assert isinstance(cert, KeyVaultCertificate) and cert.properties is not None
    return cert.properties.version or "", bytes(cert.cer or b"")


async def certificate_der(emu: EmulatorProcess, name: str, version: str) -> bytes:
    async with aio_certificate_client(emu) as certs:
        cert = await certs.get_certificate_version(name, version)
    return bytes(cert.cer or b"")


async def proves_private_key(
    vault: KeyVaultAdapter, name: str, version: str, public: rsa.RSAPublicKey
) -> bool:
    """The target's key unwraps what the original public key wrapped: same material."""
    secret = os.urandom(32)
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    return await vault.unwrap_key(name, version, public.encrypt(secret, oaep)) == secret


@dataclass
class Timeline:
    """v1 at t1, v2 at t2, deletion at t3 of a secret, a key and a certificate."""

    t1: datetime
    t2: datetime
    t3: datetime
    keys: list[tuple[str, rsa.RSAPublicKey]]
    certs: list[tuple[str, bytes]]


@dataclass
class Shared:
    timeline: Timeline
    store: AzureBlobStore

    async def restore_after(
        self, target: KeyVaultAdapter, moment: datetime, *, force: bool = False
    ) -> tuple[PointInTime, RestorePlan, RestoreReport]:
        """Restore the shared journal into `target` as it was 30 s after `moment`."""
        return await restore_into(self.store, target, moment + timedelta(seconds=30), force=force)


async def check_key_and_certificate(
    emu: EmulatorProcess, target: KeyVaultAdapter, timeline: Timeline, *, versions: int
) -> None:
    """The target holds exactly the first `versions` versions of the key and of the
    certificate, each with the original's material (`emu` serves `target`)."""
    keys, certs = timeline.keys[:versions], timeline.certs[:versions]
    restored_keys = await target.list_versions(ItemKind.KEY, KEY.name)
    assert [k.version for k in restored_keys] == [v for v, _ in keys]
    for version, public in keys:
        assert await proves_private_key(target, KEY.name, version, public)
    restored_certs = await target.list_versions(ItemKind.CERTIFICATE, CERT.name)
    assert [c.version for c in restored_certs] == [v for v, _ in certs]
    for version, der in certs:
        assert await certificate_der(emu, CERT.name, version) == der


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared(
    azurite: Azurite, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Shared]:
    """One primary and one journal with the timeline, shared by the module's tests (none
    of them changes the journal)."""
    primary = EmulatorProcess(tmp_path_factory.mktemp("primary") / "state", region="eastus")
    primary.start()
    try:
        async with fresh_container(azurite) as store:
            yield Shared(await write_timeline(primary, store), store)
    finally:
        primary.stop()


async def write_timeline(primary: EmulatorProcess, store: AzureBlobStore) -> Timeline:
    now = datetime.now(UTC)
    t1, t2, t3 = (
        now - timedelta(minutes=30),
        now - timedelta(minutes=20),
        now - timedelta(minutes=10),
    )
    journal = make_journal(store)
    keys, certs = [], []
    async with open_adapter(primary) as vault:
        await vault.set_secret(SECRET.name, "value-one", Attributes(content_type="text/plain"))
        keys.append(await create_key(primary, KEY.name))
        certs.append(await create_certificate(primary, CERT.name))
        await record_items(journal, PAIR, vault, [SECRET, KEY, CERT], t1)
        await journal.flush()
        await vault.set_secret(SECRET.name, "value-two", Attributes(tags={"env": "prod"}))
        keys.append(await create_key(primary, KEY.name))
        certs.append(await create_certificate(primary, CERT.name))
        await record_items(journal, PAIR, vault, [SECRET, KEY, CERT], t2)
        await journal.flush()
        for ref in (SECRET, KEY, CERT):
            await vault.delete_item(ref.kind, ref.name)
            await record_deleted(journal, PAIR, ref, t3)
    await journal.close()
    return Timeline(t1, t2, t3, keys, certs)


@pytest.fixture
def fresh(make_emulator: EmulatorFactory) -> EmulatorProcess:
    """An empty vault in another region of the same geography: the restore target."""
    return make_emulator(region="westus")


class TestPointInTime:
    async def test_between_t1_and_t2_gives_the_first_versions(
        self, shared: Shared, fresh: EmulatorProcess
    ) -> None:
        """Restoring to just after t1 into a fresh vault gives v1 of all three kinds."""
        timeline = shared.timeline
        async with open_adapter(fresh) as target:
            _, _, report = await shared.restore_after(target, timeline.t1)
            assert report.ok and report.restored == 3
            secret = await target.list_versions(ItemKind.SECRET, SECRET.name)
            assert len(secret) == 1 and (await target.get_secret(SECRET.name)).value == "value-one"
            assert secret[0].content_type == "text/plain"
            await check_key_and_certificate(fresh, target, timeline, versions=1)

    async def test_between_t2_and_t3_gives_both_versions(
        self, shared: Shared, fresh: EmulatorProcess
    ) -> None:
        """Just after t2: both versions of each item, the second one current."""
        timeline = shared.timeline
        async with open_adapter(fresh) as target:
            _, _, report = await shared.restore_after(target, timeline.t2)
            assert report.ok
            values = [
                (await target.get_secret(SECRET.name, v.version)).value
                for v in await target.list_versions(ItemKind.SECRET, SECRET.name)
            ]
            assert values == ["value-one", "value-two"]
            current = (await target.get_secret(SECRET.name)).properties
            assert current.tags["env"] == "prod"
            await check_key_and_certificate(fresh, target, timeline, versions=2)

    async def test_after_t3_everything_is_deleted(
        self, shared: Shared, fresh: EmulatorProcess
    ) -> None:
        """After the deletions there is nothing to restore, and a restore deletes them."""
        timeline = shared.timeline
        async with open_adapter(fresh) as target:
            await shared.restore_after(target, timeline.t2)
            _, plan, report = await shared.restore_after(target, timeline.t3, force=True)
            assert plan.counts()["delete"] == 3 and report.ok
            for kind in ItemKind:
                assert await target.list_items(kind) == []

    async def test_applying_twice_changes_nothing(
        self, shared: Shared, fresh: EmulatorProcess
    ) -> None:
        """A second run over the restored vault plans nothing: idempotent."""
        async with open_adapter(fresh) as target:
            await shared.restore_after(target, shared.timeline.t2)
            _, plan, _ = await shared.restore_after(target, shared.timeline.t2, force=True)
            assert plan.empty and plan.unchanged == 3


class TestRollback:
    async def test_one_secret_rolls_back_in_the_live_vault(
        self, make_emulator: EmulatorFactory, azurite: Azurite
    ) -> None:
        """--item secret/db at t1 into the live vault writes the old value as current and
        leaves every other item alone; without --force it is refused."""
        primary = make_emulator(region="eastus")
        now = datetime.now(UTC)
        db, other = ItemRef(ItemKind.SECRET, "db"), ItemRef(ItemKind.SECRET, "other")
        async with fresh_container(azurite) as store, open_adapter(primary) as vault:
            journal = make_journal(store)
            await vault.set_secret("db", "good", Attributes())
            await record_items(journal, PAIR, vault, [db], now - timedelta(minutes=10))
            await vault.set_secret("db", "bad", Attributes())
            await vault.set_secret("other", "keep", Attributes())
            await record_items(journal, PAIR, vault, [db, other], now - timedelta(minutes=5))
            await journal.close()
            scope = RestoreScope(ALL, items=frozenset({db}))
            at = now - timedelta(minutes=8)
            with pytest.raises(RestoreRefused, match="--force"):
                await restore_into(store, vault, at, scope=scope)
            _, plan, report = await restore_into(store, vault, at, scope=scope, force=True)
            assert plan.counts()["new_version"] == 1 and report.ok
            assert (await vault.get_secret("db")).value == "good"
            assert len(await vault.list_versions(ItemKind.SECRET, "db")) == 3
            assert (await vault.get_secret("other")).value == "keep"


class TestRefusals:
    async def test_times_outside_the_window(self, shared: Shared) -> None:
        """Before the earliest restorable second, or in the future: a clear refusal."""
        timeline, blob_container = shared.timeline, shared.store
        now = datetime.now(UTC)
        with pytest.raises(RestoreRefused, match="outside the retention window"):
            await state_at(blob_container, RING, PAIR, timeline.t1 - timedelta(hours=1), now=now)
        with pytest.raises(RestoreRefused, match="in the future"):
            await state_at(blob_container, RING, PAIR, now + timedelta(minutes=5), now=now)
        with pytest.raises(RestoreRefused, match="no backups"):
            await state_at(blob_container, RING, "other", now, now=now)

    async def test_gap_before_time_is_refused_with_its_range(self, azurite: Azurite) -> None:
        """A missing segment before TIME refuses, naming the range; --allow-gap goes on
        and reports what it skipped."""
        now = datetime.now(UTC)
        async with fresh_container(azurite) as store:
            journal = make_journal(store)
            await journal.record(
                [
                    secret_change("db", "v1", at=now - timedelta(minutes=30)),
                    secret_change("db", "v2", at=now - timedelta(minutes=28)),
                ]
            )
            await journal.flush()
            for minutes in (20, 10):
                at = now - timedelta(minutes=minutes)
                await journal.record([secret_change("db", f"v{minutes}", at=at)])
                await journal.flush()
            gen = (await load_catalog(store, PAIR)).latest
            assert gen is not None
            missing = gen.segments[1]
            await store.delete(missing.blob)
            with pytest.raises(RestoreRefused) as caught:
                await state_at(store, RING, PAIR, now, now=now)
            assert f"sequences {missing.name.first}-{missing.name.last}" in str(caught.value)
            assert "--allow-gap" in str(caught.value) and gen.segments[2].blob in str(caught.value)
            before = await state_at(store, RING, PAIR, now - timedelta(minutes=29), now=now)
            assert before.state.sequence == 1  # a gap after TIME does not matter
            point = await state_at(store, RING, PAIR, now, now=now, allow_gap=True)
            assert [(g.first, g.last) for g in point.gaps] == [(3, 3)]
            assert point.state.sequence == 4

    async def test_wrong_kek_refuses_naming_the_blob(self, shared: Shared) -> None:
        """Without any of the KEKs that wrapped the objects, the restore names a blob."""
        blob_container = shared.store
        now = datetime.now(UTC)
        with pytest.raises(RestoreRefused) as caught:
            await state_at(blob_container, ring(local_kek()), PAIR, now, now=now)
        assert "no configured key-encryption key can open it" in str(caught.value)
        assert "backups/app/" in str(caught.value)


class TestGeography:
    async def test_key_backups_from_another_geography_are_reported_per_item(
        self, shared: Shared, make_emulator: EmulatorFactory
    ) -> None:
        """Into a vault of another geography, secrets restore; keys and certificates are
        reported one by one with the reason."""
        elsewhere = make_emulator(region="westeurope", geo="eu")
        async with open_adapter(elsewhere) as target:
            _, _, report = await shared.restore_after(target, shared.timeline.t2)
        assert report.restored == 1
        failed = {f["item"]: f["reason"] for f in report.failed}
        assert set(failed) == {str(KEY), str(CERT)}
        assert all("another geography" in reason for reason in failed.values())
