"""Environment overrides: `KVDR__<SECTION>__<KEY>=value` sets any key of the file.

Double underscores separate path parts, matched case-insensitively against the keys the
file already has (new keys are lower-cased). Array elements are addressed by index
(`KVDR__PAIRS__0__ADOPT=true`); the index one past the end appends an element, so a
pair can be added from the environment. A value is read as a TOML scalar or array when
it parses as one (`true`, `16`, `"10s"`, `["westus"]`), else taken as a plain string
(`westus`, `127.0.0.1:9090`). Overrides are applied to the parsed document before it is
validated, so they get exactly the same checks; problems name the variable.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping

from kvdr._config_fields import Problems, type_name
from kvdr._config_lines import KeyPath

ENV_PREFIX = "KVDR__"
# Sections whose value is an array of tables: a missing one is created as an array.
_ARRAY_SECTIONS = ("pairs",)
# Keys whose value is an array, so a plain word set from the environment is wrapped in one.
_LIST_KEYS = frozenset({"secondaries", "kinds", "include", "exclude"})


def parse_env_value(raw: str) -> object:
    """A TOML scalar or array when `raw` is one, else `raw` itself."""
    # A line break would let the value define further keys of the wrapper document.
    if "\n" in raw or "\r" in raw:
        return raw
    try:
        parsed = tomllib.loads(f"value = {raw}")
    except tomllib.TOMLDecodeError:
        return raw
    value = parsed.get("value")
    if len(parsed) != 1 or isinstance(value, dict):
        return raw
    return value


def _order(name: str) -> list[tuple[int, int | str]]:
    # Numeric parts sort as numbers (2 before 10), so elements appended by index are
    # created in order.
    return [
        (0, int(part)) if part.isascii() and part.isdigit() else (1, part.lower())
        for part in name.split("__")
    ]


def apply_env_overrides(
    doc: dict[str, object], env: Mapping[str, str], problems: Problems
) -> dict[KeyPath, str]:
    """Apply every `KVDR__*` variable of `env` to `doc` in place.

    Returns which variable set (or created) each path, so later problems at that path
    name the variable instead of a line.
    """
    origins: dict[KeyPath, str] = {}
    names = [name for name in env if name.upper().startswith(ENV_PREFIX)]
    for name in sorted(names, key=_order):
        parts = name[len(ENV_PREFIX) :].split("__")
        if len(parts) < 2 or any(not part for part in parts):
            problems.error(
                (),
                "an override names a section and a key: KVDR__<SECTION>__<KEY> "
                "(parts separated by double underscores)",
                variable=name,
            )
            continue
        _apply(doc, parts, parse_env_value(env[name]), name, origins, problems)
    return origins


def _apply(
    doc: dict[str, object],
    parts: list[str],
    value: object,
    variable: str,
    origins: dict[KeyPath, str],
    problems: Problems,
) -> None:
    container: dict[str, object] | list[object] = doc
    path: KeyPath = ()
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        key: str | int
        if isinstance(container, list):
            if not re.fullmatch(r"[0-9]+", part):
                problems.error(
                    path, f"is an array: expected an element index, got {part!r}", variable=variable
                )
                return
            key = int(part)
            if key > len(container):
                problems.error(
                    path,
                    f"has {len(container)} elements: index {key} would leave a gap "
                    f"(use {len(container)} to add one)",
                    variable=variable,
                )
                return
            if key == len(container):
                container.append({})
                origins[(*path, key)] = variable
            current = container[key]
        else:
            key = next((k for k in container if k.lower() == part.lower()), part.lower())
            current = container.get(key)
        path = (*path, key)
        if last:
            if isinstance(current, dict):
                problems.error(path, "is a table: override its keys one by one", variable=variable)
                return
            # A plain word for an array key is that array's only element:
            # KVDR__PAIRS__0__SECONDARIES=westus.
            if isinstance(value, str) and (isinstance(current, list) or key in _LIST_KEYS):
                value = [value]
            container[key] = value  # type: ignore[index]  # an int key for a list, str for a dict
            origins[path] = variable
            return
        if current is None:
            created: dict[str, object] | list[object]
            created = [] if len(path) == 1 and path[0] in _ARRAY_SECTIONS else {}
            container[key] = created  # type: ignore[index]
            origins[path] = variable
            current = created
        elif not isinstance(current, dict | list):
            problems.error(
                path,
                f"is {type_name(current)}, not a table: it has no keys to override",
                variable=variable,
            )
            return
        container = current
