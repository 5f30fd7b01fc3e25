"""Backups prove who wrote them: attacks by someone who can write the backup container
(and, here, even open the objects: a stolen KEK file, or an identity allowed to unwrap),
made with kvdr's own code, and what `verify` and `restore` say about them.

Every attacker below seals well-formed objects with correct chain digests; before
signing, `verify` called them fine and `restore` used them. Signing keys are what the
attacker lacks."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from backups import paths
from backups.catalog import GenerationCatalog, load_catalog
from backups.errors import RestoreRefused
from backups.head import sign_head
from backups.keks import KekRing
from backups.objects import read_segment, seal_segment, seal_snapshot
from backups.replay import replay
from backups.restore import state_at
from backups.signer_files import Ed25519FileSigner
from backups.signers import PinnedKey, SignerRing
from backups.snapshot import create_snapshot
from backups.state import PairState
from backups.stores import BackupStores
from backups.verify import verify_pair
from storage import AzureBlobStore
from tests.backups.conftest import FIXED_KEK, RING, SIGNER, make_journal, secret_change
from tests.backups.legacy import write_unsigned_generation
from vault.models import Change

PAIR = "app"
NOW = datetime.now(UTC)
# The attacker's own signing key: kvdr signs with it happily, nobody pinned it.
ATTACKER = KekRing(
    [FIXED_KEK],
    SignerRing([Ed25519FileSigner(ed25519.Ed25519PrivateKey.generate(), "attacker key")]),
)


async def write_history(store: AzureBlobStore, pair: str = PAIR) -> GenerationCatalog:
    """db-password rotated from old-password to new-password: segments 1-1, 2-2, 3-3."""
    journal = make_journal(store)
    for i, value in enumerate(("old-password", "new-password", "new-password")):
        at = NOW - timedelta(minutes=30 - 10 * i)
        name = "db-password" if i < 2 else "other"
        await journal.record([secret_change(name, f"v{i}", value, pair=pair, at=at)])
        await journal.flush()
    await journal.close()
    gen = (await load_catalog(store, pair)).latest
    assert gen is not None and len(gen.segments) == 3
    return gen


async def append_segment(
    store: AzureBlobStore, gen: GenerationCatalog, changes: list[Change], pair: str = PAIR
) -> str:
    """Seal `changes` as the next segment of `gen`, linked to its last segment (the
    attacker opens that one to learn its digest), and move the head past it."""
    last = await read_segment(store, RING, gen.segments[-1].name)
    first = gen.last_sequence + 1
    stamped = [
        Change(
            pair=pair,
            item=c.item,
            op=c.op,
            observed_at=NOW - timedelta(minutes=1),
            properties=c.properties,
            payload=c.payload,
            sequence=first + i,
        )
        for i, c in enumerate(changes)
    ]
    sealed = await seal_segment(pair, gen.generation, stamped, last.digest, ATTACKER)
    await store.put(sealed.name, sealed.data, metadata=sealed.metadata)
    head = await sign_head(
        ATTACKER.signers,
        pair=pair,
        generation=gen.generation,
        sequence=first + len(changes) - 1,
        updated_at=NOW.timestamp(),
        writer="attacker",
        last=None,
        blob=paths.head_blob(pair),
    )
    await store.put(paths.head_blob(pair), head)
    return sealed.name


async def value_at_now(store: AzureBlobStore, keks: KekRing = RING, **kw: bool) -> str | None:
    now = datetime.now(UTC)
    point = await state_at(store, keks, PAIR, now, now=now, **kw)
    item = next(i for r, i in point.state.items.items() if r.name == "db-password")
    assert item.current is not None
    return str(item.current.payload)


class TestForgedObjects:
    async def test_replayed_old_segment_is_refused(self, blob_container: AzureBlobStore) -> None:
        """The old password's segment, opened and sealed again as the newest segment
        (correct chain digest, head moved on): verify names it, restore refuses it."""
        gen = await write_history(blob_container)
        old = await read_segment(blob_container, RING, gen.segments[0].name)
        forged = await append_segment(blob_container, gen, list(old.changes))
        report = await verify_pair(blob_container, RING, PAIR)
        problems = {f.blob: f.problem for f in report.findings}
        assert "not pinned" in problems[forged]
        assert problems[paths.head_blob(PAIR)].endswith(f"not pinned (pinned: {SIGNER.signer_id})")
        with pytest.raises(RestoreRefused, match=forged):
            await value_at_now(blob_container)
        # --allow-gap passes over it as unreadable (listed), never applies it.
        assert await value_at_now(blob_container, allow_gap=True) == "new-password"

    async def test_segment_copied_from_another_pair_is_refused(
        self, blob_container: AzureBlobStore
    ) -> None:
        """Another pair's segment, re-sealed into this pair's chain: refused, named."""
        gen = await write_history(blob_container)
        other = await write_history(blob_container, pair="payments")
        theirs = await read_segment(blob_container, RING, other.segments[0].name)
        forged = await append_segment(blob_container, gen, list(theirs.changes))
        report = await verify_pair(blob_container, RING, PAIR)
        assert forged in {f.blob for f in report.findings}
        assert [s["generation"] for s in report.skipped] == [gen.generation]
        assert forged in report.skipped[0]["reason"]
        with pytest.raises(RestoreRefused, match=forged):
            await value_at_now(blob_container)

    async def test_head_rewound_by_one_segment_is_detected(
        self, blob_container: AzureBlobStore
    ) -> None:
        """The newest segment deleted and the head rewritten to end before it (as plain
        JSON the way heads were written before signing, or signed with another key):
        verify names the head, restore refuses without --allow-gap."""
        gen = await write_history(blob_container)
        await blob_container.delete(gen.segments[-1].blob)
        head = paths.head_blob(PAIR)
        doc = json.loads((await blob_container.get(head)).data)
        plain = {k: doc[k] for k in ("pair", "generation", "updated_at", "writer")}
        for rewritten in (
            json.dumps({**plain, "format": 1, "sequence": 2}).encode(),
            await sign_head(
                ATTACKER.signers,
                pair=PAIR,
                generation=gen.generation,
                sequence=2,
                updated_at=NOW.timestamp(),
                writer="attacker",
                last=(gen.segments[1].blob, ""),
                blob=head,
            ),
        ):
            await blob_container.put(head, rewritten)
            report = await verify_pair(blob_container, RING, PAIR)
            assert [f.blob for f in report.findings] == [head]
            with pytest.raises(RestoreRefused, match="trailing segments may have been cut"):
                await value_at_now(blob_container)
            # Asked to, a restore uses what is there, and says the head was not trusted.
            now = datetime.now(UTC)
            point = await state_at(blob_container, RING, PAIR, now, now=now, allow_gap=True)
            assert point.head_problem is not None and head in point.head_problem

    async def test_genuine_head_names_its_newest_segment(
        self, blob_container: AzureBlobStore
    ) -> None:
        """The head links to the SHA-256 of the newest segment's bytes: the segment
        replaced by another object under its name is named by verify."""
        gen = await write_history(blob_container)
        first, last = gen.segments[0], gen.segments[-1]
        await blob_container.put(last.blob, (await blob_container.get(first.blob)).data)
        report = await verify_pair(blob_container, RING, PAIR)
        head = paths.head_blob(PAIR)
        assert any(f.blob == head and "replaced" in f.problem for f in report.findings)
        assert any(f.blob == last.blob for f in report.findings)

    async def test_newest_segment_compacted_away_is_no_finding(
        self, blob_container: AzureBlobStore
    ) -> None:
        """An idle pair whose newest segment retention removed after a snapshot covered
        it: the head's link to it is no finding."""
        gen = await write_history(blob_container)
        await create_snapshot(BackupStores(blob_container), RING, PAIR)
        await blob_container.delete(gen.segments[-1].blob)
        assert (await verify_pair(blob_container, RING, PAIR)).ok

    async def test_forged_snapshot_in_a_real_generation_is_passed_over(
        self, blob_container: AzureBlobStore
    ) -> None:
        """A snapshot sealed by someone else, newest in the pair's own generation: verify
        names it; a restore starts from the journal instead, naming it as refused."""
        gen = await write_history(blob_container)
        state = PairState(PAIR, gen.generation)
        result = await replay(blob_container, RING, gen, state)
        state.items[next(r for r in state.items if r.name == "db-password")].versions.clear()
        forged = await seal_snapshot(state, result.digest, ATTACKER, created_at=NOW.timestamp())
        await blob_container.put(forged.name, forged.data, metadata=forged.metadata)
        report = await verify_pair(blob_container, RING, PAIR)
        assert [f.blob for f in report.findings] == [forged.name]
        now = datetime.now(UTC)
        point = await state_at(blob_container, RING, PAIR, now, now=now)
        assert point.unreadable == [forged.name] and point.snapshot is None
        assert await value_at_now(blob_container) == "new-password"


