"""The one grammar for time (kvdr/timegrammar.py): durations in the configuration
(numbers of seconds or strings like "500ms", "1h30m", "1d12h") and the TIME of commands
(ISO-8601 with an offset, or "-15m")."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvdr.timegrammar import (
    DurationError,
    TimeSpecError,
    format_duration,
    parse_duration,
    parse_time,
)

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


class TestParseDuration:
    """The documented spellings, and clear refusals."""

    @pytest.mark.parametrize(
        ("value", "seconds"),
        [
            (10, 10.0),
            (2.5, 2.5),
            (0, 0.0),
            ("10", 10.0),
            ("500ms", 0.5),
            ("10s", 10.0),
            ("5m", 300.0),
            ("1h", 3600.0),
            ("1h30m", 5400.0),
            ("1m30s250ms", 90.25),
            ("1.5s", 1.5),
            (" 2 m ", 120.0),
            ("30d", 30 * 86400.0),
            ("1d12h", 36 * 3600.0),
            ("2w", 14 * 86400.0),
            ("1w2d3h4m5s6ms", 9 * 86400 + 3 * 3600 + 4 * 60 + 5.006),
        ],
    )
    def test_accepted_spellings(self, value: object, seconds: float) -> None:
        """Numbers are seconds; unit strings add up."""
        assert parse_duration(value) == pytest.approx(seconds)

    @pytest.mark.parametrize(
        "value",
        [
            "",
            "10x",
            "s",
            "-5s",
            "10 sec",
            "30m1h",
            "1s1s",
            "1e3s",
            "12h1d",
            "\u0661\u0665m",
            "9" * 400 + "d",
            True,
            [],
            -1,
            math.inf,
        ],
    )
    def test_refused_values(self, value: object) -> None:
        """Anything else raises DurationError with a message."""
        with pytest.raises(DurationError) as caught:
            parse_duration(value)
        assert str(caught.value)


# Whole milliseconds up to ~3 years: what a configuration can sensibly hold.
millis = st.integers(min_value=0, max_value=10**11)


class TestDurationProperties:
    """Properties of the parser and its formatter."""

    @given(millis)
    def test_format_then_parse_round_trips(self, ms: int) -> None:
        """format_duration's output parses back to the same number of milliseconds."""
        assert round(parse_duration(format_duration(ms / 1000)) * 1000) == ms

    @given(st.integers(0, 10**6), st.integers(0, 59), st.integers(0, 59), st.integers(0, 999))
    def test_terms_add_up(self, h: int, m: int, s: int, ms: int) -> None:
        """A string of terms is the sum of its terms, whichever terms are present."""
        terms = [(h, "h"), (m, "m"), (s, "s"), (ms, "ms")]
        text = "".join(f"{n}{unit}" for n, unit in terms if n) or "0s"
        expected = h * 3600 + m * 60 + s + ms / 1000
        assert parse_duration(text) == pytest.approx(expected)

    @given(st.text(max_size=20))
    def test_any_text_parses_or_raises_duration_error(self, text: str) -> None:
        """Arbitrary text never raises anything but DurationError, never a negative."""
        try:
            seconds = parse_duration(text)
        except DurationError:
            return
        assert seconds >= 0 and math.isfinite(seconds)

    @given(st.floats(min_value=0, max_value=1e9, allow_nan=False))
    def test_numbers_are_seconds(self, value: float) -> None:
        """A non-negative number is taken as seconds unchanged."""
        assert parse_duration(value) == value


class TestTimeSpec:
    @pytest.mark.parametrize(
        "text,expected",
        [
            ("2025-06-01T10:00:00Z", datetime(2025, 6, 1, 10, tzinfo=UTC)),
            ("2025-06-01T12:00:00+02:00", datetime(2025, 6, 1, 10, tzinfo=UTC)),
            ("-15m", NOW - timedelta(minutes=15)),
            ("-1h30m", NOW - timedelta(minutes=90)),
            ("-2d", NOW - timedelta(days=2)),
            ("-1w", NOW - timedelta(days=7)),
            ("-90s", NOW - timedelta(seconds=90)),
            ("-1d12h", NOW - timedelta(hours=36)),
            ("-1.5h", NOW - timedelta(minutes=90)),
            ("-500ms", NOW - timedelta(milliseconds=500)),
        ],
    )
    def test_accepted_forms(self, text: str, expected: datetime) -> None:
        """ISO-8601 with an offset or Z, and relative forms, name one UTC moment."""
        assert parse_time(text, NOW) == expected

    @pytest.mark.parametrize(
        "text,message",
        [
            ("2025-06-01T10:00:00", "no UTC offset"),
            ("yesterday", "is not a time"),
            ("", "empty"),
            ("-30m1h", "largest first"),
            ("-1h1h", "largest first"),
            ("15m", "is not a time"),
            ("-\u0661\u0665m", "is not a time"),
            ("-99999999999d", "before the year 1"),
            ("-99999999999999999999999w", "before the year 1"),
            ("-" + "9" * 400 + "d", "before the year 1"),
            ("-10", "needs a unit"),
            ("-12h1d", "largest first"),
        ],
    )
    def test_refused_forms(self, text: str, message: str) -> None:
        """Ambiguous or unreadable TIMEs are refused with the accepted forms."""
        with pytest.raises(TimeSpecError, match=message):
            parse_time(text, NOW)
