"""Pure planning of how pairs are spread over the live daemons (replicator/balance.py)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from replicator.balance import BalancePlan, BalanceView, Peer, fair_share, plan_balance

PAIRS = tuple(f"p{i}" for i in range(6))


def plan(
    held: dict[str, float] | None = None,
    peers: tuple[Peer, ...] = (),
    now: float = 100.0,
    **kw: object,
) -> BalancePlan:
    return plan_balance(
        BalanceView(
            pairs=PAIRS,
            held=held or {},
            peers=peers,
            now=now,
            min_hold=10.0,
            **kw,  # type: ignore[arg-type]
        )
    )


class TestFairShare:
    def test_rounds_up(self) -> None:
        """Six pairs over four daemons is two each (some hold one)."""
        assert fair_share(6, 4) == 2
        assert fair_share(6, 3) == 2
        assert fair_share(7, 3) == 3

    def test_no_members_counts_as_one(self) -> None:
        """A daemon alone (or a view with nobody) holds everything."""
        assert fair_share(5, 0) == 5


class TestPlan:
    def test_alone_takes_everything(self) -> None:
        """With no live peers every free pair is tried."""
        assert plan().acquire == PAIRS

    def test_claimed_pairs_are_left_alone(self) -> None:
        """Pairs a live peer holds are not tried (the lease would refuse anyway)."""
        result = plan(peers=(Peer(frozenset({"p0", "p1"})),))
        assert result.acquire == ("p2", "p3", "p4", "p5")

    def test_free_pairs_are_tried_even_above_share(self) -> None:
        """Availability first: a daemon at its share still tries an unclaimed pair."""
        held = {p: 0.0 for p in PAIRS[:3]}
        result = plan(held, peers=(Peer(frozenset({"p3", "p4"})),))
        assert result.share == 3 and result.acquire == ("p5",)

    def test_offered_pair_goes_to_daemons_below_share_only(self) -> None:
        """A pair being handed over is tried only by a daemon holding less than its share."""
        giver = Peer(frozenset({"p0", "p1", "p2"}), handing_over=frozenset({"p3"}))
        below = plan({"p4": 0.0}, peers=(giver,))
        at_share = plan({"p4": 0.0, "p5": 0.0, "p3x": 0.0}, peers=(giver,))
        assert "p3" in below.acquire
        assert "p3" not in at_share.acquire

    def test_cooling_pairs_are_not_taken_back(self) -> None:
        """A pair this daemon just gave up is left to the others for a while."""
        assert "p2" not in plan(cooling=frozenset({"p2"})).acquire

    def test_hands_over_what_is_above_the_share(self) -> None:
        """Holding six with a peer holding none, the three latest taken are given up."""
        held = {p: float(i) for i, p in enumerate(PAIRS)}
        result = plan(held, peers=(Peer(frozenset()),))
        assert result.share == 3 and result.release == ("p5", "p4", "p3")

    def test_takes_no_more_offered_pairs_than_it_lacks(self) -> None:
        """Below its share by one, a daemon tries one of two offered pairs."""
        giver = Peer(frozenset({"p0", "p1"}), handing_over=frozenset({"p2", "p3"}))
        result = plan({"p4": 0.0}, peers=(giver, Peer(frozenset({"p5"}))))
        assert result.share == 2 and result.acquire == ("p2",)

    def test_no_hand_over_when_one_apart(self) -> None:
        """Two, two, one, one is as even as six pairs over four daemons get: nothing moves."""
        held = {"p0": 0.0, "p1": 0.0}
        peers = (Peer(frozenset({"p2", "p3"})), Peer(frozenset({"p4"})), Peer(frozenset({"p5"})))
        result = plan(held, peers=peers)
        assert result.share == 2 and result.release == ()

    def test_hand_over_below_share_when_two_apart(self) -> None:
        """Four, four, two: even within the share of four, the two-apart daemon gives one."""
        pairs = tuple(f"p{i}" for i in range(10))
        held = {p: 0.0 for p in pairs[:4]}
        peers = (Peer(frozenset(pairs[4:8])), Peer(frozenset(pairs[8:])))
        result = plan_balance(
            BalanceView(pairs=pairs, held=held, peers=peers, now=100.0, min_hold=10.0)
        )
        assert result.share == 4 and len(result.release) == 1

    def test_recently_taken_pairs_stay(self) -> None:
        """A pair is not handed over within min_hold of being taken."""
        held = {p: 95.0 for p in PAIRS}
        assert plan(held, peers=(Peer(frozenset()),)).release == ()

    def test_one_hand_over_at_a_time(self) -> None:
        """While pairs are being handed over no further ones are."""
        held = {p: 0.0 for p in PAIRS}
        result = plan(held, peers=(Peer(frozenset()),), releasing=frozenset({"p0"}))
        assert result.release == ()


# -- a simulation of several daemons ticking against leases ---------------------------

LEASE_TICKS = 10
FRESH_TICKS = 5
OFFER_TICKS = 4
MIN_HOLD_TICKS = 4


@dataclass
class SimDaemon:
    name: str
    held: dict[str, float] = field(default_factory=dict)
    offered_until: dict[str, float] = field(default_factory=dict)
    cooling_until: dict[str, float] = field(default_factory=dict)
    dead_at: float | None = None

    def peer(self, now: float) -> Peer:
        offered = frozenset(p for p, until in self.offered_until.items() if until > now)
        return Peer(frozenset(self.held), offered)


def simulate(
    daemons: int, pairs: int, rounds: int, seed: int, kill_at: int | None
) -> tuple[list[SimDaemon], dict[str, str | None], int]:
    """Daemons tick in a random order each round; a lease is taken by the first daemon
    that tries it while it is free. A killed daemon's leases expire LEASE_TICKS later and
    the others see it live for FRESH_TICKS. Returns the daemons, the lease holders and
    the number of hand-overs in the last quarter of the rounds."""
    rng = random.Random(seed)
    names = tuple(f"p{i}" for i in range(pairs))
    sims = [SimDaemon(f"d{i}") for i in range(daemons)]
    lease: dict[str, str | None] = dict.fromkeys(names)
    late_releases = 0
    for now in range(rounds):
        t = float(now)
        if kill_at is not None and now == kill_at:
            sims[0].dead_at = t
        for sim in sims:
            if sim.dead_at is not None and t >= sim.dead_at + LEASE_TICKS:
                for pair in sim.held:
                    if lease[pair] == sim.name:
                        lease[pair] = None
                sim.held.clear()
        order = [s for s in sims if s.dead_at is None]
        rng.shuffle(order)
        for sim in order:
            peers = tuple(
                other.peer(t)
                for other in sims
                if other is not sim and (other.dead_at is None or t - other.dead_at <= FRESH_TICKS)
            )
            result = plan_balance(
                BalanceView(
                    pairs=names,
                    held=sim.held,
                    peers=peers,
                    now=t,
                    min_hold=MIN_HOLD_TICKS,
                    releasing=frozenset(
                        p for p, u in sim.offered_until.items() if u > t and lease[p] is None
                    ),
                    cooling=frozenset(p for p, u in sim.cooling_until.items() if u > t),
                )
            )
            for pair in result.release:
                del sim.held[pair]
                lease[pair] = None
                sim.offered_until[pair] = t + OFFER_TICKS
                sim.cooling_until[pair] = t + 2 * OFFER_TICKS
                if now >= rounds * 3 // 4:
                    late_releases += 1
            for pair in result.acquire:
                if lease[pair] is None:
                    lease[pair] = sim.name
                    sim.held[pair] = t
    return sims, lease, late_releases


class TestSimulatedDaemons:
    @settings(max_examples=150, deadline=None)
    @given(
        daemons=st.integers(1, 5),
        pairs=st.integers(1, 14),
        seed=st.integers(0, 2**32),
        kill=st.booleans(),
    )
    def test_every_pair_owned_and_spread_evenly(
        self, daemons: int, pairs: int, seed: int, kill: bool
    ) -> None:
        """Whatever the order of ticks, and also after a daemon dies: every pair ends up
        held by exactly one live daemon, no two daemons differ by more than one pair,
        and the hand-overs stop."""
        kill_at = 30 if kill and daemons > 1 else None
        sims, lease, late_releases = simulate(daemons, pairs, 160, seed, kill_at)
        live = [s for s in sims if s.dead_at is None]
        assert all(holder is not None for holder in lease.values()), lease
        for sim in live:
            assert all(lease[p] == sim.name for p in sim.held)
        assert sum(len(s.held) for s in live) == pairs
        counts = [len(s.held) for s in live]
        assert max(counts) - min(counts) <= 1, counts
        assert late_releases == 0
