"""Verification (backups/verify.py) and export (backups/export.py) over real Azurite:
every kind of damage is found with the blob named, and a restore refuses the same."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backups import paths
from backups.catalog import GenerationCatalog, load_catalog
from backups.errors import RestoreRefused
from backups.export import export_pair
from backups.objects import read_segment, seal_segment
from backups.restore import RestoreScope, state_at
from backups.snapshot import create_snapshot
from backups.stores import BackupStores, ObjectConflict
from backups.verify import restore_test, verify_pair
from storage import AzureBlobStore, LocalFolderSettings, LocalFolderStore
from tests.backups.conftest import RING, local_kek, make_journal, open_adapter, ring, secret_change
from tests.backups.feed import record_items
from tests.fixtures.emulator import EmulatorFactory
from vault.models import Attributes, ItemKind, ItemRef

PAIR = "app"
NOW = datetime.now(UTC)


async def write_journal(store: AzureBlobStore) -> GenerationCatalog:
    """Segments 1-2, 3-4, 5-6 (snapshot at 6), then 7-8, 9-10."""
    journal = make_journal(store)
    for i in range(5):
        at = NOW - timedelta(minutes=50 - 10 * i)
        await journal.record(
            [
                secret_change("db", f"v{i}", f"value-{i}", at=at),
                secret_change(f"s{i}", "x", "other", at=at),
            ]
        )
        await journal.flush()
        if i == 2:
            await create_snapshot(BackupStores(store), RING, PAIR)
    await journal.close()
    gen = (await load_catalog(store, PAIR)).latest
    assert gen is not None
    return gen


Damage = Callable[[AzureBlobStore, GenerationCatalog], Awaitable[str]]


async def corrupt_byte(store: AzureBlobStore, gen: GenerationCatalog) -> str:
    name = gen.segments[3].blob
    blob = await store.get(name)
    data = bytearray(blob.data)
    data[-20] ^= 0x01  # inside the ciphertext; the blob keeps its metadata
    await store.put(name, bytes(data), metadata=blob.info.metadata)
    return name


async def truncate(store: AzureBlobStore, gen: GenerationCatalog) -> str:
    name = gen.segments[3].blob
    blob = await store.get(name)
    await store.put(name, blob.data[: len(blob.data) - 40], metadata=blob.info.metadata)
    return name


async def remove(store: AzureBlobStore, gen: GenerationCatalog) -> str:
    await store.delete(gen.segments[3].blob)
    return gen.segments[4].blob  # the finding names the segment after the gap


async def swap(store: AzureBlobStore, gen: GenerationCatalog) -> str:
    a, b = gen.segments[3].blob, gen.segments[4].blob
    data_a, data_b = (await store.get(a)).data, (await store.get(b)).data
    await store.put(a, data_b)
    await store.put(b, data_a)
    return a


async def reseal_altered(store: AzureBlobStore, gen: GenerationCatalog) -> str:
    """Someone holding a KEK replaces segment 7-8 with other content, validly sealed:
    only the digest chain can tell."""
    seg = gen.segments[3]
    original = await read_segment(store, RING, seg.name)
    changed = [dataclasses.replace(c, payload="forged") for c in original.changes]
    forged = await seal_segment(PAIR, seg.name.generation, changed, original.header.prev, RING)
    await store.put(seg.blob, forged.data, metadata=forged.metadata)
    return gen.segments[4].blob


DAMAGES: dict[str, tuple[Damage, str]] = {
    "corrupted byte": (corrupt_byte, "authentication failed"),
    "truncated segment": (truncate, "authentication failed"),
    "removed segment": (remove, "journal gap"),
    "swapped segments": (swap, "another place"),
    "altered and resealed": (reseal_altered, "predecessor digest differs"),
}


class TestVerify:
    async def test_intact_backups_pass(self, blob_container: AzureBlobStore) -> None:
        """Untouched backups: no findings, every object decrypted."""
        await write_journal(blob_container)
        report = await verify_pair(blob_container, RING, PAIR)
        assert report.ok, report.findings
        assert report.objects == 6 and report.decrypted == 6

    @pytest.mark.parametrize("damage", list(DAMAGES))
    async def test_damage_is_found_and_restore_refuses(
        self, blob_container: AzureBlobStore, damage: str
    ) -> None:
        """Each kind of damage fails verify with the blob named, and a restore refuses."""
        gen = await write_journal(blob_container)
        do, expected = DAMAGES[damage]
        blob = await do(blob_container, gen)
        report = await verify_pair(blob_container, RING, PAIR)
        assert not report.ok
        assert any(f.blob == blob and expected in f.problem for f in report.findings), [
            f.as_dict() for f in report.findings
        ]
        with pytest.raises(RestoreRefused) as caught:
            await state_at(blob_container, RING, PAIR, NOW, now=NOW)
        assert blob in str(caught.value) or gen.segments[3].blob in str(caught.value)

    async def test_restore_before_the_damage_still_works(
        self, blob_container: AzureBlobStore
    ) -> None:
        """Damage after the snapshot does not stop a restore to a time before it."""
        gen = await write_journal(blob_container)
        await corrupt_byte(blob_container, gen)
        point = await state_at(blob_container, RING, PAIR, NOW - timedelta(minutes=25), now=NOW)
        assert point.snapshot == gen.snapshots[0].blob and point.state.sequence == 6
        assert point.unreadable_after == [gen.segments[3].blob]

    async def test_wrong_kek_names_every_blob(self, blob_container: AzureBlobStore) -> None:
        """With a KEK that wrapped nothing, each object is a finding naming it."""
        gen = await write_journal(blob_container)
        report = await verify_pair(blob_container, ring(local_kek()), PAIR)
        named = {f.blob for f in report.findings if "key-encryption key" in f.problem}
        assert named == {s.blob for s in gen.segments} | {s.blob for s in gen.snapshots}

    async def test_sample_decrypts_a_share(self, blob_container: AzureBlobStore) -> None:
        """--sample 30 decrypts about a third of the objects; names are still all checked."""
        gen = await write_journal(blob_container)
        await blob_container.delete(gen.segments[1].blob)
        report = await verify_pair(blob_container, RING, PAIR, sample_percent=30)
        assert report.decrypted == 2
        assert any("journal gap" in f.problem for f in report.findings)

    async def test_no_backups_is_a_finding(self, blob_container: AzureBlobStore) -> None:
        """Verifying a pair without backups fails, saying so."""
        report = await verify_pair(blob_container, RING, "nothing")
        assert not report.ok and "has no backups" in report.findings[0].problem


class TestRestoreTest:
    async def test_restore_into_scratch_vault_compares_items(
        self, blob_container: AzureBlobStore, make_emulator: EmulatorFactory
    ) -> None:
        """--restore-test restores into an empty vault and compares every item."""
        primary, scratch = make_emulator(region="eastus"), make_emulator(region="scratch")
        journal = make_journal(blob_container)
        refs = [ItemRef(ItemKind.SECRET, f"s{i}") for i in range(3)]
        async with open_adapter(primary) as vault:
            for ref in refs:
                await vault.set_secret(ref.name, f"value-of-{ref.name}", Attributes())
            await record_items(journal, PAIR, vault, refs, NOW - timedelta(minutes=1))
        await journal.close()
        report = await verify_pair(blob_container, RING, PAIR)
        async with open_adapter(scratch) as target:
            await restore_test(
                blob_container, RING, PAIR, target, RestoreScope(frozenset(ItemKind)), report
            )
        assert report.ok, report.findings
        assert report.restore_test is not None and report.restore_test["items_compared"] == 3


class TestExport:
    async def test_export_is_a_complete_restorable_copy(
        self, blob_container: AzureBlobStore, tmp_path: Path
    ) -> None:
        """An export to a folder verifies clean, restores the same state, and a second
        export copies nothing new."""
        await write_journal(blob_container)
        async with LocalFolderStore(LocalFolderSettings(str(tmp_path / "copy"))) as folder:
            first = await export_pair(blob_container, folder, PAIR)
            assert first.copied == 6
            assert (await folder.get(paths.head_blob(PAIR))).data
            assert (await verify_pair(folder, RING, PAIR)).ok
            copy = await state_at(folder, RING, PAIR, NOW, now=NOW)
            original = await state_at(blob_container, RING, PAIR, NOW, now=NOW)
            assert copy.state.sequence == original.state.sequence == 10
            again = await export_pair(blob_container, folder, PAIR)
            assert again.copied == 0 and again.already_there == 6

    async def test_export_refuses_a_copy_with_other_bytes_of_the_same_size(
        self, blob_container: AzureBlobStore, tmp_path: Path
    ) -> None:
        """An object in the export folder damaged without changing its size is not
        counted as copied: the export stops, naming it, and leaves it as it was."""
        await write_journal(blob_container)
        async with LocalFolderStore(LocalFolderSettings(str(tmp_path / "copy"))) as folder:
            await export_pair(blob_container, folder, PAIR)
            victim = sorted(
                i.name
                for i in await folder.list(paths.pair_prefix(PAIR))
                if i.name != paths.head_blob(PAIR)
            )[0]
            original = (await folder.get(victim)).data
            damaged = original[:-1] + bytes([original[-1] ^ 0x01])
            await folder.put(victim, damaged)
            with pytest.raises(ObjectConflict) as refused:
                await export_pair(blob_container, folder, PAIR)
            assert victim in str(refused.value) and "SHA-256" in str(refused.value)
            assert (await folder.get(victim)).data == damaged
