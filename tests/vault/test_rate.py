"""Rate control: budgets, adaptive concurrency and retry, under a virtual clock."""

from __future__ import annotations

import asyncio
import itertools
from bisect import bisect_left

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.vault.virtual_clock import VirtualClock
from vault._azure_errors import parse_retry_after
from vault._rate_policy import budget_of
from vault.errors import BadRequest, NoAnswer, RequestNotSent, ServerError, Throttled
from vault.rate import AdaptiveLimit, Budget, RateController, WindowBudget, backoff_delay
from vault.settings import VaultSettings

WINDOW = 10.0


def max_in_any_window(times: list[float], window: float = WINDOW) -> int:
    """The most grants inside any half-open interval [t, t + window)."""
    ordered = sorted(times)
    best = 0
    for i, t in enumerate(ordered):
        j = bisect_left(ordered, t + window)
        best = max(best, j - i)
    return best


def controller(clock: VirtualClock, **overrides: object) -> RateController:
    base: dict[str, object] = {
        "max_concurrency": 16,
        "secret_creates_per_10s": 30,
        "other_ops_per_10s": 100,
        "backoff_base_seconds": 1.0,
        "backoff_max_seconds": 16.0,
        "max_attempts": 6,
    }
    base.update(overrides)
    return RateController(
        VaultSettings(**base),  # type: ignore[arg-type]
        vault="testregion",
        clock=clock.time,
        sleep=clock.sleep,
        rand=lambda: 1.0,
    )


class TestWindowBudget:
    @settings(max_examples=300, deadline=None)
    @given(
        limit=st.integers(min_value=1, max_value=40),
        gaps=st.lists(st.floats(min_value=0, max_value=3, allow_nan=False), max_size=300),
    )
    def test_never_more_than_limit_in_any_window(self, limit: int, gaps: list[float]) -> None:
        """Whatever the arrival pattern, no 10 s window ever holds more than `limit` grants."""
        budget = WindowBudget(limit, WINDOW)
        now, grants = 0.0, list[float]()
        for gap in gaps:
            now += gap
            grants.append(budget.reserve(now))
        assert max_in_any_window(grants) <= limit

    @settings(max_examples=300, deadline=None)
    @given(
        limit=st.integers(min_value=1, max_value=40),
        gaps=st.lists(st.floats(min_value=0, max_value=3, allow_nan=False), max_size=300),
    )
    def test_grants_in_order_and_never_delayed_needlessly(
        self, limit: int, gaps: list[float]
    ) -> None:
        """Grants come in arrival order, never before arrival, and wait only for a full window."""
        budget = WindowBudget(limit, WINDOW)
        now, grants = 0.0, list[float]()
        for gap in gaps:
            now += gap
            at = budget.reserve(now)
            assert at >= now
            if grants:
                assert at >= grants[-1]
            if at > now:
                # Delayed: exactly until the grant `limit` places back is a window old.
                assert at == grants[-limit] + WINDOW
            grants.append(at)

    def test_full_budget_is_usable_at_once(self) -> None:
        """A fresh budget lets `limit` requests through immediately, then waits a window."""
        budget = WindowBudget(5, WINDOW)
        assert [budget.reserve(0.0) for _ in range(5)] == [0.0] * 5
        assert budget.reserve(0.0) == WINDOW
        assert budget.used(0.0) == 5

    def test_bad_limit_is_named(self) -> None:
        """A zero budget is refused with a message naming the value."""
        with pytest.raises(ValueError, match="budget limit must be at least 1, got 0"):
            WindowBudget(0)


class TestAdaptiveLimit:
    def test_one_burst_halves_once(self) -> None:
        """Sixteen 429s of requests started together halve the limit once, not sixteen times."""
        limit = AdaptiveLimit(16)
        epoch = limit.epoch
        shrinks = [limit.on_throttled(epoch) for _ in range(16)]
        assert shrinks.count(True) == 1
        assert limit.limit == 8

    def test_halves_down_to_one_and_grows_back(self) -> None:
        """Repeated bursts halve to 1 at least; successes grow it back by one per streak."""
        limit = AdaptiveLimit(16, grow_after=5)
        for _ in range(10):
            limit.on_throttled(limit.epoch)
        assert limit.limit == 1
        assert limit.lowest == 1
        for _ in range(5 * 20):
            limit.on_success()
        assert limit.limit == 16  # capped at the maximum

    @given(st.lists(st.sampled_from(["ok", "429", "429-stale"]), max_size=500))
    def test_limit_stays_between_one_and_max(self, events: list[str]) -> None:
        """No sequence of outcomes takes the limit outside [1, max_concurrency]."""
        limit = AdaptiveLimit(12, grow_after=3)
        for event in events:
            if event == "ok":
                limit.on_success()
            elif event == "429":
                limit.on_throttled(limit.epoch)
            else:
                limit.on_throttled(limit.epoch - 1)
            assert 1 <= limit.limit <= 12


