"""Durations in the configuration: `10`, `2.5`, `"500ms"`, `"10s"`, `"5m"`, `"1h30m"`.

A number means seconds. A string is one or more `<number><unit>` terms (units `ms`, `s`,
`m`, `h`) in decreasing unit order, each unit at most once, so `"1h30m"` reads the way it
is written and `"30m1h"` is refused instead of guessed at.
"""

from __future__ import annotations

import math
import re

__all__ = ["DurationError", "format_duration", "parse_duration"]

_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
# Largest first: the order a term sequence must follow.
_UNIT_ORDER = ("h", "m", "s", "ms")
# ASCII digits only: \d would also accept digits of other scripts.
_TERM = re.compile(r"([0-9]+(?:\.[0-9]+)?|\.[0-9]+)(ms|h|m|s)")


class DurationError(ValueError):
    """A value that is not a duration; the message says what is accepted."""


def parse_duration(value: object) -> float:
    """Seconds from a number of seconds or a duration string; raise `DurationError`."""
    # bool is an int in Python; `poll_interval = true` is a mistake, not one second.
    if isinstance(value, bool):
        raise DurationError('expected a duration such as 10, "500ms", "10s", "5m", "1h"')
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
    return _parse_text(value)


def _parse_text(text: str) -> float:
    stripped = text.strip().replace(" ", "")
    if not stripped:
        raise DurationError("an empty string is not a duration")
    if stripped.startswith("-"):
        raise DurationError(f"a duration cannot be negative: {text!r}")
    # A bare number in a string ("10") is seconds, the same as the number 10.
    if re.fullmatch(r"[0-9]+(?:\.[0-9]+)?|\.[0-9]+", stripped):
        return float(stripped)
    total = 0.0
    position = 0
    last_rank = -1
    for match in _TERM.finditer(stripped):
        if match.start() != position:
            break
        rank = _UNIT_ORDER.index(match.group(2))
        if rank <= last_rank:
            raise DurationError(
                f'{text!r}: write units largest first and each once (for example "1h30m")'
            )
        last_rank = rank
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if position != len(stripped) or position == 0:
        raise DurationError(
            f"{text!r} is not a duration; use a number of seconds or a string such as "
            '"500ms", "10s", "5m", "1h" or "1h30m"'
        )
    return total


def format_duration(seconds: float) -> str:
    """A short string for a number of seconds that `parse_duration` reads back exactly
    (to the millisecond): 0.5 -> "500ms", 90 -> "1m30s", 3600 -> "1h"."""
    if seconds < 0 or not math.isfinite(seconds):
        raise DurationError("a duration must be a finite, non-negative number of seconds")
    millis = round(seconds * 1000)
    if millis == 0:
        return "0s"
    parts: list[str] = []
    for unit in _UNIT_ORDER:
        size = round(_UNIT_SECONDS[unit] * 1000)
        count, millis = divmod(millis, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
