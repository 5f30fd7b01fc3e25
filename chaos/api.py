"""Toxiproxy's HTTP API (2.x) over aiohttp, and the `FaultProxy` server that runs it.

Routes, status codes, JSON shapes and error bodies follow Toxiproxy's api.go:
201 for a created proxy and for /populate, 200 for a created toxic, 204 for deletes
and /reset, {"error": "...", "status": N} for every refusal. Updates take POST
(what older clients, toxiproxy-python among them, send) as well as PATCH.
"""

from __future__ import annotations

import importlib.metadata
import json
import secrets
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any

import structlog
from aiohttp import web

from chaos.address import join_host_port, resolve_listen
from chaos.collection import ProxyCollection, proxies_json
from chaos.errors import ApiError, ListenError

log = structlog.get_logger("chaos.api")

# The Toxiproxy release whose API this server follows.
TOXIPROXY_API_VERSION = "2.12.0"

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8474

COLLECTION: web.AppKey[ProxyCollection] = web.AppKey("collection", ProxyCollection)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def server_version() -> str:
    """Toxiproxy's version with ours as semver build metadata, e.g. 2.12.0+kvdr.0.1.0."""
    try:
        ours = importlib.metadata.version("kvdr")
    except importlib.metadata.PackageNotFoundError:
        ours = "unknown"
    return f"{TOXIPROXY_API_VERSION}+kvdr.{ours}"


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity; JSON (and Go's decoder) does not.
    raise ValueError(f"invalid JSON value {name}")


_decoder = json.JSONDecoder(parse_constant=_reject_constant)


async def _read_json(request: web.Request) -> Any:
    """The body's first JSON value; like Go's json.Decoder, trailing bytes are ignored."""
    raw = await request.read()
    try:
        text = raw.decode("utf-8").lstrip(" \t\r\n")
    except UnicodeDecodeError as exc:
        raise ApiError.bad_request_body("body is not UTF-8") from exc
    if not text:
        raise ApiError.bad_request_body("EOF")
    try:
        value, _ = _decoder.raw_decode(text)
    except (ValueError, RecursionError) as exc:
        raise ApiError.bad_request_body(str(exc)) from exc
    return value


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(data) + "\n", status=status, content_type="application/json"
    )


@web.middleware
async def _toxiproxy_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    # A web page must not be able to drive faults through a developer's browser
    # (cross-site requests to localhost): Toxiproxy refuses browser user agents.
    if request.headers.get("User-Agent", "").startswith("Mozilla/"):
        return web.Response(status=403, text="User agent not allowed\n")
    request_id = secrets.token_hex(10)
    try:
        response = await handler(request)
    except ApiError as exc:
        if exc.status >= 500:
            log.warning("api_error", method=request.method, path=request.path, error=exc.message)
        response = _json(exc.to_json(), exc.status)
    response.headers["X-Toxiproxy-Request-Id"] = request_id
    return response


def _collection(request: web.Request) -> ProxyCollection:
    return request.app[COLLECTION]


async def _proxy_index(request: web.Request) -> web.Response:
    proxies = _collection(request).proxies()
    return _json({name: proxy.to_json() for name, proxy in proxies.items()})


async def _proxy_create(request: web.Request) -> web.Response:
    proxy = await _collection(request).create(await _read_json(request))
    return _json(proxy.to_json(), 201)


async def _populate(request: web.Request) -> web.Response:
    result = await _collection(request).populate(await _read_json(request))
    body: dict[str, Any] = {}
    status = 201
    if result.error is not None:
        body.update(result.error.to_json())
        status = result.error.status
    body["proxies"] = proxies_json(result.proxies)
    return _json(body, status)


async def _proxy_show(request: web.Request) -> web.Response:
    return _json(_collection(request).get(request.match_info["proxy"]).to_json())


async def _proxy_update(request: web.Request) -> web.Response:
    collection = _collection(request)
    name = request.match_info["proxy"]
    collection.get(name)  # an unknown proxy is a 404 before the body is looked at
    proxy = await collection.update(name, await _read_json(request))
    return _json(proxy.to_json())


async def _proxy_delete(request: web.Request) -> web.Response:
    await _collection(request).delete(request.match_info["proxy"])
    return web.Response(status=204)


