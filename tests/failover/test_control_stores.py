"""The majority rule over control stores (failover/control_stores.py), on real
local-folder stores: commits, races, minority leftovers, repair, malformed documents,
and a property test of concurrent transitions."""

from __future__ import annotations

import asyncio
import random
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from failover.control_record import ControlRecord, MalformedControlRecord, control_blob_name
from failover.control_stores import (
    Committed,
    ControlStores,
    NoMajority,
    StoreView,
    TransitionInProgress,
    committed_record,
    decide,
)
from failover.control_transitions import begin_switchover, finish_switchover, initial_record
from tests.failover.control_fixtures import MovableClock, bump, control, local_stores, switch_to

BLOB = control_blob_name("app")


async def held(store: object) -> ControlRecord | None:
    from storage.errors import BlobNotFound
    from storage.store import BlobStore

    assert isinstance(store, object)
    blobs: BlobStore = store  # type: ignore[assignment]
    try:
        got = await blobs.get(BLOB)
    except BlobNotFound:
        return None
    return ControlRecord.from_json(got.data, BLOB)


class TestOneStore:
    async def test_absent_then_first_transition_is_epoch_one(self, tmp_path: Path) -> None:
        """No record reads as None; the first switchover writes epoch 1."""
        async with local_stores(tmp_path, 1) as stores:
            ctl = control(stores)
            assert (await ctl.read("app")).committed is None
            done = await ctl.transition("app", switch_to("westus"))
            assert (done.record.epoch, done.written) == (1, (ctl.descriptions[0],))
            read = await ctl.read("app")
            assert read.committed == done.record and read.highest_epoch == 1

    async def test_lost_compare_and_swap_is_no_majority(self, tmp_path: Path) -> None:
        """Two transitions from the same read: the second loses its compare-and-swap and
        is refused, the store keeps the first."""
        async with local_stores(tmp_path, 1) as stores:
            ctl = control(stores)
            read = await ctl.read("app")
            first = await ctl.write(read, switch_to("westus", "a")(read))
            with pytest.raises(NoMajority, match="compare-and-swap lost"):
                await ctl.write(read, switch_to("centralus", "b")(read))
            assert await held(stores[0]) == first.record

    async def test_malformed_document_names_the_blob(self, tmp_path: Path) -> None:
        """A malformed record in the only store raises MalformedControlRecord naming it."""
        async with local_stores(tmp_path, 1) as stores:
            await stores[0].put_if_absent(BLOB, b'{"format": 1}')
            with pytest.raises(MalformedControlRecord) as caught:
                await control(stores).read("app")
            assert BLOB in str(caught.value) and "missing" in str(caught.value)

    def test_store_count_must_be_one_or_three(self) -> None:
        """Two stores cannot have a majority that survives one loss: refused."""
        with pytest.raises(ValueError, match="one or three"):
            ControlStores([object(), object()])  # type: ignore[list-item]


