"""Keys: Key Vault's `/keys` and `/deletedkeys` operations, and `/rng`.

This module holds the key lifecycle (create, import, get, list, update, delete, recover,
purge, backup, restore) and assembles every key route; the stored document and its REST
shapes live in `emulator.keydocs`, rotation in `emulator.keyrotation`, the cryptographic
operations in `emulator.keycrypto`, the material itself in `emulator.keymaterial`.
Key material is rendered only as its public half and never reaches logs or errors.

`add_key_version` is the entry point for the certificates part, which stores its
certificate's key under the certificate's name (``managed: true``).
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from emulator import backup_blob, keycrypto, keyrotation, softdelete, throttle
from emulator.errors import bad_parameter
from emulator.keydocs import (
    KIND,
    add_key_version,
    canonical_kty,
    charge_key_create,
    check_kty_allowed,
    load_charged,
    material_of,
    parse_exportable,
    parse_key_ops,
    parse_release_policy,
    publish_new_version,
    render_deleted,
    render_deleted_item,
    render_item,
    render_key,
    trusted_material,
    with_hsm,
)
from emulator.keymaterial import KeyMaterial, KeyMaterialError
from emulator.objects import (
    check_name,
    parse_attributes,
    parse_tags,
    read_json,
    refuse_managed,
    refuse_taken,
    updated_attributes,
    writable_latest,
)
from emulator.paging import latest_page, versions_page
from emulator.state import VaultState, vault_state

# material_of is re-exported for the certificates part, which reads its key back.
__all__ = ["KIND", "add_key_version", "material_of", "routes"]

# Route names whose budget depends on the key (type, size, HSM): the handler charges it
# once it knows the key (see emulator.throttle.OP_BUCKETS).
SELF_CHARGED_OPS = (
    "CreateKey",
    "ImportKey",
    "RotateKey",
    "GetKey",
    "UpdateKey",
    "BackupKey",
    "Encrypt",
    "Decrypt",
    "Sign",
    "Verify",
    "WrapKey",
    "UnwrapKey",
)


def _optional_int(body: dict[str, Any], field: str) -> int | None:
    value = body.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_parameter(f"{field} must be an integer.")
    return value


@dataclass(frozen=True)
class _NewKeyFields:
    """What a create or import request says about the new version besides its material."""

    attributes: dict[str, Any]
    tags: dict[str, str] | None
    release_policy: dict[str, Any] | None

    @classmethod
    def parse(cls, body: dict[str, Any]) -> _NewKeyFields:
        release_policy = parse_release_policy(body.get("release_policy"))
        attributes = parse_attributes(body.get("attributes"))
        exportable = parse_exportable(body.get("attributes"), release_policy)
        if exportable is not None:
            attributes["exportable"] = exportable
        return cls(attributes, parse_tags(body.get("tags")), release_policy)


def _store_new(
    state: VaultState,
    request: web.Request,
    name: str,
    material: KeyMaterial,
    *,
    kty: str,
    fields: _NewKeyFields,
    key_ops: list[str] | None,
) -> web.Response:
    """Common tail of create and import: name check, write, event, response."""
    # Checked right before the write, with no await in between, so no other request can
    # take or delete the name meanwhile.
    latest = writable_latest(state, KIND, name, "create")
    if latest is None:
        # A name that was purged may have left its rotation policy behind.
        keyrotation.put_policy(state, name, None)
    added = add_key_version(
        state,
        name,
        material,
        attributes=fields.attributes,
        tags=fields.tags,
        key_ops=key_ops,
        managed=False,
        kty=kty,
        release_policy=fields.release_policy,
    )
    publish_new_version(state, added)
    stored = state.store.get_version(KIND, name, added["version"])
    assert stored is not None
    return web.json_response(render_key(state, request, stored))


async def create_key(request: web.Request) -> web.Response:
    """POST /keys/{name}/create: a new key, or a new version of an existing one."""
    state = vault_state(request)
    name = check_name(request.match_info["name"])
    body = await read_json(request)
    kty = canonical_kty(body.get("kty"))
    check_kty_allowed(state, kty)
    size = _optional_int(body, "key_size")
    exponent = _optional_int(body, "public_exponent")
    curve = body.get("crv")
    if curve is not None and not isinstance(curve, str):
        raise bad_parameter("crv must be a curve name: P-256, P-384, P-521 or P-256K.")
    if curve is not None and not kty.startswith("EC"):
        raise bad_parameter(f"crv applies to EC keys only, not to kty '{kty}'.")
    if exponent is not None and not kty.startswith("RSA"):
        raise bad_parameter(f"public_exponent applies to RSA keys only, not to kty '{kty}'.")
    key_ops = parse_key_ops(body.get("key_ops"))
    fields = _NewKeyFields.parse(body)
    # Refuse a blocked name before spending a create budget or generating a key.
    writable_latest(state, KIND, name, "create")
    charge_key_create(state, kty)
    try:
        # RSA-4096 takes a second or more to generate: off the event loop.
        material = await asyncio.to_thread(
            functools.partial(
                KeyMaterial.generate,
                kty,
                size=size,
                curve=curve,
                public_exponent=exponent,
                any_exponent=state.settings.sku == "managed-hsm",
            )
        )
    except KeyMaterialError as exc:
        raise bad_parameter(str(exc)) from None
    return _store_new(state, request, name, material, kty=kty, fields=fields, key_ops=key_ops)


async def import_key(request: web.Request) -> web.Response:
    """PUT /keys/{name}: import a private JWK as a new key or version."""
    state = vault_state(request)
    name = check_name(request.match_info["name"])
    body = await read_json(request)
    jwk = body.get("key")
    if not isinstance(jwk, dict):
        raise bad_parameter("key is required: the JSON Web Key to import.")
    given = canonical_kty(jwk.get("kty"))
    hsm_flag = body.get("Hsm")
    if hsm_flag is not None and not isinstance(hsm_flag, bool):
        raise bad_parameter("Hsm must be true or false.")
    # A Managed HSM keeps every key in the HSM; elsewhere the JWK or Hsm flag decides.
    hsm = bool(hsm_flag) or given.endswith("-HSM") or state.settings.sku == "managed-hsm"
    kty = with_hsm(given, hsm)
    check_kty_allowed(state, kty)
    key_ops = parse_key_ops(jwk.get("key_ops"))
    fields = _NewKeyFields.parse(body)
    try:
        material = KeyMaterial.from_jwk(jwk)
    except KeyMaterialError as exc:
        raise bad_parameter(str(exc)) from None
    charge_key_create(state, kty)
    return _store_new(state, request, name, material, kty=kty, fields=fields, key_ops=key_ops)


async def get_key(request: web.Request) -> web.Response:
    """GET /keys/{name}/{version} (empty version: the latest). Disabled keys are served."""
    state = vault_state(request)
    name = check_name(request.match_info["name"])
    stored = load_charged(state, name, request.match_info.get("version", ""))
    return web.json_response(render_key(state, request, stored))


async def update_key(request: web.Request) -> web.Response:
    """PATCH /keys/{name}/{version}: key_ops, attributes, tags, release policy."""
    state = vault_state(request)
    name = check_name(request.match_info["name"])
    body = await read_json(request)
    stored = load_charged(state, name, request.match_info.get("version", ""))
    refuse_managed(KIND, stored, "update")
    doc = dict(stored.doc)
    if body.get("key_ops") is not None:
        doc["key_ops"] = parse_key_ops(body["key_ops"])
    if "tags" in body:
        doc["tags"] = parse_tags(body["tags"])
    if body.get("release_policy") is not None:
        current = doc.get("release_policy") or {}
        if current.get("immutable"):
            raise bad_parameter(
                f"release_policy of key {stored.name} is immutable and cannot be changed."
            )
        doc["release_policy"] = parse_release_policy(body["release_policy"])
    given = parse_attributes(body.get("attributes"))
    exportable = parse_exportable(body.get("attributes"), doc.get("release_policy"))
    if exportable is not None:
        given["exportable"] = exportable
    doc["attributes"] = updated_attributes(state, doc.get("attributes") or {}, given)
    updated = state.store.update_version(KIND, stored.name, stored.version, doc)
    return web.json_response(render_key(state, request, updated))


async def list_keys(request: web.Request) -> web.Response:
    """GET /keys: the latest version of each key, as KeyItems."""
    state = vault_state(request)
    body = latest_page(
        request, state, KIND, lambda s: render_item(state, request, s, versioned_id=False)
    )
    return web.json_response(body)


async def list_versions(request: web.Request) -> web.Response:
    """GET /keys/{name}/versions: every version, oldest first."""
    state = vault_state(request)
    name = check_name(request.match_info["name"])
    body = versions_page(
        request, state, KIND, name, lambda s: render_item(state, request, s, versioned_id=True)
    )
    return web.json_response(body)


async def backup_key(request: web.Request) -> web.Response:
    """POST /keys/{name}/backup: all versions and the rotation policy, sealed for this geo."""
    state = vault_state(request)
    name = check_name(request.match_info["name"])
    latest = load_charged(state, name, "")
    versions = backup_blob.backup_versions(state, KIND, name)
    payload = {
        "name": latest.name,
        "versions": backup_blob.version_entries(versions),
        "rotation_policy": keyrotation.stored_policy(state, latest.name),
    }
    return web.json_response(backup_blob.backup_body(KIND, state.settings.geo, payload))


def _restored_versions(payload: dict[str, Any]) -> tuple[str, list[tuple[str, dict[str, Any]]]]:
    name, versions = backup_blob.named_versions(payload, KIND)
    try:
        for _, doc in versions:
            canonical_kty(doc["kty"])
            # Sealed by an emulator of this geography (authenticated encryption), so the
            # material is trusted; parsing it also warms the cache used to answer.
            trusted_material(doc["material"])
    except (KeyError, TypeError, ValueError):
        raise bad_parameter("the key backup blob is malformed") from None
    return name, versions


async def restore_key(request: web.Request) -> web.Response:
    """POST /keys/restore: recreate a key with all its versions (same geography only)."""
    state = vault_state(request)
    payload = backup_blob.open_request(await read_json(request), KIND, state.settings.geo)
    name, versions = _restored_versions(payload)
    for kty in {str(doc["kty"]) for _, doc in versions}:
        check_kty_allowed(state, kty)
    refuse_taken(state, KIND, name)
    with state.store.transaction():
        restored = state.store.restore_versions(KIND, name, versions)
        policy = payload.get("rotation_policy")
        keyrotation.put_policy(state, name, policy if isinstance(policy, dict) else None)
    return web.json_response(render_key(state, request, restored[-1]))


def _forget_rotation_policy(state: VaultState, name: str) -> None:
    keyrotation.put_policy(state, name, None)


SOFT_DELETE = softdelete.SoftDeleteApi(
    kind=KIND,
    label="Key",
    render_deleted=render_deleted,
    render_deleted_item=render_deleted_item,
    render_recovered=render_key,
    after_purge=_forget_rotation_policy,
)


def _register_budgets() -> None:
    # The throttle middleware charges VAULT_OPS for any operation not in OP_BUCKETS;
    # `None` there tells it the handler charges the key's own budget instead.
    for op in SELF_CHARGED_OPS:
        throttle.OP_BUCKETS.setdefault(op, None)


def routes(state: VaultState) -> list[web.RouteDef]:
    """Every key route; fixed segments come before the `{version}` patterns."""
    _register_budgets()
    return [
        web.post("/keys/restore", restore_key, name="RestoreKey"),
        web.get("/keys", list_keys, name="GetKeys"),
        web.post("/keys/{name}/create", create_key, name="CreateKey"),
        web.post("/keys/{name}/rotate", keyrotation.rotate_key, name="RotateKey"),
        web.put("/keys/{name}", import_key, name="ImportKey"),
        SOFT_DELETE.delete_route(),
        web.get("/keys/{name}/versions", list_versions, name="GetKeyVersions"),
        web.post("/keys/{name}/backup", backup_key, name="BackupKey"),
        web.get("/keys/{name}/rotationpolicy", keyrotation.get_policy, name="GetKeyRotationPolicy"),
        web.put(
            "/keys/{name}/rotationpolicy", keyrotation.update_policy, name="UpdateKeyRotationPolicy"
        ),
        web.get("/keys/{name}", get_key, name="GetKey:latest"),
        web.get("/keys/{name}/", get_key, name="GetKey:latest-slash"),
        web.get("/keys/{name}/{version}", get_key, name="GetKey"),
        web.patch("/keys/{name}", update_key, name="UpdateKey:latest-bare"),
        web.patch("/keys/{name}/", update_key, name="UpdateKey:latest"),
        web.patch("/keys/{name}/{version}", update_key, name="UpdateKey"),
        *keycrypto.routes(),
        *SOFT_DELETE.deleted_routes(),
    ]
