"""An Event Grid subscriber that records when a vault committed each new version.

A benchmark starts an emulator with `--events-to <sink.url>`; the emulator publishes a
`SecretNewVersionCreated` event right after each write is committed, stamped with its
clock (`eventTime`, microseconds; the emulator's clock is this host's wall clock unless
offset). So the sink learns the moment each version arrived on that vault without
sending the vault a single request: measuring does not load what is measured.

The sink runs its own event loop in a thread, so it keeps answering whatever the main
thread does (a blocking SDK loop, or `asyncio.run()` calls that come and go).
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any

from aiohttp import web

VALIDATION_EVENT = "Microsoft.EventGrid.SubscriptionValidationEvent"
START_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class VaultEvent:
    """One Key Vault event as the sink received it."""

    event_type: str
    name: str
    version: str
    # The vault's own timestamp of the change (Unix seconds).
    event_time: float
    # When the sink received it (Unix seconds), for delivery delay.
    received: float


class EventSink:
    """An HTTP endpoint on 127.0.0.1 (free port) that records Key Vault events."""

    def __init__(self) -> None:
        self._events: list[VaultEvent] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopped: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.port = 0
        self.validated = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/events"

    def events(self) -> list[VaultEvent]:
        """Every event received so far, in arrival order."""
        with self._lock:
            return list(self._events)

    def __enter__(self) -> EventSink:
        self._thread = threading.Thread(target=self._serve, name="event-sink", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_SECONDS):
            raise RuntimeError("event sink did not start")
        if self._error is not None:
            raise RuntimeError(f"event sink failed to start: {self._error!r}")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(START_TIMEOUT_SECONDS)

    def _serve(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        app = web.Application()
        app.router.add_post("/events", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        for address in runner.addresses:
            if isinstance(address, tuple):
                self.port = int(address[1])
        self._ready.set()
        try:
            await self._stopped.wait()
        finally:
            await runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        received = datetime.now().timestamp()
        body: Any = await request.json()
        batch = body if isinstance(body, list) else [body]
        recorded: list[VaultEvent] = []
        for event in batch:
            event_type = str(event.get("eventType", ""))
            data = event.get("data") or {}
            if event_type == VALIDATION_EVENT:
                self.validated.set()
                return web.json_response({"validationResponse": data.get("validationCode")})
            recorded.append(
                VaultEvent(
                    event_type=event_type,
                    name=str(data.get("ObjectName", "")),
                    version=str(data.get("Version", "")),
                    event_time=datetime.fromisoformat(str(event["eventTime"])).timestamp(),
                    received=received,
                )
            )
        with self._lock:
            self._events.extend(recorded)
        return web.Response(status=200)
