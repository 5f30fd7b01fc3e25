"""Where each key of a TOML document is written: path -> line number.

`tomllib` returns plain dicts without positions, yet `kvdr config check` must name the
line of every problem. This scanner walks the text once and records the line of every
table header, `[[array]]` element, `key =` (dotted keys too), inline-table key and array
element. It understands strings (so a `=` or `#` inside a value is not a key or a
comment) but not the rest of TOML's grammar: it runs only on text tomllib has already
accepted, and on anything surprising it skips to the next line instead of failing.
"""

from __future__ import annotations

from collections.abc import Sequence

KeyPath = tuple[str | int, ...]

_BARE_KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def locate_keys(text: str) -> dict[KeyPath, int]:
    """Map every key path in `text` to the 1-based line where it is defined."""
    scanner = _Scanner(text)
    scanner.document()
    return scanner.lines


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
    """Text this scanner does not follow; the caller skips the rest of the line."""


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1
        self.lines: dict[KeyPath, int] = {}
        # Array-of-tables path -> number of elements seen so far.
        self.array_counts: dict[KeyPath, int] = {}

    # -- characters -------------------------------------------------------------------

    def peek(self, offset: int = 0) -> str:
        index = self.pos + offset
        return self.text[index] if index < len(self.text) else ""

    def advance(self, count: int = 1) -> None:
        for _ in range(count):
            if self.pos < len(self.text):
                if self.text[self.pos] == "\n":
                    self.line += 1
                self.pos += 1

    def skip_blanks(self, *, newlines: bool) -> None:
        """Skip spaces, tabs, comments and (when allowed) line breaks."""
        while self.pos < len(self.text):
            char = self.peek()
            if char in " \t\r":
                self.advance()
            elif char == "#":
                while self.pos < len(self.text) and self.peek() != "\n":
                    self.advance()
            elif char == "\n" and newlines:
                self.advance()
            else:
                return

    def skip_line(self) -> None:
        while self.pos < len(self.text) and self.peek() != "\n":
            self.advance()

    def record(self, path: KeyPath, line: int) -> None:
        # The first definition wins: it is where the key was introduced.
        self.lines.setdefault(path, line)

    # -- grammar ----------------------------------------------------------------------

    def document(self) -> None:
        table: KeyPath = ()
        while True:
            self.skip_blanks(newlines=True)
            if self.pos >= len(self.text):
                return
            try:
                if self.peek() == "[":
                    table = self.header()
                else:
                    self.key_value(table)
            except _Syntax:
                self.skip_line()

    def header(self) -> KeyPath:
        line = self.line
        is_array = self.peek(1) == "["
        self.advance(2 if is_array else 1)
        self.skip_blanks(newlines=False)
        key = self.key()
        self.skip_blanks(newlines=False)
        closing = "]]" if is_array else "]"
        if self.text[self.pos : self.pos + len(closing)] != closing:
            raise _Syntax
        self.advance(len(closing))
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
            path = self.resolve_last(path, part)
        return path

    def resolve_last(self, prefix: KeyPath, part: str) -> KeyPath:
        path = (*prefix, part)
        count = self.array_counts.get(path)
        return path if count is None else (*path, count - 1)

    def key_value(self, table: KeyPath) -> None:
        self.pair(table)
        self.skip_blanks(newlines=False)
        if self.peek() not in ("\n", ""):
            raise _Syntax

    def pair(self, table: KeyPath) -> None:
        """`key = value` inside `table`, recording the key (each dotted part) and value."""
        line = self.line
        key = self.key()
        for depth in range(1, len(key) + 1):
            self.record((*table, *key[:depth]), line)
        self.skip_blanks(newlines=False)
        if self.peek() != "=":
            raise _Syntax
        self.advance()
        self.skip_blanks(newlines=False)
        self.value((*table, *key))

    def key(self) -> tuple[str, ...]:
        parts: list[str] = []
        while True:
            self.skip_blanks(newlines=False)
            char = self.peek()
            if char in ('"', "'"):
                parts.append(self.string())
            else:
                start = self.pos
                while self.peek() and self.peek() in _BARE_KEY_CHARS:
                    self.advance()
                if self.pos == start:
                    raise _Syntax
                parts.append(self.text[start : self.pos])
            self.skip_blanks(newlines=False)
            if self.peek() != ".":
                return tuple(parts)
            self.advance()

    def value(self, path: KeyPath) -> None:
        char = self.peek()
        if char in ('"', "'"):
            self.string()
        elif char == "[":
            self.array(path)
        elif char == "{":
            self.inline_table(path)
        else:
            # Numbers, booleans, dates: everything up to the next separator.
            while self.peek() and self.peek() not in ",]}\n#":
                self.advance()

    def array(self, path: KeyPath) -> None:
        self.advance()
        index = 0
        while True:
            self.skip_blanks(newlines=True)
            if self.peek() == "]":
                self.advance()
                return
            if not self.peek():
                raise _Syntax
            self.record((*path, index), self.line)
            self.value((*path, index))
            self.skip_blanks(newlines=True)
            if self.peek() == ",":
                self.advance()
                index += 1
            elif self.peek() != "]":
                raise _Syntax

    def inline_table(self, path: KeyPath) -> None:
        self.advance()
        while True:
            self.skip_blanks(newlines=True)
            if self.peek() == "}":
                self.advance()
                return
            if not self.peek():
                raise _Syntax
            self.pair(path)
            self.skip_blanks(newlines=True)
            if self.peek() == ",":
                self.advance()
            elif self.peek() != "}":
                raise _Syntax

    def string(self) -> str:
        """Consume a string of any of TOML's four kinds; return its raw contents."""
        quote = self.peek()
        if self.text[self.pos : self.pos + 3] == quote * 3:
            self.advance(3)
            end = self.text.find(quote * 3, self.pos)
            while quote == '"' and end > 0 and _escaped(self.text, end):
                end = self.text.find(quote * 3, end + 1)
            if end < 0:
                raise _Syntax
            # A closing delimiter may be followed by up to two more quotes of content.
            while self.text[end + 3 : end + 4] == quote:
                end += 1
            start = self.pos
            self.advance(end + 3 - self.pos)
            return self.text[start:end]
        self.advance()
        start = self.pos
        while True:
            char = self.peek()
            if char in ("", "\n"):
                raise _Syntax
            if char == "\\" and quote == '"':
                self.advance(2)
                continue
            if char == quote:
                content = self.text[start : self.pos]
                self.advance()
                return content
            self.advance()


def _escaped(text: str, index: int) -> bool:
    """True when the character at `index` is preceded by an odd run of backslashes."""
    count = 0
    while index - count - 1 >= 0 and text[index - count - 1] == "\\":
        count += 1
    return count % 2 == 1
