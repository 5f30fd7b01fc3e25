"""Change feed, event half: Event Grid deliveries turned into items a pair syncs soon.

Events only make replication faster (polling and reconciliation make it correct), and
anyone who can reach the webhook can write one, so nothing here trusts an event beyond
what it costs to look: an event names an item, never a value, and whatever it names is
read from the primary like a poll would.

- `parse_delivery()` reads one POSTed body (Event Grid or CloudEvents schema): the
  subscription validation handshake, or the Key Vault `...NewVersionCreated` events in
  it. A name that Key Vault could not hold (1-127 letters, digits and hyphens) is
  dropped here, before anything is queued or marked pending: the vault would only
  answer 400, and the pending mark would never clear.
- `ChangeFeed.deliver()` routes each event to the pairs of this daemon whose primary it
  came from. Per primary vault an `EventBudget` lets events spend at most a configured
  share of the vault's read budget (`vault/rate.py` counts that budget the way Key
  Vault does: requests in any 10 s window). An event over the budget, for an item
  already queued, or beyond the pair's bounded `EventQueue` is dropped and counted
  in `kvdr_events_dropped_total{reason}`; the next poll finds its change anyway.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

from replicator import metrics
from replicator.settings import PairSettings
from vault.models import ItemKind, ItemRef
from vault.rate import WINDOW_SECONDS, WindowBudget

VALIDATION_EVENT = "Microsoft.EventGrid.SubscriptionValidationEvent"
KEYVAULT_EVENT_PREFIX = "Microsoft.KeyVault."
NEW_VERSION_SUFFIX = "NewVersionCreated"
# Event Grid delivers at most 5,000 events in one batch.
MAX_BATCH_EVENTS = 5000
# Key Vault object names: 1-127 characters of letters, digits and hyphens.
ITEM_NAME = re.compile(r"[0-9A-Za-z-]{1,127}")
OBJECT_KINDS = {
    "secret": ItemKind.SECRET,
    "key": ItemKind.KEY,
    "certificate": ItemKind.CERTIFICATE,
}
# What one event costs the primary, at most, on the event path of an item already
# mirrored or with one new version: its version listing and one read of that version.
EVENT_READ_COST = 2

# Reasons of kvdr_events_dropped_total (a fixed set: the label stays bounded).
INVALID_EVENT = "invalid_event"
INVALID_NAME = "invalid_name"
DUPLICATE = "duplicate"
QUEUE_FULL = "queue_full"
RATE_LIMITED = "rate_limited"
DROP_REASONS = (INVALID_EVENT, INVALID_NAME, DUPLICATE, QUEUE_FULL, RATE_LIMITED)


class DeliveryError(ValueError):
    """A body that is not an Event Grid delivery (the webhook answers 400)."""


@dataclass(frozen=True)
class VaultEvent:
    """One Key Vault new-version event: which item of which vault changed."""

    kind: ItemKind
    name: str
    # The vault's name as the event gives it (`VaultName`, lower case).
    vault: str
    # The version's id URL (`https://<vault>/secrets/<name>/<version>`), or "".
    item_id: str = ""

    @property
    def ref(self) -> ItemRef:
        return ItemRef(self.kind, self.name)


@dataclass
class Delivery:
    """What one POST held: the handshake's code, or the events worth routing."""

    validation_code: str | None = None
    events: list[VaultEvent] = field(default_factory=list)
    # Events refused while parsing, by reason (already counted in the metric).
    dropped: Counter[str] = field(default_factory=Counter)


def valid_item_name(name: object) -> bool:
    """True when `name` is a name Key Vault can hold."""
    return isinstance(name, str) and ITEM_NAME.fullmatch(name) is not None


def parse_delivery(body: object) -> Delivery:
    """One webhook body (an event or an array of them), read without trusting it."""
    batch = body if isinstance(body, list) else [body]
    if len(batch) > MAX_BATCH_EVENTS:
        raise DeliveryError(f"a delivery holds at most {MAX_BATCH_EVENTS} events")
    delivery = Delivery()
    for event in batch:
        if not isinstance(event, dict):
            raise DeliveryError("each event must be a JSON object")
        event_type = event.get("eventType", event.get("type"))
        raw = event.get("data")
        data = raw if isinstance(raw, dict) else {}
        if event_type == VALIDATION_EVENT:
            code = data.get("validationCode")
            if not isinstance(code, str) or not code:
                raise DeliveryError("the validation event carries no validationCode")
            # The handshake comes alone; answer it and look no further.
            return Delivery(validation_code=code)
        if not isinstance(event_type, str) or not event_type.startswith(KEYVAULT_EVENT_PREFIX):
            continue
        if not event_type.endswith(NEW_VERSION_SUFFIX):
            continue  # NearExpiry / Expired: nothing to copy
        parsed = _vault_event(data)
        if isinstance(parsed, str):
            delivery.dropped[parsed] += 1
        else:
            delivery.events.append(parsed)
    for reason, count in delivery.dropped.items():
        metrics.EVENTS_DROPPED.labels(reason).inc(count)
    return delivery


