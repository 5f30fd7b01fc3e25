"""The `kvdr` command line: one click group, one module per subcommand.

Subcommands are imported only when invoked, so `kvdr --help` and `kvdr emulator` start
fast and a broken optional part cannot take the whole command line down.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from kvdr import __version__

# name -> "module:attribute" of the click command implementing it.
SUBCOMMANDS: dict[str, str] = {
    "emulator": "kvdr.commands.emulator:command",
    "chaos-proxy": "kvdr.commands.chaos_proxy:command",
    "config": "kvdr.commands.config:command",
    "run": "kvdr.commands.run:command",
    "status": "kvdr.commands.status:command",
    "sync": "kvdr.commands.sync:command",
    "up": "kvdr.commands.up:command",
    "down": "kvdr.commands.down:command",
    "snapshot": "kvdr.commands.snapshot:command",
    "restore": "kvdr.commands.restore:command",
    "failover": "kvdr.commands.failover:command",
    "drill": "kvdr.commands.drill:command",
    "verify": "kvdr.commands.verify:command",
    "audit": "kvdr.commands.audit:command",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, _, attribute = target.partition(":")
        command: Any = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{target} is not a click command")
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kvdr")
def cli() -> None:
    """kvdr keeps Azure Key Vault contents safe across regions."""


def main() -> None:
    """Console-script entry point.

    An unreachable or refusing vault or storage account that a command did not handle
    itself ends it with one line naming what failed and exit 1, not a traceback.
    """
    try:
        cli(prog_name="kvdr")
    except Exception as exc:
        # Imported here: `kvdr --help` and `kvdr emulator` stay free of the SDK imports.
        from storage.errors import StorageError
        from vault.errors import VaultError

        if not isinstance(exc, StorageError | VaultError):
            raise
        click.echo(f"kvdr: {exc}", err=True)
        sys.exit(1)
