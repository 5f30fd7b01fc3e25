"""The emulator's HTTPS server: app wiring, middlewares, startup handshake and shutdown.

Request path through the middlewares (outermost first):
    stats + latency -> Key Vault error bodies -> bearer challenge -> RBAC (with --rbac:
    token signature, audience, expiry, role assignments) -> network rules (firewall) ->
    api-version, drill faults, throttle, read-only fence -> the kind module's handler.

The management plane (`/subscriptions/...`, emulator/arm.py) passes the bearer challenge
and RBAC only: no stats, latency, firewall, drill faults, throttle or read-only fence.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import structlog
from aiohttp import web

from emulator import arm, expiry, management, secrets
from emulator.auth import (
    MANAGEMENT_PREFIX,
    auth_middleware,
    load_identity_header,
    request_principal,
)
from emulator.errors import Handler, bad_parameter, error_middleware, read_only
from emulator.objects import MAX_BODY_BYTES
from emulator.rbac_check import rbac_middleware
from emulator.settings import EmulatorSettings
from emulator.state import STATE_KEY, VaultState
from emulator.statedir import ensure_private_dir, write_private_file
from emulator.tls import TlsFiles, ensure_tls

__all__ = ["STATE_KEY", "RunningEmulator", "VaultState", "build_app", "run", "serve"]

# What the installed azure-keyvault-* SDKs send (7.0 ... 2026-04-01).
API_VERSIONS = frozenset(
    {"2016-10-01", "7.0", "7.1", "7.2", "7.3", "7.4", "7.5", "7.6", "2025-07-01", "2026-04-01"}
)
LATEST_API_VERSION = "2026-04-01"
# POSTs that only read (or compute with) an object; allowed while the vault is read-only,
# as Azure keeps serving reads, crypto and backups during a failover.
READ_ONLY_SAFE_POSTS = frozenset(
    {"backup", "encrypt", "decrypt", "sign", "verify", "wrapkey", "unwrapkey", "rng"}
)

_log = structlog.get_logger("emulator")


def _op(request: web.Request) -> str:
    """The operation's name: the route name up to any `:variant` suffix.

    Kind modules name routes after Key Vault's operations ("SetSecret", "CreateKey"); a
    second path for the same operation gets a suffix ("GetSecret:latest") because aiohttp
    wants unique names. Stats and the throttle see the operation name.
    """
    name = request.match_info.route.name
    return name.split(":", 1)[0] if name else "Unknown"


def _is_write(request: web.Request) -> bool:
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return False
    if request.method == "POST":
        last = request.path.rstrip("/").rsplit("/", 1)[-1].lower()
        return last not in READ_ONLY_SAFE_POSTS
    return True


@web.middleware
async def stats_latency_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count every vault request by operation and status; delay it by --latency."""
    if request.path.startswith(MANAGEMENT_PREFIX) or arm.is_arm_path(request.path):
        return await handler(request)
    state = request.app[STATE_KEY]
    latency = state.settings.latency_ms
    if latency:
        await asyncio.sleep(latency / 1000)
    response = await handler(request)
    state.stats.count(_op(request), response.status)
    return response


@web.middleware
async def vault_rules_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """api-version, then the throttle, then the read-only fence, as a vault applies them."""
    if request.path.startswith(MANAGEMENT_PREFIX) or arm.is_arm_path(request.path):
        return await handler(request)
    state = request.app[STATE_KEY]
    version = request.query.get("api-version")
    if version is None:
        raise bad_parameter("The api-version query parameter (?api-version=) is required.")
    if version not in API_VERSIONS:
        raise bad_parameter(
            f"The specified version ({version[:40]}) is not recognized. Consider using the "
            f"latest supported version ({LATEST_API_VERSION})."
        )
    op = _op(request)
    if state.faults.active:
        state.faults.check(request_principal(request), op)
    state.throttle.charge_op(op)
    fence = state.read_only
    if fence.read_only and _is_write(request):
        principal = request_principal(request)
        if principal is None or principal not in fence.exempt_principals:
            raise read_only(op)
    return await handler(request)


