"""Certificates: Key Vault's `/certificates` and `/deletedcertificates` operations.

Get, list, versions, update, policy, delete, recover, purge, backup and restore here;
create and import in `emulator.certissue`; contacts, issuers, pending operations and
merge in `emulator.certoperations`; storage and rendering in `emulator.certbundle`.
`routes()` serves all of them.

Every version comes with a managed key and a managed secret of the same name;
deleting, recovering, purging, backing up and restoring a certificate carries them
along, in one store transaction each.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from emulator import backup_blob, certoperations, softdelete
from emulator.certbundle import (
    KIND,
    MANAGED_KINDS,
    get_operation,
    pending_names,
    render_bundle,
    render_deleted,
    render_deleted_item,
    render_item,
    render_policy,
)
from emulator.certissue import (
    check_sku,
    create_certificate,
    import_certificate,
    policy_or_400,
    stamp_policy,
)
from emulator.errors import (
    KeyVaultError,
    bad_parameter,
    conflict,
)
from emulator.objects import (
    check_name,
    live_version,
    parse_attributes,
    parse_tags,
    read_json,
    refuse_taken,
)
from emulator.paging import deleted_page, page_body, page_request, versions_page
from emulator.state import VaultState, vault_state


def _name(request: web.Request) -> str:
    return check_name(request.match_info["name"])


async def get_certificate(request: web.Request) -> web.Response:
    """GET /certificates/{name}/{version} (no version: the latest)."""
    state = vault_state(request)
    name = _name(request)
    stored = live_version(state, KIND, name, request.match_info.get("version", ""))
    policy = live_version(state, KIND, name).doc["policy"]
    return web.json_response(render_bundle(state, request, stored, policy=policy))


def _set_enabled(state: VaultState, kind: str, name: str, path: str, enabled: bool) -> None:
    """Carry a certificate version's enabled flag to its managed key or secret version."""
    version = path.rsplit("/", 1)[-1]
    stored = state.store.get_version(kind, name, version)
    if stored is None:
        return
    doc = dict(stored.doc)
    doc["attributes"] = {**doc.get("attributes", {}), "enabled": enabled, "updated": state.now()}
    state.store.update_version(kind, name, version, doc)


async def update_certificate(request: web.Request) -> web.Response:
    """PATCH /certificates/{name}/{version}: enabled, tags (and the policy, if given)."""
    state = vault_state(request)
    name = _name(request)
    body = await read_json(request)
    stored = live_version(state, KIND, name, request.match_info.get("version", ""))
    latest = live_version(state, KIND, name)
    given = parse_attributes(body.get("attributes"))
    tags = parse_tags(body.get("tags")) if "tags" in body else stored.doc.get("tags")
    policy = latest.doc["policy"]
    policy_changed = body.get("policy") is not None
    if policy_changed:
        policy = stamp_policy(state, policy_or_400(body["policy"], "update", policy), policy)
        check_sku(state, policy)
    with state.store.transaction():
        doc = dict(stored.doc)
        attributes = dict(doc.get("attributes") or {})
        # nbf and exp come from the certificate itself; only enabled can change.
        if "enabled" in given:
            attributes["enabled"] = given["enabled"]
            _set_enabled(state, "key", name, doc["kid"], given["enabled"])
            _set_enabled(state, "secret", name, doc["sid"], given["enabled"])
        attributes["updated"] = state.now()
        doc.update(attributes=attributes, tags=tags)
        if stored.version == latest.version:
            doc["policy"] = policy
        updated = state.store.update_version(KIND, name, stored.version, doc)
        if stored.version != latest.version and policy_changed:
            state.store.update_version(KIND, name, latest.version, {**latest.doc, "policy": policy})
    return web.json_response(render_bundle(state, request, updated, policy=policy))


async def get_policy(request: web.Request) -> web.Response:
    """GET /certificates/{name}/policy."""
    state = vault_state(request)
    name = _name(request)
    try:
        latest = live_version(state, KIND, name)
    except KeyVaultError:
        # A certificate with no version yet (pending, or never issued) has the policy
        # its create gave, as in Key Vault.
        operation = get_operation(state, name)
        if operation is None or not isinstance(operation.get("policy"), dict):
            raise
        return web.json_response(
            render_policy(state, request, str(operation["name"]), operation["policy"])
        )
    return web.json_response(render_policy(state, request, latest.name, latest.doc["policy"]))


