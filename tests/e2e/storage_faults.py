"""A blob storage endpoint that answers 500 on demand: an HTTP relay in front of Azurite.

The fault proxy's toxics cut or slow a link; none of them makes storage *answer* with a
server error, which is what an overloaded or failing storage account does. The relay
forwards every request unchanged (Shared Key signatures cover the path and the x-ms-*
headers, not the host) until `failing` is set, then answers 500 to everything."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

# Per-hop headers: they describe one connection, not the request, and aiohttp writes
# its own for the next hop.
_HOP_HEADERS = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "upgrade"}
)

_ERROR_BODY = (
    '<?xml version="1.0" encoding="utf-8"?><Error><Code>InternalError</Code>'
    "<Message>The server encountered an internal error (test).</Message></Error>"
)


@dataclass
class FailingStorage:
    """The relay's switch and what it answered."""

    port: int = 0
    failing: bool = False
    refused: int = 0
    forwarded: int = 0
    upstream: str = ""
    _session: aiohttp.ClientSession | None = field(default=None, repr=False)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self.failing:
            self.refused += 1
            await request.read()
            # The body and header Azure Storage sends with a server error.
            return web.Response(
                status=500,
                headers={"x-ms-error-code": "InternalError"},
                content_type="application/xml",
                text=_ERROR_BODY,
            )
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        async with self._session.request(
            request.method,
            self.upstream + request.rel_url.raw_path_qs,
            headers=headers,
            data=await request.read(),
            allow_redirects=False,
        ) as answer:
            body = await answer.read()
            self.forwarded += 1
            kept = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP_HEADERS}
            return web.Response(status=answer.status, headers=kept, body=body)


@asynccontextmanager
async def failing_storage(upstream_port: int) -> AsyncIterator[FailingStorage]:
    """A relay on a free port of 127.0.0.1 in front of `upstream_port`."""
    relay = FailingStorage(upstream=f"http://127.0.0.1:{upstream_port}")
    # No header of aiohttp's own: Content-Type is part of what Shared Key signs.
    skip = ("Accept-Encoding", "User-Agent", "Content-Type")
    async with aiohttp.ClientSession(auto_decompress=False, skip_auto_headers=skip) as session:
        relay._session = session
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", relay.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        relay.port = int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        try:
            yield relay
        finally:
            await runner.cleanup()