class TestBackoff:
    @given(
        attempt=st.integers(min_value=1, max_value=30),
        r=st.floats(min_value=0, max_value=1, exclude_max=True),
    )
    def test_full_jitter_within_capped_exponential(self, attempt: int, r: float) -> None:
        """Each delay lies in [0, min(16, 2**(attempt-1))) seconds."""
        delay = backoff_delay(attempt, 1.0, 16.0, lambda: r)
        assert 0 <= delay < min(16.0, 2.0 ** (attempt - 1)) + 1e-9

    def test_ceilings_follow_microsofts_sequence(self) -> None:
        """The ceilings are 1-2-4-8-16 s, then stay at 16 s."""
        ceilings = [backoff_delay(n, 1.0, 16.0, lambda: 1.0) for n in range(1, 8)]
        assert ceilings == [1, 2, 4, 8, 16, 16, 16]


class TestRateControllerAdmission:
    async def test_budget_holds_under_a_flood(self) -> None:
        """500 concurrent requests on a 100-per-10 s budget: never more than 100 per window."""
        clock = VirtualClock()
        rate = controller(clock)
        sent: list[float] = []

        async def one() -> None:
            async with rate.request(Budget.OTHER) as ticket:
                sent.append(clock.time())
                await clock.sleep(0.05)
                ticket.succeeded()

        await clock.drive(one() for _ in range(500))
        assert len(sent) == 500
        assert max_in_any_window(sent) <= 100
        # Not slower than needed either: 5 windows' worth takes about 4 windows.
        assert max(sent) - min(sent) == pytest.approx(40.0, abs=1.0)

    async def test_secret_creates_have_their_own_budget(self) -> None:
        """Secret creates stop at their budget while other requests keep flowing."""
        clock = VirtualClock()
        rate = controller(clock, secret_creates_per_10s=10, max_concurrency=64)
        creates: list[float] = []
        others: list[float] = []

        async def one(budget: Budget, log: list[float]) -> None:
            async with rate.request(budget) as ticket:
                log.append(clock.time())
                ticket.succeeded()

        await clock.drive(
            [one(Budget.SECRET_CREATE, creates) for _ in range(30)]
            + [one(Budget.OTHER, others) for _ in range(50)]
        )
        assert max_in_any_window(creates) <= 10
        assert max(others) - min(others) < 1.0

    async def test_in_flight_never_exceeds_limit(self) -> None:
        """With 4 slots, at most 4 requests are ever in flight at once."""
        clock = VirtualClock()
        rate = controller(clock, max_concurrency=4, other_ops_per_10s=10_000)
        in_flight, peak = 0, 0

        async def one() -> None:
            nonlocal in_flight, peak
            async with rate.request(Budget.OTHER) as ticket:
                in_flight += 1
                peak = max(peak, in_flight)
                await clock.sleep(1.0)
                in_flight -= 1
                ticket.succeeded()

        await clock.drive(one() for _ in range(40))
        assert peak == 4

    async def test_429_halves_concurrency_and_pauses_everyone(self) -> None:
        """A burst of 429s with Retry-After 5 halves the limit and holds every request 5 s."""
        clock = VirtualClock()
        rate = controller(clock, max_concurrency=8, other_ops_per_10s=10_000)
        t0 = clock.time()

        async def throttled() -> None:
            async with rate.request(Budget.OTHER) as ticket:
                await clock.sleep(0.1)
                ticket.throttled(5.0)

        await clock.drive(throttled() for _ in range(8))
        assert rate.concurrency_limit == 4
        stats = rate.stats()
        assert stats.throttled == 8
        assert stats.lowest_concurrency_limit == 4

        after: list[float] = []

        async def later() -> None:
            async with rate.request(Budget.OTHER) as ticket:
                after.append(clock.time())
                ticket.succeeded()

        await clock.drive([later()])
        assert after[0] >= t0 + 0.1 + 5.0

    async def test_concurrency_grows_back_after_successes(self) -> None:
        """After a 429, a run of successes restores the limit one step at a time."""
        clock = VirtualClock()
        rate = RateController(
            VaultSettings(max_concurrency=8, other_ops_per_10s=10_000),
            vault="testregion",
            clock=clock.time,
            sleep=clock.sleep,
            grow_after=4,
        )
        seen: list[int] = []
        rate.on_change(lambda s: seen.append(s.concurrency_limit))

        async def outcome(throttle: bool) -> None:
            async with rate.request(Budget.OTHER) as ticket:
                if throttle:
                    ticket.throttled(None)
                else:
                    ticket.succeeded()

        await clock.drive([outcome(True)])
        for _ in range(16):
            await clock.drive([outcome(False)])
        assert seen == [4, 5, 6, 7, 8]


