"""One listing of each target per full pass, as proof of what the targets already hold.

A full pass compares every item with every target. Item by item that is one version
listing per item per target, even when nothing changed. Secrets kvdr wrote carry its
`kvdr-source-version` tag, and a listing shows each item's latest version with its tags:
one paged listing per kind per target proves most items in sync at once
(`replicator.plan.listed_in_sync`); only the rest take the per-item path.

A listing is a view from the start of the pass. It is only used to leave an item alone,
never to write: anything it does not prove in sync is read again item by item, so a
target that changes meanwhile is at worst looked at again on the next pass.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping

import structlog

from replicator.accounting import TargetState, ref_key
from replicator.mirror import ListedItem
from vault.client import VaultItems
from vault.errors import VaultError
from vault.models import ItemKind, ItemProperties, ItemRef

log = structlog.get_logger("kvdr.replicator")


class TargetListings:
    """The items of each listed target, by region (a target whose listing failed is
    absent, so its items take the per-item path)."""

    def __init__(self, by_region: Mapping[str, Mapping[ItemRef, ItemProperties]]) -> None:
        self._by_region = by_region

    @property
    def regions(self) -> list[str]:
        return sorted(self._by_region)

    @classmethod
    async def take(
        cls,
        pair: str,
        targets: Mapping[str, VaultItems],
        kinds: Iterable[ItemKind],
        timeout_seconds: float,
    ) -> TargetListings:
        """List `kinds` on each of `targets` concurrently, each within the timeout (a
        dead target must not stall the pass; its items report their own errors)."""
        wanted = sorted(kinds)

        async def one(region: str, client: VaultItems) -> dict[ItemRef, ItemProperties] | None:
            items: dict[ItemRef, ItemProperties] = {}
            try:
                async with asyncio.timeout(timeout_seconds):
                    for kind in wanted:
                        for props in await client.list_items(kind):
                            items[props.ref] = props
            except (VaultError, TimeoutError) as exc:
                reason = exc.reason if isinstance(exc, VaultError) else "timeout"
                log.warning("target.listing_failed", pair=pair, target=region, reason=reason)
                return None
            return items

        if not wanted:
            return cls({})
        regions = list(targets)
        found = await asyncio.gather(*(one(r, targets[r]) for r in regions))
        return cls({r: items for r, items in zip(regions, found, strict=True) if items is not None})

    def for_item(self, ref: ItemRef, states: Mapping[str, TargetState]) -> dict[str, ListedItem]:
        """What each listed target shows of `ref`, with the history its checkpoint holds."""
        key = ref_key(ref)
        listed = {}
        for region, items in self._by_region.items():
            entry = states[region].checkpoint.items.get(key)
            live = entry is not None and entry.deleted_at is None
            history = entry.history if entry is not None and live else None
            listed[region] = ListedItem(latest=items.get(ref), history=history)
        return listed
