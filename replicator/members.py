"""Who else is running: one small heartbeat blob per daemon process.

`members/<member id>.json` holds the process's instance id, a beat counter, the pairs it
holds (with since when) and the pairs it is handing over. Each daemon rewrites its own
on every tick and reads the others'. The leases alone decide who owns a pair; the
heartbeats only serve to spread the pairs evenly and to name every pair's owner in
status, also on the daemons that do not own it.

Liveness is judged on the reader's own monotonic clock, from when it last saw a
member's blob change (a new ETag), so the clocks of different hosts are never compared.
A blob that has not changed for a long while (a daemon killed without a goodbye) is
deleted by whoever notices, with an ETag condition so a member that comes back is kept.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog

from replicator.state_documents import FORMAT_VERSION, HeartbeatDocument, read_document
from storage import BlobNotFound, BlobStore, PreconditionFailed, StorageError
from storage.lease import LeaseTiming

log = structlog.get_logger("kvdr.members")

MEMBER_PREFIX = "members/"
# A member whose heartbeat has not changed for this many ticks no longer counts as live
# for sharing out pairs (it writes one every tick; a reader looks once per tick).
FRESH_TICKS = 5
# ... and its blob is deleted after this many lease periods without a change.
FORGET_PERIODS = 10


def member_blob_name(member: str) -> str:
    """Blob path of one member's heartbeat (pure; `parse_member_blob_name` inverts it)."""
    return f"{MEMBER_PREFIX}{member}.json"


def parse_member_blob_name(name: str) -> str:
    member = name.removeprefix(MEMBER_PREFIX).removesuffix(".json")
    if (
        not name.startswith(MEMBER_PREFIX)
        or not name.endswith(".json")
        or not member
        or "/" in member
    ):
        raise ValueError(f"not a member blob name: {name!r}")
    return member


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


@dataclass(frozen=True)
class Heartbeat:
    """What one daemon process says about itself."""

    member: str
    instance: str
    beat: int
    at: str
    lease_seconds: int
    # pair -> since when this member holds it (ISO time, the member's wall clock).
    held: dict[str, str] = field(default_factory=dict)
    handing_over: tuple[str, ...] = ()

    def to_json(self) -> bytes:
        doc = {
            "format": FORMAT_VERSION,
            "member": self.member,
            "instance": self.instance,
            "beat": self.beat,
            "at": self.at,
            "lease_seconds": self.lease_seconds,
            "held": dict(sorted(self.held.items())),
            "handing_over": sorted(self.handing_over),
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes, blob: str = "heartbeat") -> Heartbeat:
        """Parse a heartbeat; `StateDocumentUnreadable` (a `ValueError`) naming `blob` and
        what is wrong for anything else."""
        doc = read_document(HeartbeatDocument, blob, data, "heartbeat")
        return cls(
            member=doc.member,
            instance=doc.instance,
            beat=doc.beat,
            at=doc.at,
            lease_seconds=doc.lease_seconds,
            held=dict(doc.held),
            handing_over=doc.handing_over,
        )


@dataclass
class MemberView:
    """Another member as this daemon last saw it."""

    heartbeat: Heartbeat
    etag: str
    # Local monotonic time when its blob was last seen to change.
    changed_at: float


@dataclass(frozen=True)
class Owner:
    """Who holds a pair, as far as the heartbeats tell."""

    instance: str
    since: str
    member: str
    live: bool

    def as_dict(self) -> dict[str, Any]:
        return {"instance": self.instance, "since": self.since, "live": self.live}


