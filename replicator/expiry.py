"""The expiry watch: items of a pair that expire soon, in any of its regions.

An expiring credential breaks its application in whichever region serves it, so the
watch lists the pair's items on the primary and on every secondary (a target copy can
diverge, or an item can exist on a secondary only) and keeps those whose current version
is enabled and expires within the pair's horizon (default 30 days), already expired
ones included. They are listed in status and on the dashboard and exported as
`kvdr_item_expiry_timestamp_seconds{pair,region,kind}`.

One series per (pair, region, kind) keeps the metric's cardinality independent of the
vault's size; its value is the EARLIEST expiry among that group's items, which is what
an alert needs ("something in westus's secrets expires in 3 days"); status names them.
A group with nothing within the horizon has no series.

Listings carry the current version's attributes only; an older version's expiry is not
watched (applications read the current version). Certificate-backed keys and secrets
are left out: their certificate is listed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog

from replicator import metrics
from replicator.guard import hidden_name
from replicator.settings import PairSettings
from vault.client import VaultItems
from vault.errors import VaultError
from vault.models import ItemKind, ItemProperties

log = structlog.get_logger("kvdr.expiry")

# Status lists at most this many items (soonest first); the metric covers them all.
STATUS_ITEMS = 200


@dataclass(frozen=True)
class ExpiringItem:
    """One item whose current version expires within the horizon, in one region."""

    region: str
    kind: ItemKind
    name: str
    expires_on: datetime

    def view(self, now: float, hide_names: bool) -> dict[str, Any]:
        seconds = self.expires_on.timestamp() - now
        return {
            "region": self.region,
            "kind": self.kind.value,
            "name": hidden_name(self.name) if hide_names else self.name,
            "expires_on": self.expires_on.isoformat(),
            "days_left": round(seconds / 86400, 1),
            "expired": seconds <= 0,
        }


def expiring_items(
    listings: Mapping[str, Iterable[ItemProperties]],
    now: float,
    horizon_seconds: float,
    selects: Callable[[ItemProperties], bool] = lambda _: True,
) -> list[ExpiringItem]:
    """Items of each region's listing that expire by `now + horizon_seconds` (pure),
    soonest first."""
    found = [
        ExpiringItem(region, props.kind, props.name, props.expires_on)
        for region, listing in listings.items()
        for props in listing
        if props.expires_on is not None
        and props.enabled
        and not props.managed
        and selects(props)
        and props.expires_on.timestamp() <= now + horizon_seconds
    ]
    return sorted(found, key=lambda i: (i.expires_on, i.region, i.kind.value, i.name))


def earliest_by_group(items: Iterable[ExpiringItem]) -> dict[tuple[str, ItemKind], float]:
    """(region, kind) -> the earliest expiry among its items, epoch seconds (pure)."""
    earliest: dict[tuple[str, ItemKind], float] = {}
    for item in items:
        key = (item.region, item.kind)
        at = item.expires_on.timestamp()
        earliest[key] = min(at, earliest.get(key, at))
    return earliest


class ExpiryWatch:
    """The expiring items of one pair, refreshed by each deletion sweep."""

    def __init__(
        self,
        pair: PairSettings,
        targets: Mapping[str, VaultItems],
        horizon_seconds: float,
        clock: Callable[[], float] = time.time,
        timeout_seconds: float = 15.0,
    ) -> None:
        self._pair = pair
        self._targets = targets
        self.horizon_seconds = horizon_seconds
        self._timeout = timeout_seconds
        self._clock = clock
        self._listings: dict[str, list[ItemProperties]] = {}
        self.items: list[ExpiringItem] = []
        # Regions whose last listing failed (their previous items are kept meanwhile).
        self.errors: dict[str, str] = {}
        self._series: set[tuple[str, str]] = set()
        self._log = log.bind(pair=pair.name)

    def _selects(self, props: ItemProperties) -> bool:
        return props.kind in self._pair.kinds and self._pair.selects(props.name)

    async def refresh(
        self, source_listing: list[ItemProperties], skip: Collection[str] = ()
    ) -> None:
        """Take the primary's listing as given; list every secondary but those in
        `skip` (suspended: unreachable a moment ago), whose last listing is kept."""
        self._listings[self._pair.primary.region] = source_listing
        self.errors.pop(self._pair.primary.region, None)

        async def list_region(region: str, client: VaultItems) -> None:
            # Concurrently and bounded in time: a dead region must not hold the pair's
            # loop (and with it every other target) for the adapter's whole retry budget.
            try:
                listing: list[ItemProperties] = []
                async with asyncio.timeout(self._timeout):
                    for kind in sorted(self._pair.kinds):
                        listing += await client.list_items(kind)
            except (VaultError, TimeoutError) as exc:
                reason = exc.reason if isinstance(exc, VaultError) else "timeout"
                self.errors[region] = str(exc) or f"no listing within {self._timeout:.0f} s"
                self._log.warning("expiry.listing_failed", target=region, reason=reason)
                return
            self._listings[region] = listing
            self.errors.pop(region, None)

        await asyncio.gather(
            *(list_region(r, c) for r, c in self._targets.items() if r not in skip)
        )
        self.items = expiring_items(
            self._listings, self._clock(), self.horizon_seconds, self._selects
        )

    def status(self) -> list[dict[str, Any]]:
        now = self._clock()
        return [i.view(now, self._pair.hide_names) for i in self.items[:STATUS_ITEMS]]

    def publish_metrics(self) -> None:
        """One series per (region, kind) with something expiring; stale series removed."""
        earliest = earliest_by_group(self.items)
        series = {(region, kind.value) for region, kind in earliest}
        for region, kind in self._series - series:
            metrics.ITEM_EXPIRY_TIMESTAMP.remove(self._pair.name, region, kind)
        for (region, kind), at in earliest.items():
            metrics.ITEM_EXPIRY_TIMESTAMP.labels(self._pair.name, region, kind.value).set(at)
        self._series = series

    def forget_metrics(self) -> None:
        for region, kind in self._series:
            metrics.ITEM_EXPIRY_TIMESTAMP.remove(self._pair.name, region, kind)
        self._series = set()


def horizon_days(seconds: float) -> float:
    return round(seconds / 86400, 3)
