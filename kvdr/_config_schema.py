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
from typing import TypeVar
from urllib.parse import urlsplit

from kvdr._config_fields import (
    Invalid,
    Problems,
    Table,
    boolean,
    choice,
    duration,
    env_name,
    fraction,
    integer,
    suggest,
    text,
    type_name,
)
from kvdr._config_lines import KeyPath
from kvdr._config_secrets import secret_refusal, secret_value
from replicator.plan_keys import SKUS
from replicator.settings import ReplicatorSettings
from storage.lease import MAX_LEASE_SECONDS, MIN_LEASE_SECONDS
from storage.settings import AzureBlobSettings, LocalFolderSettings
from vault.models import VaultRef
from vault.settings import CREDENTIAL_KINDS, CredentialSettings, VaultSettings

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
    "failover",
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
_STORAGE_KEYS = ("container", *_STORAGE_SOURCES, "secondary_account_url", *_STORAGE_TUNING)
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


def read_storage(
    raw: object, env: Mapping[str, str], problems: Problems
) -> AzureBlobSettings | LocalFolderSettings | None:
    path: KeyPath = ("storage",)
    if raw is None:
        problems.error(path, "missing [storage]: where kvdr keeps checkpoints and journals")
        return None
    table = Table(raw, path, problems, _STORAGE_KEYS)
    sources = [key for key in _STORAGE_SOURCES if key in table]
    if not sources and isinstance(raw, dict):
        problems.error(
            path, "set one of connection_string_env, connection_string, account_url or path"
        )
        return None
    for extra in sources[1:]:
        problems.error(
            (*path, extra),
            f"conflicts with {sources[0]}: set only one of connection_string_env, "
            "connection_string, account_url or path",
        )
    if not sources:
        return None
    source = sources[0]
    if source == "path":
        for key in ("container", "secondary_account_url", *_STORAGE_TUNING):
            if key in table:
                problems.warning((*path, key), "not used with a local folder (path)")
        folder = table.get("path", text)
        return LocalFolderSettings(path=folder) if folder else None
    base = AzureBlobSettings()
    common = AzureBlobSettings(
        container=table.get("container", _container) or base.container,
        secondary_account_url=table.get("secondary_account_url", _account_url),
        retries=_pick(table.get("retries", integer(0, 20)), base.retries),
        connect_timeout_seconds=_pick(
            table.get("connect_timeout", duration()), base.connect_timeout_seconds
        ),
        primary_retry_seconds=_pick(
            table.get("primary_retry", duration()), base.primary_retry_seconds
        ),
    )
    if source == "account_url":
        return replace(common, account_url=table.get("account_url", _account_url))
    if source == "connection_string_env":
        name = table.get("connection_string_env", env_name)
        conn = env.get(name) if name else None
        if name and not conn:
            problems.error(
                (*path, "connection_string_env"),
                f"environment variable {name} is not set or empty "
                "(it must hold the storage connection string)",
            )
        elif conn:
            try:
                _connection_string(conn)
            except Invalid as exc:
                problems.error((*path, "connection_string_env"), f"{name}: {exc}")
    else:
        conn = table.get("connection_string", _connection_string)
        if conn and "AccountKey=" in conn and _AZURITE_ACCOUNT not in conn:
            problems.warning(
                (*path, "connection_string"),
                "holds an account key in the file; prefer connection_string_env",
            )
    return replace(common, connection_string=conn)


# -- [replication] and [vault] --------------------------------------------------------


def _lease_duration(value: object) -> int:
    seconds = duration()(value)
    # Azure Blob leases last 15-60 whole seconds (infinite ones would outlive a crash).
    if not seconds.is_integer() or not MIN_LEASE_SECONDS <= seconds <= MAX_LEASE_SECONDS:
        raise Invalid(
            f"must be whole seconds from {MIN_LEASE_SECONDS}s to {MAX_LEASE_SECONDS}s "
            f"(Azure's lease limits), got {value!r}"
        )
    return int(seconds)


