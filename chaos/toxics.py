"""Toxics: their definitions, their JSON, and what each one does to a link.

The types, attributes, defaults and effects follow Toxiproxy 2.x (its README and
`toxics/*.go`): latency, bandwidth, slow_close, timeout, reset_peer, slicer,
limit_data and noop. Each toxic on each link of a connection runs as one `Stage`
task that takes items from its input channel and puts them to its output; a toxic
that keeps an item while it waits records it in `Stage.held`, so that interrupting
the stage (toxic updated or removed on a live connection) loses no data.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from chaos.errors import ApiError
from chaos.stream import (
    CLOSE,
    RESET,
    Channel,
    Chunk,
    Direction,
    Item,
    Outlet,
    parse_direction,
)

log = structlog.get_logger("chaos.toxics")

# Toxic attributes are Go int64 fields in Toxiproxy; JSON outside this range is rejected.
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1

# Toxicity rolls and jitter are test randomness, not security: the module's PRNG is fine.
_rng = random.Random()


class StageOwner(Protocol):
    """The link a stage belongs to: it accounts bytes and handles a crashed toxic."""

    def release(self, nbytes: int) -> None: ...

    def stage_failed(self, stage: Stage, exc: BaseException) -> None: ...


PipeFn = Callable[["Stage"], Awaitable[None]]


@dataclass(frozen=True)
class ToxicType:
    """One kind of toxic: its attribute names (all integers) and its behaviour."""

    name: str
    attributes: tuple[str, ...]
    pipe: PipeFn
    # Toxiproxy's timeout toxic closes the connection when it is removed (its Cleanup).
    closes_when_removed: bool = False


@dataclass(eq=False)
class Toxic:
    """A toxic configured on a proxy; every connection's link runs one stage of it."""

    name: str
    kind: ToxicType
    stream: str
    direction: Direction
    toxicity: float
    attributes: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "attributes": dict(self.attributes),
            "name": self.name,
            "type": self.kind.name,
            "stream": self.stream,
            "toxicity": self.toxicity,
        }


class Stage:
    """One toxic running on one link: Toxiproxy's ToxicStub.

    Whether the toxic applies is rolled against `toxicity` each time the stage starts
    (when the connection opens, when the toxic is added to it, and when it is updated),
    as Toxiproxy does; a stage that rolled "no" passes data through untouched.
    """

    def __init__(self, toxic: Toxic, output: Outlet, owner: StageOwner) -> None:
        self.toxic = toxic
        self.input = Channel()
        self.output: Outlet = output
        self.owner = owner
        self.active = False
        # Per-connection state that survives restarts (limit_data's byte count).
        self.state: dict[str, int] = {}
        # The item the toxic is working on; `held_from` bytes of it were already sent.
        self.held: Item | None = None
        self.held_from = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.active = _rng.random() < self.toxic.toxicity
        self._task = asyncio.get_running_loop().create_task(self._run())
        self._task.add_done_callback(self._on_done)

    async def stop(self) -> bool:
        """Interrupt the toxic; whatever it held goes back to the front of its input.

        Returns False when there was nothing to interrupt: the toxic had already ended
        (it passed the end of the stream on, or closed the connection).
        """
        task = self._task
        if task is None or task.done():
            return False
        task.cancel()
        await asyncio.wait([task])
        return True

    def cancel(self) -> None:
        """Drop the stage without waiting: its connection is being torn down."""
        if self._task is not None:
            self._task.cancel()

    def discard(self, nbytes: int) -> None:
        """The toxic dropped bytes on purpose: they no longer count as in flight."""
        self.owner.release(nbytes)

    def hold(self, item: Item, sent: int = 0) -> None:
        self.held = item
        self.held_from = sent

    def release_held(self) -> None:
        self.held = None
        self.held_from = 0

    async def _run(self) -> None:
        try:
            if self.active:
                await self.toxic.kind.pipe(self)
            else:
                await _noop(self)
        except asyncio.CancelledError:
            held = self.held
            if isinstance(held, Chunk) and self.held_from:
                rest = held.data[self.held_from :]
                held = Chunk(rest, held.stamp) if rest else None
            if held is not None:
                self.input.put_front(held)
            self.release_held()
            raise

    def _on_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self.owner.stage_failed(self, exc)


# --- the toxics' behaviour -------------------------------------------------------


async def _noop(stage: Stage) -> None:
    while True:
        item = await stage.input.get()
        stage.output.put(item)
        if not isinstance(item, Chunk):
            return


def _latency_delay(attributes: Mapping[str, int]) -> float:
    delay = float(attributes["latency"])
    jitter = attributes["jitter"]
    if jitter > 0:
        delay += _rng.uniform(-jitter, jitter)
    return delay / 1000.0


