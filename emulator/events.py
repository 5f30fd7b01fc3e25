"""Event Grid delivery: Key Vault's change events, posted to each `--events-to` URL.

Each subscriber gets its own queue and worker. Like Event Grid, the worker first
performs the subscription validation handshake (a SubscriptionValidationEvent whose
`validationCode` must come back as `{"validationResponse": code}`) and keeps retrying it
until it succeeds; only then does it deliver events, one at a time in order, retrying
each with exponential backoff until the subscriber accepts it. Handlers call `publish`
after their write is committed; it only enqueues, so a slow or dead subscriber never
delays a vault request. Events are kept in memory: a killed emulator loses undelivered
ones (Event Grid itself only promises at-least-once delivery of what it accepted).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import structlog

from emulator.settings import EmulatorSettings

VALIDATION_EVENT = "Microsoft.EventGrid.SubscriptionValidationEvent"
OBJECT_TYPES = {"secret": "Secret", "key": "Key", "certificate": "Certificate"}
SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
MAX_QUEUED = 10_000
BACKOFF_FIRST_SECONDS = 0.1
BACKOFF_MAX_SECONDS = 10.0
POST_TIMEOUT_SECONDS = 10.0

_log = structlog.get_logger("emulator.events")


def _iso(ts: float) -> str:
    return (
        datetime.datetime.fromtimestamp(ts, datetime.UTC)
        .isoformat(timespec="microseconds")
        .replace("+00:00", "Z")
    )


def full_event_type(event_type: str, kind: str) -> str:
    """`NewVersionCreated` + `secret` -> `Microsoft.KeyVault.SecretNewVersionCreated`."""
    if event_type.startswith("Microsoft."):
        return event_type
    return f"Microsoft.KeyVault.{OBJECT_TYPES[kind]}{event_type}"


@dataclass
class _Subscriber:
    url: str
    queue: asyncio.Queue[list[dict[str, Any]]] = field(
        default_factory=lambda: asyncio.Queue(MAX_QUEUED)
    )
    validated: bool = False
    delivered: int = 0

    @property
    def shown_url(self) -> str:
        """The URL without its query: a webhook's query carries its shared secret."""
        return self.url.split("?", 1)[0]


class EventPublisher:
    """Builds Key Vault events and hands them to per-subscriber delivery workers."""

    def __init__(
        self,
        settings: EmulatorSettings,
        vault_url: Callable[[], str],
        now: Callable[[], float],
    ) -> None:
        self._settings = settings
        self._vault_url = vault_url
        self._now = now
        self._subscribers = [_Subscriber(url) for url in settings.events_to]
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None

    @property
    def topic(self) -> str:
        """The vault's resource id, as Event Grid puts it in `topic`."""
        return (
            f"/subscriptions/{SUBSCRIPTION}/resourceGroups/kvdr-local/providers/"
            f"Microsoft.KeyVault/vaults/{self._settings.vault_name}"
        )

    async def start(self) -> None:
        """Start one delivery worker per subscriber."""
        if not self._subscribers:
            return
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=POST_TIMEOUT_SECONDS)
        )
        for subscriber in self._subscribers:
            self._tasks.append(asyncio.create_task(self._run(subscriber)))

    async def stop(self) -> None:
        """Stop the workers (undelivered events are dropped) and close the HTTP session."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def status(self) -> list[dict[str, Any]]:
        """Per subscriber: validated, queued and delivered counts (for /_emulator/stats)."""
        return [
            {
                "url": s.shown_url,
                "validated": s.validated,
                "queued": s.queue.qsize(),
                "delivered": s.delivered,
            }
            for s in self._subscribers
        ]

    def build_event(
        self,
        event_type: str,
        kind: str,
        name: str,
        version: str,
        *,
        nbf: int | None = None,
        exp: int | None = None,
    ) -> dict[str, Any]:
        """One Event Grid schema event for a Key Vault object version."""
        vault_url = self._vault_url()
        return {
            "id": str(uuid.uuid4()),
            "topic": self.topic,
            "subject": name,
            "eventType": full_event_type(event_type, kind),
            "eventTime": _iso(self._now()),
            "data": {
                "Id": f"{vault_url}/{kind}s/{name}/{version}",
                "VaultName": self._settings.vault_name,
                "ObjectType": OBJECT_TYPES[kind],
                "ObjectName": name,
                "Version": version,
                "NBF": nbf,
                "EXP": exp,
            },
            "dataVersion": "1",
            "metadataVersion": "1",
        }

    def publish(
        self,
        event_type: str,
        kind: str,
        name: str,
        version: str,
        *,
        nbf: int | None = None,
        exp: int | None = None,
    ) -> None:
        """Queue an event for every subscriber; call only after the write is durable."""
        if not self._subscribers:
            return
        event = self.build_event(event_type, kind, name, version, nbf=nbf, exp=exp)
        for subscriber in self._subscribers:
            if subscriber.queue.full():
                dropped = subscriber.queue.get_nowait()
                _log.warning(
                    "events.dropped", subscriber=subscriber.shown_url, event_id=dropped[0]["id"]
                )
            subscriber.queue.put_nowait([event])

    async def _post(
        self, url: str, body: list[dict[str, Any]], kind: str
    ) -> aiohttp.ClientResponse:
        assert self._session is not None
        return await self._session.post(url, json=body, headers={"aeg-event-type": kind})

    async def _validate(self, subscriber: _Subscriber) -> bool:
        code = secrets.token_hex(16)
        body = [
            {
                "id": str(uuid.uuid4()),
                "topic": self.topic,
                "subject": "",
                "eventType": VALIDATION_EVENT,
                "eventTime": _iso(self._now()),
                "data": {"validationCode": code, "validationUrl": None},
                "dataVersion": "2",
                "metadataVersion": "1",
            }
        ]
        try:
            async with await self._post(subscriber.url, body, "SubscriptionValidation") as resp:
                if resp.status != 200:
                    return False
                answer = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return False
        return isinstance(answer, dict) and answer.get("validationResponse") == code

    async def _deliver(self, subscriber: _Subscriber, body: list[dict[str, Any]]) -> bool:
        try:
            async with await self._post(subscriber.url, body, "Notification") as resp:
                return 200 <= resp.status < 300
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def _run(self, subscriber: _Subscriber) -> None:
        backoff = BACKOFF_FIRST_SECONDS
        while not subscriber.validated:
            if await self._validate(subscriber):
                subscriber.validated = True
                _log.info("events.subscriber_validated", subscriber=subscriber.shown_url)
            else:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_SECONDS)
        while True:
            body = await subscriber.queue.get()
            backoff = BACKOFF_FIRST_SECONDS
            while not await self._deliver(subscriber, body):
                _log.info(
                    "events.retry",
                    subscriber=subscriber.shown_url,
                    event_type=body[0]["eventType"],
                    backoff_s=backoff,
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_SECONDS)
            subscriber.delivered += 1
