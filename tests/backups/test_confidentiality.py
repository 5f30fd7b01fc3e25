"""What blob storage reveals, and who can open it: no secret name or value in any blob
name, metadata or unencrypted byte; either region's vault KEK alone, and the offline
recovery key alone, restore everything."""

from __future__ import annotations

import base64
import dataclasses
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio

from backups import records
from backups.catalog import load_catalog
from backups.envelope import read_header
from backups.keks import VaultKek
from backups.objects import seal_segment
from backups.restore import state_at
from backups.snapshot import create_snapshot
from backups.stores import BackupStores
from storage import AzureBlobStore
from tests.backups.conftest import (
    RING,
    create_rsa_key,
    make_journal,
    open_adapter,
    recovery_private,
    recovery_public,
    ring,
    secret_change,
)
from tests.backups.feed import record_items
from tests.fixtures.azurite import Azurite, fresh_container
from tests.fixtures.emulator import EmulatorProcess
from vault import KeyVaultAdapter
from vault.models import Attributes, ItemKind, ItemRef

pytestmark = pytest.mark.asyncio(loop_scope="module")
PAIR = "app"
SECRETS = {
    "payments-db-password-prod": "hunter2-correct-horse-battery",
    "stripe-live-api-token": "sk_live_51HfAKEfakeFAKEfake",
}
TAG_VALUE = "owner-alice-in-finance"


@dataclass
class Backups:
    store: AzureBlobStore
    east: KeyVaultAdapter
    west: KeyVaultAdapter
    written_at: datetime


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def backups(
    azurite: Azurite, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Backups]:
    """A journal and a snapshot of two secrets, wrapped by two regions' vault keys and the
    offline recovery key."""
    east = EmulatorProcess(tmp_path_factory.mktemp("east") / "state", region="eastus")
    west = EmulatorProcess(tmp_path_factory.mktemp("west") / "state", region="westus")
    with east, west:
        await create_rsa_key(east, "kvdr-backup")
        await create_rsa_key(west, "kvdr-backup")
        async with (
            fresh_container(azurite) as store,
            open_adapter(east, "eastus") as ev,
            open_adapter(west, "westus") as wv,
        ):
            keks = ring(VaultKek(ev, "kvdr-backup"), VaultKek(wv, "kvdr-backup"), recovery_public())
            journal = make_journal(store, keks=keks)
            refs = [ItemRef(ItemKind.SECRET, name) for name in SECRETS]
            for name, value in SECRETS.items():
                await ev.set_secret(name, value, Attributes(tags={"owner": TAG_VALUE}))
            written_at = datetime.now(UTC) - timedelta(seconds=5)
            await record_items(journal, PAIR, ev, refs, written_at)
            await journal.close()
            await create_snapshot(BackupStores(store), keks, PAIR)
            yield Backups(store, ev, wv, written_at)


def forms(text: str) -> list[bytes]:
    raw = text.encode()
    return [raw, base64.b64encode(raw), raw.hex().encode()]


class TestNothingLeaks:
    async def test_names_metadata_and_clear_bytes_reveal_nothing(self, backups: Backups) -> None:
        """No secret name, value or tag in blob names, metadata, headers or any byte."""
        infos = await backups.store.list("")
        assert infos, "no blobs written"
        needles = [
            form for text in [*SECRETS, *SECRETS.values(), TAG_VALUE] for form in forms(text)
        ]
        for info in infos:
            assert not any(n.decode() in info.name for n in needles), info.name
            assert not any(
                n.decode() in f"{k}={v}" for n in needles for k, v in info.metadata.items()
            ), info.name
            data = (await backups.store.get(info.name)).data
            assert not any(n in data for n in needles), info.name
            if info.name.endswith((".seg", ".snap")):
                header = read_header(data, info.name)
                assert {w.kek.split(":")[0] for w in header.wraps} == {"vault", "recovery"}
                assert len(header.wraps) == 3


class TestAnyKekAlone:
    @pytest.mark.parametrize("which", ["east vault key", "west vault key", "recovery key"])
    async def test_one_kek_restores_everything(self, backups: Backups, which: str) -> None:
        """Either region's vault key alone, or the offline recovery key alone, opens every
        object and gives back every value."""
        kek = {
            "east vault key": lambda: VaultKek(backups.east, "kvdr-backup"),
            "west vault key": lambda: VaultKek(backups.west, "kvdr-backup"),
            "recovery key": recovery_private,
        }[which]()
        now = datetime.now(UTC)
        catalog = await load_catalog(backups.store, PAIR)
        gen = catalog.latest
        assert gen is not None and gen.snapshots
        point = await state_at(backups.store, ring(kek), PAIR, now, now=now)
        values = {
            ref.name: item.current.payload
            for ref, item in point.state.items.items()
            if item.current is not None
        }
        assert values == SECRETS


class TestSizesRevealNoGuess:
    async def test_matching_and_other_guess_give_blobs_of_equal_size(self) -> None:
        """Someone who can plant a secret next to a real one and read blob sizes learns
        nothing from them: a guess equal to the real value compresses better, and
        padding to size buckets hides it (without padding: sizes differ, checked too)."""
        real = "payments-db-password-9f3k2LmQ"
        at = datetime(2025, 1, 31, 14, 5, tzinfo=UTC)
        sizes: dict[str, int] = {}
        plain: dict[str, int] = {}
        for label, guess in (("match", real), ("other", "zq8W-u1x7Vr0-Hn4c2Tb6aYdEe5Kp")):
            assert len(guess) == len(real)
            changes = [
                dataclasses.replace(
                    secret_change("db-password", "a" * 32, real, at=at), sequence=1
                ),
                dataclasses.replace(secret_change("planted", "b" * 32, guess, at=at), sequence=2),
            ]
            sealed = await seal_segment(PAIR, "20250131T140500Z-0000abcd", changes, "", RING)
            sizes[label] = len(sealed.data)
            lines = b"".join(records.change_to_line(c, at.timestamp()) for c in changes)
            plain[label] = len(zlib.compress(lines, 6))
        assert plain["match"] < plain["other"]  # what the sizes would otherwise reveal
        assert sizes["match"] == sizes["other"]
