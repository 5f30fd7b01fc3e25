"""One grammar for time, used by the configuration and every command.

Durations (`poll_interval = "10s"`, `expiry_horizon = "30d"`): a number of seconds (`10`,
`2.5`, `"10"`), or one or more `<number><unit>` terms with the units `w`, `d`, `h`, `m`,
`s` and `ms`, largest first and each at most once, so `"1d12h"` and `"1h30m"` read the
way they are written and `"30m1h"` is refused instead of guessed at.

Points in time (`kvdr restore --at TIME`): ISO-8601 with a UTC offset or `Z`
(`2025-01-31T14:05:00Z`, `2025-01-31T15:05:00+01:00`), or `-` and a duration with units
for a time before now (`-15m`, `-1h30m`, `-1d12h`, `-90s`, `-1w`). A time without an
offset is refused: on a host in another zone "10:00" would silently mean another moment,
and a restore to the wrong moment is the failure to prevent.

Digits are ASCII only: `\\d` would also take Arabic-Indic or other Unicode digits, a form
no operator means to type and one that hides what the value is from a reviewer.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

__all__ = ["DurationError", "TimeSpecError", "format_duration", "parse_duration", "parse_time"]

_UNIT_SECONDS = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
# Largest first: the order a term sequence must follow.
_UNIT_ORDER = ("w", "d", "h", "m", "s", "ms")
# What format_duration writes: days at most (a week reads better as "7d").
_FORMAT_UNITS = ("d", "h", "m", "s", "ms")
_NUMBER = r"[0-9]+(?:\.[0-9]+)?|\.[0-9]+"
_TERM = re.compile(rf"({_NUMBER})(ms|w|d|h|m|s)")
_BARE_NUMBER = re.compile(_NUMBER)
_EXAMPLES = '"500ms", "10s", "5m", "1h30m", "1d12h" or "30d"'


class DurationError(ValueError):
    """A value that is not a duration; the message says what is accepted."""


class TimeSpecError(ValueError):
    """A TIME that cannot be read; the message shows the accepted forms."""


def parse_duration(value: object) -> float:
    """Seconds from a number of seconds or a duration string; raise `DurationError`."""
    # bool is an int in Python; `poll_interval = true` is a mistake, not one second.
    if isinstance(value, bool):
        raise DurationError(f"expected a duration such as 10, {_EXAMPLES}")
    if isinstance(value, int | float):
        seconds = float(value)
        if not math.isfinite(seconds):
            raise DurationError("a duration must be a finite number of seconds")
        if seconds < 0:
            raise DurationError("a duration cannot be negative")
        return seconds
    if not isinstance(value, str):
        raise DurationError(
            f'expected a duration such as 10, "10s" or "5m", got {type(value).__name__}'
        )
    stripped = value.strip().replace(" ", "")
    if not stripped:
        raise DurationError("an empty string is not a duration")
    if stripped.startswith("-"):
        raise DurationError(f"a duration cannot be negative: {value!r}")
    # A bare number in a string ("10") is seconds, the same as the number 10.
    if _BARE_NUMBER.fullmatch(stripped):
        return _finite(float(stripped), value)
    return _finite(_sum_terms(stripped, value), value)


def _sum_terms(stripped: str, original: str) -> float:
    """The seconds of `<number><unit>` terms, largest unit first, each unit once."""
    total = 0.0
    position = 0
    last_rank = -1
    for match in _TERM.finditer(stripped):
        if match.start() != position:
            break
        rank = _UNIT_ORDER.index(match.group(2))
        if rank <= last_rank:
            raise DurationError(
                f'{original!r}: write units largest first and each once (for example "1h30m")'
            )
        last_rank = rank
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if position != len(stripped) or position == 0:
        raise DurationError(
            f"{original!r} is not a duration; use a number of seconds or a string such as "
            f"{_EXAMPLES}"
        )
    return total


def _finite(seconds: float, original: str) -> float:
    if not math.isfinite(seconds):
        raise DurationError(f"{original!r} is too long to be a duration")
    return seconds


def format_duration(seconds: float) -> str:
    """A short string for a number of seconds that `parse_duration` reads back exactly
    (to the millisecond): 0.5 -> "500ms", 90 -> "1m30s", 3600 -> "1h", 129600 -> "1d12h"."""
    if seconds < 0 or not math.isfinite(seconds):
        raise DurationError("a duration must be a finite, non-negative number of seconds")
    millis = round(seconds * 1000)
    if millis == 0:
        return "0s"
    parts: list[str] = []
    for unit in _FORMAT_UNITS:
        size = round(_UNIT_SECONDS[unit] * 1000)
        count, millis = divmod(millis, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


_FORMS = 'use ISO-8601 with an offset ("2025-01-31T14:05:00Z", "...+01:00") or "-15m", "-2h"'


def parse_time(text: str, now: datetime) -> datetime:
    """The moment `text` names, as an aware UTC datetime. `now` anchors relative forms."""
    value = text.strip() if isinstance(text, str) else ""
    if not value:
        raise TimeSpecError(f"TIME is empty: {_FORMS}")
    if value.startswith("-"):
        return _relative(value, text, now)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise TimeSpecError(f"TIME {text!r} is not a time: {_FORMS}") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise TimeSpecError(
            f"TIME {text!r} has no UTC offset: add 'Z' or '+HH:MM' so it names one moment"
        )
    return moment.astimezone(UTC)


def _relative(value: str, text: str, now: datetime) -> datetime:
    """`-<duration>`: that long before `now`. The duration needs a unit ("-10" says
    nothing about minutes or seconds)."""
    body = value[1:].replace(" ", "")
    if _BARE_NUMBER.fullmatch(body):
        raise TimeSpecError(f"TIME {text!r} needs a unit, like -{body}m or -{body}s")
    try:
        seconds = _sum_terms(body, text)
    except DurationError as exc:
        if "largest first" in str(exc):
            raise TimeSpecError(
                f"TIME {text!r}: give each unit once, largest first (like -1h30m)"
            ) from None
        raise TimeSpecError(f"TIME {text!r} is not a time: {_FORMS}") from None
    try:
        if not math.isfinite(seconds):
            raise OverflowError
        return (now - timedelta(seconds=seconds)).astimezone(UTC)
    except OverflowError:
        raise TimeSpecError(f"TIME {text!r} reaches back before the year 1") from None