async def _toxic_index(request: web.Request) -> web.Response:
    proxy = _collection(request).get(request.match_info["proxy"])
    return _json([toxic.to_json() for toxic in proxy.all_toxics()])


async def _toxic_create(request: web.Request) -> web.Response:
    collection = _collection(request)
    name = request.match_info["proxy"]
    collection.get(name)
    toxic = await collection.add_toxic(name, await _read_json(request))
    return _json(toxic.to_json())


async def _toxic_show(request: web.Request) -> web.Response:
    info = request.match_info
    return _json(_collection(request).get_toxic(info["proxy"], info["toxic"]).to_json())


async def _toxic_update(request: web.Request) -> web.Response:
    collection = _collection(request)
    info = request.match_info
    collection.get_toxic(info["proxy"], info["toxic"])
    toxic = await collection.update_toxic(info["proxy"], info["toxic"], await _read_json(request))
    return _json(toxic.to_json())


async def _toxic_delete(request: web.Request) -> web.Response:
    info = request.match_info
    await _collection(request).remove_toxic(info["proxy"], info["toxic"])
    return web.Response(status=204)


async def _reset(request: web.Request) -> web.Response:
    await _collection(request).reset()
    return web.Response(status=204)


async def _version(request: web.Request) -> web.Response:
    return web.Response(
        text=json.dumps({"version": server_version()}) + "\n",
        content_type="application/json",
        charset="utf-8",
    )


def build_app(collection: ProxyCollection) -> web.Application:
    app = web.Application(middlewares=[_toxiproxy_middleware])
    app[COLLECTION] = collection
    routes = app.router
    routes.add_post("/reset", _reset)
    routes.add_get("/proxies", _proxy_index)
    routes.add_post("/proxies", _proxy_create)
    routes.add_post("/populate", _populate)
    routes.add_get("/proxies/{proxy}", _proxy_show)
    routes.add_post("/proxies/{proxy}", _proxy_update)
    routes.add_patch("/proxies/{proxy}", _proxy_update)
    routes.add_delete("/proxies/{proxy}", _proxy_delete)
    routes.add_get("/proxies/{proxy}/toxics", _toxic_index)
    routes.add_post("/proxies/{proxy}/toxics", _toxic_create)
    routes.add_get("/proxies/{proxy}/toxics/{toxic}", _toxic_show)
    routes.add_post("/proxies/{proxy}/toxics/{toxic}", _toxic_update)
    routes.add_patch("/proxies/{proxy}/toxics/{toxic}", _toxic_update)
    routes.add_delete("/proxies/{proxy}/toxics/{toxic}", _toxic_delete)
    routes.add_get("/version", _version)
    return app


class FaultProxy:
    """kvdr's Toxiproxy-compatible server: the HTTP API and the proxies it manages.

    An async context manager; on exit every proxy stops (listeners closed, open
    connections dropped) before the API goes away. `port=0` picks a free port,
    readable from `port` and `url` once entered.
    """

    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
        self.host = host
        self.port = port
        self.collection = ProxyCollection()
        self._stack = AsyncExitStack()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def __aenter__(self) -> FaultProxy:
        async with AsyncExitStack() as stack:
            runner = web.AppRunner(build_app(self.collection), access_log=None)
            await runner.setup()
            stack.push_async_callback(runner.cleanup)
            stack.push_async_callback(self.collection.close)
            try:
                if self.port == 0:
                    # A name like "localhost" would get one free port per address it
                    # resolves to; bind one address so the URL names the only port.
                    self.host, _ = await resolve_listen(join_host_port(self.host, 0))
                site = web.TCPSite(runner, self.host, self.port)
                await site.start()
            except ApiError as exc:
                raise ListenError(self.host, self.port, exc.message) from exc
            except OSError as exc:
                reason = exc.strerror.lower() if exc.strerror else str(exc)
                raise ListenError(self.host, self.port, reason) from exc
            self.port = int(runner.addresses[0][1])
            self._stack = stack.pop_all()
        log.info("chaos_proxy_started", url=self.url)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._stack.aclose()
        log.info("chaos_proxy_stopped", url=self.url)
