"""The checks of single TOML values, and the problems found while reading a file.

Each converter returns the typed value or raises `Invalid` saying what was expected; the
models of kvdr/_config_model.py wrap them as field types. `Problems` collects every
problem with its key path, so one pass reports all of them instead of the first.
Messages never echo the value of a sensitive key (a connection string, a secret).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Literal, TypeVar

from kvdr._config_lines import KeyPath
from kvdr.timegrammar import DurationError, parse_duration

T = TypeVar("T")

Severity = Literal["error", "warning"]
Converter = Callable[[object], T]


class Invalid(ValueError):
    """A value that a converter refuses; the message says what was expected.

    `at` is the index of the offending element when the value is an array, so the
    problem is reported at `key[index]` (and its line).
    """

    def __init__(self, message: str, at: int | None = None) -> None:
        super().__init__(message)
        self.at = at


@dataclass(frozen=True)
class Problem:
    """One problem at one key path (before it is given a file, line or variable)."""

    path: KeyPath
    message: str
    severity: Severity = "error"
    # The environment variable the problem comes from, when no key path says it.
    variable: str | None = None


@dataclass
class Problems:
    """Every problem found so far."""

    items: list[Problem] = field(default_factory=list)

    def error(self, path: KeyPath, message: str, variable: str | None = None) -> None:
        self.items.append(Problem(tuple(path), message, "error", variable))

    def warning(self, path: KeyPath, message: str) -> None:
        self.items.append(Problem(tuple(path), message, "warning"))

    @property
    def has_errors(self) -> bool:
        return any(p.severity == "error" for p in self.items)

    def errors_under(self, path: KeyPath) -> bool:
        """True when an error was recorded at `path` or below it."""
        size = len(path)
        return any(p.severity == "error" and p.path[:size] == path for p in self.items)


# bool before int: a bool is an int in Python.
_TYPE_NAMES = (
    (bool, "a boolean"),
    (int, "an integer"),
    (float, "a float"),
    (str, "a string"),
    (list, "an array"),
    (dict, "a table"),
    (datetime | date | time, "a date/time"),
)


def type_name(value: object) -> str:
    """TOML's name for the type of a parsed value, with an article."""
    return next((name for t, name in _TYPE_NAMES if isinstance(value, t)), type(value).__name__)


def suggest(word: str, choices: Iterable[str]) -> str:
    """` (did you mean 'x'?)` when one of `choices` is close to `word`, else ``."""
    matches = difflib.get_close_matches(word.lower(), list(choices), n=1, cutoff=0.6)
    return f" (did you mean {matches[0]!r}?)" if matches else ""


# -- converters ----------------------------------------------------------------------


def text(value: object) -> str:
    """A non-empty string. Never echoes the value: it may be sensitive."""
    if not isinstance(value, str):
        raise Invalid(f"expected a string, got {type_name(value)}")
    if not value.strip():
        raise Invalid("must not be empty")
    return value


def boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise Invalid(f"expected true or false, got {type_name(value)}")
    return value


def integer(low: int, high: int | None = None) -> Converter[int]:
    def convert(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid(f"expected an integer, got {type_name(value)}")
        if value < low or (high is not None and value > high):
            bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise Invalid(f"must be {bounds}, got {value}")
        return value

    return convert


def duration(*, positive: bool = True) -> Converter[float]:
    """Seconds from a number or a duration string; zero allowed only when not `positive`."""

    def convert(value: object) -> float:
        try:
            seconds = parse_duration(value)
        except DurationError as exc:
            raise Invalid(str(exc)) from None
        if positive and seconds <= 0:
            raise Invalid("must be longer than zero")
        return seconds

    return convert


def choice(choices: Sequence[str], *, fold_case: bool = False) -> Converter[str]:
    def convert(value: object) -> str:
        word = text(value)
        key = word.lower() if fold_case else word
        if key not in choices:
            listed = ", ".join(repr(c) for c in choices)
            raise Invalid(f"{word!r} is not one of {listed}{suggest(word, choices)}")
        return key

    return convert


def text_list(value: object) -> tuple[str, ...]:
    """An array of non-empty strings."""
    if not isinstance(value, list):
        raise Invalid(f"expected an array of strings, got {type_name(value)}")
    items: list[str] = []
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            got = type_name(item) if not isinstance(item, str) else "an empty string"
            raise Invalid(f"expected a non-empty string, got {got}", at=index)
        items.append(item)
    return tuple(items)


def fraction(value: object) -> float:
    """A share above 0 and at most 1: a number such as 0.25 or a percentage string such
    as "25%"."""
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            number = float(value.strip()[:-1]) / 100
        except ValueError:
            raise Invalid(f'expected a percentage such as "25%", got {value!r}') from None
    elif isinstance(value, bool) or not isinstance(value, int | float):
        expected = 'a number such as 0.25 or a percentage such as "25%"'
        raise Invalid(f"expected {expected}, got {type_name(value)}")
    else:
        number = float(value)
    # Written so that NaN fails too.
    if not 0.0 < number <= 1.0:
        raise Invalid(f"must be more than 0 and at most 1 (100%), got {value!r}")
    return number


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def env_name(value: object) -> str:
    name = text(value)
    if not _ENV_NAME.fullmatch(name):
        raise Invalid(f"{name!r} is not an environment variable name")
    return name
