"""Secrets: Key Vault's `/secrets` and `/deletedsecrets` operations.

Each stored version is `{"value", "contentType", "tags", "attributes", "kid", "managed"}`.
Certificate-backed secrets (written by emulator.certificates) have `managed: true` and a
`kid` path; Key Vault lets clients read them but not set, update or delete them on their
own. Secret values never reach logs or error messages.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from aiohttp import web

from emulator import backup_blob, softdelete
from emulator.errors import (
    KeyVaultError,
    bad_parameter,
)
from emulator.objects import (
    check_name,
    live_version,
    new_attributes,
    object_url,
    parse_attributes,
    parse_tags,
    read_json,
    refuse_managed,
    refuse_taken,
    render_attributes,
    updated_attributes,
    writable_latest,
)
from emulator.paging import latest_page, versions_page
from emulator.state import VaultState, vault_state
from emulator.store import DeletedObject, StoredVersion

KIND = "secret"
# Key Vault: "Secret value: 25k bytes"; the service reports 25,600 as the limit.
MAX_VALUE_BYTES = 25_600
MAX_CONTENT_TYPE = 255
PKCS12 = "application/x-pkcs12"
PEM_FILE = "application/x-pem-file"


def _version_param(request: web.Request) -> str:
    return request.match_info.get("version", "")


def render_secret(
    state: VaultState,
    request: web.Request | None,
    stored: StoredVersion,
    *,
    with_value: bool,
    versioned_id: bool = True,
) -> dict[str, Any]:
    """A SecretBundle (with_value) or SecretItem-shaped body for one stored version."""
    doc = stored.doc
    path = f"/secrets/{stored.name}/{stored.version}" if versioned_id else f"/secrets/{stored.name}"
    body: dict[str, Any] = {
        "id": object_url(state, request, path),
        "attributes": render_attributes(state, doc.get("attributes") or {}),
    }
    if with_value:
        body["value"] = doc.get("value", "")
    if doc.get("contentType") is not None:
        body["contentType"] = doc["contentType"]
    if doc.get("tags") is not None:
        body["tags"] = doc["tags"]
    if doc.get("kid"):
        body["kid"] = object_url(state, request, doc["kid"])
    if doc.get("managed"):
        body["managed"] = True
    return body


def render_deleted(
    state: VaultState,
    request: web.Request | None,
    deleted: DeletedObject,
    *,
    with_value: bool,
    versioned_id: bool = True,
) -> dict[str, Any]:
    """A DeletedSecretBundle / DeletedSecretItem body."""
    body = render_secret(
        state, request, deleted.latest, with_value=with_value, versioned_id=versioned_id
    )
    body.update(softdelete.deleted_fields(state, request, deleted))
    return body


def _validate_value(body: dict[str, Any]) -> str:
    value = body.get("value")
    if not isinstance(value, str):
        raise bad_parameter("value is required and must be a string.")
    size = len(value.encode("utf-8"))
    if size > MAX_VALUE_BYTES:
        raise bad_parameter(
            f"value: Secret is beyond the maximum permitted length of {MAX_VALUE_BYTES} "
            f"bytes (got {size} bytes)."
        )
    return value


def _validate_content_type(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise bad_parameter("contentType must be a string.")
    if len(value) > MAX_CONTENT_TYPE:
        raise bad_parameter(
            f"contentType is {len(value)} characters; at most {MAX_CONTENT_TYPE} are allowed."
        )
    return value


def add_secret_version(
    state: VaultState,
    name: str,
    value: str,
    *,
    content_type: str | None = None,
    tags: dict[str, str] | None = None,
    attributes: dict[str, Any] | None = None,
    kid: str | None = None,
    managed: bool = False,
    version: str | None = None,
) -> StoredVersion:
    """Store a new secret version (also used for certificate-backed secrets), no checks.

    Callers check the name (`check_name`) and that it is not soft-deleted, and publish
    the NewVersionCreated event after this returns (the write is then durable).
    """
    doc: dict[str, Any] = {
        "value": value,
        "contentType": content_type,
        "tags": tags,
        "attributes": new_attributes(state, attributes or {}),
        "kid": kid,
        "managed": managed,
    }
    return state.store.add_version(KIND, name, doc, version)


async def set_secret(request: web.Request) -> web.Response:
    """PUT /secrets/{name}: a new version."""
    state = vault_state(request)
    name = check_name(request.match_info["name"])
    body = await read_json(request)
    value = _validate_value(body)
    content_type = _validate_content_type(body.get("contentType"))
    tags = parse_tags(body.get("tags"))
    attributes = parse_attributes(body.get("attributes"))
    writable_latest(state, KIND, name, "set")
    stored = add_secret_version(
        state, name, value, content_type=content_type, tags=tags, attributes=attributes
    )
    attrs = stored.doc["attributes"]
    state.events.publish(
        "NewVersionCreated", KIND, stored.name, stored.version, nbf=attrs["nbf"], exp=attrs["exp"]
    )
    return web.json_response(render_secret(state, request, stored, with_value=True))


def _converted(stored: StoredVersion, out_content_type: str) -> dict[str, Any] | None:
    """The document with its value in `out_content_type`, for certificate-backed secrets.

    Key Vault converts only PFX to PEM (`outContentType`, API 2025-07-01); other secrets
    come back as stored.
    """
    if out_content_type not in (PKCS12, PEM_FILE):
        raise bad_parameter(
            f"outContentType {out_content_type[:80]!r} is not supported; use {PEM_FILE}"
        )
    current = stored.doc.get("contentType")
    if not stored.doc.get("managed") or current == out_content_type:
        return None
    if (current, out_content_type) != (PKCS12, PEM_FILE):
        raise bad_parameter("outContentType: only PFX to PEM conversion is supported")
    # Imported here: certificate parsing is only needed for this rare request.
    from emulator.certimport import load_import

    material = load_import(str(stored.doc.get("value", "")), None, PKCS12)
    doc = dict(stored.doc)
    doc["value"] = material.secret_value(PEM_FILE)
    doc["contentType"] = PEM_FILE
    return doc


async def get_secret(request: web.Request) -> web.Response:
    """GET /secrets/{name}/{version} (empty version: the latest)."""
    state = vault_state(request)
    name = check_name(request.match_info["name"])
    stored = live_version(state, KIND, name, _version_param(request))
    if not stored.doc.get("attributes", {}).get("enabled", True):
        raise KeyVaultError(
            403,
            "Forbidden",
            "Operation get is not allowed on a disabled secret.",
            "SecretDisabled",
        )
    out_content_type = request.query.get("outContentType")
    if out_content_type:
        doc = _converted(stored, out_content_type)
        if doc is not None:
            stored = dataclasses.replace(stored, doc=doc)
    return web.json_response(render_secret(state, request, stored, with_value=True))


async def update_secret(request: web.Request) -> web.Response:
    """PATCH /secrets/{name}/{version}: content type, attributes, tags of one version."""
    state = vault_state(request)
    name = check_name(request.match_info["name"])
    body = await read_json(request)
    stored = live_version(state, KIND, name, _version_param(request))
    refuse_managed(KIND, stored, "update")
    doc = dict(stored.doc)
    if "contentType" in body:
        doc["contentType"] = _validate_content_type(body["contentType"])
    if "tags" in body:
        doc["tags"] = parse_tags(body["tags"])
    given = parse_attributes(body.get("attributes"))
    doc["attributes"] = updated_attributes(state, doc.get("attributes") or {}, given)
    updated = state.store.update_version(KIND, stored.name, stored.version, doc)
    return web.json_response(render_secret(state, request, updated, with_value=False))


async def list_secrets(request: web.Request) -> web.Response:
    """GET /secrets: latest version of each secret, without values."""
    state = vault_state(request)
    body = latest_page(
        request,
        state,
        KIND,
        lambda s: render_secret(state, request, s, with_value=False, versioned_id=False),
    )
    return web.json_response(body)


async def list_versions(request: web.Request) -> web.Response:
    """GET /secrets/{name}/versions: every version, without values."""
    state = vault_state(request)
    name = check_name(request.match_info["name"])
    body = versions_page(
        request, state, KIND, name, lambda s: render_secret(state, request, s, with_value=False)
    )
    return web.json_response(body)


async def backup_secret(request: web.Request) -> web.Response:
    """POST /secrets/{name}/backup: all versions, sealed for this geography."""
    state = vault_state(request)
    name = check_name(request.match_info["name"])
    versions = backup_blob.backup_versions(state, KIND, name)
    payload = {"name": versions[-1].name, "versions": backup_blob.version_entries(versions)}
    return web.json_response(backup_blob.backup_body(KIND, state.settings.geo, payload))


async def restore_secret(request: web.Request) -> web.Response:
    """POST /secrets/restore: recreate a secret with all its versions from a backup."""
    state = vault_state(request)
    payload = backup_blob.open_request(await read_json(request), KIND, state.settings.geo)
    name, versions = backup_blob.named_versions(payload, KIND)
    refuse_taken(state, KIND, name)
    restored = state.store.restore_versions(KIND, name, versions)
    return web.json_response(render_secret(state, request, restored[-1], with_value=False))


# The Deleted...Bundle of a secret carries no value: Key Vault answers deletes and
# recovers with the secret's properties only.
SOFT_DELETE = softdelete.SoftDeleteApi(
    kind=KIND,
    label="Secret",
    render_deleted=lambda state, request, d: render_deleted(state, request, d, with_value=False),
    render_deleted_item=lambda state, request, d: render_deleted(
        state, request, d, with_value=False, versioned_id=False
    ),
    render_recovered=lambda state, request, s: render_secret(state, request, s, with_value=False),
)


def routes(state: VaultState) -> list[web.RouteDef]:
    """The secret routes (specific paths before `{version}` patterns)."""
    return [
        web.post("/secrets/restore", restore_secret, name="RestoreSecret"),
        web.get("/secrets", list_secrets, name="GetSecrets"),
        web.put("/secrets/{name}", set_secret, name="SetSecret"),
        SOFT_DELETE.delete_route(),
        web.get("/secrets/{name}/versions", list_versions, name="GetSecretVersions"),
        web.post("/secrets/{name}/backup", backup_secret, name="BackupSecret"),
        web.get("/secrets/{name}", get_secret, name="GetSecret:latest"),
        web.get("/secrets/{name}/", get_secret, name="GetSecret:latest-slash"),
        web.get("/secrets/{name}/{version}", get_secret, name="GetSecret"),
        web.patch("/secrets/{name}/", update_secret, name="UpdateSecret:latest"),
        web.patch("/secrets/{name}/{version}", update_secret, name="UpdateSecret"),
        *SOFT_DELETE.deleted_routes(),
    ]
