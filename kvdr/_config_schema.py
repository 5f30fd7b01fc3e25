"""The sections of kvdr's TOML file, each read into the settings of the part it configures.

Every reader records all of its problems and returns its best result; the caller builds a
`KvdrConfig` only when no error was recorded. Messages never contain a secret: a literal
`client_secret` is refused without echoing it, connection strings are never quoted.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Annotated, TypeVar
from urllib.parse import urlsplit

from kvdr._config_fields import (
    Invalid,
    Problems,
    Table,
    choice,
    duration,
    env_name,
    integer,
    suggest,
    text,
    type_name,
)
from kvdr._config_lines import KeyPath
from kvdr._config_model import Check, Section, read_section, setting
from replicator.plan_keys import SKUS
from storage.settings import AzureBlobSettings, LocalFolderSettings
from vault.models import VaultRef
from vault.settings import CREDENTIAL_KINDS, CredentialSettings

T = TypeVar("T")

SECTIONS = (
    "daemon",
    "credential",
    "regions",
    "storage",
    "replication",
    "vault",
    "pairs",
    "backups",
)
LOG_FORMATS = ("auto", "json", "console")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


def check_top_level(doc: Mapping[str, object], problems: Problems) -> None:
    """Unknown sections are errors, with a suggestion for likely typos."""
    for key in doc:
        if key not in SECTIONS:
            problems.error((key,), f"unknown section {key!r}{suggest(key, SECTIONS)}")


# -- [credential] ----------------------------------------------------------------------

_CREDENTIAL_KEYS = (
    "kind",
    "client_id",
    "tenant_id",
    "client_secret_env",
    "certificate_path",
    "emulator_state_dir",
    "ca_file",
)
# Keys each credential kind needs; a kind's other keys (besides ca_file) are unused.
_REQUIRED_BY_KIND: dict[str, tuple[str, ...]] = {
    "default": (),
    "managed-identity": (),
    "cli": (),
    "client-secret": ("client_id", "tenant_id", "client_secret_env"),
    "client-certificate": ("client_id", "tenant_id", "certificate_path"),
    "emulator": ("emulator_state_dir",),
}
_OPTIONAL_BY_KIND: dict[str, tuple[str, ...]] = {
    # DefaultAzureCredential takes a user-assigned identity's client id and a tenant.
    "default": ("client_id", "tenant_id"),
    "managed-identity": ("client_id",),
    "cli": ("tenant_id",),
    "client-secret": (),
    "client-certificate": (),
    # The emulator's token endpoint issues tokens for a chosen principal (client id).
    "emulator": ("client_id",),
}
LITERAL_SECRET_REFUSED = (
    "a literal client_secret is not accepted in the configuration file: put the secret "
    "in an environment variable and name that variable with client_secret_env"
)


def read_credential(raw: object, env: Mapping[str, str], problems: Problems) -> CredentialSettings:
    path: KeyPath = ("credential",)
    table = Table(
        raw, path, problems, _CREDENTIAL_KEYS, refused={"client_secret": LITERAL_SECRET_REFUSED}
    )
    chosen = table.get("kind", choice(CREDENTIAL_KINDS))
    values = {
        key: table.get(key, env_name if key == "client_secret_env" else text)
        for key in _CREDENTIAL_KEYS
        if key != "kind"
    }
    if "kind" in table and chosen is None:
        # An unknown kind: which keys it needs is unknown too.
        return CredentialSettings()
    kind = chosen or "default"
    for key in _REQUIRED_BY_KIND[kind]:
        if key not in table:
            problems.error((*path, key), f"missing required key {key!r} for kind {kind!r}")
    allowed = {"kind", "ca_file", *_REQUIRED_BY_KIND[kind], *_OPTIONAL_BY_KIND[kind]}
    for key in table.raw:
        if key in _CREDENTIAL_KEYS and key not in allowed:
            problems.warning((*path, key), f"not used by credential kind {kind!r}")
    secret: str | None = None
    secret_env = values.get("client_secret_env")
    if kind == "client-secret" and secret_env:
        secret = env.get(secret_env)
        if not secret:
            problems.error(
                (*path, "client_secret_env"),
                f"environment variable {secret_env} is not set or empty "
                "(it must hold the client secret)",
            )
    certificate = values.get("certificate_path")
    if kind == "client-certificate" and certificate and not Path(certificate).is_file():
        problems.error((*path, "certificate_path"), f"file not found: {certificate}")
    return CredentialSettings(
        kind=kind,
        client_id=values.get("client_id"),
        tenant_id=values.get("tenant_id"),
        client_secret=secret,
        certificate_path=certificate,
        emulator_state_dir=values.get("emulator_state_dir"),
        ca_file=values.get("ca_file"),
    )


# -- [regions.<name>] ----------------------------------------------------------------

_REGION_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


def _shown_url(url: str) -> str:
    """A URL fit for a message: scheme, host, port and path only. A pasted URL may carry
    a SAS token in its query or a password in its user part."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    hidden = " (query hidden)" if parts.query or parts.fragment else ""
    return f"'{parts.scheme}://{host}{port}{parts.path}'{hidden}"


