"""One TCP proxy: its listener, its connections, and the links that carry their bytes.

Client <-> proxy <-> upstream. Each accepted connection has two links, upstream
(client -> server) and downstream (server -> client). A link with no toxics writes
every read straight to the other socket from the read callback (no task, no queue),
which keeps the proxy's own cost per request in the tens of microseconds; toxics turn
it into a chain of stages (see `chaos.toxics.Stage`). Unlike Toxiproxy, a graceful
EOF is passed on as a half-close, so request/response protocols that shut down their
sending side still get their answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
from typing import Any, cast

import structlog

from chaos.address import join_host_port, resolve_listen, split_host_port
from chaos.errors import ApiError
from chaos.stream import CLOSE, END, Chunk, Direction, End, Item, Outlet
from chaos.toxics import Stage, Toxic

log = structlog.get_logger("chaos.proxy")

# Bytes a link may hold inside its toxics before it stops reading its source: enough
# for 100 ms of latency at ~80 MB/s, bounded so a stalled link cannot eat memory.
_HIGH_WATER = 8 * 1024 * 1024
_LOW_WATER = 4 * 1024 * 1024

# SO_LINGER on, 0 s: close() then discards unsent data and sends a TCP RST.
_LINGER_ZERO = struct.pack("ii", 1, 0)


def _set_linger_zero(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is None:
        return
    # OSError: the peer already closed the socket, there is nothing left to reset.
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)


class _Side(asyncio.Protocol):
    """One socket of a proxied connection: the client's or the upstream's."""

    def __init__(self, conn: Connection, role: str) -> None:
        self.conn = conn
        self.role = role
        self.transport: asyncio.Transport | None = None
        self.alive = False
        self.reader: Link | None = None  # the link that reads from this socket
        self.writer: Link | None = None  # the link that writes to it
        self._pause_reasons: set[str] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.alive = True
        # Nothing may be read before both links exist; asyncio starts reading right
        # after this callback unless paused here.
        self.pause("connecting")
        self.conn.side_made(self)

    def data_received(self, data: bytes) -> None:
        if self.reader is not None:
            self.reader.feed(data)

    def eof_received(self) -> bool:
        if self.reader is not None:
            self.reader.feed_eof()
        return True  # keep our sending side open: this is a half-close

    def connection_lost(self, exc: Exception | None) -> None:
        self.alive = False
        self.conn.side_lost(self)

    def pause_writing(self) -> None:
        if self.writer is not None:
            self.writer.source.pause("destination full")

    def resume_writing(self) -> None:
        if self.writer is not None:
            self.writer.source.resume("destination full")

    def pause(self, reason: str) -> None:
        if not self._pause_reasons and self.transport is not None:
            self.transport.pause_reading()
        self._pause_reasons.add(reason)

    def resume(self, reason: str) -> None:
        if reason not in self._pause_reasons:
            return
        self._pause_reasons.discard(reason)
        if not self._pause_reasons and self.transport is not None:
            self.transport.resume_reading()

    def writable(self) -> bool:
        return self.alive and self.transport is not None and not self.transport.is_closing()


class _Sink:
    """The end of a link's chain: writes to the destination socket."""

    __slots__ = ("link",)

    def __init__(self, link: Link) -> None:
        self.link = link

    def put(self, item: Item) -> None:
        link = self.link
        dest = link.dest
        if isinstance(item, Chunk):
            link.release(len(item.data))
            if not link.finished and dest.writable():
                assert dest.transport is not None
                dest.transport.write(item.data)
        elif isinstance(item, End):
            if link.finished:
                return
            link.finished = True
            if dest.writable():
                assert dest.transport is not None
                if dest.transport.can_write_eof():
                    dest.transport.write_eof()
            link.conn.link_finished()
        else:
            link.conn.close(reset=item.reset)


