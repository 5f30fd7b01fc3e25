"""Soft delete: what deleting, recovering and purging mean for every object kind.

A deleted object keeps all its versions under `/deleted<kind>s/<name>` for the vault's
retention period, and its name stays taken until it is recovered or purged; purge
protection refuses the purge and leaves it to the retention period.

Secrets and keys go through `delete`, `recover` and `purge` here. A certificate carries
its managed key and secret along in one transaction, so `emulator.certificates` builds
its own from `deleted_or_404` and `refuse_purge_protected`.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from emulator.errors import deleted_not_found, forbidden_by_policy
from emulator.objects import live_version, object_url, refuse_managed
from emulator.state import VaultState
from emulator.store import DeletedObject, StoredVersion


def deleted_fields(
    state: VaultState, request: web.Request | None, deleted: DeletedObject
) -> dict[str, Any]:
    """What a Deleted...Bundle or Deleted...Item adds to the live object's body."""
    return {
        "recoveryId": object_url(state, request, deleted.recovery_path),
        "deletedDate": deleted.deleted_date,
        "scheduledPurgeDate": deleted.scheduled_purge_date,
    }


def deleted_or_404(state: VaultState, kind: str, name: str) -> DeletedObject:
    """The soft-deleted object under a name, or 404 naming it."""
    deleted = state.store.get_deleted(kind, name)
    if deleted is None:
        raise deleted_not_found(kind, name)
    return deleted


def refuse_purge_protected(state: VaultState, kind: str, name: str) -> None:
    """403 for a purge while the vault has purge protection on."""
    if state.settings.purge_protection:
        raise forbidden_by_policy(
            f"Operation purge is not allowed on {kind} {name}: purge protection is enabled "
            "for this vault; it will be purged automatically when its retention period ends."
        )


def delete(state: VaultState, kind: str, name: str) -> DeletedObject:
    """Soft-delete every version: 404 when none is live, 403 when a certificate manages it."""
    latest = live_version(state, kind, name)
    refuse_managed(kind, latest, "delete")
    return state.store.soft_delete(kind, name, state.now(), state.settings.retention_days)


def recover(state: VaultState, kind: str, name: str) -> StoredVersion:
    """Bring a deleted object back with all its versions; returns the latest."""
    deleted = deleted_or_404(state, kind, name)
    refuse_managed(kind, deleted.latest, "recover")
    return state.store.recover(kind, name)


def purge(state: VaultState, kind: str, name: str) -> None:
    """Erase a deleted object for good (refused under purge protection)."""
    deleted = deleted_or_404(state, kind, name)
    refuse_purge_protected(state, kind, name)
    refuse_managed(kind, deleted.latest, "purge")
    state.store.purge(kind, name)
