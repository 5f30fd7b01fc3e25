"""`[daemon]`: the listen address, identity, logging, and who may use the HTTP surface.

The HTTP surface's secrets (the events shared secret, the status bearer token) come
from an environment variable or a file, never from the configuration file itself: a
literal value is refused without being echoed. A listener beyond loopback must have
both, or anyone who reaches the port could post events or read item names
(docs/security.md).
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kvdr._config_fields import Invalid, Problems, Table, choice, text, text_list
from kvdr._config_schema import LOG_FORMATS, LOG_LEVELS
from kvdr._config_secrets import secret_refusal, secret_value
from kvdr.entra_token import EntraDelivery, load_keys

# A guessable secret protects nothing: at least this many characters.
_ENTRA_KEYS = ("events_entra_audience", "events_entra_issuers", "events_entra_keys_file")


@dataclass(frozen=True)
class DaemonSettings:
    """The daemon process: HTTP listen address, identity, local state and logging, and
    what the HTTP surface asks of a caller."""

    listen_host: str = "127.0.0.1"
    listen_port: int = 8080
    # Names this process in pair leases and logs; unique per running daemon.
    instance_id: str = ""
    state_dir: Path = Path(".kvdr")
    log_format: str = "auto"
    log_level: str = "info"
    # Host names (besides loopback names and IP literals) that /status, /metrics and
    # the dashboard answer to: a DNS-rebinding page arrives with its own name.
    allowed_hosts: tuple[str, ...] = ()
    # Bearer token of /status and /metrics (required beyond loopback).
    status_token: str | None = field(default=None, repr=False)
    # Shared secret of /events (query parameter `secret` or header X-Kvdr-Events-Secret).
    events_secret: str | None = field(default=None, repr=False)
    # Event Grid's Entra ID authenticated delivery, as an alternative to the secret.
    events_entra: EntraDelivery | None = None

    def __post_init__(self) -> None:
        if not self.instance_id:
            object.__setattr__(self, "instance_id", default_instance_id())

    @property
    def loopback_only(self) -> bool:
        """True when the listener is reachable from this host only."""
        return is_loopback(self.listen_host)


def default_instance_id() -> str:
    """`<hostname>-<pid>`: distinct for every daemon process, readable in lease blobs."""
    return f"{socket.gethostname()}-{os.getpid()}"


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and `localhost`."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_INSTANCE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_HOST_NAME = re.compile(r"(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,62})(?:\.[a-z0-9-]{1,63})*\.?")


def _listen(value: object) -> tuple[str, int]:
    address = text(value)
    host, sep, port_text = address.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not (port_text.isascii() and port_text.isdigit()):
        raise Invalid(f'expected "HOST:PORT" such as "127.0.0.1:8080", got {address!r}')
    port = int(port_text)
    if port > 65535:
        raise Invalid(f"port {port} is out of range (0-65535)")
    return host, port


def _instance_id(value: object) -> str:
    name = text(value)
    if not _INSTANCE_ID.fullmatch(name):
        raise Invalid(
            f"{name!r} is not a valid instance id: use 1-128 letters, digits, '.', '_' or '-'"
        )
    return name


def _host_names(value: object) -> tuple[str, ...]:
    names = text_list(value)
    for index, name in enumerate(names):
        if not _HOST_NAME.fullmatch(name.lower()):
            raise Invalid(
                f"{name!r} is not a host name (a DNS name without scheme or port)", at=index
            )
    return tuple(name.lower().rstrip(".") for name in names)


def _entra(table: Table, problems: Problems) -> EntraDelivery | None:
    present = [key for key in _ENTRA_KEYS if key in table]
    if not present:
        return None
    for key in _ENTRA_KEYS:
        if key not in table:
            problems.error(
                table.at(key), f"missing: Entra ID delivery needs {', '.join(_ENTRA_KEYS)}"
            )
    audience = table.get("events_entra_audience", text)
    issuers = table.get("events_entra_issuers", text_list)
    keys_file = table.get("events_entra_keys_file", text)
    if keys_file is not None:
        try:
            load_keys(Path(keys_file))
        except ValueError as exc:
            problems.error(table.at("events_entra_keys_file"), str(exc))
            return None
    if audience is None or not issuers or keys_file is None:
        return None
    return EntraDelivery(audience=audience, issuers=issuers, keys_file=Path(keys_file))


def read_daemon(raw: object, env: Mapping[str, str], problems: Problems) -> DaemonSettings:
    table = Table(
        raw,
        ("daemon",),
        problems,
        (
            "listen",
            "instance_id",
            "state_dir",
            "log_format",
            "log_level",
            "allowed_hosts",
            "status_token_env",
            "status_token_file",
            "events_secret_env",
            "events_secret_file",
            *_ENTRA_KEYS,
        ),
        refused={key: secret_refusal(key) for key in ("status_token", "events_secret")},
    )
    host, port = table.get("listen", _listen) or ("127.0.0.1", 8080)
    state_dir = table.get("state_dir", text)
    settings = DaemonSettings(
        listen_host=host,
        listen_port=port,
        instance_id=table.get("instance_id", _instance_id) or "",
        state_dir=Path(state_dir) if state_dir else Path(".kvdr"),
        log_format=table.get("log_format", choice(LOG_FORMATS, fold_case=True)) or "auto",
        log_level=table.get("log_level", choice(LOG_LEVELS, fold_case=True)) or "info",
        allowed_hosts=table.get("allowed_hosts", _host_names) or (),
        status_token=secret_value(table, "status_token", env, problems),
        events_secret=secret_value(table, "events_secret", env, problems),
        events_entra=_entra(table, problems),
    )
    _check_exposure(table, settings, problems)
    return settings


def _check_exposure(table: Table, settings: DaemonSettings, problems: Problems) -> None:
    """A listener beyond loopback needs the events secret (or Entra ID) and the token."""
    if settings.loopback_only or problems.errors_under(table.path):
        return
    where = table.at("listen")
    shown = settings.listen_host
    if settings.events_secret is None and settings.events_entra is None:
        problems.error(
            where,
            f"listens beyond loopback ({shown}) but /events has no shared secret: set "
            "events_secret_env or events_secret_file (or events_entra_*), or anyone who "
            "reaches the port can post events",
        )
    if settings.status_token is None:
        problems.error(
            where,
            f"listens beyond loopback ({shown}) but /status and /metrics have no bearer "
            "token: set status_token_env or status_token_file",
        )