class Link:
    """One direction of one connection: source socket -> toxic stages -> destination."""

    def __init__(
        self,
        conn: Connection,
        direction: Direction,
        source: _Side,
        dest: _Side,
        toxics: list[Toxic],
    ) -> None:
        self.conn = conn
        self.direction = direction
        self.source = source
        self.dest = dest
        self.sink = _Sink(self)
        self.stages: list[Stage] = []
        self.entry: Outlet = self.sink
        self.inflight = 0
        self.eof_fed = False
        self.finished = False
        self._over_budget = False
        self._loop = asyncio.get_running_loop()
        source.reader = self
        dest.writer = self
        for toxic in toxics:
            self.add_toxic(toxic)

    def feed(self, data: bytes) -> None:
        self.inflight += len(data)
        self.entry.put(Chunk(data, self._loop.time()))
        if self.inflight > _HIGH_WATER and not self._over_budget:
            self._over_budget = True
            self.source.pause("toxics full")

    def feed_eof(self) -> None:
        if not self.eof_fed:
            self.eof_fed = True
            self.entry.put(END)

    def release(self, nbytes: int) -> None:
        self.inflight -= nbytes
        if self._over_budget and self.inflight <= _LOW_WATER:
            self._over_budget = False
            self.source.resume("toxics full")

    def stage_failed(self, stage: Stage, exc: BaseException) -> None:
        log.error(
            "toxic_failed",
            proxy=self.conn.proxy.name,
            toxic=stage.toxic.name,
            error=repr(exc),
        )
        self.conn.close()

    def add_toxic(self, toxic: Toxic) -> None:
        """Append a stage; the previous last stage now hands its output to it."""
        stage = Stage(toxic, self.sink, self)
        if self.stages:
            self.stages[-1].output = stage.input
        else:
            self.entry = stage.input
        self.stages.append(stage)
        stage.start()

    def _stage_of(self, toxic: Toxic) -> Stage | None:
        for stage in self.stages:
            if stage.toxic is toxic:
                return stage
        return None

    async def remove_toxic(self, toxic: Toxic) -> None:
        stage = self._stage_of(toxic)
        if stage is None:
            return
        await stage.stop()
        # From here to the end nothing awaits, so no item can slip past the re-wiring.
        leftovers = stage.input.take_all()
        if stage.active and toxic.kind.closes_when_removed:
            for item in leftovers:
                if isinstance(item, Chunk):
                    self.release(len(item.data))
            stage.output.put(CLOSE)
        else:
            for item in leftovers:
                stage.output.put(item)
        index = self.stages.index(stage)
        if index == 0:
            self.entry = stage.output
        else:
            self.stages[index - 1].output = stage.output
        del self.stages[index]

    async def restart_toxic(self, toxic: Toxic) -> None:
        """An updated toxic restarts, with a new toxicity roll, as in Toxiproxy."""
        stage = self._stage_of(toxic)
        if stage is None or self.conn.closed:
            return
        if await stage.stop() and not self.conn.closed:
            stage.start()

    def cancel(self) -> None:
        for stage in self.stages:
            stage.cancel()