def _vault_event(data: Mapping[str, object]) -> VaultEvent | str:
    """The event in `data`, or the reason it is dropped."""
    kind = OBJECT_KINDS.get(str(data.get("ObjectType", "")).lower())
    vault = data.get("VaultName")
    item_id = data.get("Id", "")
    if kind is None or not isinstance(vault, str) or not isinstance(item_id, str):
        return INVALID_EVENT
    name = data.get("ObjectName")
    if not valid_item_name(name):
        return INVALID_NAME
    assert isinstance(name, str)
    return VaultEvent(kind=kind, name=name, vault=vault.lower(), item_id=item_id)


def vault_name(url: str) -> str:
    """Key Vault's name for a vault URL: the first DNS label (`contoso` of
    `https://contoso.vault.azure.net`)."""
    return (urlsplit(url).hostname or "").split(".")[0].lower()


def came_from(event: VaultEvent, pair: PairSettings) -> bool:
    """True when `event` is about the pair's primary: by vault name (first DNS label of
    its URL, or its region name for the local stack) or by the version's URL."""
    primary = pair.primary
    if event.vault in (vault_name(primary.url), primary.region.lower()):
        return True
    return bool(event.item_id) and event.item_id.startswith(primary.url + "/")


class EventQueue:
    """One pair's items announced by events and not yet taken: bounded, one entry per
    item (a second event for a queued item changes nothing)."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"event queue limit must be at least 1, got {limit}")
        self.limit = limit
        self._items: dict[ItemRef, float] = {}
        self._ready = asyncio.Event()

    def __contains__(self, ref: ItemRef) -> bool:
        return ref in self._items

    def __len__(self) -> int:
        return len(self._items)

    @property
    def full(self) -> bool:
        return len(self._items) >= self.limit

    def put(self, ref: ItemRef, at: float) -> bool:
        """Queue `ref` (announced at `at`); False when it was queued already or the
        queue is full."""
        if ref in self._items or self.full:
            return False
        self._items[ref] = at
        self._ready.set()
        return True

    def take_all(self) -> dict[ItemRef, float]:
        """Everything queued, oldest first; the queue is empty afterwards."""
        items, self._items = self._items, {}
        self._ready.clear()
        return items

    async def wait(self, stop: asyncio.Event, seconds: float) -> None:
        """Until something is queued, `stop` is set or `seconds` pass."""
        if self._items or stop.is_set():
            return
        waits = {asyncio.ensure_future(self._ready.wait()), asyncio.ensure_future(stop.wait())}
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()


class EventBudget:
    """Per primary vault, the events that may start work: at most `share` of the
    vault's read budget (`other_ops_per_10s`) in any 10 s window, at
    `EVENT_READ_COST` requests per event."""

    def __init__(
        self,
        other_ops_per_10s: int,
        share: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0.0 < share <= 1.0:
            raise ValueError(f"event read share must be in (0, 1], got {share}")
        self.per_window = max(1, int(other_ops_per_10s * share) // EVENT_READ_COST)
        self._clock = clock
        # One per configured primary vault (only routed events spend): bounded.
        self._windows: dict[str, WindowBudget] = {}

    def take(self, vault_url: str) -> bool:
        """Spend one event of `vault_url`'s share now; False when it is spent."""
        window = self._windows.get(vault_url)
        if window is None:
            window = self._windows[vault_url] = WindowBudget(self.per_window, WINDOW_SECONDS)
        now = self._clock()
        if window.used(now) >= window.limit:
            return False
        window.reserve(now)
        return True


class EventTarget(Protocol):
    """What the feed needs of a pair's replicator."""

    pair: PairSettings
    events: EventQueue

    def wants(self, ref: ItemRef) -> bool:
        """True when the pair replicates this item (its kinds and name filters)."""
        ...

    def notify(self, kind: ItemKind, name: str, version: str | None = None) -> bool:
        """Queue the item and mark it pending; False when it was not queued."""
        ...


class ChangeFeed:
    """Routes parsed events to the pairs running here, within each primary's budget."""

    def __init__(self, budget: EventBudget) -> None:
        self._budget = budget

    def deliver(self, events: Sequence[VaultEvent], pairs: Iterable[EventTarget]) -> int:
        """Hand each event to the pairs whose primary it came from; how many of the
        events a pair queued. Drops are counted by reason, unrouted events as unmatched."""
        running = list(pairs)
        queued = 0
        dropped: Counter[str] = Counter()
        for event in events:
            routed = [p for p in running if came_from(event, p.pair) and p.wants(event.ref)]
            if not routed:
                metrics.EVENTS_UNMATCHED.inc()
                continue
            taken = False
            for target in routed:
                reason = self._offer(event.ref, target)
                if reason is None:
                    taken = True
                else:
                    dropped[reason] += 1
            queued += taken
        for reason, count in dropped.items():
            metrics.EVENTS_DROPPED.labels(reason).inc(count)
        return queued

    def _offer(self, ref: ItemRef, target: EventTarget) -> str | None:
        """Queue `ref` on one pair: the drop reason, or None when it was queued. The
        checks that cost nothing come first, so a duplicate spends no budget."""
        if ref in target.events:
            return DUPLICATE
        if target.events.full:
            return QUEUE_FULL
        if not self._budget.take(target.pair.primary.url):
            return RATE_LIMITED
        return None if target.notify(ref.kind, ref.name) else QUEUE_FULL
