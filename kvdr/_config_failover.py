"""`[failover]`: where the control records live.

    [failover]
    store_timeout = "5s"            # each call to one control store

    [[failover.control_stores]]     # none: the records live in [storage]; else 1 or 3,
    connection_string_env = "..."   # each with the keys of [storage], ideally in
    container = "kvdr-control"      # three regions (a transition needs two of three)

Kept in its own module so that the readers of the other sections can change without it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from failover.settings import FailoverSettings
from kvdr._config_fields import Invalid, Problems
from kvdr._config_hooks import hook_tables, read_hooks
from kvdr._config_lines import KeyPath
from kvdr._config_model import Check, Duration, Section, read_section, setting
from kvdr._config_storage import read_storage
from storage.settings import StorageSettings


def _tables(value: object) -> list[Any]:
    if not isinstance(value, list):
        raise Invalid(
            "expected an array of tables: write each store as [[failover.control_stores]]"
        )
    return value


class FailoverSection(Section):
    section = "failover"
    # Each store is a table with the keys of [storage], read on its own below.
    elsewhere = frozenset({"control_stores", "hooks"})

    store_timeout_seconds: Duration = setting(
        FailoverSettings.store_timeout_seconds,
        "each call to one control store; a store that does not answer within it counts "
        "against the transition",
        alias="store_timeout",
    )
    control_stores: Annotated[list[Any], Check(_tables, "array of tables")] = []
    # Each hook is a table of its own kind, read by kvdr/_config_hooks.py.
    hooks: Annotated[list[Any], Check(hook_tables, "array of tables")] = []


def read_failover(raw: object, env: Mapping[str, str], problems: Problems) -> FailoverSettings:
    path: KeyPath = ("failover",)
    section = read_section(FailoverSection, raw, path, problems)
    base = FailoverSettings()
    timeout = section.store_timeout_seconds if section is not None else None
    where = (*path, "control_stores")
    body = raw.get("control_stores") if isinstance(raw, dict) else None
    stores, failed = _read_stores(body, where, env, problems)
    # A broken table is reported where it is; the count is checked on sound ones only.
    if not failed and len(stores) not in (0, 1, 3):
        problems.error(
            where,
            f"must be one or three stores, got {len(stores)}: with two, losing either "
            "stops every transition; three survive the loss of one region",
        )
    if failed or len(stores) not in (0, 1, 3):
        stores = ()
    hooks = read_hooks(
        raw.get("hooks") if isinstance(raw, dict) else None, (*path, "hooks"), problems
    )
    return FailoverSettings(
        control_stores=stores,
        hooks=hooks,
        store_timeout_seconds=timeout if timeout is not None else base.store_timeout_seconds,
    )


def _read_stores(
    raw: object, path: KeyPath, env: Mapping[str, str], problems: Problems
) -> tuple[tuple[StorageSettings, ...], bool]:
    """The stores that are valid, and whether any table was not."""
    if raw is None:
        return (), False
    if not isinstance(raw, list):
        # Reported by the section's check; nothing to read here.
        return (), True
    stores: list[StorageSettings] = []
    failed = False
    for index, body in enumerate(raw):
        # Each table takes the keys of [storage]; its problems are re-homed here.
        found = Problems()
        try:
            settings = read_storage(body, env, found)
        except (ValueError, TypeError) as exc:
            problems.error((*path, index), str(exc))
            failed = True
            continue
        for problem in found.items:
            where = (*path, index, *problem.path[1:])
            if problem.severity == "error":
                problems.error(where, problem.message, problem.variable)
            else:
                problems.warning(where, problem.message)
        if settings is None or found.has_errors:
            failed = True
        else:
            stores.append(settings)
    return tuple(stores), failed