class Members:
    """This process's heartbeat and its view of the others'."""

    def __init__(
        self,
        blobs: BlobStore,
        instance_id: str,
        timing: LeaseTiming,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.member_id = uuid.uuid4().hex
        self.instance_id = instance_id
        self._blobs = blobs
        self._timing = timing
        self._clock = clock
        self._wall = wall
        self._beats = 0
        self._views: dict[str, MemberView] = {}

    @property
    def fresh_window(self) -> float:
        return FRESH_TICKS * self._timing.tick

    async def beat(self, held: Mapping[str, float], handing_over: Iterable[str] = ()) -> None:
        """Write this member's heartbeat: `held` maps pair -> since (epoch seconds)."""
        self._beats += 1
        heartbeat = Heartbeat(
            member=self.member_id,
            instance=self.instance_id,
            beat=self._beats,
            at=_iso(self._wall()),
            lease_seconds=self._timing.seconds,
            held={pair: _iso(since) for pair, since in held.items()},
            handing_over=tuple(handing_over),
        )
        await self._blobs.put(member_blob_name(self.member_id), heartbeat.to_json())

    async def refresh(self) -> list[MemberView]:
        """Read the other members' heartbeats (only those that changed) and forget the
        long-dead ones. Storage errors propagate; the last view stays as it was."""
        infos = await self._blobs.list(MEMBER_PREFIX)
        now = self._clock()
        views: dict[str, MemberView] = {}
        for info in infos:
            try:
                member = parse_member_blob_name(info.name)
            except ValueError:
                continue
            if member == self.member_id:
                continue
            known = self._views.get(member)
            if known is not None and known.etag == info.etag:
                views[member] = known
                continue
            try:
                blob = await self._blobs.get(info.name)
                heartbeat = Heartbeat.from_json(blob.data, info.name)
            except BlobNotFound:
                continue  # it left between list and get
            except ValueError as exc:
                log.warning("members.unreadable", blob=info.name, error=str(exc))
                continue
            views[member] = MemberView(heartbeat, blob.info.etag, now)
        for member, view in list(views.items()):
            if now - view.changed_at > FORGET_PERIODS * self._timing.seconds:
                await self._forget(view)
                del views[member]
        self._views = views
        return list(views.values())

    async def _forget(self, view: MemberView) -> None:
        name = member_blob_name(view.heartbeat.member)
        try:
            await self._blobs.delete(name, if_match=view.etag)
        except (BlobNotFound, PreconditionFailed):
            return  # gone already, or it came back to life
        except StorageError as exc:
            log.warning("members.forget_failed", blob=name, error=str(exc))
            return
        log.info(
            "members.forgotten", member=view.heartbeat.member, instance=view.heartbeat.instance
        )

    def is_fresh(self, view: MemberView) -> bool:
        return self._clock() - view.changed_at <= self.fresh_window

    def live(self) -> list[MemberView]:
        """The other members whose heartbeat changed recently."""
        return [v for v in self._views.values() if self.is_fresh(v)]

    def owner(self, pair: str) -> Owner | None:
        """The other member that says it holds `pair`: the latest taker when several say
        so (a dead member's last heartbeat still lists what it held)."""
        best: Owner | None = None
        for view in self._views.values():
            since = view.heartbeat.held.get(pair)
            if since is None:
                continue
            candidate = Owner(
                instance=view.heartbeat.instance,
                since=since,
                member=view.heartbeat.member,
                live=self.is_fresh(view),
            )
            if best is None or (candidate.live, candidate.since) > (best.live, best.since):
                best = candidate
        return best

    def instances(self) -> list[dict[str, Any]]:
        """Every other member seen, for status."""
        return [
            {
                "instance": v.heartbeat.instance,
                "live": self.is_fresh(v),
                "pairs": sorted(v.heartbeat.held),
                "last_heartbeat": v.heartbeat.at,
            }
            for v in sorted(self._views.values(), key=lambda v: v.heartbeat.instance)
        ]

    async def leave(self) -> None:
        """Delete this member's heartbeat (a clean stop); errors are only logged."""
        try:
            await self._blobs.delete(member_blob_name(self.member_id))
        except BlobNotFound:
            pass
        except StorageError as exc:
            log.warning("members.leave_failed", error=str(exc))
