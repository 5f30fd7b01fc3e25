"""`[storage]`: where kvdr keeps checkpoints, journals and snapshots (also the tables of
`[[backups.replicas]]`). Connection strings are never quoted in a message: they usually
carry the account key; a URL is shown without its query (a SAS token) or user part.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated
from urllib.parse import urlsplit

from kvdr._config_daemon import is_loopback
from kvdr._config_fields import Invalid, Problems, duration, env_name, integer, text
from kvdr._config_lines import KeyPath
from kvdr._config_model import Check, Section, build, read_section, setting
from kvdr._config_vaults import shown_url
from storage.settings import AzureBlobSettings, LocalFolderSettings, is_container_name

_STORAGE_SOURCES = ("connection_string_env", "connection_string", "account_url", "path")
# How long a read waits on an unreachable primary endpoint before using the secondary.
_STORAGE_TUNING = ("retries", "connect_timeout", "primary_retry")
# Azurite's published development account: its key is public, not a secret.
_AZURITE_ACCOUNT = "AccountName=devstoreaccount1"


def _container(value: object) -> str:
    name = text(value)
    if not is_container_name(name):
        raise Invalid(
            f"{name!r} is not a valid container name: 3-63 lowercase letters, digits and "
            "single hyphens, starting and ending with a letter or digit"
        )
    return name


def _account_url(value: object) -> str:
    url = text(value)
    parts = urlsplit(url)
    shown = shown_url(url)
    # Plain http only for a local Azurite: account keys and tokens must not cross a network
    # unencrypted.
    local = parts.scheme == "http" and is_loopback(parts.hostname or "")
    if parts.scheme != "https" and not local:
        raise Invalid(f"{shown} must be an https:// URL (http only for 127.0.0.1)")
    if not parts.hostname or parts.username or parts.password:
        raise Invalid(f"{shown} must be the storage account's blob endpoint URL")
    if parts.query or parts.fragment:
        raise Invalid(
            f"{shown} must not carry a query: a SAS token does not belong in the file; "
            "use connection_string_env or the configured credential"
        )
    return url.rstrip("/")


def _connection_string(value: object) -> str:
    # The value is never echoed: it usually carries the account key.
    conn = text(value)
    fields = [f for f in conn.split(";") if f.strip()]
    if not fields or any("=" not in f for f in fields):
        raise Invalid("not a connection string: expected NAME=VALUE pairs separated by ';'")
    return conn


class StorageSection(Section):
    section = "storage"

    container: Annotated[str, Check(_container, "string")] = setting(
        AzureBlobSettings.container,
        "blob container (3-63 lowercase letters, digits, single hyphens)",
    )
    connection_string_env: Annotated[str, Check(env_name, "string")] | None = setting(
        None,
        "**name** of an environment variable holding the storage connection string "
        "(preferred over a literal one)",
        shown="",
    )
    connection_string: Annotated[str, Check(_connection_string, "string")] | None = setting(
        None,
        "a literal connection string; one carrying an account key is a warning unless it is "
        "Azurite's public development account",
        shown="",
    )
    account_url: Annotated[str, Check(_account_url, "string")] | None = setting(
        None,
        "`https://<account>.blob.core.windows.net`, authenticated with `[credential]` "
        "(`http://` only for 127.0.0.1)",
        shown="",
    )
    secondary_account_url: Annotated[str, Check(_account_url, "string")] | None = setting(
        None,
        "the read-only secondary endpoint of an RA-GRS/RA-GZRS account "
        "(`https://<account>-secondary.blob.core.windows.net`), read when the primary "
        "endpoint is down",
        shown="derived",
    )
    path: Annotated[str, Check(text, "string")] | None = setting(
        None,
        "a local folder instead of Azure (tests, single-host setups); `container` and "
        "`secondary_account_url` do not apply",
        shown="",
    )
    retries: Annotated[int, Check(integer(0, 20), "integer")] = setting(
        AzureBlobSettings.retries, "retries of a blob request before it fails (0-20)"
    )
    connect_timeout_seconds: Annotated[float, Check(duration(), "duration")] = setting(
        AzureBlobSettings.connect_timeout_seconds,
        "connect timeout per blob request",
    )
    # How long reads go to the secondary endpoint after a fallback.
    primary_retry_seconds: Annotated[float, Check(duration(), "duration")] = setting(
        AzureBlobSettings.primary_retry_seconds,
        "after a read fell back to the secondary endpoint, how long reads go straight there "
        "before the primary is tried again",
    )


def read_storage(
    raw: object, env: Mapping[str, str], problems: Problems, path: KeyPath = ("storage",)
) -> AzureBlobSettings | LocalFolderSettings | None:
    """The storage table at `path` (`[storage]`, or one that takes its keys), or None
    when it has errors (all recorded)."""
    try:
        settings = _read_storage(raw, env, problems, path)
    except (ValueError, TypeError) as exc:
        # The settings dataclasses check themselves too; a refusal is one more problem.
        problems.error(path, str(exc))
        return None
    return None if problems.errors_under(path) else settings


def _read_storage(
    raw: object, env: Mapping[str, str], problems: Problems, path: KeyPath
) -> AzureBlobSettings | LocalFolderSettings | None:
    if raw is None:
        problems.error(path, "missing [storage]: where kvdr keeps checkpoints and journals")
        return None
    # Which backend is chosen is read from the keys written, so a conflict is reported
    # whatever else is wrong in the table.
    written = set(raw) if isinstance(raw, dict) else set()
    sources = [key for key in _STORAGE_SOURCES if key in written]
    if isinstance(raw, dict) and not sources:
        problems.error(
            path, "set one of connection_string_env, connection_string, account_url or path"
        )
    for extra in sources[1:]:
        problems.error(
            (*path, extra),
            f"conflicts with {sources[0]}: set only one of connection_string_env, "
            "connection_string, account_url or path",
        )
    section = read_section(StorageSection, raw, path, problems)
    if section is None or not sources:
        return None
    source = sources[0]
    if section.path is not None and source == "path":
        for unused in ("container", "secondary_account_url", *_STORAGE_TUNING):
            if unused in written:
                problems.warning((*path, unused), "not used with a local folder (path)")
        return LocalFolderSettings(path=section.path)
    if source == "account_url":
        return build(AzureBlobSettings, section, connection_string=None)
    conn = section.connection_string
    name = section.connection_string_env
    if name is not None:
        conn = env.get(name)
        if not conn:
            problems.error(
                (*path, "connection_string_env"),
                f"environment variable {name} is not set or empty "
                "(it must hold the storage connection string)",
            )
        else:
            try:
                _connection_string(conn)
            except Invalid as exc:
                problems.error((*path, "connection_string_env"), f"{name}: {exc}")
    elif conn and "AccountKey=" in conn and _AZURITE_ACCOUNT not in conn:
        problems.warning(
            (*path, "connection_string"),
            "holds an account key in the file; prefer connection_string_env",
        )
    return build(AzureBlobSettings, section, connection_string=conn, account_url=None)
