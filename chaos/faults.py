"""Faults on named links, driven through any Toxiproxy API with `toxiproxy-python`.

A link is a Toxiproxy proxy (for example the one between the daemon and a vault).
`Faults` wraps the blocking `toxiproxy-python` client in `asyncio.to_thread`, so the
same drill code runs against kvdr's `FaultProxy` and against Shopify's server.

Two things about toxiproxy-python 0.1.1 (2019) are worked around here, without
changing the library:
- It keeps the API host and port in class attributes of `APIConsumer`
  (`Toxiproxy().update_api_consumer()` sets them process-wide), so two `Faults`
  for two servers would race. Every call takes one lock and sets the endpoint first.
- Its errors are bare exceptions holding the raw response body, and it calls the
  "toxic already exists" answer `ProxyExists`. They are mapped to `chaos.errors`.
It sets no HTTP timeout either: a server that accepts and never answers blocks the
worker thread; a drill bounds the wait with `asyncio.timeout` around the call.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from toxiproxy import Toxiproxy
from toxiproxy.api import APIConsumer
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists

from chaos.errors import (
    FaultApiUnreachable,
    FaultError,
    InvalidFault,
    LinkExists,
    LinkNotFound,
)

T = TypeVar("T")

# toxiproxy-python's endpoint is process-wide state; one call at a time sets and uses it.
_client_lock = threading.Lock()


@dataclass(frozen=True)
class LinkInfo:
    """A link (Toxiproxy proxy) as the server reports it."""

    name: str
    listen: str
    upstream: str
    enabled: bool


@dataclass(frozen=True)
class ToxicInfo:
    """A toxic on a link as the server reports it."""

    name: str
    type: str
    stream: str
    toxicity: float
    attributes: Mapping[str, Any] = field(default_factory=dict)


def _server_message(exc: Exception) -> str:
    """The "error" text of a Toxiproxy error body, or the raw body if it is not JSON."""
    raw = exc.args[0] if exc.args else b""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):
        return text.strip()
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])
    return text.strip()


class Faults:
    """Add and remove toxics and take links down and up, on one Toxiproxy API."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8474) -> None:
        self.host = host
        self.port = port

    def _call(self, what: str, action: Callable[[], T]) -> T:
        with _client_lock:
            APIConsumer.host = self.host
            APIConsumer.port = self.port
            try:
                return action()
            except NotFound as exc:
                raise LinkNotFound(f"{what}: {_server_message(exc)}") from exc
            except ProxyExists as exc:
                raise LinkExists(f"{what}: {_server_message(exc)}") from exc
            except InvalidToxic as exc:
                raise InvalidFault(f"{what}: {_server_message(exc)}") from exc
            except OSError as exc:  # requests' connection errors derive from OSError
                raise FaultApiUnreachable(
                    f"{what}: Toxiproxy API at {self.host}:{self.port} did not answer: {exc}"
                ) from exc

    async def _run(self, what: str, action: Callable[[], T]) -> T:
        return await asyncio.to_thread(self._call, what, action)

    def _proxy(self, link: str) -> Any:
        proxy = Toxiproxy().get_proxy(link)
        if proxy is None:
            raise LinkNotFound(f"no link named {link!r} on {self.host}:{self.port}")
        return proxy

    async def version(self) -> str:
        def action() -> str:
            raw = Toxiproxy().version()
            if raw is None:
                raise OSError("connection refused")
            return str(json.loads(raw)["version"])

        return await self._run("version", action)

    async def links(self) -> dict[str, LinkInfo]:
        def action() -> dict[str, LinkInfo]:
            return {
                name: LinkInfo(name, proxy.listen, proxy.upstream, bool(proxy.enabled))
                for name, proxy in Toxiproxy().proxies().items()
            }

        return await self._run("list links", action)

    async def create_link(
        self, name: str, upstream: str, listen: str = "127.0.0.1:0", enabled: bool = True
    ) -> LinkInfo:
        """Create a link; `listen` with port 0 comes back with the real port."""

        def action() -> LinkInfo:
            # Posted here rather than through `Toxiproxy().create`, which reads any answer
            # as a proxy and fails with a KeyError on an error body (a busy listen port).
            if name in Toxiproxy().proxies():
                raise ProxyExists(b'{"error": "proxy already exists"}')
            body = {"name": name, "upstream": upstream, "listen": listen, "enabled": enabled}
            info = APIConsumer.post("/proxies", json=body).json()
            if not isinstance(info, dict) or "name" not in info:
                error = info.get("error") if isinstance(info, dict) else None
                raise FaultError(f"create link {name!r}: the server refused: {error or info!r}")
            return LinkInfo(
                str(info["name"]), str(info["listen"]), str(info["upstream"]), bool(info["enabled"])
            )

        return await self._run(f"create link {name!r}", action)

    async def delete_link(self, name: str) -> None:
        await self._run(f"delete link {name!r}", lambda: self._proxy(name).destroy())

    async def add_toxic(
        self,
        link: str,
        type: str,
        *,
        stream: str = "downstream",
        name: str | None = None,
        toxicity: float = 1.0,
        attributes: Mapping[str, int] | None = None,
    ) -> str:
        """Add a toxic to a link; returns its name (default "<type>_<stream>")."""
        toxic_name = name or f"{type}_{stream}"

        def action() -> str:
            self._proxy(link).add_toxic(
                name=toxic_name,
                type=type,
                stream=stream,
                toxicity=toxicity,
                attributes=dict(attributes or {}),
            )
            return toxic_name

        return await self._run(f"add {type} toxic to link {link!r}", action)

    async def remove_toxic(self, link: str, toxic: str) -> None:
        await self._run(
            f"remove toxic {toxic!r} from link {link!r}",
            lambda: self._proxy(link).destroy_toxic(toxic),
        )

    async def toxics(self, link: str) -> list[ToxicInfo]:
        def action() -> list[ToxicInfo]:
            return [
                ToxicInfo(t.name, t.type, t.stream, float(t.toxicity), dict(t.attributes))
                for t in self._proxy(link).toxics().values()
            ]

        return await self._run(f"list toxics of link {link!r}", action)

    async def set_down(self, link: str) -> None:
        """Take a link down: its listener closes (refused) and open connections drop."""
        await self._run(f"take link {link!r} down", lambda: self._proxy(link).disable())

    async def set_up(self, link: str) -> None:
        await self._run(f"bring link {link!r} up", lambda: self._proxy(link).enable())

    async def reset(self) -> None:
        """Every link up, every toxic removed."""
        await self._run("reset", lambda: Toxiproxy().reset())

    @asynccontextmanager
    async def down(self, link: str) -> AsyncIterator[None]:
        """The link is down inside the block and up again after it, also on error."""
        await self.set_down(link)
        try:
            yield
        finally:
            await self.set_up(link)

    @asynccontextmanager
    async def toxic(
        self,
        link: str,
        type: str,
        *,
        stream: str = "downstream",
        name: str | None = None,
        toxicity: float = 1.0,
        attributes: Mapping[str, int] | None = None,
    ) -> AsyncIterator[str]:
        """The toxic is on the link inside the block and removed after it."""
        toxic_name = await self.add_toxic(
            link, type, stream=stream, name=name, toxicity=toxicity, attributes=attributes
        )
        try:
            yield toxic_name
        finally:
            await self.remove_toxic(link, toxic_name)
