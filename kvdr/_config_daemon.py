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
from typing import Annotated

from kvdr._config_fields import Invalid, Problems, choice, text, text_list
from kvdr._config_lines import KeyPath
from kvdr._config_model import Check, EnvName, Section, Text, build, read_section, setting
from kvdr._config_secrets import read_secret, secret_refusal
from kvdr.entra_token import EntraDelivery, load_keys

LOG_FORMATS = ("auto", "json", "console")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
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


Hosts = Annotated[tuple[str, ...], Check(_host_names, "array of strings")]
_ENTRA_MISSING = "missing: Entra ID delivery needs " + ", ".join(_ENTRA_KEYS)


class DaemonSection(Section):
    section = "daemon"
    refused = {key: secret_refusal(key) for key in ("status_token", "events_secret")}
    joined = {
        "events_secret_env": (" / ", "events_secret_file"),
        "events_entra_audience": (", ", "events_entra_issuers", "events_entra_keys_file"),
        "status_token_env": (" / ", "status_token_file"),
    }

    listen: Annotated[tuple[str, int], Check(_listen, "HOST:PORT")] = setting(
        ("127.0.0.1", 8080),
        "HTTP address (`HOST:PORT`, `[::1]:PORT` for IPv6) of `/healthz`, `/readyz`, "
        "`/metrics`, `/status`, `/events` and the dashboard",
        shown='`"127.0.0.1:8080"`',
    )
    instance_id: Annotated[str, Check(_instance_id, "string")] = setting(
        "",
        "names this daemon in pair leases and logs; 1-128 letters, digits, `.`, `_`, `-`",
        shown="`<hostname>-<pid>`",
    )
    state_dir: Text = setting(".kvdr", "local state of this daemon")
    log_format: Annotated[str, Check(choice(LOG_FORMATS, fold_case=True), "string")] = setting(
        "auto",
        '`"json"` (one JSON object per line on stderr), `"console"`, or `"auto"`: console on '
        "a terminal, JSON otherwise",
    )
    log_level: Annotated[str, Check(choice(LOG_LEVELS, fold_case=True), "string")] = setting(
        "info",
        "`debug`, `info`, `warning`, `error`, `critical` (kvdr's own events; the Azure SDK "
        "logs only warnings and above)",
    )
    events_secret_env: EnvName | None = setting(
        None,
        "the shared secret `/events` requires (at least 16 characters), from this "
        "environment variable or this file (first line; the file should be mode 0600, other "
        "users' access is a warning). Event Grid sends it as the query parameter `secret` of "
        "the webhook URL or as the header `X-Kvdr-Events-Secret` (a delivery attribute "
        "marked secret). `events_secret` itself is refused",
    )
    events_secret_file: Text | None = None
    events_entra_audience: Text | None = setting(
        None,
        "Event Grid's Entra ID authenticated delivery instead of (or besides) the secret: the "
        "application ID URI the tokens are for, the accepted issuers "
        '(`["https://login.microsoftonline.com/<tenant>/v2.0"]`, and '
        "`https://sts.windows.net/<tenant>/` for v1 tokens), and a JWKS file with the "
        "tenant's signing keys (from its `jwks_uri`; read again when it changes). All three "
        "or none",
    )
    events_entra_issuers: Annotated[tuple[str, ...], Check(text_list, "array")] | None = None
    events_entra_keys_file: Text | None = None
    status_token_env: EnvName | None = setting(
        None,
        "the bearer token `/status` and `/metrics` require (`Authorization: Bearer ...`), at "
        "least 16 characters; `kvdr status` sends it; `status_token` itself is refused",
    )
    status_token_file: Text | None = None
    allowed_hosts: Hosts = setting(
        (),
        "host names (no scheme, no port) that `/status`, `/metrics` and the dashboard answer "
        "to, besides `localhost`, `127.0.0.1`, `::1` and any IP address",
    )


def _entra(section: DaemonSection, problems: Problems) -> EntraDelivery | None:
    written = section.model_fields_set
    if not written & set(_ENTRA_KEYS):
        return None
    for key in _ENTRA_KEYS:
        if key not in written:
            problems.error(("daemon", key), _ENTRA_MISSING)
    keys_file = section.events_entra_keys_file
    if keys_file is not None:
        try:
            load_keys(Path(keys_file))
        except ValueError as exc:
            problems.error(("daemon", "events_entra_keys_file"), str(exc))
            return None
    if section.events_entra_audience is None or not section.events_entra_issuers or not keys_file:
        return None
    return EntraDelivery(
        section.events_entra_audience, section.events_entra_issuers, Path(keys_file)
    )


def read_daemon(raw: object, env: Mapping[str, str], problems: Problems) -> DaemonSettings:
    path: KeyPath = ("daemon",)
    section = read_section(DaemonSection, raw, path, problems)
    if section is None:
        return DaemonSettings()
    status_token = read_secret("status_token", section, path, env, problems)
    events_secret = read_secret("events_secret", section, path, env, problems)
    host, port = section.listen
    settings = build(
        DaemonSettings,
        section,
        listen_host=host,
        listen_port=port,
        state_dir=Path(section.state_dir),
        status_token=status_token,
        events_secret=events_secret,
        events_entra=_entra(section, problems),
    )
    _check_exposure(settings, problems)
    return settings


def _check_exposure(settings: DaemonSettings, problems: Problems) -> None:
    """A listener beyond loopback needs the events secret (or Entra ID) and the token."""
    if settings.loopback_only or problems.errors_under(("daemon",)):
        return
    where = ("daemon", "listen")
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
