"""`kvdr emulator`: run one local Key Vault (one region) over HTTPS."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import structlog

from emulator.settings import REMOTE_WARNING, EmulatorSettings, SettingsError, is_loopback


def _configure_logs() -> None:
    # Logs go to stderr as one line each, so stdout stays free and the startup line
    # `kvdr emulator listening on ...` is easy to find.
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


@click.command("emulator")
@click.option("--port", type=int, required=True, help="TCP port (0 = any free port).")
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="Folder for the vault's data, TLS files and endpoint.json.",
)
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback only)."
)
@click.option(
    "--allow-remote",
    is_flag=True,
    help="Allow a --host beyond loopback: anyone who can reach it can read every secret.",
)
@click.option("--region", default="eastus", show_default=True, help="Region name.")
@click.option(
    "--geo", default="us", show_default=True, help="Geography; backups restore only within it."
)
@click.option(
    "--sku",
    type=click.Choice(["standard", "premium", "managed-hsm"]),
    default="standard",
    show_default=True,
    help="Which key types are allowed (HSM keys need premium or managed-hsm).",
)
@click.option(
    "--throttle",
    type=click.Choice(["off", "azure"]),
    default="off",
    show_default=True,
    help="`azure` enforces Key Vault's per-10-s limits with 429 Throttled.",
)
@click.option(
    "--latency",
    "latency_ms",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Delay every vault response by this many milliseconds.",
)
@click.option(
    "--events-to",
    multiple=True,
    metavar="URL",
    help="Event Grid subscriber URL (repeatable).",
)
@click.option(
    "--retention-days",
    type=click.IntRange(7, 90),
    default=90,
    show_default=True,
    help="Soft-delete retention, 7-90 days.",
)
@click.option("--purge-protection", is_flag=True, help="Refuse purges, as Azure's setting does.")
@click.option(
    "--rbac",
    "rbac_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    metavar="FILE",
    help="RBAC mode: enforce the role assignments in FILE (JSON) with signed tokens.",
)
def command(
    port: int,
    state_dir: Path,
    host: str,
    allow_remote: bool,
    region: str,
    geo: str,
    sku: str,
    throttle: str,
    latency_ms: int,
    events_to: tuple[str, ...],
    retention_days: int,
    purge_protection: bool,
    rbac_file: Path | None,
) -> None:
    """Run a local Key Vault that the official Azure SDKs accept (HTTPS, own CA)."""
    try:
        settings = EmulatorSettings(
            state_dir=state_dir,
            host=host,
            port=port,
            region=region,
            geo=geo,
            sku=sku,
            throttle=throttle,
            latency_ms=latency_ms,
            events_to=tuple(events_to),
            retention_days=retention_days,
            purge_protection=purge_protection,
            allow_remote=allow_remote,
            rbac_file=rbac_file,
        )
        if rbac_file is not None:
            from emulator.rbac import Rbac, RbacFileError

            try:
                Rbac(rbac_file, region)
            except RbacFileError as exc:
                raise SettingsError("--rbac", str(exc)) from None
    except SettingsError as exc:
        raise click.BadParameter(exc.message, param_hint=f"'{exc.option}'") from None
    if not is_loopback(host):
        click.echo(REMOTE_WARNING.format(host=host), err=True)
    _configure_logs()
    from emulator.server import run

    try:
        run(settings)
    except OSError as exc:
        # Typically the port is taken; say which.
        click.echo(f"kvdr emulator: cannot serve on {host}:{port}: {exc.strerror}", err=True)
        sys.exit(1)