def read_replication(
    raw: object, problems: Problems, env: Mapping[str, str] | None = None
) -> tuple[ReplicatorSettings, float]:
    """Replicator timing and limits, the state key, and the default RPO objective of
    every pair."""
    table = Table(
        raw,
        ("replication",),
        problems,
        (
            "poll_interval",
            "reconcile_interval",
            "deep_reconcile_interval",
            "max_concurrent_items",
            "drain_timeout",
            "rpo_objective",
            "deletion_sweep_interval",
            "deletion_guard_min_items",
            "deletion_guard_fraction",
            "expiry_horizon",
            "lease_duration",
            "event_queue_limit",
            "event_read_share",
            "state_key_env",
            "state_key_file",
        ),
        refused={"state_key": secret_refusal("state_key")},
    )
    base = ReplicatorSettings()
    poll = table.get("poll_interval", duration())
    reconcile = table.get("reconcile_interval", duration())
    settings = ReplicatorSettings(
        poll_interval_seconds=_pick(poll, base.poll_interval_seconds),
        reconcile_interval_seconds=_pick(reconcile, base.reconcile_interval_seconds),
        deep_reconcile_interval_seconds=_pick(
            table.get("deep_reconcile_interval", duration()),
            base.deep_reconcile_interval_seconds,
        ),
        max_concurrent_items=_pick(
            table.get("max_concurrent_items", integer(1, 1024)), base.max_concurrent_items
        ),
        drain_seconds=_pick(
            table.get("drain_timeout", duration(positive=False)), base.drain_seconds
        ),
        deletion_sweep_interval_seconds=_pick(
            table.get("deletion_sweep_interval", duration()),
            base.deletion_sweep_interval_seconds,
        ),
        deletion_guard_min_items=_pick(
            table.get("deletion_guard_min_items", integer(0)), base.deletion_guard_min_items
        ),
        deletion_guard_fraction=_pick(
            table.get("deletion_guard_fraction", fraction), base.deletion_guard_fraction
        ),
        expiry_horizon_seconds=_pick(
            table.get("expiry_horizon", duration()), base.expiry_horizon_seconds
        ),
        lease_duration_seconds=_pick(
            table.get("lease_duration", _lease_duration), base.lease_duration_seconds
        ),
        event_queue_limit=_pick(
            table.get("event_queue_limit", integer(1, 1_000_000)), base.event_queue_limit
        ),
        event_read_share=_pick(table.get("event_read_share", fraction), base.event_read_share),
        state_key=secret_value(table, "state_key", env or {}, problems),
    )

    if settings.reconcile_interval_seconds < settings.poll_interval_seconds:
        problems.warning(
            ("replication", "reconcile_interval"),
            "shorter than poll_interval: every reconciliation pass lists all items, "
            "so it should run less often than the cheap poll",
        )
    rpo = _pick(table.get("rpo_objective", duration()), 60.0)
    return settings, rpo


_VAULT_KEYS = (
    "max_concurrency",
    "secret_creates_per_10s",
    "other_ops_per_10s",
    "max_attempts",
    "request_timeout",
    "verify_challenge_resource",
    "backoff_base",
    "backoff_max",
    "ca_file",
)


def read_vault(raw: object, problems: Problems) -> VaultSettings:
    table = Table(raw, ("vault",), problems, _VAULT_KEYS)
    base = VaultSettings()
    settings = VaultSettings(
        max_concurrency=_pick(table.get("max_concurrency", integer(1, 1024)), base.max_concurrency),
        # Key Vault's published limits per vault per region per 10 s: secret create 300,
        # all other transactions 4,000. Above them every extra request only earns a 429.
        secret_creates_per_10s=_pick(
            table.get("secret_creates_per_10s", integer(1, 300)), base.secret_creates_per_10s
        ),
        other_ops_per_10s=_pick(
            table.get("other_ops_per_10s", integer(1, 4000)), base.other_ops_per_10s
        ),
        max_attempts=_pick(table.get("max_attempts", integer(1, 100)), base.max_attempts),
        request_timeout_seconds=_pick(
            table.get("request_timeout", duration()), base.request_timeout_seconds
        ),
        backoff_base_seconds=_pick(
            table.get("backoff_base", duration()), base.backoff_base_seconds
        ),
        backoff_max_seconds=_pick(table.get("backoff_max", duration()), base.backoff_max_seconds),
        ca_file=table.get("ca_file", text),
        verify_challenge_resource=_pick(
            table.get("verify_challenge_resource", boolean), base.verify_challenge_resource
        ),
    )
    if settings.backoff_max_seconds < settings.backoff_base_seconds:
        problems.error(("vault", "backoff_max"), "must not be shorter than backoff_base")
    return settings


def _pick(value: T | None, default: T) -> T:
    return default if value is None else value
