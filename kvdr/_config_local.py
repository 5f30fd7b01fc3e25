"""The built-in configuration of the local two-region stack (`kvdr up`).

`kvdr/local.toml` holds the TOML with `${...}` placeholders for folders and ports, all
inside TOML strings so the template stays readable TOML. `render_local_toml()` fills
them in; `local_config()` returns the settings; `write_local_config()` writes the file
`kvdr up` runs the daemon with, plus the CA bundle that lets it trust both emulators.
"""

from __future__ import annotations

import os
import re
import secrets
import string
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from kvdr._config_load import KvdrConfig, parse_config

if TYPE_CHECKING:
    # Type-checking only (annotations are not evaluated): no runtime dependency.
    from typing_extensions import Unpack

LOCAL_SOURCE = "<built-in local configuration>"
LOCAL_REGIONS = ("eastus", "westus")
EVENTS_SECRET_FILE = "events.secret"
STATE_KEY_FILE = "state.key"
_CONNECTION_STRING_LINE = re.compile(r'^connection_string = ".*"$', re.MULTILINE)


def local_events_secret(state_dir: Path) -> str:
    """The local stack's events shared secret: `<state_dir>/events.secret`, made (0600)
    on first use. The emulators deliver with it and the daemon requires it."""
    return _local_secret(Path(state_dir) / EVENTS_SECRET_FILE)


def local_state_key(state_dir: Path) -> str:
    """The local stack's state key (`<state_dir>/state.key`, 0600, made on first use):
    it seals the checkpoints and deletion guards in Azurite."""
    return _local_secret(Path(state_dir) / STATE_KEY_FILE)


def _local_secret(path: Path) -> str:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            out.write(secrets.token_urlsafe(32) + "\n")
    return path.read_text(encoding="utf-8").strip()


def _toml_string(value: str) -> str:
    """`value` escaped for the inside of a TOML basic string."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return "".join(c if c >= " " or c == "\t" else f"\\u{ord(c):04x}" for c in escaped)


def _check_port(name: str, port: object) -> None:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"{name} must be a port number between 1 and 65535, got {port!r}")


def render_local_toml(
    state_dir: Path,
    *,
    eastus_port: int = 8443,
    westus_port: int = 8444,
    blob_port: int = 10000,
    daemon_port: int = 8080,
    blob_secondary_port: int | None = None,
    eastus_state_dir: Path | None = None,
    ca_file: Path | None = None,
    connection_string: str | None = None,
) -> str:
    """The local configuration for these ports and folders.

    Defaults follow `kvdr up`'s layout: emulator state in `<state_dir>/vaults/<region>`,
    the CA bundle at `<state_dir>/vaults/ca-bundle.pem`, Azurite's development account on
    `blob_port`. `connection_string` replaces that Azurite connection string.
    `blob_secondary_port` is where the account's read replica answers (default
    `blob_port + 1`): `kvdr up` gives it a fault-proxy link of its own, so a drill can
    cut the primary storage endpoint and still read from the secondary.
    """
    ports = {
        "eastus_port": eastus_port,
        "westus_port": westus_port,
        "blob_port": blob_port,
        "blob_secondary_port": blob_secondary_port or blob_port + 1,
        "daemon_port": daemon_port,
    }
    for name, port in ports.items():
        _check_port(name, port)
    state_dir = Path(state_dir)
    folders = {
        "state_dir": state_dir,
        "eastus_state_dir": eastus_state_dir or state_dir / "vaults" / "eastus",
        "ca_file": ca_file or state_dir / "vaults" / "ca-bundle.pem",
    }
    template = resources.files("kvdr").joinpath("local.toml").read_text(encoding="utf-8")
    text = string.Template(template).substitute(
        {name: _toml_string(Path(folder).as_posix()) for name, folder in folders.items()},
        **{name: str(port) for name, port in ports.items()},
    )
    if connection_string is not None:
        line = f'connection_string = "{_toml_string(connection_string)}"'
        text = _CONNECTION_STRING_LINE.sub(lambda _: line, text, count=1)
    return text


class LocalPorts(TypedDict, total=False):
    """The ports of `render_local_toml`, passed on by the functions that call it."""

    eastus_port: int
    westus_port: int
    blob_port: int
    daemon_port: int
    blob_secondary_port: int | None


def local_config(
    state_dir: Path, *, env: Mapping[str, str] | None = None, **ports: Unpack[LocalPorts]
) -> KvdrConfig:
    """The local stack's configuration as settings; `env` overrides (none by default)."""
    text = render_local_toml(state_dir, **ports)
    local_events_secret(state_dir)
    local_state_key(state_dir)
    return parse_config(text, LOCAL_SOURCE, env if env is not None else {})


def write_local_config(
    path: Path,
    *,
    state_dir: Path | None = None,
    emulator_state_dirs: Mapping[str, str | Path] | None = None,
    blob_connection_string: str | None = None,
    env: Mapping[str, str] | None = None,
    **ports: Unpack[LocalPorts],
) -> KvdrConfig:
    """Write the local configuration to `path` (atomically) and return it, validated.

    `state_dir` defaults to the folder of `path`. The emulators' CA certificates
    (`<emulator state>/tls/ca.pem`, those that exist) are concatenated into the bundle
    the configuration trusts, since each emulator signs its TLS certificate with its own
    CA and the vault settings take one CA file for all vaults.
    """
    path = Path(path)
    state = Path(state_dir) if state_dir is not None else path.parent
    dirs = {region: Path(folder) for region, folder in (emulator_state_dirs or {}).items()}
    for region in LOCAL_REGIONS:
        dirs.setdefault(region, state / "vaults" / region)
    bundle = state / "vaults" / "ca-bundle.pem"
    text = render_local_toml(
        state,
        **ports,
        eastus_state_dir=dirs["eastus"],
        ca_file=bundle,
        connection_string=blob_connection_string,
    )
    local_events_secret(state)
    local_state_key(state)
    # Validate before anything is written: a broken file must not replace a good one.
    config = parse_config(text, path, env if env is not None else {})
    pems = [
        (folder / "tls" / "ca.pem").read_text(encoding="ascii")
        for folder in dirs.values()
        if (folder / "tls" / "ca.pem").is_file()
    ]
    if pems:
        _write_atomically(bundle, "".join(p if p.endswith("\n") else p + "\n" for p in pems))
    _write_atomically(path, text)
    return config


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
