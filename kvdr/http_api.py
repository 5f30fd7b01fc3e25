"""The daemon's HTTP surface: health, readiness, metrics, status, Event Grid, dashboard.

Binds 127.0.0.1:8080 by default. Nothing served here carries a secret value: status
holds names, versions, counts and timings only. Who may use what (docs/security.md):

- `/events` takes `application/json` only (a browser page cannot send that across
  sites without a CORS preflight, which is never granted), and, when configured, only
  with the shared secret (query parameter `secret` or header `X-Kvdr-Events-Secret`)
  or an Entra ID bearer token of Event Grid's authenticated delivery. The validation
  handshake needs the same. What the events name is parsed and bounded by the change
  feed (`replicator/change_feed.py`).
- `/status`, `/metrics` and the dashboard answer only a `Host` that is a loopback
  name, an IP address or one of `daemon.allowed_hosts` (a DNS-rebinding page arrives
  with its own name), and, when a status token is configured (required beyond
  loopback), only `Authorization: Bearer <token>`. The dashboard page itself holds no
  data: its script sends the token with each `/status` request.
- No response carries a CORS header, ever.

`/healthz` and `/readyz` answer anyone: probes address the pod by IP and learn nothing.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable, Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any, Protocol

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from kvdr.entra_token import EntraVerifier, TokenRejected
from replicator.change_feed import DeliveryError, VaultEvent, parse_delivery

if TYPE_CHECKING:
    from kvdr._config_daemon import DaemonSettings

log = structlog.get_logger("kvdr.http")

# Event Grid batches at most 5,000 events / 1 MB per delivery; refuse anything larger.
MAX_EVENT_BODY = 1024 * 1024 + 64 * 1024
# JSON media types Event Grid sends (its own schema; CloudEvents single and batch). None
# of them is a type a cross-site form or a "simple" fetch may send.
EVENT_CONTENT_TYPES = frozenset(
    {"application/json", "application/cloudevents+json", "application/cloudevents-batch+json"}
)
SECRET_PARAMETER = "secret"
SECRET_HEADER = "X-Kvdr-Events-Secret"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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

    def on_events(self, events: Sequence[VaultEvent]) -> int:
        """Hand Key Vault events to the replicators; how many a pair queued."""
        ...


class Surface:
    """Who may use the HTTP surface, from the daemon's settings."""

    def __init__(self, settings: DaemonSettings) -> None:
        self.hosts = LOOPBACK_NAMES | set(settings.allowed_hosts)
        self.status_token = settings.status_token
        self.events_secret = settings.events_secret
        self.entra = EntraVerifier(settings.events_entra) if settings.events_entra else None

    def host_allowed(self, request: web.Request) -> bool:
        """True for a Host that is one of ours or an IP literal (DNS rebinding always
        arrives with the attacker's name, never with an address)."""
        host = request.headers.get("Host", "")
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        if name.startswith("[") and "]" in name:
            name = name[1 : name.index("]")]
        name = name.lower().rstrip(".")
        if name in self.hosts:
            return True
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return True

    def token_ok(self, request: web.Request) -> bool:
        if self.status_token is None:
            return True
        given = _bearer(request)
        return given is not None and _same(given, self.status_token)

    def event_sender_ok(self, request: web.Request) -> bool:
        """The shared secret or a valid Entra ID token (either, when both are set)."""
        if self.events_secret is None and self.entra is None:
            return True  # loopback only (the configuration refuses it elsewhere)
        if self.events_secret is not None:
            given = request.query.get(SECRET_PARAMETER) or request.headers.get(SECRET_HEADER)
            if given is not None and _same(given, self.events_secret):
                return True
        token = _bearer(request)
        if self.entra is not None and token is not None:
            try:
                self.entra.verify(token)
                return True
            except TokenRejected as exc:
                log.warning("events.token_rejected", reason=str(exc))
        return False


def _bearer(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _same(given: str, expected: str) -> bool:
    # Constant time: the comparison must not tell how much of a guess was right.
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode())


SURFACE: web.AppKey[Surface] = web.AppKey("surface")
DAEMON: web.AppKey[DaemonView] = web.AppKey("daemon")


def _error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


def guarded(handler: Handler) -> Handler:
    """Host check, then the bearer token: for what shows item names and figures."""

    async def check(request: web.Request) -> web.StreamResponse:
        surface = request.app[SURFACE]
        if not surface.host_allowed(request):
            return _error(421, "this daemon does not answer to that Host (daemon.allowed_hosts)")
        if not surface.token_ok(request):
            return _error(
                401,
                "a bearer token is required (daemon.status_token)",
                **{"WWW-Authenticate": 'Bearer realm="kvdr"'},
            )
        return await handler(request)

    return check


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
    """CloudEvents abuse-protection handshake (Event Grid with the CloudEvents schema).
    It answers with the origin asked about only, and never with a CORS header."""
    origin = request.headers.get("WebHook-Request-Origin", "")
    if not origin:
        return _error(400, "WebHook-Request-Origin header missing")
    return web.Response(status=200, headers={"WebHook-Allowed-Origin": origin})


async def events(request: web.Request) -> web.Response:
    """Event Grid webhook: the validation handshake, then Key Vault change events."""
    if request.content_length is not None and request.content_length > MAX_EVENT_BODY:
        return _error(413, "event batch too large")
    if request.content_type not in EVENT_CONTENT_TYPES:
        return _error(415, "events must be sent as application/json")
    if not request.app[SURFACE].event_sender_ok(request):
        return _error(401, "events need the shared secret or an Entra ID token")
    try:
        delivery = parse_delivery(await request.json())
    except (ValueError, RecursionError):
        return _error(400, "body is not JSON")
    except DeliveryError as exc:
        return _error(400, str(exc))
    if delivery.validation_code is not None:
        log.info("events.subscription_validated")
        return web.json_response({"validationResponse": delivery.validation_code})
    accepted = request.app[DAEMON].on_events(delivery.events)
    return web.json_response({"accepted": accepted})


async def dashboard(request: web.Request) -> web.Response:
    page = resources.files("kvdr.web").joinpath("dashboard.html").read_text(encoding="utf-8")
    return web.Response(text=page, content_type="text/html")


async def _no_cors(request: web.Request, response: web.StreamResponse) -> None:
    """No response grants another origin anything, whatever a handler set."""
    for name in [h for h in response.headers if h.lower().startswith("access-control-")]:
        del response.headers[name]
    for name, value in _SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


def build_http_app(daemon: DaemonView, settings: DaemonSettings) -> web.Application:
    app = web.Application(client_max_size=MAX_EVENT_BODY)
    app[DAEMON] = daemon
    app[SURFACE] = Surface(settings)
    app.on_response_prepare.append(_no_cors)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", guarded(metrics))
    app.router.add_get("/status", guarded(status))
    app.router.add_post("/events", events)
    app.router.add_route("OPTIONS", "/events", events_options)
    app.router.add_get("/", guarded_page(dashboard))
    return app


def guarded_page(handler: Handler) -> Handler:
    """The dashboard page: Host check only (a browser cannot send a bearer token when
    it navigates; the page's script sends it with every request for data)."""

    async def check(request: web.Request) -> web.StreamResponse:
        if not request.app[SURFACE].host_allowed(request):
            return _error(421, "this daemon does not answer to that Host (daemon.allowed_hosts)")
        return await handler(request)

    return check
