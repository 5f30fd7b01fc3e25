"""`kvdr run --config FILE`: the daemon."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import click

from kvdr.commands._shared import config_option, load_config_or_exit

if TYPE_CHECKING:
    from kvdr.config import KvdrConfig


async def run_until_signalled(config: KvdrConfig) -> None:
    """Run the daemon; SIGTERM and SIGINT start the clean stop."""
    from kvdr.daemon import Daemon

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await Daemon(config).run(stop)


@click.command("run")
@config_option(required=True)
def command(config_path: Path) -> None:
    """Run the replication daemon until SIGTERM or Ctrl-C."""
    from kvdr.log_setup import configure_logging

    config = load_config_or_exit(config_path)
    configure_logging(config.daemon.log_format, config.daemon.log_level)
    asyncio.run(run_until_signalled(config))