class TestPinnedSigners:
    async def test_signer_removed_from_configuration(self, blob_container: AzureBlobStore) -> None:
        """Objects signed by a key that is no longer pinned are refused, each named; with
        its public half kept pinned (a retired signer) they are fine again."""
        gen = await write_history(blob_container)
        successor = Ed25519FileSigner(ed25519.Ed25519PrivateKey.generate(), "new key")
        without = KekRing([FIXED_KEK], SignerRing([successor]))
        report = await verify_pair(blob_container, without, PAIR)
        named = {f.blob for f in report.findings if f"signed by {SIGNER.signer_id}" in f.problem}
        assert named == {s.blob for s in gen.segments} | {paths.head_blob(PAIR)}
        with pytest.raises(RestoreRefused, match="no generation of pair 'app'") as caught:
            await value_at_now(blob_container, without)
        assert gen.segments[0].blob in str(caught.value)
        retired = PinnedKey.from_pem(SIGNER.public_pem())
        kept = KekRing([FIXED_KEK], SignerRing([successor], [retired]))
        assert (await verify_pair(blob_container, kept, PAIR)).ok
        assert await value_at_now(blob_container, kept) == "new-password"

    async def test_foreign_generation_is_skipped_and_listed(
        self, blob_container: AzureBlobStore
    ) -> None:
        """A newer generation signed by an unpinned key: restore skips it, naming its
        first blob, and restores the pair's own newest state."""
        real = await write_history(blob_container)
        # Its generation id says it started a minute later: it sorts as the newest.
        attacker = make_journal(blob_container, keks=ATTACKER, clock=lambda: time.time() + 60)
        await attacker.record([secret_change("db-password", "evil", "attacker-value")])
        await attacker.close()
        catalog = await load_catalog(blob_container, PAIR)
        forged = catalog.ordered()[-1]
        assert forged.generation != real.generation
        now = datetime.now(UTC)
        point = await state_at(blob_container, RING, PAIR, now, now=now, allow_gap=True)
        assert [s["generation"] for s in point.skipped_generations] == [forged.generation]
        assert forged.segments[0].blob in point.skipped_generations[0]["reason"]
        assert await value_at_now(blob_container, allow_gap=True) == "new-password"