class Connection:
    """One accepted client, its upstream connection and the two links between them."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.client = _Side(self, "client")
        self.upstream = _Side(self, "upstream")
        self.links: dict[Direction, Link] = {}
        self.closed = False
        self._connecting: asyncio.Task[None] | None = None

    def side_made(self, side: _Side) -> None:
        if side is not self.client:
            return
        if not self.proxy.enabled:
            self.close(abort=True)
            return
        self.proxy.connections.add(self)
        self._connecting = asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        upstream = self.proxy.upstream
        try:
            host, port = split_host_port(upstream)
            await asyncio.get_running_loop().create_connection(lambda: self.upstream, host, port)
        except (OSError, ValueError) as exc:
            # Toxiproxy closes the client when it cannot dial the upstream.
            log.warning(
                "upstream_unreachable", proxy=self.proxy.name, upstream=upstream, error=str(exc)
            )
            self.close()
            return
        if self.closed:
            assert self.upstream.transport is not None
            self.upstream.transport.abort()
            return
        toxics = self.proxy.toxics
        self.links[Direction.UPSTREAM] = Link(
            self, Direction.UPSTREAM, self.client, self.upstream, toxics[Direction.UPSTREAM]
        )
        self.links[Direction.DOWNSTREAM] = Link(
            self, Direction.DOWNSTREAM, self.upstream, self.client, toxics[Direction.DOWNSTREAM]
        )
        self.client.resume("connecting")
        self.upstream.resume("connecting")

    def side_lost(self, side: _Side) -> None:
        if self.closed:
            return
        if not self.links:
            self.close()
            return
        if side.writer is not None:
            side.writer.finished = True  # its sink now drops what is still in its toxics
        if side.reader is not None:
            # What was already read still goes through the toxics, then a half-close.
            side.reader.feed_eof()
        self.link_finished()

    def link_finished(self) -> None:
        if all(link.finished for link in self.links.values()):
            self.close()

    def close(self, reset: bool = False, abort: bool = False) -> None:
        """End the connection: gracefully (flush, FIN), `abort` (now) or `reset` (RST)."""
        if self.closed:
            return
        self.closed = True
        self.proxy.connections.discard(self)
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
        for link in self.links.values():
            link.cancel()
        for side in (self.client, self.upstream):
            transport = side.transport
            if transport is None:
                continue
            if reset:
                _set_linger_zero(transport)
                transport.abort()
            elif abort:
                transport.abort()
            elif not transport.is_closing():
                transport.close()


class Proxy:
    """A named listener that forwards every connection to one upstream address."""

    def __init__(self, name: str, listen: str, upstream: str) -> None:
        self.name = name
        self.listen = listen
        self.upstream = upstream
        self.enabled = False
        self.toxics: dict[Direction, list[Toxic]] = {
            Direction.UPSTREAM: [],
            Direction.DOWNSTREAM: [],
        }
        self.connections: set[Connection] = set()
        self._server: asyncio.Server | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "toxics": [toxic.to_json() for toxic in self.all_toxics()],
        }

    def all_toxics(self) -> list[Toxic]:
        # Toxiproxy lists the upstream chain first, each chain in the order added.
        return self.toxics[Direction.UPSTREAM] + self.toxics[Direction.DOWNSTREAM]

    def find_toxic(self, name: str) -> Toxic | None:
        for toxic in self.all_toxics():
            if toxic.name == name:
                return toxic
        return None

    async def start(self) -> None:
        """Listen; a `listen` with port 0 becomes the real address. No-op if running."""
        if self.enabled:
            return
        host, port = await resolve_listen(self.listen)
        loop = asyncio.get_running_loop()
        try:
            server = await loop.create_server(
                lambda: Connection(self).client, host, port, reuse_address=True
            )
        except OSError as exc:
            reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
            raise ApiError.listen_failed(
                f"listen tcp {join_host_port(host, port)}: bind: {reason}"
            ) from exc
        bound = server.sockets[0].getsockname()
        self._server = server
        self.listen = join_host_port(str(bound[0]), int(bound[1]))
        self.enabled = True
        log.info("proxy_started", proxy=self.name, listen=self.listen, upstream=self.upstream)

    def stop(self) -> None:
        """Close the listener (new connections are refused) and drop open connections."""
        if not self.enabled:
            return
        self.enabled = False
        if self._server is not None:
            self._server.close()
            self._server = None
        for conn in list(self.connections):
            conn.close(abort=True)
        log.info("proxy_stopped", proxy=self.name, listen=self.listen)

    async def differs(self, listen: str, upstream: str) -> bool:
        """Whether new settings need a restart; listen is compared once resolved."""
        host, port = await resolve_listen(listen)
        return self.listen != join_host_port(host, port) or self.upstream != upstream

    async def update(self, listen: str, upstream: str, enabled: bool) -> None:
        """Toxiproxy's Proxy.Update: restart on a new address, then apply `enabled`."""
        if await self.differs(listen, upstream):
            self.stop()
            self.listen = listen
            self.upstream = upstream
        if enabled != self.enabled:
            if enabled:
                await self.start()
            else:
                self.stop()

    def add_toxic(self, toxic: Toxic) -> None:
        self.toxics[toxic.direction].append(toxic)
        for conn in self.connections:
            link = conn.links.get(toxic.direction)
            if link is not None:
                link.add_toxic(toxic)

    async def remove_toxic(self, toxic: Toxic) -> None:
        self.toxics[toxic.direction].remove(toxic)
        links = [conn.links[toxic.direction] for conn in self.connections if conn.links]
        await asyncio.gather(*(link.remove_toxic(toxic) for link in links))

    async def restart_toxic(self, toxic: Toxic) -> None:
        links = [conn.links[toxic.direction] for conn in self.connections if conn.links]
        await asyncio.gather(*(link.restart_toxic(toxic) for link in links))

    async def remove_all_toxics(self) -> None:
        for toxic in self.all_toxics():
            await self.remove_toxic(toxic)
