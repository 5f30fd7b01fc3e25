"""The TIME of `kvdr restore --at TIME`: ISO-8601 with an offset or `Z`, or relative to
now (`-15m`, `-2h`, `-1d`, `-1h30m`, `-90s`, `-1w`).

A time without an offset is refused: on a host in another zone "10:00" would silently
mean another moment, and a restore to the wrong moment is the failure to prevent.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_UNITS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
# ASCII digits only: `\d` would also take Arabic-Indic or other Unicode digits, a form no
# operator means to type and one that hides what the time is from a reviewer.
_RELATIVE = re.compile(r"-((?:[0-9]+[wdhms])+)")
_TERM = re.compile(r"([0-9]+)([wdhms])")


class TimeSpecError(ValueError):
    """A TIME that cannot be read; the message shows the accepted forms."""


_FORMS = 'use ISO-8601 with an offset ("2025-01-31T14:05:00Z", "...+01:00") or "-15m", "-2h"'


def parse_time(text: str, now: datetime) -> datetime:
    """The moment `text` names, as an aware UTC datetime. `now` anchors relative forms."""
    value = text.strip() if isinstance(text, str) else ""
    if not value:
        raise TimeSpecError(f"TIME is empty: {_FORMS}")
    relative = _RELATIVE.fullmatch(value)
    if relative:
        terms = _TERM.findall(relative.group(1))
        units = [unit for _, unit in terms]
        if len(set(units)) != len(units) or units != sorted(units, key=lambda u: -_UNITS[u]):
            raise TimeSpecError(f"TIME {text!r}: give each unit once, largest first (like -1h30m)")
        seconds = sum(int(number) * _UNITS[unit] for number, unit in terms)
        try:
            return (now - timedelta(seconds=seconds)).astimezone(UTC)
        except OverflowError:
            raise TimeSpecError(f"TIME {text!r} reaches back before the year 1") from None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise TimeSpecError(f"TIME {text!r} is not a time: {_FORMS}") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise TimeSpecError(
            f"TIME {text!r} has no UTC offset: add 'Z' or '+HH:MM' so it names one moment"
        )
    return moment.astimezone(UTC)