class TestUnsignedGenerations:
    async def test_listed_as_unsigned_and_used_only_when_allowed(
        self, blob_container: AzureBlobStore
    ) -> None:
        """A generation from before signing: listings say unsigned; verify finds every
        object and the head; restore refuses it unless unsigned objects are allowed,
        and then says it rests on them."""
        started = NOW - timedelta(hours=1)
        changes = [secret_change("db-password", "v1", "legacy-value", at=started)]
        generation = await write_unsigned_generation(blob_container, RING, PAIR, changes, started)
        listed = (await load_catalog(blob_container, PAIR)).summary()["generations"]
        assert [(g["generation"], g["unsigned"]) for g in listed] == [(generation, 1)]
        segment = paths.segment_blob(PAIR, generation, 1, 1)
        refused = await verify_pair(blob_container, RING, PAIR)
        problems = {f.blob: f.problem for f in refused.findings}
        assert set(problems) == {segment, paths.head_blob(PAIR)}
        assert "not signed" in problems[segment] and "--allow-unsigned" in problems[segment]
        allowed = await verify_pair(blob_container, RING.allowing_unsigned(), PAIR)
        assert allowed.ok and allowed.unsigned == 1 and allowed.signed == 0
        assert allowed.signatures == {generation: "unsigned"} and allowed.head_signed is False
        with pytest.raises(RestoreRefused, match="--allow-unsigned"):
            await value_at_now(blob_container)
        now = datetime.now(UTC)
        point = await state_at(blob_container, RING.allowing_unsigned(), PAIR, now, now=now)
        assert point.unsigned and point.as_dict()["unsigned"] is True
        assert await value_at_now(blob_container, RING.allowing_unsigned()) == "legacy-value"

    async def test_journal_continues_in_a_new_signed_generation(
        self, blob_container: AzureBlobStore
    ) -> None:
        """An upgraded journal does not extend an unsigned generation: it starts a signed
        one (saying why), and the old one stays restorable with unsigned objects allowed."""
        started = NOW - timedelta(hours=1)
        changes = [secret_change("db-password", "v1", "legacy-value", at=started)]
        legacy = await write_unsigned_generation(blob_container, RING, PAIR, changes, started)
        journal = make_journal(blob_container)
        await journal.record([secret_change("db-password", "v2", "signed-value")])
        await journal.close()
        catalog = await load_catalog(blob_container, PAIR)
        assert catalog.ordered()[0].generation == legacy
        assert len(catalog.generations) == 2
        assert await value_at_now(blob_container) == "signed-value"
        point = await state_at(
            blob_container, RING.allowing_unsigned(), PAIR, started, now=datetime.now(UTC)
        )
        assert point.generation == legacy and point.unsigned
