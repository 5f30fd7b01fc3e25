"""Pure planning of how the pairs are spread over the live daemons (no I/O).

Availability comes first: a pair that nobody claims is tried by every daemon, however
many pairs it already holds, so a dead owner's pairs are taken as soon as their leases
expire. Evenness comes second and only by hand-over: a daemon holding at least two
pairs more than another gives one up per tick, so the counts end at most one apart.
For a few ticks only daemons below their fair share (pairs / live daemons, rounded up;
the one with two fewer always is) try to take it: the giver announces it as
`handing_over` in its heartbeat and keeps away from it a little longer. A pair is never
handed over within `min_hold` of being taken, so pairs do not bounce.
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
    # Pairs of `held` this daemon is handing over right now.
    releasing: frozenset[str] = frozenset()
    # Pairs this daemon gave up recently and must leave to others for a while.
    cooling: frozenset[str] = frozenset()


@dataclass(frozen=True)
class BalancePlan:
    """What to do at this tick."""

    share: int
    acquire: tuple[str, ...]
    release: str | None


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
    acquire = tuple(
        pair
        for pair in view.pairs
        if pair not in view.held
        and pair not in view.cooling
        and pair not in claimed
        and (pair not in offered or len(keeps) < share)
    )
    release: str | None = None
    if not view.releasing and any(peer.keeps <= len(keeps) - 2 for peer in view.peers):
        settled = [p for p in keeps if view.now - view.held[p] >= view.min_hold]
        if settled:
            # The most recently taken pair: the others have been running longest and
            # are least likely to be in the middle of their first full pass.
            release = max(settled, key=lambda p: (view.held[p], p))
    return BalancePlan(share=share, acquire=acquire, release=release)
