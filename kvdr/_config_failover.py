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

from failover.settings import FailoverSettings
from kvdr._config_fields import Problems, Table, duration, type_name
from kvdr._config_lines import KeyPath
from kvdr._config_schema import read_storage
from storage.settings import StorageSettings

_KEYS = ("control_stores", "store_timeout")


def read_failover(raw: object, env: Mapping[str, str], problems: Problems) -> FailoverSettings:
    path: KeyPath = ("failover",)
    table = Table(raw, path, problems, _KEYS)
    base = FailoverSettings()
    timeout = table.get("store_timeout", duration())
    where = (*path, "control_stores")
    stores, failed = _read_stores(table.raw.get("control_stores"), where, env, problems)
    # A broken table is reported where it is; the count is checked on sound ones only.
    if not failed and len(stores) not in (0, 1, 3):
        problems.error(
            where,
            f"must be one or three stores, got {len(stores)}: with two, losing either "
            "stops every transition; three survive the loss of one region",
        )
    if failed or len(stores) not in (0, 1, 3):
        stores = ()
    return FailoverSettings(
        control_stores=stores,
        store_timeout_seconds=timeout if timeout is not None else base.store_timeout_seconds,
    )


def _read_stores(
    raw: object, path: KeyPath, env: Mapping[str, str], problems: Problems
) -> tuple[tuple[StorageSettings, ...], bool]:
    """The stores that are valid, and whether any table was not."""
    if raw is None:
        return (), False
    if not isinstance(raw, list):
        problems.error(
            path,
            f"expected an array of tables (write each as [[failover.control_stores]]), "
            f"got {type_name(raw)}",
        )
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
