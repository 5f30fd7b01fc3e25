"""Feeding a journal the way the replicator does (replicator/sink.py): ask `recorded()`,
compute the difference against the primary's versions with `changes_for_sink`, fill in
the material (secret values, key and certificate backups) and `record()` it.

The tests drive the journal through this helper against a real emulator, so they do not
depend on when the replicator's sink wiring lands; the calls are the same.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime

from backups.journal import Journal
from replicator.sink import changes_for_sink, version_fingerprint
from vault.client import VaultClient
from vault.errors import ItemNotFound
from vault.models import Change, ChangeOp, ItemKind, ItemRef

__all__ = ["record_deleted", "record_item", "record_items", "version_fingerprint"]


async def record_item(
    journal: Journal,
    pair: str,
    vault: VaultClient,
    item: ItemRef,
    observed_at: datetime | None = None,
) -> list[Change]:
    """Record what the journal lacks of `item` on `vault`; returns the changes recorded."""
    at = observed_at or datetime.now(UTC)
    recorded = await journal.recorded(pair, item)
    try:
        versions = await vault.list_versions(item.kind, item.name)
    except ItemNotFound:
        versions = []
    if not versions:
        return await record_deleted(journal, pair, item, at) if recorded else []
    changes = changes_for_sink(pair, item, versions, recorded, at)
    backup: bytes | None = None
    filled: list[Change] = []
    for change in changes:
        payload: str | bytes | None = None
        if change.op is ChangeOp.NEW_VERSION and change.properties is not None:
            if item.kind is ItemKind.SECRET:
                if change.properties.enabled:
                    payload = (await vault.get_secret(item.name, change.properties.version)).value
            else:
                if backup is None:
                    backup = await vault.backup_item(item.kind, item.name)
                payload = backup
        filled.append(dataclasses.replace(change, payload=payload))
    if filled:
        await journal.record(filled)
    return filled


async def record_items(
    journal: Journal,
    pair: str,
    vault: VaultClient,
    items: Sequence[ItemRef],
    observed_at: datetime | None = None,
) -> list[Change]:
    out: list[Change] = []
    for item in items:
        out += await record_item(journal, pair, vault, item, observed_at)
    return out


async def record_deleted(
    journal: Journal, pair: str, item: ItemRef, observed_at: datetime | None = None
) -> list[Change]:
    change = Change(
        pair=pair, item=item, op=ChangeOp.DELETE, observed_at=observed_at or datetime.now(UTC)
    )
    await journal.record([change])
    return [change]