async def update_policy(request: web.Request) -> web.Response:
    """PATCH /certificates/{name}/policy: the fields given replace the stored ones."""
    state = vault_state(request)
    name = _name(request)
    body = await read_json(request)
    latest = live_version(state, KIND, name)
    current = latest.doc["policy"]
    policy = stamp_policy(state, policy_or_400(body, "update", current), current)
    check_sku(state, policy)
    state.store.update_version(KIND, name, latest.version, {**latest.doc, "policy": policy})
    return web.json_response(render_policy(state, request, latest.name, policy))


def _include_pending(request: web.Request) -> bool:
    raw = request.query.get("includePending", "false").lower()
    if raw not in ("true", "false"):
        raise bad_parameter(f"includePending {raw[:20]!r} must be true or false.")
    return raw == "true"


def _pending_item(
    state: VaultState, request: web.Request, operation: Mapping[str, Any]
) -> dict[str, Any]:
    name = str(operation["name"])
    return {
        "id": f"{state.vault_url(request)}/certificates/{name}",
        "attributes": {"enabled": bool(operation.get("enabled", True))},
    }


async def list_certificates(request: web.Request) -> web.Response:
    """GET /certificates: latest version of each; `includePending` adds pending-only names."""
    state = vault_state(request)
    page = page_request(request)
    rows: list[tuple[str, dict[str, Any]]] = [
        (s.name.lower(), render_item(state, request, s, versioned=False))
        for s in state.store.list_latest(KIND, page.after, page.size + 1)
    ]
    if _include_pending(request):
        after = (page.after or "").lower()
        for key, operation in pending_names(state).items():
            if key > after and state.store.get_latest(KIND, key) is None:
                rows.append((key, _pending_item(state, request, operation)))
        rows.sort(key=lambda row: row[0])
        rows = rows[: page.size + 1]
    body = page_body(request, state.vault_url(request), page, rows, lambda r: r[1], lambda r: r[0])
    return web.json_response(body)


async def list_versions(request: web.Request) -> web.Response:
    """GET /certificates/{name}/versions: every version, oldest first."""
    state = vault_state(request)
    name = _name(request)
    body = versions_page(
        request, state, KIND, name, lambda s: render_item(state, request, s, versioned=True)
    )
    return web.json_response(body)


async def delete_certificate(request: web.Request) -> web.Response:
    """DELETE /certificates/{name}: soft-delete it with its key and secret."""
    state = vault_state(request)
    name = _name(request)
    live_version(state, KIND, name)
    now, days = state.now(), state.settings.retention_days
    with state.store.transaction():
        for kind in MANAGED_KINDS:
            if state.store.name_state(kind, name) == "live":
                state.store.soft_delete(kind, name, now, days)
        deleted = state.store.soft_delete(KIND, name, now, days)
        certoperations.forget_operation(state, name)
    return web.json_response(render_deleted(state, request, deleted))


async def get_deleted(request: web.Request) -> web.Response:
    """GET /deletedcertificates/{name}."""
    state = vault_state(request)
    deleted = softdelete.deleted_or_404(state, KIND, _name(request))
    return web.json_response(render_deleted(state, request, deleted))


async def list_deleted(request: web.Request) -> web.Response:
    """GET /deletedcertificates."""
    state = vault_state(request)
    page = page_request(request)
    _include_pending(request)
    body = deleted_page(
        request, state, KIND, lambda d: render_deleted_item(state, request, d), page=page
    )
    return web.json_response(body)


async def recover_deleted(request: web.Request) -> web.Response:
    """POST /deletedcertificates/{name}/recover: back with its key and secret."""
    state = vault_state(request)
    name = _name(request)
    softdelete.deleted_or_404(state, KIND, name)
    with state.store.transaction():
        for kind in MANAGED_KINDS:
            if state.store.name_state(kind, name) == "deleted":
                state.store.recover(kind, name)
        latest = state.store.recover(KIND, name)
    return web.json_response(render_bundle(state, request, latest))


