"""Daemons' heartbeats: who is live, who owns which pair (replicator/members.py),
against Azurite with a hand-driven monotonic clock."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from structlog.testing import capture_logs

from replicator.members import (
    FORGET_PERIODS,
    FRESH_TICKS,
    Heartbeat,
    Members,
    member_blob_name,
    parse_member_blob_name,
)
from storage import AzureBlobStore, BlobNotFound
from storage.lease import LeaseTiming
from tests.fixtures.azurite import Azurite, fresh_container
from tests.fixtures.clock import ManualClock

TIMING = LeaseTiming(30)


@pytest.fixture
async def store(azurite: Azurite) -> AsyncIterator[AzureBlobStore]:
    async with fresh_container(azurite) as blobs:
        yield blobs


class TestHeartbeat:
    def test_round_trip(self) -> None:
        """A heartbeat reads back as written."""
        beat = Heartbeat("m1", "host-a", 3, "2026-01-01T00:00:00+00:00", 30, {"app": "x"}, ("b",))
        assert Heartbeat.from_json(beat.to_json()) == beat

    @pytest.mark.parametrize(
        ("data", "message"),
        [
            (b"not json", "not JSON"),
            (b'{"format": 99}', "unsupported format"),
            (b'{"format": 1, "member": "m"}', "malformed"),
            (
                b'{"format":1,"member":"m","instance":"i","beat":1,"at":"t",'
                b'"lease_seconds":30,"held":[],"handing_over":[]}',
                "malformed",
            ),
        ],
    )
    def test_bad_heartbeats_are_refused_by_reason(self, data: bytes, message: str) -> None:
        """Anything but a heartbeat is a ValueError saying what is wrong."""
        with pytest.raises(ValueError, match=message):
            Heartbeat.from_json(data)

    def test_blob_names_round_trip(self) -> None:
        """members/<id>.json and back; other names are refused."""
        assert parse_member_blob_name(member_blob_name("abc")) == "abc"
        with pytest.raises(ValueError, match="not a member blob name"):
            parse_member_blob_name("leases/app")


class TestMembers:
    async def test_sees_the_others_and_their_pairs(self, store: AzureBlobStore) -> None:
        """Each member sees the others (not itself), with what they hold."""
        clock = ManualClock(1000.0)
        a = Members(store, "host-a", TIMING, clock)
        b = Members(store, "host-b", TIMING, clock)
        await a.beat({"app": 1_700_000_000.0})
        await b.beat({})
        seen_by_b = await b.refresh()
        assert [v.heartbeat.instance for v in seen_by_b] == ["host-a"]
        owner = b.owner("app")
        assert owner is not None and owner.instance == "host-a" and owner.live
        assert b.owner("other") is None
        assert [m["instance"] for m in a.instances()] == []
        await a.refresh()
        assert [m["instance"] for m in a.instances()] == ["host-b"]

    async def test_silent_member_is_no_longer_live(self, store: AzureBlobStore) -> None:
        """A member whose heartbeat stops changing drops out of the live set after
        FRESH_TICKS ticks, and comes back with its next heartbeat."""
        clock = ManualClock(1000.0)
        a = Members(store, "host-a", TIMING, clock)
        b = Members(store, "host-b", TIMING, clock)
        await a.beat({"app": 1.0})
        await b.refresh()
        assert len(b.live()) == 1
        clock.now += FRESH_TICKS * TIMING.tick + 0.1
        await b.refresh()
        assert b.live() == []
        owner = b.owner("app")
        assert owner is not None and not owner.live
        await a.beat({"app": 1.0})
        await b.refresh()
        assert len(b.live()) == 1

    async def test_latest_taker_is_the_owner(self, store: AzureBlobStore) -> None:
        """A dead member's last heartbeat still lists the pair; the member that took it
        later is named as the owner."""
        clock = ManualClock(1000.0)
        dead = Members(store, "host-dead", TIMING, clock)
        heir = Members(store, "host-heir", TIMING, clock)
        reader = Members(store, "host-reader", TIMING, clock)
        await dead.beat({"app": 1_700_000_000.0})
        await reader.refresh()
        clock.now += FRESH_TICKS * TIMING.tick + 1
        await heir.beat({"app": 1_700_000_100.0})
        await reader.refresh()
        owner = reader.owner("app")
        assert owner is not None and owner.instance == "host-heir" and owner.live

    async def test_long_dead_member_is_forgotten(self, store: AzureBlobStore) -> None:
        """A heartbeat unchanged for FORGET_PERIODS lease periods is deleted."""
        clock = ManualClock(1000.0)
        gone = Members(store, "host-gone", TIMING, clock)
        reader = Members(store, "host-reader", TIMING, clock)
        await gone.beat({})
        await reader.refresh()
        clock.now += FORGET_PERIODS * TIMING.seconds + 1
        with capture_logs() as logs:
            assert await reader.refresh() == []
        assert any(e["event"] == "members.forgotten" for e in logs)
        with pytest.raises(BlobNotFound):
            await store.get(member_blob_name(gone.member_id))

    async def test_unreadable_heartbeat_is_skipped(self, store: AzureBlobStore) -> None:
        """A blob under members/ that is not a heartbeat is logged and ignored."""
        await store.put(member_blob_name("junk"), b"{oops")
        reader = Members(store, "host-reader", TIMING, ManualClock(1000.0))
        with capture_logs() as logs:
            assert await reader.refresh() == []
        assert any(e["event"] == "members.unreadable" for e in logs)

    async def test_leave_deletes_the_heartbeat(self, store: AzureBlobStore) -> None:
        """A clean stop removes the member's blob; leaving twice is harmless."""
        member = Members(store, "host-a", TIMING, ManualClock(1000.0))
        await member.beat({})
        await member.leave()
        await member.leave()
        assert await store.list("members/") == []
