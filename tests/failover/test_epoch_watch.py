"""The daemon's epoch watch (failover/epoch_watch.py) polling real local-folder control
stores: an unchanged record is read conditionally, and that still confirms it."""

from __future__ import annotations

from pathlib import Path

from failover.epoch_watch import EpochWatch, PairRegions
from storage.store import Blob, BlobStore, get_if_changed
from tests.failover.control_fixtures import Unplugged, bump, control, local_stores, switch_to

REGIONS = ("eastus", "westus", "centralus")


class Conditional(Unplugged):
    """A cuttable store that answers conditional reads as Azure Blob does (If-None-Match),
    counting the answers with a body and those without."""

    def __init__(self, inner: BlobStore) -> None:
        super().__init__(inner)
        self.bodies = 0
        self.not_modified = 0

    async def get(self, name: str) -> Blob:
        blob = await super().get(name)
        self.bodies += 1
        return blob

    async def get_if_changed(self, name: str, etag: str) -> Blob | None:
        await self._gate()
        blob = await get_if_changed(self.inner, name, etag)  # the folder's own 304
        if blob is None:
            self.not_modified += 1
        else:
            self.bodies += 1
        return blob


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class TestConditionalReads:
    async def test_an_unchanged_record_is_not_read_again(self, tmp_path: Path) -> None:
        """The first reading fetches each store's record; the next ones are answered
        "not modified" by every store and read the same record."""
        async with local_stores(tmp_path, 3) as plain:
            stores = [Conditional(s.inner) for s in plain]
            await control(plain).transition("app", switch_to("westus"))
            watch = EpochWatch(control(stores), {"app": PairRegions("app", "eastus", REGIONS)})
            first = await watch.refresh("app")
            assert [s.bodies for s in stores] == [1, 1, 1]
            again = await watch.refresh("app")
            await watch.refresh("app")
            assert again == first and (first.epoch, first.active_region) == (1, "westus")
            assert [(s.bodies, s.not_modified) for s in stores] == [(1, 2)] * 3
            assert watch.confirmed("app") and watch.status("app")["error"] is None

    async def test_not_modified_confirms_the_reading(self, tmp_path: Path) -> None:
        """A reading answered "not modified" counts from its start like a full one: the
        record stays confirmed past `validity` after the last full read."""
        clock = Clock()
        async with local_stores(tmp_path, 3) as plain:
            stores = [Conditional(s.inner) for s in plain]
            await control(plain).transition("app", switch_to("westus"))
            watch = EpochWatch(
                control(stores),
                {"app": PairRegions("app", "eastus", REGIONS)},
                interval_seconds=1.0,
                validity_seconds=3.0,
                monotonic=clock,
            )
            await watch.refresh("app")
            clock.now += 2.5
            await watch.refresh("app")
            clock.now += 2.5
            assert watch.confirmed("app")
            assert sum(s.not_modified for s in stores) == 3
            clock.now += 1.0
            assert not watch.confirmed("app")

    async def test_a_new_epoch_and_a_store_back_are_read_whole(self, tmp_path: Path) -> None:
        """A record another writer moved is fetched and moves the watch; a store that
        was cut off is read whole once it answers again."""
        async with local_stores(tmp_path, 3) as plain:
            stores = [Conditional(s.inner) for s in plain]
            await control(plain).transition("app", switch_to("westus"))
            watch = EpochWatch(control(stores), {"app": PairRegions("app", "eastus", REGIONS)})
            await watch.refresh("app")
            plain[2].down = stores[2].down = True
            assert (await watch.refresh("app")).epoch == 1 and watch.confirmed("app")
            await control(plain).transition("app", bump("another writer"))
            moved = await watch.refresh("app")
            assert (moved.epoch, moved.active_region) == (2, "eastus")
            assert [s.bodies for s in stores] == [2, 2, 1]
            plain[2].down = stores[2].down = False
            bodies = [s.bodies for s in stores]
            await watch.refresh("app")
            assert [s.bodies - b for s, b in zip(stores, bodies, strict=True)] == [0, 0, 1]