async def purge_deleted(request: web.Request) -> web.Response:
    """DELETE /deletedcertificates/{name}: erase it, its key and its secret (204)."""
    state = vault_state(request)
    name = _name(request)
    softdelete.deleted_or_404(state, KIND, name)
    softdelete.refuse_purge_protected(state, KIND, name)
    with state.store.transaction():
        for kind in MANAGED_KINDS:
            if state.store.name_state(kind, name) == "deleted":
                state.store.purge(kind, name)
        state.store.purge(KIND, name)
    return web.Response(status=204)


async def backup_certificate(request: web.Request) -> web.Response:
    """POST /certificates/{name}/backup: all versions with their keys and secrets, sealed."""
    state = vault_state(request)
    name = _name(request)
    versions = backup_blob.backup_versions(state, KIND, name)
    payload: dict[str, Any] = {
        "name": versions[-1].name,
        KIND: backup_blob.version_entries(versions),
    }
    for kind in MANAGED_KINDS:
        payload[kind] = backup_blob.version_entries(state.store.all_versions(kind, name))
    return web.json_response(backup_blob.backup_body(KIND, state.settings.geo, payload))


def _payload_versions(payload: Mapping[str, Any], kind: str) -> list[tuple[str, dict[str, Any]]]:
    try:
        return backup_blob.version_docs(payload.get(kind) or [])
    except (KeyError, TypeError, ValueError):
        raise bad_parameter("the certificate backup blob is malformed") from None


async def restore_certificate(request: web.Request) -> web.Response:
    """POST /certificates/restore: recreate certificate, key and secret (name must be free)."""
    state = vault_state(request)
    payload = backup_blob.open_request(await read_json(request), KIND, state.settings.geo)
    name = check_name(str(payload.get("name", "")))
    versions = {kind: _payload_versions(payload, kind) for kind in (KIND, *MANAGED_KINDS)}
    if not versions[KIND]:
        raise bad_parameter("the certificate backup blob holds no versions")
    refuse_taken(state, KIND, name)
    for kind in MANAGED_KINDS:
        name_state = state.store.name_state(kind, name)
        if name_state is not None:
            message = (
                f"A {kind} named {name} already exists"
                + (" in a deleted but recoverable state" if name_state == "deleted" else "")
                + f"; certificate {name} cannot be restored under its name."
            )
            raise conflict(KIND, name, deleted=name_state == "deleted", message=message)
    with state.store.transaction():
        for kind in MANAGED_KINDS:
            if versions[kind]:
                state.store.restore_versions(kind, name, versions[kind])
        restored = state.store.restore_versions(KIND, name, versions[KIND])
    return web.json_response(render_bundle(state, request, restored[-1]))


def routes(state: VaultState) -> list[web.RouteDef]:
    """Certificate routes; fixed paths come before the `{name}/{version}` patterns."""
    return [
        *certoperations.routes(state),
        web.post("/certificates/restore", restore_certificate, name="RestoreCertificate"),
        web.get("/certificates", list_certificates, name="GetCertificates"),
        web.post("/certificates/{name}/create", create_certificate, name="CreateCertificate"),
        web.post("/certificates/{name}/import", import_certificate, name="ImportCertificate"),
        web.post("/certificates/{name}/backup", backup_certificate, name="BackupCertificate"),
        web.get("/certificates/{name}/versions", list_versions, name="GetCertificateVersions"),
        web.get("/certificates/{name}/policy", get_policy, name="GetCertificatePolicy"),
        web.patch("/certificates/{name}/policy", update_policy, name="UpdateCertificatePolicy"),
        web.delete("/certificates/{name}", delete_certificate, name="DeleteCertificate"),
        web.get("/certificates/{name}", get_certificate, name="GetCertificate:latest"),
        web.get("/certificates/{name}/", get_certificate, name="GetCertificate:latest-slash"),
        web.get("/certificates/{name}/{version}", get_certificate, name="GetCertificate"),
        web.patch("/certificates/{name}/", update_certificate, name="UpdateCertificate:latest"),
        web.patch("/certificates/{name}/{version}", update_certificate, name="UpdateCertificate"),
        web.get("/deletedcertificates", list_deleted, name="GetDeletedCertificates"),
        web.get("/deletedcertificates/{name}", get_deleted, name="GetDeletedCertificate"),
        web.delete("/deletedcertificates/{name}", purge_deleted, name="PurgeDeletedCertificate"),
        web.post(
            "/deletedcertificates/{name}/recover",
            recover_deleted,
            name="RecoverDeletedCertificate",
        ),
    ]
