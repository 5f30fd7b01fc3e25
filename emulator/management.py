"""The emulator's own API under `/_emulator/`: health, read-only fence, drill faults, clock,
stats, tokens.

Loopback only and outside vault authentication: it is how tests, drills and `kvdr up`
steer the emulator, not part of Key Vault's API.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from emulator.auth import identity_token_handler
from emulator.errors import KeyVaultError, bad_parameter
from emulator.faults import VaultFaults, parse_faults
from emulator.objects import read_json
from emulator.state import STATE_KEY, ReadOnlyMode, VaultState

PREFIX = "/_emulator"
LOOPBACK = ("127.0.0.1", "::1")


def _state(request: web.Request) -> VaultState:
    if request.remote not in LOOPBACK:
        raise KeyVaultError(403, "Forbidden", "The emulator's management API is loopback only.")
    return request.app[STATE_KEY]


async def health(request: web.Request) -> web.Response:
    """GET /_emulator/health: up, with the vault's identity and clock."""
    state = _state(request)
    settings = state.settings
    return web.json_response(
        {
            "status": "ok",
            "region": settings.region,
            "geo": settings.geo,
            "sku": settings.sku,
            "vault_url": state.listen_url,
            "vault_time": state.clock.now(),
            "clock_offset_seconds": state.clock.offset_seconds,
            "read_only": state.read_only.read_only,
            "faults": state.faults.active,
        }
    )


async def get_read_only(request: web.Request) -> web.Response:
    """GET /_emulator/read-only."""
    return web.json_response(_state(request).read_only.to_json())


async def put_read_only(request: web.Request) -> web.Response:
    """PUT /_emulator/read-only {"read_only": bool, "exempt_principals": [...]}."""
    state = _state(request)
    body = await read_json(request)
    flag = body.get("read_only")
    if not isinstance(flag, bool):
        raise bad_parameter("read_only must be true or false.")
    exempt = body.get("exempt_principals", [])
    if not isinstance(exempt, list) or not all(isinstance(p, str) for p in exempt):
        raise bad_parameter("exempt_principals must be a list of principal ids.")
    state.set_read_only(ReadOnlyMode(flag, frozenset(exempt)))
    return web.json_response(state.read_only.to_json())


async def get_faults(request: web.Request) -> web.Response:
    """GET /_emulator/faults: the drill faults now on this vault."""
    return web.json_response(_state(request).faults.to_json())


async def put_faults(request: web.Request) -> web.Response:
    """PUT /_emulator/faults {"errors": {"status": 429|503, "share": 0..1,
    "retry_after_seconds": N}, "deny": "*" | [principal, ...]}: replaces the faults."""
    state = _state(request)
    body = await read_json(request)
    try:
        state.faults = parse_faults(body)
    except ValueError as exc:
        raise bad_parameter(str(exc)) from exc
    return web.json_response(state.faults.to_json())


async def delete_faults(request: web.Request) -> web.Response:
    """DELETE /_emulator/faults: every drill fault cleared."""
    state = _state(request)
    state.faults = VaultFaults()
    return web.json_response(state.faults.to_json())


async def get_clock(request: web.Request) -> web.Response:
    """GET /_emulator/clock."""
    state = _state(request)
    return web.json_response(
        {"offset_seconds": state.clock.offset_seconds, "vault_time": state.clock.now()}
    )


async def put_clock(request: web.Request) -> web.Response:
    """PUT /_emulator/clock {"offset_seconds": N}: move the vault's clock (expiry tests)."""
    state = _state(request)
    body = await read_json(request)
    offset = body.get("offset_seconds")
    if isinstance(offset, bool) or not isinstance(offset, int | float):
        raise bad_parameter("offset_seconds must be a number of seconds.")
    state.set_clock_offset(float(offset))
    return web.json_response(
        {"offset_seconds": state.clock.offset_seconds, "vault_time": state.clock.now()}
    )


async def get_stats(request: web.Request) -> web.Response:
    """GET /_emulator/stats: vault requests by operation and status, throttling, events."""
    state = _state(request)
    body: dict[str, Any] = state.stats.snapshot()
    body["throttled"] = state.throttle.throttled_count
    body["events"] = state.events.status()
    body["time"] = time.time()
    return web.json_response(body)


async def delete_stats(request: web.Request) -> web.Response:
    """DELETE /_emulator/stats: start counting from zero."""
    state = _state(request)
    state.stats.reset()
    return web.Response(status=204)


def routes(state: VaultState) -> list[web.RouteDef]:
    """The management API's routes."""
    token = identity_token_handler(
        state.identity_header, state.rbac.token_key if state.rbac is not None else None
    )

    async def identity(request: web.Request) -> web.StreamResponse:
        _state(request)
        return await token(request)

    return [
        web.get(f"{PREFIX}/health", health, name="_emulator.health"),
        web.get(f"{PREFIX}/read-only", get_read_only, name="_emulator.get_read_only"),
        web.put(f"{PREFIX}/read-only", put_read_only, name="_emulator.put_read_only"),
        web.get(f"{PREFIX}/faults", get_faults, name="_emulator.get_faults"),
        web.put(f"{PREFIX}/faults", put_faults, name="_emulator.put_faults"),
        web.delete(f"{PREFIX}/faults", delete_faults, name="_emulator.delete_faults"),
        web.get(f"{PREFIX}/clock", get_clock, name="_emulator.get_clock"),
        web.put(f"{PREFIX}/clock", put_clock, name="_emulator.put_clock"),
        web.get(f"{PREFIX}/stats", get_stats, name="_emulator.get_stats"),
        web.delete(f"{PREFIX}/stats", delete_stats, name="_emulator.delete_stats"),
        web.get(f"{PREFIX}/identity/token", identity, name="_emulator.identity_token"),
    ]
