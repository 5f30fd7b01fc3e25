"""The daemon's HTTP surface: health, readiness, metrics, status, Event Grid, dashboard.

Binds 127.0.0.1:8080 by default. Nothing served here carries a secret value: status
holds names, versions, counts and timings only.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any, Protocol

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

log = structlog.get_logger("kvdr.http")

VALIDATION_EVENT = "Microsoft.EventGrid.SubscriptionValidationEvent"
KEYVAULT_EVENT_PREFIX = "Microsoft.KeyVault."
# Event Grid batches at most 5,000 events / 1 MB per delivery; refuse anything larger.
MAX_EVENT_BODY = 1024 * 1024 + 64 * 1024


class DaemonView(Protocol):
    """What the HTTP surface needs from the daemon."""

    def status(self) -> dict[str, Any]: ...

    def ready(self) -> bool: ...

    def not_ready_reason(self) -> str:
        """Why the daemon is not ready, in one line (no item names); empty when ready."""
        ...

    def refresh_metrics(self) -> None:
        """Bring time-dependent gauges (RPO, lag) up to this moment before a scrape."""
        ...

    def on_vault_event(self, event_type: str, data: dict[str, Any]) -> bool:
        """Hand one Key Vault event to the replicators; True when a pair took it."""
        ...


DAEMON: web.AppKey[DaemonView] = web.AppKey("daemon")


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    ready = daemon.ready()
    doc: dict[str, Any] = {"ready": ready}
    if not ready:
        doc["reason"] = daemon.not_ready_reason()
    return web.json_response(doc, status=200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    request.app[DAEMON].refresh_metrics()
    body = generate_latest(REGISTRY)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def status(request: web.Request) -> web.Response:
    return web.json_response(request.app[DAEMON].status(), dumps=_dumps)


def _dumps(doc: Any) -> str:
    return json.dumps(doc, default=str)


async def events_options(request: web.Request) -> web.Response:
    """CloudEvents abuse-protection handshake (Event Grid with the CloudEvents schema)."""
    origin = request.headers.get("WebHook-Request-Origin", "")
    return web.Response(status=200, headers={"WebHook-Allowed-Origin": origin or "*"})


async def events(request: web.Request) -> web.Response:
    """Event Grid webhook: the validation handshake, then Key Vault change events."""
    if request.content_length is not None and request.content_length > MAX_EVENT_BODY:
        return web.json_response({"error": "event batch too large"}, status=413)
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return web.json_response({"error": "body is not JSON"}, status=400)
    batch = body if isinstance(body, list) else [body]
    daemon = request.app[DAEMON]
    accepted = 0
    for event in batch:
        if not isinstance(event, dict):
            return web.json_response({"error": "each event must be a JSON object"}, status=400)
        event_type = str(event.get("eventType") or event.get("type") or "")
        raw = event.get("data")
        data: dict[str, Any] = raw if isinstance(raw, dict) else {}
        if event_type == VALIDATION_EVENT:
            code = data.get("validationCode")
            log.info("events.subscription_validated")
            return web.json_response({"validationResponse": code})
        if event_type.startswith(KEYVAULT_EVENT_PREFIX) and daemon.on_vault_event(event_type, data):
            accepted += 1
    return web.json_response({"accepted": accepted})


async def dashboard(request: web.Request) -> web.Response:
    page = resources.files("kvdr.web").joinpath("dashboard.html").read_text(encoding="utf-8")
    return web.Response(text=page, content_type="text/html")


def build_http_app(daemon: DaemonView) -> web.Application:
    app = web.Application(client_max_size=MAX_EVENT_BODY)
    app[DAEMON] = daemon
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/status", status)
    app.router.add_post("/events", events)
    app.router.add_route("OPTIONS", "/events", events_options)
    app.router.add_get("/", dashboard)
    return app