async def _latency(stage: Stage) -> None:
    loop = asyncio.get_running_loop()
    while True:
        item = await stage.input.get()
        if not isinstance(item, Chunk):
            stage.output.put(item)
            return
        stage.hold(item)
        # Delay counts from when the bytes were read, so chunks queued behind a slow
        # one are not delayed twice (Toxiproxy: delay - time.Since(c.Timestamp)).
        wait = item.stamp + _latency_delay(stage.toxic.attributes) - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        stage.release_held()
        item.stamp = loop.time()
        stage.output.put(item)


async def _bandwidth(stage: Stage) -> None:
    loop = asyncio.get_running_loop()
    free_at = loop.time()  # when the simulated wire can take the next byte
    while True:
        item = await stage.input.get()
        if not isinstance(item, Chunk):
            stage.output.put(item)
            return
        rate = stage.toxic.attributes["rate"]  # KB/s, KB = 1000 bytes as in Toxiproxy
        if rate <= 0:
            stage.output.put(item)
            continue
        bytes_per_second = rate * 1000.0
        # Pieces of 10 ms worth of bytes keep the pace smooth for large reads.
        piece_size = max(1, rate * 10)
        free_at = max(free_at, loop.time())
        data = item.data
        for start in range(0, len(data), piece_size):
            piece = data[start : start + piece_size]
            stage.hold(item, start)
            free_at += len(piece) / bytes_per_second
            wait = free_at - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            stage.output.put(Chunk(piece, item.stamp))
        stage.release_held()


async def _slow_close(stage: Stage) -> None:
    while True:
        item = await stage.input.get()
        if isinstance(item, Chunk):
            stage.output.put(item)
            continue
        stage.hold(item)
        await asyncio.sleep(max(stage.toxic.attributes["delay"], 0) / 1000.0)
        stage.release_held()
        stage.output.put(item)
        return


async def _timeout(stage: Stage) -> None:
    loop = asyncio.get_running_loop()
    timeout = stage.toxic.attributes["timeout"]
    # 0 holds the connection open for as long as the toxic stays (Toxiproxy semantics).
    deadline = loop.time() + timeout / 1000.0 if timeout > 0 else None
    while True:
        try:
            async with asyncio.timeout_at(deadline):
                item = await stage.input.get()
        except TimeoutError:
            stage.output.put(CLOSE)
            return
        if isinstance(item, Chunk):
            stage.discard(len(item.data))
            continue
        stage.output.put(item)
        return


async def _reset_peer(stage: Stage) -> None:
    # Like Toxiproxy, the countdown starts with the first data (or EOF) to arrive.
    item = await stage.input.get()
    stage.hold(item)
    timeout = stage.toxic.attributes["timeout"]
    if timeout > 0:
        await asyncio.sleep(timeout / 1000.0)
    if isinstance(item, Chunk):
        stage.discard(len(item.data))
    stage.release_held()
    stage.output.put(RESET)


def slice_points(size: int, average: int, variation: int, rng: random.Random) -> list[int]:
    """Offsets that cut `size` bytes into pieces of about `average` +/- `variation`.

    Halves recursively with a random shift, as Toxiproxy's slicer does, so pieces vary
    evenly through the buffer. Unlike Toxiproxy, a zero or negative `average` and a
    `variation` at least as large as it are clamped instead of recursing forever or
    cutting outside the buffer. Returns [0, c1, c2, ..., size].
    """
    average = max(average, 1)
    variation = max(variation, 0)
    bounds = [0]
    pending = [(0, size)]
    while pending:
        start, end = pending.pop()
        length = end - start
        if length - average <= variation or length <= 1:
            if end > bounds[-1]:
                bounds.append(end)
            continue
        middle = start + length // 2
        if variation > 0:
            middle += rng.randrange(-variation, variation)
        middle = min(max(middle, start + 1), end - 1)
        pending.append((middle, end))
        pending.append((start, middle))
    return bounds


async def _slicer(stage: Stage) -> None:
    while True:
        item = await stage.input.get()
        if not isinstance(item, Chunk):
            stage.output.put(item)
            return
        attributes = stage.toxic.attributes
        bounds = slice_points(
            len(item.data), attributes["average_size"], attributes["size_variation"], _rng
        )
        delay = attributes["delay"] / 1_000_000.0  # microseconds
        for index in range(1, len(bounds)):
            stage.output.put(Chunk(item.data[bounds[index - 1] : bounds[index]], item.stamp))
            stage.hold(item, bounds[index])
            if delay > 0:
                await asyncio.sleep(delay)
        stage.release_held()


