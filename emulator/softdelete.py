"""Soft delete: what deleting, recovering and purging mean for every object kind.

A deleted object keeps all its versions under `/deleted<kind>s/<name>` for the vault's
retention period, and its name stays taken until it is recovered or purged; purge
protection refuses the purge and leaves it to the retention period.

Secrets and keys go through `delete`, `recover` and `purge` here, served over HTTP by one
`SoftDeleteApi` each (the same steps; only the bodies and operation names differ). A
certificate carries its managed key and secret along in one transaction, so
`emulator.certificates` builds its own from `deleted_or_404` and `refuse_purge_protected`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from emulator.errors import deleted_not_found, forbidden_by_policy
from emulator.objects import check_name, live_version, object_url, refuse_managed
from emulator.paging import deleted_page
from emulator.state import VaultState, vault_state
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


def _no_cleanup(state: VaultState, name: str) -> None:
    return None


@dataclass(frozen=True)
class SoftDeleteApi:
    """Delete, get deleted, list deleted, recover and purge for one kind, as handlers.

    `label` is the kind as Key Vault spells it in operation names ("Secret" in
    "GetDeletedSecrets"); the throttle budgets are keyed by those names.
    """

    kind: str
    label: str
    # A Deleted...Bundle, and a Deleted...Item (the list entry, unversioned id).
    render_deleted: Callable[[VaultState, web.Request, DeletedObject], dict[str, Any]]
    render_deleted_item: Callable[[VaultState, web.Request, DeletedObject], dict[str, Any]]
    # The live bundle a recover answers with.
    render_recovered: Callable[[VaultState, web.Request, StoredVersion], dict[str, Any]]
    # What else a purge erases with the object (a key's rotation policy).
    after_purge: Callable[[VaultState, str], None] = _no_cleanup

    async def delete(self, request: web.Request) -> web.Response:
        """DELETE /<kind>s/{name}: soft-delete every version."""
        state = vault_state(request)
        deleted = delete(state, self.kind, check_name(request.match_info["name"]))
        return web.json_response(self.render_deleted(state, request, deleted))

    async def get_deleted(self, request: web.Request) -> web.Response:
        """GET /deleted<kind>s/{name}."""
        state = vault_state(request)
        deleted = deleted_or_404(state, self.kind, check_name(request.match_info["name"]))
        return web.json_response(self.render_deleted(state, request, deleted))

    async def list_deleted(self, request: web.Request) -> web.Response:
        """GET /deleted<kind>s."""
        state = vault_state(request)
        body = deleted_page(
            request, state, self.kind, lambda d: self.render_deleted_item(state, request, d)
        )
        return web.json_response(body)

    async def recover(self, request: web.Request) -> web.Response:
        """POST /deleted<kind>s/{name}/recover: back with all versions."""
        state = vault_state(request)
        latest = recover(state, self.kind, check_name(request.match_info["name"]))
        return web.json_response(self.render_recovered(state, request, latest))

    async def purge(self, request: web.Request) -> web.Response:
        """DELETE /deleted<kind>s/{name}: erase for good (refused under purge protection)."""
        state = vault_state(request)
        name = check_name(request.match_info["name"])
        purge(state, self.kind, name)
        self.after_purge(state, name)
        return web.Response(status=204)

    def delete_route(self) -> web.RouteDef:
        """DELETE /<kind>s/{name}; listed by the caller among the live object's routes."""
        return web.delete(f"/{self.kind}s/{{name}}", self.delete, name=f"Delete{self.label}")

    def deleted_routes(self) -> list[web.RouteDef]:
        """The `/deleted<kind>s` routes."""
        base, label = f"/deleted{self.kind}s", self.label
        return [
            web.get(base, self.list_deleted, name=f"GetDeleted{label}s"),
            web.get(f"{base}/{{name}}", self.get_deleted, name=f"GetDeleted{label}"),
            web.delete(f"{base}/{{name}}", self.purge, name=f"PurgeDeleted{label}"),
            web.post(f"{base}/{{name}}/recover", self.recover, name=f"RecoverDeleted{label}"),
        ]