class TestRateControllerRetry:
    async def test_transient_errors_retried_with_backoff_then_succeed(self) -> None:
        """Three transient faults, then success: waits 1, 2 and 4 s and returns the result."""
        clock = VirtualClock()
        rate = controller(clock)
        faults = [RequestNotSent("x"), NoAnswer("x"), ServerError("x", status=503)]
        calls: list[float] = []

        async def fn() -> str:
            calls.append(clock.time())
            if faults:
                raise faults.pop(0)
            return "done"

        (result,) = await clock.drive([rate.run("op", fn)])
        assert result == "done"
        assert [b - a for a, b in itertools.pairwise(calls)] == [1.0, 2.0, 4.0]
        assert rate.stats().retries == 3

    async def test_gives_up_after_max_attempts(self) -> None:
        """A fault that persists is raised after max_attempts calls."""
        clock = VirtualClock()
        rate = controller(clock, max_attempts=4)
        calls = 0

        async def fn() -> None:
            nonlocal calls
            calls += 1
            raise NoAnswer("still down")

        with pytest.raises(NoAnswer, match="still down"):
            await clock.drive([rate.run("op", fn)])
        assert calls == 4

    async def test_non_transient_not_retried(self) -> None:
        """A refusal such as 400 is raised at once."""
        clock = VirtualClock()
        rate = controller(clock)
        calls = 0

        async def fn() -> None:
            nonlocal calls
            calls += 1
            raise BadRequest("bad", status=400)

        with pytest.raises(BadRequest):
            await clock.drive([rate.run("op", fn)])
        assert calls == 1

    async def test_throttled_waits_retry_after(self) -> None:
        """A 429 with Retry-After 7 is retried 7 s later, not after the backoff."""
        clock = VirtualClock()
        rate = controller(clock)
        calls: list[float] = []

        async def fn() -> str:
            calls.append(clock.time())
            if len(calls) == 1:
                raise Throttled("slow down", retry_after=7.0)
            return "ok"

        await clock.drive([rate.run("op", fn)])
        assert calls[1] - calls[0] == 7.0


class TestRequestClassification:
    @pytest.mark.parametrize(
        ("method", "url", "budget"),
        [
            ("PUT", "https://v.vault.azure.net/secrets/db?api-version=7.5", Budget.SECRET_CREATE),
            ("GET", "https://v.vault.azure.net/secrets/db", Budget.OTHER),
            ("PATCH", "https://v.vault.azure.net/secrets/db/abc", Budget.OTHER),
            ("POST", "https://v.vault.azure.net/secrets/restore", Budget.OTHER),
            ("PUT", "https://v.vault.azure.net/keys/k", Budget.OTHER),
        ],
    )
    def test_only_secret_set_spends_the_create_budget(
        self, method: str, url: str, budget: Budget
    ) -> None:
        """`PUT /secrets/{name}` is a secret create; everything else is an other op."""
        assert budget_of(method, url) is budget

    @pytest.mark.parametrize(
        ("headers", "seconds"),
        [
            ({"Retry-After": "7"}, 7.0),
            ({"retry-after": "0.5"}, 0.5),
            ({"x-ms-retry-after-ms": "1500"}, 1.5),
            ({}, None),
            ({"Retry-After": "soon"}, None),
        ],
    )
    def test_retry_after_parsed(self, headers: dict[str, str], seconds: float | None) -> None:
        """Retry-After in seconds or milliseconds is read; garbage is ignored."""
        assert parse_retry_after(headers) == seconds


class TestVirtualClock:
    def test_sleep_advances_virtual_time_exactly(self) -> None:
        """The harness jumps virtual time to the sleeper's wake-up (guards the tests above)."""
        clock = VirtualClock()

        async def main() -> None:
            await clock.drive([clock.sleep(5)])

        asyncio.run(main())
        assert clock.now == 1005.0
