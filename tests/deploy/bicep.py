"""A small structural reader of Bicep files, enough for deploy/bicep/main.bicep.

It reads the declarations (param, var, resource, output) and their values into Python:
objects become dicts, arrays lists, strings `str` (interpolations kept as written),
numbers and booleans themselves, and every other expression an `Expr` holding its text.
A `for` loop is a `Loop` (its body parsed), a condition `if (...)` a `Conditional`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Expr:
    """An expression other than a literal: its text, as written."""

    text: str


@dataclass(frozen=True)
class Loop:
    """`[for BINDING in SOURCE: BODY]`, with an optional condition on the body."""

    binding: str
    source: str
    body: Any
    condition: str | None = None


@dataclass(frozen=True)
class Conditional:
    """`if (CONDITION) BODY`."""

    condition: str
    body: Any


@dataclass
class Declaration:
    kind: str  # param, var, resource, output
    name: str
    type: str  # the param/output type, or the resource type without the API version
    value: Any
    decorators: list[str] = field(default_factory=list)
    api_version: str = ""

    @property
    def body(self) -> Any:
        """The value inside any loop and condition: a resource's object."""
        value = self.value
        while isinstance(value, Loop | Conditional):
            value = value.body
        return value

    @property
    def looped(self) -> bool:
        return isinstance(self.value, Loop)

    @property
    def conditional(self) -> bool:
        return isinstance(self.value, Conditional) or (
            isinstance(self.value, Loop) and self.value.condition is not None
        )


class BicepSyntaxError(ValueError):
    pass


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def error(self, message: str) -> BicepSyntaxError:
        line = self.text.count("\n", 0, self.pos) + 1
        return BicepSyntaxError(f"line {line}: {message}")

    def skip(self, newlines: bool = True) -> None:
        while self.pos < len(self.text):
            if self.text.startswith("//", self.pos):
                end = self.text.find("\n", self.pos)
                self.pos = len(self.text) if end < 0 else end
            elif self.text.startswith("/*", self.pos):
                self.pos = self.text.index("*/", self.pos) + 2
            elif self.text[self.pos] in " \t\r" or (newlines and self.text[self.pos] == "\n"):
                self.pos += 1
            else:
                return

    def peek(self, token: str) -> bool:
        return self.text.startswith(token, self.pos)

    def expect(self, token: str) -> None:
        self.skip()
        if not self.peek(token):
            raise self.error(f"expected {token!r}, got {self.text[self.pos : self.pos + 20]!r}")
        self.pos += len(token)

    def ident(self) -> str:
        self.skip()
        match = _IDENT.match(self.text, self.pos)
        if not match:
            raise self.error(f"expected a name, got {self.text[self.pos : self.pos + 20]!r}")
        self.pos = match.end()
        return match.group()

    def string(self) -> str:
        if self.peek("'''"):
            end = self.text.index("'''", self.pos + 3)
            value = self.text[self.pos + 3 : end]
            self.pos = end + 3
            return value
        self.pos += 1
        out = []
        while self.text[self.pos] != "'":
            if self.text[self.pos] == "\\":
                out.append(self.text[self.pos + 1])
                self.pos += 2
            else:
                out.append(self.text[self.pos])
                self.pos += 1
        self.pos += 1
        return "".join(out)

    def raw(self, stops: str) -> str:
        """Expression text up to a stop character or a newline at depth 0."""
        start, depth = self.pos, 0
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == "'":
                self.string()
                continue
            if char in "([{":
                depth += 1
            elif char in ")]}":
                if depth == 0:
                    break
                depth -= 1
            elif depth == 0 and (char == "\n" or char in stops):
                break
            self.pos += 1
        return self.text[start : self.pos].strip()

    def value(self, stops: str = "") -> Any:
        self.skip()
        if self.peek("{"):
            return self.object()
        if self.peek("["):
            return self.array()
        if self.peek("if") and re.match(r"if\s*\(", self.text[self.pos :]):
            self.pos += 2
            condition = self.parenthesized()
            return Conditional(condition, self.value())
        if self.peek("'"):
            start = self.pos
            text = self.string()
            rest = self.raw(stops)
            return text if not rest else Expr(self.text[start : self.pos].strip())
        text = self.raw(stops)
        if text in ("true", "false"):
            return text == "true"
        if text == "null":
            return None
        if re.fullmatch(r"-?\d+", text):
            return int(text)
        return Expr(text)

    def parenthesized(self) -> str:
        self.expect("(")
        start, depth = self.pos, 1
        while depth:
            char = self.text[self.pos]
            if char == "'":
                self.string()
                continue
            depth += {"(": 1, ")": -1}.get(char, 0)
            self.pos += 1
        return self.text[start : self.pos - 1].strip()

    def object(self) -> dict[str, Any]:
        self.expect("{")
        result: dict[str, Any] = {}
        while True:
            self.skip()
            if self.peek("}"):
                self.pos += 1
                return result
            key = self.string() if self.peek("'") else self.ident()
            self.expect(":")
            result[key] = self.value(stops=",")
            self.skip()
            if self.peek(","):
                self.pos += 1

    def array(self) -> list[Any] | Loop:
        self.expect("[")
        self.skip()
        if re.match(r"for\s", self.text[self.pos :]):
            self.pos += 3
            self.skip()
            binding = self.parenthesized() if self.peek("(") else self.ident()
            self.skip()
            if not self.peek("in"):
                raise self.error("expected 'in' in a for loop")
            self.pos += 2
            self.skip()
            source = self.raw(":")
            self.expect(":")
            body = self.value()
            self.expect("]")
            if isinstance(body, Conditional):
                return Loop(binding, source, body.body, body.condition)
            return Loop(binding, source, body)
        items: list[Any] = []
        while True:
            self.skip()
            if self.peek("]"):
                self.pos += 1
                return items
            items.append(self.value(stops=","))
            self.skip()
            if self.peek(","):
                self.pos += 1


def parse(text: str) -> dict[str, Declaration]:
    """Every param, var, resource and output of a Bicep file, by name."""
    reader = _Reader(text)
    declarations: dict[str, Declaration] = {}
    decorators: list[str] = []
    while True:
        reader.skip()
        if reader.pos >= len(text):
            return declarations
        if reader.peek("@"):
            reader.pos += 1
            decorators.append(reader.raw(""))
            continue
        keyword = reader.ident()
        if keyword == "targetScope":
            reader.expect("=")
            reader.value()
            continue
        name = reader.ident()
        api = ""
        if keyword == "resource":
            reader.skip()
            full = reader.string()
            kind, _, api = full.partition("@")
            reader.skip()
            if reader.peek("existing"):
                reader.pos += len("existing")
        elif keyword in ("param", "output"):
            kind = reader.ident()
        elif keyword == "var":
            kind = ""
        else:
            raise reader.error(f"unsupported declaration {keyword!r}")
        reader.skip(newlines=False)
        value: Any = None
        if reader.peek("="):
            reader.pos += 1
            value = reader.value()
        if name in declarations:
            raise reader.error(f"{name!r} declared twice")
        declarations[name] = Declaration(keyword, name, kind, value, decorators, api)
        decorators = []


def of_kind(declarations: dict[str, Declaration], kind: str) -> dict[str, Declaration]:
    return {name: d for name, d in declarations.items() if d.kind == kind}
