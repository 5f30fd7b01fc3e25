"""Pieces every subcommand shares: the --config option, --json output, exit codes."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

if TYPE_CHECKING:
    from kvdr.config import KvdrConfig

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

# Written by `kvdr up`: lets `kvdr status` and friends find the local stack.
LOCAL_CONFIG = Path(".kvdr") / "kvdr.toml"

F = TypeVar("F", bound=Callable[..., Any])


def config_option(required: bool = False) -> Callable[[F], F]:
    help_text = "Configuration file (env KVDR_CONFIG)."
    if not required:
        help_text += f" Default: {LOCAL_CONFIG} when `kvdr up` wrote it."
    return click.option(
        "--config",
        "config_path",
        type=click.Path(path_type=Path, dir_okay=False),
        envvar="KVDR_CONFIG",
        required=required,
        help=help_text,
    )


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    click.echo(f"kvdr: {message}", err=True)
    sys.exit(code)


def load_config_or_exit(path: Path | None) -> KvdrConfig:
    """Load and validate the configuration; every problem printed, exit 2 on any."""
    from kvdr.config import ConfigError, load_config

    if path is None:
        if not LOCAL_CONFIG.exists():
            fail(
                f"no configuration: pass --config FILE (or run `kvdr up`, which writes "
                f"{LOCAL_CONFIG})",
                EXIT_USAGE,
            )
        path = LOCAL_CONFIG
    if not path.exists():
        fail(f"configuration file {path} does not exist", EXIT_USAGE)
    try:
        return load_config(path)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_USAGE)


def emit_json(doc: Any) -> None:
    """One JSON document on stdout and nothing else there."""
    click.echo(json.dumps(doc, indent=2, default=str))
