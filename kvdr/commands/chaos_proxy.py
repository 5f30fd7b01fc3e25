"""`kvdr chaos-proxy [--host H] [--port 8474]`: the Toxiproxy-compatible fault proxy."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

import click

# Exit codes of the command line (DESIGN: 0 success, 1 operation failed).
_EXIT_OK = 0
_EXIT_FAILED = 1


def _configure_logging(level: str) -> None:
    """Human-readable logs on stderr; stdout stays free for callers."""
    import structlog

    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )


async def serve(host: str, port: int) -> None:
    """Run the fault proxy until SIGTERM or SIGINT."""
    from chaos import FaultProxy

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with FaultProxy(host, port) as server:
        # A stable line for scripts and test fixtures that start us with --port 0.
        click.echo(f"kvdr chaos-proxy: Toxiproxy API on {server.url}", err=True)
        await stop.wait()


@click.command("chaos-proxy")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address of the HTTP API.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8474,
    show_default=True,
    help="Port of the HTTP API (0 picks a free one).",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
def command(host: str, port: int, log_level: str) -> None:
    """Serve Toxiproxy's HTTP API and the TCP proxies it creates, until SIGTERM or Ctrl-C."""
    from chaos import ListenError

    _configure_logging(log_level)
    try:
        asyncio.run(serve(host, port))
    except ListenError as exc:
        click.echo(f"kvdr: chaos-proxy {exc}", err=True)
        sys.exit(_EXIT_FAILED)
    sys.exit(_EXIT_OK)
