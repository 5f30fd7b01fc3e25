"""Where each key of a TOML document is written: path -> line number.

`tomllib` returns plain dicts without positions, yet `kvdr config check` must name the
line of every problem. This locator splits the text into tokens (strings of TOML's four
kinds, so a `=` or `#` inside a value is not a key or a comment; newlines; punctuation;
bare words) and walks them once, recording the line of every table header, `[[array]]`
element, `key =` (dotted keys too), inline-table key and array element. It does not
follow the rest of TOML's grammar: it runs only on text tomllib has already accepted,
and on anything surprising it skips to the next line instead of failing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

KeyPath = tuple[str | int, ...]

_TOKEN = re.compile(
    # A multi-line string may end in up to two quotes of content before its delimiter.
    r'(?P<string>"""(?:\\.|[^\\])*?"""(?!")|\'\'\'.*?\'\'\'(?!\')'
    r'|"(?:\\.|[^"\\\n])*"|\'[^\'\n]*\')'
    r"|(?P<skip>[ \t\r]+|#[^\n]*)|(?P<word>[A-Za-z0-9_-]+)|(?P<char>.|\n)",
    re.S,
)


def locate_keys(text: str) -> dict[KeyPath, int]:
    """Map every key path in `text` to the 1-based line where it is defined."""
    locator = _Locator(text)
    locator.document()
    return locator.lines


def line_of(lines: dict[KeyPath, int], path: Sequence[str | int]) -> int | None:
    """The line of `path`, else of its nearest ancestor that is written in the file.

    A missing key is reported at the table that should hold it.
    """
    current = tuple(path)
    while current:
        if current in lines:
            return lines[current]
        current = current[:-1]
    return None


class _Syntax(Exception):
    """Text this locator does not follow; the caller skips the rest of the line."""


class _Locator:
    def __init__(self, text: str) -> None:
        # (kind, text, line, offset) of every token but blanks and comments.
        self.tokens: list[tuple[str, str, int, int]] = []
        line = 1
        for match in _TOKEN.finditer(text):
            kind = match.lastgroup or "char"
            if kind != "skip":
                self.tokens.append((kind, match.group(), line, match.start()))
            line += match.group().count("\n")
        self.at = 0
        self.lines: dict[KeyPath, int] = {}
        # Array-of-tables path -> number of elements seen so far.
        self.array_counts: dict[KeyPath, int] = {}

    def peek(self) -> str:
        return self.tokens[self.at][1] if self.at < len(self.tokens) else ""

    def line(self) -> int:
        return self.tokens[min(self.at, len(self.tokens) - 1)][2]

    def take(self, expected: str) -> None:
        if self.peek() != expected:
            raise _Syntax
        self.at += 1

    def skip_newlines(self) -> None:
        while self.peek() == "\n":
            self.at += 1

    def record(self, path: KeyPath, line: int) -> None:
        # The first definition wins: it is where the key was introduced.
        self.lines.setdefault(path, line)

    def document(self) -> None:
        table: KeyPath = ()
        while True:
            self.skip_newlines()
            if self.at >= len(self.tokens):
                return
            try:
                if self.peek() == "[":
                    table = self.header()
                    continue
                self.pair(table)
                if self.peek() not in ("\n", ""):
                    raise _Syntax
            except _Syntax:
                while self.peek() not in ("\n", ""):
                    self.at += 1

    def header(self) -> KeyPath:
        line, offset = self.line(), self.tokens[self.at][3]
        self.at += 1
        # `[[` only when the brackets touch; `[ [` is not an array of tables.
        is_array = self.peek() == "[" and self.tokens[self.at][3] == offset + 1
        self.at += is_array
        key = self.key()
        for _ in range(1 + is_array):
            self.take("]")
        # The last part names the table itself, never an element of an earlier array.
        path = (*self.resolve(key[:-1]), key[-1])
        if is_array:
            index = self.array_counts.get(path, 0)
            self.array_counts[path] = index + 1
            self.record(path, line)
            path = (*path, index)
        self.record(path, line)
        return path

    def resolve(self, key: Sequence[str]) -> KeyPath:
        """A header's dotted key as a path, stepping into the latest element of any
        array of tables on the way (`[pairs.x]` after `[[pairs]]` means the last pair)."""
        path: KeyPath = ()
        for part in key:
            path = (*path, part)
            count = self.array_counts.get(path)
            path = path if count is None else (*path, count - 1)
        return path

    def key(self) -> tuple[str, ...]:
        parts: list[str] = []
        while True:
            kind, word = self.tokens[self.at][:2] if self.at < len(self.tokens) else ("", "")
            if kind == "string" and word[:3] not in ('"""', "'''"):
                parts.append(word[1:-1])  # a quoted key's raw contents, as written
            elif kind == "word":
                parts.append(word)
            else:
                raise _Syntax
            self.at += 1
            if self.peek() != ".":
                return tuple(parts)
            self.at += 1

    def pair(self, table: KeyPath) -> None:
        """`key = value` inside `table`: the key (every dotted prefix) and the value."""
        line = self.line()
        key = self.key()
        for depth in range(1, len(key) + 1):
            self.record((*table, *key[:depth]), line)
        self.take("=")
        self.value((*table, *key))

    def value(self, path: KeyPath) -> None:
        if self.peek() == "[":
            self.items("]", lambda index: self.element((*path, index)))
        elif self.peek() == "{":
            self.items("}", lambda _: self.pair(path))
        else:
            # A string, number, boolean or date: every token up to the next separator.
            self.at += 1
            while self.peek() not in (",", "]", "}", "\n", ""):
                self.at += 1

    def element(self, path: KeyPath) -> None:
        self.record(path, self.line())
        self.value(path)

    def items(self, closing: str, item: Callable[[int], None]) -> None:
        """The items of an array or inline table, separated by commas."""
        self.at += 1
        index = 0
        while True:
            self.skip_newlines()
            if self.peek() == closing:
                self.at += 1
                return
            if not self.peek():
                raise _Syntax
            item(index)
            self.skip_newlines()
            if self.peek() == ",":
                self.at += 1
                index += 1
            elif self.peek() != closing:
                raise _Syntax
