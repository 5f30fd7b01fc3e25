"""What flows through a link: chunks, end markers, and the channels between toxic stages.

A link (one direction of one proxied connection) is a chain of stages, one per toxic,
like Toxiproxy's chain of toxic stubs. Stages hand items to each other through
`Channel`s; the last stage hands them to the link's sink, which writes to the socket.
Every hand-off is a synchronous `put`, so the chain can be re-wired (a toxic added or
removed on a live connection) between two events of the loop without losing or
reordering data. Backpressure is not done per channel but per link, by bytes in
flight (see `chaos.proxy.Link`).
"""

from __future__ import annotations

import asyncio
import enum
from collections import deque
from dataclasses import dataclass
from typing import Protocol


class Direction(enum.Enum):
    """Which way data flows: upstream is client -> server, downstream server -> client."""

    UPSTREAM = "upstream"
    DOWNSTREAM = "downstream"


def parse_direction(value: str) -> Direction | None:
    """Toxiproxy accepts the stream name in any letter case."""
    try:
        return Direction(value.lower())
    except ValueError:
        return None


@dataclass(slots=True)
class Chunk:
    """Bytes read from the source socket, stamped with the loop time they arrived."""

    data: bytes
    stamp: float


@dataclass(frozen=True, slots=True)
class End:
    """The source closed its side gracefully (EOF); passed on as a half-close."""


@dataclass(frozen=True, slots=True)
class Close:
    """A toxic ends the whole connection; with `reset` it is aborted with a TCP RST."""

    reset: bool = False


END = End()
CLOSE = Close()
RESET = Close(reset=True)

Item = Chunk | End | Close


class Outlet(Protocol):
    """Anything a stage can hand an item to: the next stage's channel or the sink."""

    def put(self, item: Item) -> None: ...


class Channel:
    """An unbounded single-consumer queue whose `put` never blocks.

    Puts are synchronous so that re-wiring a chain is atomic; the link bounds the bytes
    in flight instead. `get` is cancellation-safe: an item is only taken off the queue
    in the same step that returns it.
    """

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: deque[Item] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: Item) -> None:
        self._items.append(item)
        self._wake()

    def put_front(self, item: Item) -> None:
        """Give back an item a stage held when it was interrupted: it is the oldest."""
        self._items.appendleft(item)
        self._wake()

    async def get(self) -> Item:
        while not self._items:
            waiter = asyncio.get_running_loop().create_future()
            self._waiter = waiter
            try:
                await waiter
            finally:
                self._waiter = None
        return self._items.popleft()

    def take_all(self) -> list[Item]:
        items = list(self._items)
        self._items.clear()
        return items

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