def _vault_url(value: object) -> str:
    url = text(value)
    parts = urlsplit(url)
    shown = _shown_url(url)
    if parts.scheme != "https":
        raise Invalid(f"{shown} must be an https:// URL (Key Vault is only served over TLS)")
    try:
        parts.port  # noqa: B018 - parsing the port is the validation
    except ValueError:
        raise Invalid(f"{shown} has an invalid port") from None
    if not parts.hostname or parts.username or parts.password:
        raise Invalid(f"{shown} must be https://HOST[:PORT] without a user name")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise Invalid(f"{shown} must be the vault's base URL, without a path or query")
    return url.rstrip("/")


def read_regions(raw: object, problems: Problems) -> dict[str, VaultRef]:
    """The regions that are valid, by name. Names of invalid ones are `declared_regions`."""
    path: KeyPath = ("regions",)
    if raw is None:
        problems.error(path, "no regions: add a [regions.<name>] table with a vault_url")
        return {}
    if not isinstance(raw, dict):
        problems.error(path, f"expected a table of regions, got {type_name(raw)}")
        return {}
    if not raw:
        problems.error(path, "no regions: add a [regions.<name>] table with a vault_url")
    regions: dict[str, VaultRef] = {}
    seen_urls: dict[str, str] = {}
    for name, body in raw.items():
        where = (*path, name)
        if not _REGION_NAME.fullmatch(name):
            problems.error(
                where,
                f"region name {name!r} must be 1-63 lowercase letters, digits, '-' or '_'",
            )
        table = Table(body, where, problems, ("vault_url", "sku"))
        url = table.require("vault_url", _vault_url, "the vault's https:// URL")
        # Key Vault does not tell a client its tier; it decides which key types a mirror
        # can restore into the vault (HSM keys need premium), checked at start.
        sku = table.get("sku", choice(SKUS, fold_case=True))
        if url is None:
            continue
        same = seen_urls.get(url.lower())
        if same is not None:
            problems.error((*where, "vault_url"), f"the same vault as region {same!r}")
            continue
        seen_urls[url.lower()] = name
        regions[name] = VaultRef(region=name, url=url, sku=sku or "standard")
    return regions


def declared_regions(raw: object) -> set[str]:
    """Every region name the document declares, valid or not (so a pair that names a
    region with a broken vault_url is not told the region is unknown)."""
    return set(raw) if isinstance(raw, dict) else set()


# -- [storage] ------------------------------------------------------------------------

_STORAGE_SOURCES = ("connection_string_env", "connection_string", "account_url", "path")
# How long a read waits on an unreachable primary endpoint before using the secondary.
_STORAGE_TUNING = ("retries", "connect_timeout", "primary_retry")
# Azure: 3-63 characters, lowercase letters, digits and single hyphens, alphanumeric ends.
_CONTAINER = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")
# Azurite's published development account: its key is public, not a secret.
_AZURITE_ACCOUNT = "AccountName=devstoreaccount1"


def _container(value: object) -> str:
    name = text(value)
    if not _CONTAINER.fullmatch(name):
        raise Invalid(
            f"{name!r} is not a valid container name: 3-63 lowercase letters, digits and "
            "single hyphens, starting and ending with a letter or digit"
        )
    return name


def _account_url(value: object) -> str:
    url = text(value)
    parts = urlsplit(url)
    shown = _shown_url(url)
    loopback = False
    if parts.hostname:
        try:
            loopback = ipaddress.ip_address(parts.hostname).is_loopback
        except ValueError:
            loopback = parts.hostname == "localhost"
    # Plain http only for a local Azurite: account keys and tokens must not cross a network
    # unencrypted.
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
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
        alias="connect_timeout",
    )
    # How long reads go to the secondary endpoint after a fallback.
    primary_retry_seconds: Annotated[float, Check(duration(), "duration")] = setting(
        AzureBlobSettings.primary_retry_seconds,
        "after a read fell back to the secondary endpoint, how long reads go straight there "
        "before the primary is tried again",
        alias="primary_retry",
    )


def read_storage(
    raw: object, env: Mapping[str, str], problems: Problems
) -> AzureBlobSettings | LocalFolderSettings | None:
    path: KeyPath = ("storage",)
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
    common = AzureBlobSettings(
        **section.model_dump(
            include={
                "container",
                "secondary_account_url",
                "retries",
                "connect_timeout_seconds",
                "primary_retry_seconds",
            }
        )
    )
    if source == "account_url":
        return replace(common, account_url=section.account_url)
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
    return replace(common, connection_string=conn)


def _pick(value: T | None, default: T) -> T:
    return default if value is None else value