async def _limit_data(stage: Stage) -> None:
    sent = stage.state.setdefault("sent", 0)
    while True:
        item = await stage.input.get()
        if not isinstance(item, Chunk):
            stage.output.put(item)
            return
        limit = stage.toxic.attributes["bytes"]
        allowed = max(limit - sent, 0)
        data = item.data
        if len(data) > allowed:
            stage.discard(len(data) - allowed)
            data = data[:allowed]
        if data:
            stage.output.put(Chunk(data, item.stamp))
            sent += len(data)
            stage.state["sent"] = sent
        if limit - sent <= 0:
            stage.output.put(CLOSE)
            return


TOXIC_TYPES: dict[str, ToxicType] = {
    kind.name: kind
    for kind in (
        ToxicType("noop", (), _noop),
        ToxicType("latency", ("latency", "jitter"), _latency),
        ToxicType("bandwidth", ("rate",), _bandwidth),
        ToxicType("slow_close", ("delay",), _slow_close),
        ToxicType("timeout", ("timeout",), _timeout, closes_when_removed=True),
        ToxicType("reset_peer", ("timeout",), _reset_peer),
        ToxicType("slicer", ("average_size", "size_variation", "delay"), _slicer),
        ToxicType("limit_data", ("bytes",), _limit_data),
    )
}


# --- JSON in ------------------------------------------------------------------------


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _optional_str(body: Mapping[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None or isinstance(value, str):
        return value
    raise ApiError.bad_request_body(f"field {key!r} must be a string, got {_show(value)}")


def _optional_number(body: Mapping[str, Any], key: str) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ApiError.bad_request_body(f"field {key!r} must be a number, got {_show(value)}")
    return float(value)


def _attributes(kind: ToxicType, raw: object, current: Mapping[str, int]) -> dict[str, int]:
    """Merge JSON attributes over `current`; unknown keys are ignored, as Go's decoder does."""
    merged = {name: current.get(name, 0) for name in kind.attributes}
    if raw is None:
        return merged
    if not isinstance(raw, dict):
        raise ApiError.bad_request_body(f"field 'attributes' must be an object, got {_show(raw)}")
    for name in kind.attributes:
        value = raw.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise ApiError.bad_request_body(
                f"attribute {name!r} of a {kind.name} toxic must be an integer, got {_show(value)}"
            )
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise ApiError.bad_request_body(
                f"attribute {name!r} of a {kind.name} toxic is out of range: {value}"
            )
        merged[name] = value
    return merged


def parse_new_toxic(body: object, name_taken: Callable[[str], bool]) -> Toxic:
    """Build a toxic from a create request, with Toxiproxy's defaults and checks.

    The checks run in Toxiproxy's order (body, stream, type, duplicate name,
    attributes) so a request with several faults gets the same error.
    """
    if not isinstance(body, dict):
        raise ApiError.bad_request_body(f"expected a JSON object, got {_show(body)}")
    name = _optional_str(body, "name") or ""
    type_name = _optional_str(body, "type") or ""
    stream = _optional_str(body, "stream")
    toxicity = _optional_number(body, "toxicity")
    raw_attributes = body.get("attributes")
    if raw_attributes is not None and not isinstance(raw_attributes, dict):
        raise ApiError.bad_request_body(
            f"field 'attributes' must be an object, got {_show(raw_attributes)}"
        )
    if stream is None:
        stream = "downstream"
    direction = parse_direction(stream)
    if direction is None:
        raise ApiError.invalid_stream()
    if not name:
        name = f"{type_name}_{stream}"
    kind = TOXIC_TYPES.get(type_name)
    if kind is None:
        raise ApiError.invalid_toxic_type()
    if name_taken(name):
        raise ApiError.toxic_exists()
    return Toxic(
        name=name,
        kind=kind,
        stream=stream,
        direction=direction,
        toxicity=1.0 if toxicity is None else toxicity,
        attributes=_attributes(kind, raw_attributes, {}),
    )


def apply_toxic_update(toxic: Toxic, body: object) -> None:
    """Apply an update request: only `attributes` (merged) and `toxicity` change.

    Validated whole before anything changes, so a rejected update leaves the toxic as
    it was.
    """
    if not isinstance(body, dict):
        raise ApiError.bad_request_body(f"expected a JSON object, got {_show(body)}")
    toxicity = _optional_number(body, "toxicity")
    attributes = _attributes(toxic.kind, body.get("attributes"), toxic.attributes)
    toxic.attributes = attributes
    if toxicity is not None:
        toxic.toxicity = toxicity