class TestThreeStores:
    async def test_one_store_down_still_commits_and_is_repaired(self, tmp_path: Path) -> None:
        """With one store cut, a transition commits on two; once the store is back, a
        read writes the committed record onto it."""
        async with local_stores(tmp_path, 3) as stores:
            ctl = control(stores)
            stores[2].down = True
            done = await ctl.transition("app", switch_to("westus"))
            assert len(done.written) == 2 and list(done.missed) == [ctl.descriptions[2]]
            stores[2].down = False
            assert await held(stores[2]) is None
            with capture_logs() as logs:
                read = await ctl.read("app")
            assert read.committed == done.record
            assert await held(stores[2]) == done.record
            assert any(e["event"] == "control.repaired" for e in logs)

    async def test_two_stores_down_is_refused_and_superseded(self, tmp_path: Path) -> None:
        """With two stores cut, the write reaches one store and is refused; readers still
        see the committed record; the next transition goes above the leftover's epoch."""
        async with local_stores(tmp_path, 3) as stores:
            clock = MovableClock()
            ctl = control(stores, clock=clock)
            first = await ctl.transition("app", switch_to("westus"))
            first = await ctl.write(await ctl.read("app"), finish_switchover(first.record, 1.0))
            read = await ctl.read("app")
            # Cut after the read: the write reaches one store.
            stores[1].down = stores[2].down = True
            with pytest.raises(NoMajority, match="reached 1 of 3 stores, 2 needed"):
                await ctl.write(read, switch_to("eastus", "minority")(read))
            leftover = await held(stores[0])
            assert leftover is not None and leftover.epoch == 2
            stores[1].down = stores[2].down = False
            read = await ctl.read("app")
            assert read.committed == first.record and read.highest_epoch == 2
            # The leftover is newer than the committed record: not "repaired" away.
            assert await held(stores[0]) == leftover
            # Fresh, it may be a transition still collecting its majority: refused.
            with pytest.raises(TransitionInProgress, match=r"epoch 2 .* may still be committing"):
                await ctl.transition("app", switch_to("centralus", "next"))
            clock.advance(ctl.in_flight_seconds)
            after = await ctl.transition("app", switch_to("centralus", "next"))
            assert after.record.epoch == 3 and len(after.written) == 3
            assert all([await held(s) == after.record for s in stores])

    async def test_minority_read_is_refused(self, tmp_path: Path) -> None:
        """With two of three stores unreadable, nothing can be told: NoMajority names
        the stores that did not answer."""
        async with local_stores(tmp_path, 3) as stores:
            ctl = control(stores)
            await ctl.transition("app", switch_to("westus"))
            stores[0].down = stores[1].down = True
            with pytest.raises(NoMajority) as caught:
                await ctl.read("app")
            assert set(caught.value.problems) == set(ctl.descriptions[:2])

    async def test_malformed_store_counts_against_and_is_left_alone(self, tmp_path: Path) -> None:
        """A malformed document on one store: reads and writes go on with the other two,
        the read names that store's blob, and nothing overwrites it."""
        async with local_stores(tmp_path, 3) as stores:
            ctl = control(stores)
            await stores[1].put_if_absent(BLOB, b"not json")
            done = await ctl.transition("app", switch_to("westus"))
            assert ctl.descriptions[1] not in done.written and len(done.written) == 2
            read = await ctl.read("app")
            bad = read.views[1]
            assert bad.malformed and BLOB in (bad.error or "")
            assert (await stores[1].get(BLOB)).data == b"not json"

    async def test_update_never_overwrites_a_higher_epoch(self, tmp_path: Path) -> None:
        """Finishing a switchover does not write over a store that holds a newer epoch
        (a transition may still be collecting its majority there)."""
        async with local_stores(tmp_path, 3) as stores:
            ctl = control(stores)
            begun = await ctl.transition("app", switch_to("westus"))
            read = await ctl.read("app")
            newer = replace(begun.record, epoch=9, txid="other")
            await stores[0].put(BLOB, newer.to_json(), if_match=read.views[0].etag)
            done = await ctl.write(await ctl.read("app"), finish_switchover(begun.record, 2.0))
            assert ctl.descriptions[0] in done.missed and len(done.written) == 2
            assert await held(stores[0]) == newer


