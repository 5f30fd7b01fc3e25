"""Pure planning of how the pairs are spread over the live daemons (no I/O).

Availability comes first: a pair that nobody claims is tried by every daemon, however
many pairs it already holds, so a dead owner's pairs are taken as soon as their leases
expire. Evenness comes second and only by hand-over: a daemon holding at least two
pairs more than another gives up what it holds above its fair share (pairs / live
daemons, rounded up), at least one pair, so the counts end at most one apart. For a few
ticks only daemons below their share (the one with two fewer always is) try to take
those, each no more than it lacks: the giver announces them as `handing_over` in its
heartbeat and keeps away from them a little longer. A pair is never handed over within
`min_hold` of being taken, so pairs do not bounce.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Peer:
    """Another live daemon, as its heartbeat describes it."""

    held: frozenset[str]
    handing_over: frozenset[str] = frozenset()

    @property
    def keeps(self) -> int:
        """How many pairs it holds and is not giving up."""
        return len(self.held - self.handing_over)


@dataclass(frozen=True)
class BalanceView:
    """What this daemon knows at one tick."""

    pairs: tuple[str, ...]
    # This daemon's pairs -> when it took each (monotonic seconds).
    held: Mapping[str, float]
    peers: tuple[Peer, ...]
    now: float
    min_hold: float
    # Pairs this daemon is handing over: being released, or released and on offer but
    # not taken yet (no further hand-over until they are, or counts would overshoot).
    releasing: frozenset[str] = frozenset()
    # Pairs this daemon gave up recently and must leave to others for a while.
    cooling: frozenset[str] = frozenset()


@dataclass(frozen=True)
class BalancePlan:
    """What to do at this tick."""

    share: int
    acquire: tuple[str, ...]
    release: tuple[str, ...] = ()


def fair_share(pairs: int, members: int) -> int:
    """Pairs per daemon when spread evenly, rounded up."""
    return math.ceil(pairs / max(1, members))


def plan_balance(view: BalanceView) -> BalancePlan:
    share = fair_share(len(view.pairs), 1 + len(view.peers))
    keeps = [p for p in view.held if p not in view.releasing]
    claimed: set[str] = set()
    offered: set[str] = set()
    for peer in view.peers:
        claimed |= peer.held
        offered |= peer.handing_over
    # Offered pairs only up to this daemon's share, so two givers do not make the
    # first taker the next giver.
    wanted = max(0, share - len(keeps))
    acquire: list[str] = []
    for pair in view.pairs:
        if pair in view.held or pair in view.cooling or pair in claimed:
            continue
        if pair in offered:
            if wanted == 0:
                continue
            wanted -= 1
        acquire.append(pair)
    release: tuple[str, ...] = ()
    if not view.releasing and any(peer.keeps <= len(keeps) - 2 for peer in view.peers):
        # The most recently taken pairs first: the others have been running longest
        # and are least likely to be in the middle of their first full pass.
        settled = sorted(
            (p for p in keeps if view.now - view.held[p] >= view.min_hold),
            key=lambda p: (view.held[p], p),
            reverse=True,
        )
        release = tuple(settled[: max(1, len(keeps) - share)])
    return BalancePlan(share=share, acquire=tuple(acquire), release=release)
