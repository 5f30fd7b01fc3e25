"""Durations in the configuration: numbers of seconds or strings like "500ms", "1h30m"."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvdr.duration import DurationError, format_duration, parse_duration


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
        ],
    )
    def test_accepted_spellings(self, value: object, seconds: float) -> None:
        """Numbers are seconds; unit strings add up."""
        assert parse_duration(value) == pytest.approx(seconds)

    @pytest.mark.parametrize(
        "value",
        ["", "10x", "s", "-5s", "10 sec", "30m1h", "1s1s", "1e3s", True, [], -1, math.inf],
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