class TestDecide:
    """The pure rule over what the stores held."""

    def records(self) -> tuple[ControlRecord, ControlRecord, ControlRecord]:
        base = initial_record("app", "eastus", ("westus",))
        r1 = begin_switchover(base, "westus", by="a", reason="", highest_epoch=0)
        r1 = finish_switchover(r1, 1.0)
        # r2 computed from r1 (its base), r3 a loser of epoch 2 computed from r1 too.
        r2 = begin_switchover(r1, "eastus", by="b", reason="", highest_epoch=1)
        r3 = begin_switchover(r1, "eastus", by="c", reason="", highest_epoch=1)
        return r1, r2, r3

    def test_highest_majority_wins_over_newer_minority(self) -> None:
        """r1 on two stores, r2 on one, all answering: r1 is committed and the base."""
        r1, r2, _ = self.records()
        views = [StoreView("s0", "e", r1), StoreView("s1", "e", r1), StoreView("s2", "e", r2)]
        assert decide(views, 2) == (r1, r1, False)

    def test_newer_transition_vouches_for_its_base(self) -> None:
        """r2 (computed from r1) on one store and r1 on one: r1 still has its majority."""
        r1, r2, _ = self.records()
        views = [StoreView("s0", "e", r2), StoreView("s1", "e", r1), StoreView("s2", "e")]
        assert decide(views, 2)[0] == r1

    def test_possibly_committed_write_is_adopted(self) -> None:
        """With one store silent, r2 on one answering store may hold a majority with the
        silent one: the next transition builds on r2, not r1."""
        r1, r2, _ = self.records()
        views = [StoreView("s0", "e", r2), StoreView("s1", "e", r1), StoreView("s2", error="x")]
        committed, base, undecided = decide(views, 2)
        assert (committed, base, undecided) == (r1, r2, False)

    def test_split_is_undecided_and_builds_on_the_committed(self) -> None:
        """r2 and r3 (two losers of epoch 2) and r1: r1 vouched for by all three."""
        r1, r2, r3 = self.records()
        views = [StoreView("s0", "e", r2), StoreView("s1", "e", r3), StoreView("s2", "e", r1)]
        assert decide(views, 2) == (r1, r1, False)

    def test_first_transitions_split(self) -> None:
        """Three losers of epoch 1, nothing committed: undecided, the initial record
        (None) is the base; a read for status refuses."""
        base = initial_record("app", "eastus", ("westus",))
        losers = [begin_switchover(base, "westus", by=w, reason="", highest_epoch=0) for w in "abc"]
        views = [StoreView(f"s{i}", "e", r) for i, r in enumerate(losers)]
        assert decide(views, 2) == (None, None, True)
        with pytest.raises(NoMajority, match="no majority of 3"):
            committed_record(views, 2)

    def test_never_an_older_record_in_place_of_a_newer_commit(self) -> None:
        """r2 superseded everywhere by two different successors (each carrying r2 in
        its history): r2 is vouched for but its content is gone, so nothing older is
        shown as committed; the reader is undecided, a transition builds on the newest."""
        _, r2, _ = self.records()
        a = begin_switchover(
            finish_switchover(r2, 1.0), "westus", by="a", reason="", highest_epoch=2
        )
        b = begin_switchover(
            finish_switchover(r2, 2.0), "westus", by="b", reason="", highest_epoch=2
        )
        a4 = begin_switchover(
            finish_switchover(a, 1.0), "eastus", by="a", reason="", highest_epoch=3
        )
        b4 = begin_switchover(
            finish_switchover(b, 1.0), "eastus", by="b", reason="", highest_epoch=3
        )
        # r2 survives only in the histories of a4 and b4 (their `previous` are a and b).
        views = [StoreView("s0", "e", a4), StoreView("s1", "e", b4), StoreView("s2", error="x")]
        committed, base, undecided = decide(views, 2)
        assert committed is None and undecided
        assert base in (a4, b4) and (r2.epoch, r2.txid) in base.lineage

    def test_too_few_answers(self) -> None:
        """Fewer than a majority answering: nothing can be told."""
        views = [StoreView("s0"), StoreView("s1", error="down"), StoreView("s2", error="down")]
        with pytest.raises(NoMajority, match="only 1 of 3"):
            decide(views, 2)


async def race(stores: ControlStores, writers: int) -> list[Committed]:
    async def one(i: int) -> Committed | None:
        try:
            return await stores.transition("app", bump(f"w{i}"))
        except NoMajority:
            return None

    results = await asyncio.gather(*(one(i) for i in range(writers)))
    return [r for r in results if r is not None]


class TestConcurrentTransitions:
    @settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(
        writers=st.integers(2, 6),
        rounds=st.integers(1, 3),
        seed=st.integers(0, 2**32 - 1),
        down=st.sampled_from([None, 0, 1, 2]),
    )
    def test_never_two_winners_of_one_epoch(
        self, tmp_path: Path, writers: int, rounds: int, seed: int, down: int | None
    ) -> None:
        """Writers racing transitions over three stores, each store call delayed at
        random (optionally one store cut): every winning epoch has exactly one winner,
        a read afterwards shows the last winner or a write built on it, and the next
        transition carries every winner in its history (no commit is lost)."""
        rng = random.Random(seed)

        async def scenario(root: Path) -> None:
            async with local_stores(root, 3, delay=lambda: rng.uniform(0, 0.004)) as stores:
                if down is not None:
                    stores[down].down = True
                clock = MovableClock()
                ctl = control(stores, clock=clock)
                winners: list[Committed] = []
                for _ in range(rounds):
                    winners += await race(ctl, writers)
                    # Past the in-flight window: the next round supersedes leftovers.
                    clock.advance(ctl.in_flight_seconds)
                epochs = [w.record.epoch for w in winners]
                assert len(epochs) == len(set(epochs)), epochs
                read = await ctl.read("app", split_ok=True)
                if winners and read.committed is not None:
                    # What a reader shows carries the last winner (it may be a later
                    # write that a transition adopted), never an older record.
                    last = max(winners, key=lambda w: w.record.epoch)
                    assert (last.record.epoch, last.record.txid) in read.committed.lineage
                # Whatever the losers left, the next transition goes through, and no
                # winner's transition is missing from its history.
                clock.advance(ctl.in_flight_seconds)
                stores_up = [s for s in stores if not s.down]
                assert len(stores_up) >= 2
                after = await ctl.transition("app", bump("after"))
                for w in winners:
                    assert (w.record.epoch, w.record.txid) in after.record.lineage
                assert after.record.epoch > max(epochs, default=0)

        with tempfile.TemporaryDirectory(dir=tmp_path) as root:
            asyncio.run(scenario(Path(root)))