def _kind_routes(state: VaultState) -> list[web.RouteDef]:
    defs = list(secrets.routes(state))
    # Keys and certificates are built alongside the core; include them once they exist,
    # but never hide an import error from inside them.
    for module_name in ("emulator.keys", "emulator.certificates"):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        defs.extend(module.routes(state))
    return defs


async def _background(app: web.Application) -> AsyncIterator[None]:
    state = app[STATE_KEY]
    await state.events.start()
    watcher = asyncio.create_task(expiry.watch(state))
    yield
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher
    await state.events.stop()
    state.store.close()


def build_app(settings: EmulatorSettings, state: VaultState | None = None) -> web.Application:
    """The aiohttp application of one vault (opens its state folder unless given a state)."""
    if state is None:
        ensure_private_dir(settings.state_dir)
        state = VaultState.open(settings, load_identity_header(settings.state_dir))
    app = web.Application(
        middlewares=[
            stats_latency_middleware,
            error_middleware,
            auth_middleware,
            rbac_middleware,
            arm.firewall_middleware,
            vault_rules_middleware,
        ],
        client_max_size=MAX_BODY_BYTES,
    )
    app[STATE_KEY] = state
    app.add_routes(management.routes(state))
    app.add_routes(arm.routes())
    app.add_routes(_kind_routes(state))
    app.cleanup_ctx.append(_background)
    return app


@dataclass(frozen=True)
class RunningEmulator:
    """A started emulator: its state, URL, port and TLS files."""

    state: VaultState
    url: str
    port: int
    tls: TlsFiles


def _write_endpoint(path: Path, body: dict[str, object]) -> None:
    # It carries the identity header: owner-only, like the identity-header file.
    write_private_file(path, json.dumps(body, indent=2).encode())


@contextlib.asynccontextmanager
async def serve(settings: EmulatorSettings) -> AsyncIterator[RunningEmulator]:
    """Start the vault, announce it (endpoint.json, stderr line), stop it on exit."""
    state_dir = settings.state_dir
    ensure_private_dir(state_dir)
    endpoint = state_dir / "endpoint.json"
    # A stale endpoint.json would point tooling at a port nobody listens on.
    endpoint.unlink(missing_ok=True)
    tls = ensure_tls(state_dir)  # ca.pem exists before the port opens
    identity_header = load_identity_header(state_dir)
    state = VaultState.open(settings, identity_header)
    app = build_app(settings, state)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port, ssl_context=tls.server_context())
        await site.start()
        port = int(runner.addresses[0][1])
        host = f"[{settings.host}]" if ":" in settings.host else settings.host
        url = f"https://{host}:{port}"
        state.listen_url = url
        _write_endpoint(
            endpoint,
            {
                "url": url,
                "port": port,
                "ca": str(tls.ca),
                "identity_endpoint": f"{url}{MANAGEMENT_PREFIX}identity/token",
                "identity_header": identity_header,
                "region": settings.region,
                "geo": settings.geo,
                "pid": os.getpid(),
            },
        )
        print(
            f"kvdr emulator listening on {url} (region {settings.region})",
            file=sys.stderr,
            flush=True,
        )
        yield RunningEmulator(state, url, port, tls)
    finally:
        # endpoint.json stays: URL, CA and identity header stay valid for the next start
        # on this folder, and tools that read it while the vault is down (a drill)
        # still find it; its `pid` tells whether this process is alive.
        await runner.cleanup()


async def _serve_until_signalled(settings: EmulatorSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with serve(settings):
        await stop.wait()
        _log.info("emulator.stopping", region=settings.region)


def run(settings: EmulatorSettings) -> None:
    """Serve until SIGTERM or SIGINT, then stop cleanly."""
    asyncio.run(_serve_until_signalled(settings))
