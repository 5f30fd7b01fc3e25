"""Secrets in the configuration: read from an environment variable (`<key>_env`) or a
file readable by kvdr only (`<key>_file`), never written in the file itself (which is
shown, copied and checked in). Problems name the source, never the value."""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel

from kvdr._config_fields import Problems
from kvdr._config_lines import KeyPath

MIN_SECRET_LENGTH = 16


def secret_refusal(key: str) -> str:
    return (
        f"a literal {key} is not accepted in the configuration file: put it in an "
        f"environment variable ({key}_env) or a file readable by kvdr only ({key}_file)"
    )


def read_secret(
    key: str, section: BaseModel, table: KeyPath, env: Mapping[str, str], problems: Problems
) -> str | None:
    """The secret from the environment variable or the file that `<key>_env` or
    `<key>_file` of `section` (the table at `table`) name."""
    env_key, file_key = f"{key}_env", f"{key}_file"
    name, path = getattr(section, env_key), getattr(section, file_key)
    if name is not None and path is not None:
        problems.error((*table, file_key), f"conflicts with {env_key}: set only one of them")
        return None
    value: str | None = None
    where: KeyPath = (*table, env_key)
    if name is not None:
        value = env.get(name, "").strip()
        if not value:
            problems.error(where, f"environment variable {name} is not set or empty")
            return None
    elif path is not None:
        where = (*table, file_key)
        try:
            mode = os.stat(path).st_mode
            value = Path(path).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not text"
            problems.error(where, f"cannot read {path}: {reason}")
            return None
        if not value:
            problems.error(where, f"{path} is empty")
            return None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            problems.warning(where, f"{path} is readable by other users: chmod 600 it")
    else:
        return None
    if len(value) < MIN_SECRET_LENGTH:
        problems.error(where, f"must hold at least {MIN_SECRET_LENGTH} characters")
        return None
    return value
