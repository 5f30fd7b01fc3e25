"""Stored key versions: their document, the vault rules for key types, and the REST shapes.

Each version of a key is one store document of kind ``key``:

    {"kty": "RSA-HSM", "key_size": 2048, "crv": null, "key_ops": [...],
     "material": <private JWK>, "attributes": {...}, "tags": {...} | null,
     "managed": false, "release_policy": {...} | null}

``material`` is the full private JWK from `KeyMaterial.private_jwk()`; it stays in the
store and in sealed backup blobs and is rendered only as the public half. Certificate
keys (written by the certificates part through `add_key_version`) have ``managed: true``;
as in Key Vault, clients use them but change them only through the certificate.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from aiohttp import web

from emulator import softdelete, throttle
from emulator.errors import KeyVaultError, bad_parameter
from emulator.keymaterial import DEFAULT_KEY_OPS, KeyMaterial, KeyMaterialError
from emulator.objects import live_version, new_attributes, object_url, render_attributes
from emulator.state import VaultState
from emulator.store import DeletedObject, StoredVersion

KIND = "key"
# JsonWebKeyOperation values, by their lower-case spelling (Key Vault ignores case).
KEY_OPS = {
    op.lower(): op
    for op in ("encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey", "import", "export")
}
# Which key types each vault SKU holds: HSM keys need premium, oct keys a Managed HSM.
# A Managed HSM keeps every key in its HSM, and takes kty RSA and EC as well: Microsoft's
# ARM example managedHsmCreateKey.json (azure-rest-api-specs, 2025-05-01) creates kty
# RSA and gets kty RSA back, and Microsoft Learn ("About keys in Managed HSM") says it
# supports RSA, EC and AES keys, all HSM-protected. Plain `oct` is refused there too.
KTYS_BY_SKU = {
    "standard": ("RSA", "EC"),
    "premium": ("RSA", "EC", "RSA-HSM", "EC-HSM"),
    "managed-hsm": ("RSA", "EC", "RSA-HSM", "EC-HSM", "oct-HSM"),
}
ALL_KTYS = ("RSA", "RSA-HSM", "EC", "EC-HSM", "oct", "oct-HSM")


def canonical_kty(value: object) -> str:
    """Key Vault's spelling of a key type (case-insensitive), or 400 naming it."""
    if not isinstance(value, str) or not value:
        raise bad_parameter("kty is required: one of RSA, RSA-HSM, EC, EC-HSM, oct-HSM.")
    for kty in ALL_KTYS:
        if value.lower() == kty.lower():
            return kty
    raise bad_parameter(
        f"The kty '{value[:40]}' is not a valid key type; use RSA, RSA-HSM, EC, EC-HSM or oct-HSM."
    )


def check_kty_allowed(state: VaultState, kty: str) -> None:
    """400 BadParameter naming the kty when this vault's SKU does not hold that key type."""
    sku = state.settings.sku
    allowed = KTYS_BY_SKU[sku]
    if kty in allowed:
        return
    if sku == "managed-hsm":
        reason = "a Managed HSM holds symmetric keys as oct-HSM only"
    elif kty.startswith("oct"):
        reason = "symmetric (oct-HSM) keys need a Managed HSM"
    else:
        reason = "HSM-protected keys need a premium vault or a Managed HSM"
    raise bad_parameter(
        f"The kty '{kty}' is not supported by this vault (sku {sku}): {reason}. "
        f"Supported here: {', '.join(allowed)}."
    )


def parse_key_ops(value: object) -> list[str] | None:
    """`key_ops`: a list of JsonWebKeyOperation names (None when not given)."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise bad_parameter("key_ops must be a list of key operation names.")
    ops: list[str] = []
    for item in value:
        canonical = KEY_OPS.get(item.lower()) if isinstance(item, str) else None
        if canonical is None:
            raise bad_parameter(
                f"key_ops: {str(item)[:40]!r} is not a key operation; use "
                f"{', '.join(KEY_OPS.values())}."
            )
        if canonical not in ops:
            ops.append(canonical)
    return ops


def parse_release_policy(value: object) -> dict[str, Any] | None:
    """`release_policy`: stored as given ({contentType, data, immutable}); never evaluated."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise bad_parameter("release_policy must be a JSON object.")
    data = value.get("data")
    if data is not None and not isinstance(data, str):
        raise bad_parameter("release_policy.data must be a base64url string.")
    immutable = value.get("immutable")
    if immutable is not None and not isinstance(immutable, bool):
        raise bad_parameter("release_policy.immutable must be true or false.")
    return {
        "contentType": value.get("contentType") or "application/json; charset=utf-8",
        "data": data,
        "immutable": immutable,
    }


def parse_exportable(attributes: object, release_policy: dict[str, Any] | None) -> bool | None:
    """`attributes.exportable`; Key Vault wants a release policy for an exportable key."""
    if not isinstance(attributes, dict) or attributes.get("exportable") is None:
        return None
    exportable = attributes["exportable"]
    if not isinstance(exportable, bool):
        raise bad_parameter("attributes.exportable must be true or false.")
    if exportable and release_policy is None:
        raise bad_parameter("attributes.exportable: an exportable key needs a release_policy.")
    return exportable


def with_hsm(base: str, hsm: bool) -> str:
    """'RSA' + hsm -> 'RSA-HSM'."""
    return f"{base}-HSM" if hsm and not base.endswith("-HSM") else base


def add_key_version(
    state: VaultState,
    name: str,
    material: KeyMaterial,
    *,
    attributes: dict[str, Any],
    tags: dict[str, str] | None,
    key_ops: list[str] | None,
    managed: bool,
    kty: str | None = None,
    release_policy: dict[str, Any] | None = None,
    version: str | None = None,
) -> dict[str, Any]:
    """Store a new (latest) key version without any checks; returns its document.

    `attributes` are the writable ones (enabled, nbf, exp, exportable). `kty` defaults to
    the material's type (``RSA``/``EC``; with ``-HSM`` on a Managed HSM, which holds
    nothing else); pass ``RSA-HSM``/``EC-HSM`` for a premium certificate's key.
    `version` lets the certificates part give the key its certificate's version, as Key
    Vault does. Callers check the name (`check_name`), that it is not
    soft-deleted, and publish KeyNewVersionCreated after this returns (the write is then
    durable). The returned copy adds ``name``, ``version`` and ``kid`` (the key's path).
    """
    if kty is None:
        kty = with_hsm(material.kty, state.settings.sku == "managed-hsm")
    stored_attributes = new_attributes(state, attributes)
    if attributes.get("exportable") is not None:
        stored_attributes["exportable"] = attributes["exportable"]
    doc: dict[str, Any] = {
        "kty": kty,
        "key_size": material.key_size,
        "crv": material.curve,
        "key_ops": list(key_ops) if key_ops is not None else list(DEFAULT_KEY_OPS[material.kty]),
        "material": material.private_jwk(),
        "attributes": stored_attributes,
        "tags": tags,
        "managed": managed,
        "release_policy": release_policy,
    }
    stored = state.store.add_version(KIND, name, doc, version)
    return dict(
        stored.doc,
        name=stored.name,
        version=stored.version,
        kid=key_path(stored.name, stored.version),
    )


@functools.lru_cache(maxsize=512)
def _material_from(serialized: str) -> KeyMaterial:
    # The store holds only material this emulator wrote, so the RSA consistency check
    # is skipped; the cache serves crypto requests that use the same versions again.
    return KeyMaterial.from_jwk(json.loads(serialized), trusted=True)


def trusted_material(material: Any) -> KeyMaterial:
    """Key material this emulator wrote (its store, or a backup blob it sealed)."""
    return _material_from(json.dumps(material, sort_keys=True))


def material_of(stored: StoredVersion) -> KeyMaterial:
    """The key material of a stored version."""
    try:
        return _material_from(json.dumps(stored.doc["material"], sort_keys=True))
    except (KeyError, KeyMaterialError):
        # The store was written by this module; a bad document is corruption, not input.
        raise KeyVaultError(
            500, "InternalServerError", f"The stored material of key {stored.name} is unreadable."
        ) from None


def key_path(name: str, version: str | None = None) -> str:
    """`/keys/<name>` or `/keys/<name>/<version>`."""
    return f"/keys/{name}/{version}" if version else f"/keys/{name}"


def load_charged(state: VaultState, name: str, version: str) -> StoredVersion:
    """A live version ('' = latest), charging the key's budget (the vault's for a 404)."""
    try:
        stored = live_version(state, KIND, name, version)
    except KeyVaultError:
        state.throttle.charge(throttle.VAULT_OPS)
        raise
    charge_key_ops(state, stored)
    return stored


def is_hsm_key(state: VaultState, kty: str) -> bool:
    """Whether a key of this kty lives in an HSM: `-HSM` types, and every Managed HSM key."""
    return kty.endswith("-HSM") or state.settings.sku == "managed-hsm"


def charge_key_ops(state: VaultState, stored: StoredVersion) -> None:
    """Charge this key's transaction budget (it depends on the key's type and size)."""
    doc = stored.doc
    kty = str(doc.get("kty", "RSA"))
    state.throttle.charge(throttle.key_ops_bucket(kty, doc.get("key_size"), is_hsm_key(state, kty)))


def charge_key_create(state: VaultState, kty: str) -> None:
    """Charge the create budget: 20 software or 10 HSM keys per 10 s."""
    state.throttle.charge(throttle.key_create_bucket(is_hsm_key(state, kty)))


def publish_new_version(state: VaultState, stored: StoredVersion | dict[str, Any]) -> None:
    """Queue KeyNewVersionCreated for a durable new version."""
    if isinstance(stored, StoredVersion):
        name, version, attributes = stored.name, stored.version, stored.doc["attributes"]
    else:
        name, version, attributes = stored["name"], stored["version"], stored["attributes"]
    state.events.publish(
        "NewVersionCreated",
        KIND,
        name,
        version,
        nbf=attributes.get("nbf"),
        exp=attributes.get("exp"),
    )


def render_jwk(
    state: VaultState, request: web.Request | None, stored: StoredVersion
) -> dict[str, Any]:
    """The public JsonWebKey of a version, as Key Vault returns it."""
    doc = stored.doc
    jwk: dict[str, Any] = {"kid": object_url(state, request, key_path(stored.name, stored.version))}
    public = material_of(stored).public_jwk()
    jwk["kty"] = doc["kty"]
    jwk["key_ops"] = list(doc.get("key_ops") or [])
    jwk.update({k: v for k, v in public.items() if k != "kty"})
    return jwk


def _render_common(
    state: VaultState, stored: StoredVersion, body: dict[str, Any]
) -> dict[str, Any]:
    doc = stored.doc
    body["attributes"] = render_attributes(state, doc.get("attributes") or {})
    if doc.get("tags") is not None:
        body["tags"] = doc["tags"]
    if doc.get("managed"):
        body["managed"] = True
    return body


def render_key(
    state: VaultState, request: web.Request | None, stored: StoredVersion
) -> dict[str, Any]:
    """A KeyBundle: the public key, attributes, tags, managed flag, release policy."""
    body = _render_common(state, stored, {"key": render_jwk(state, request, stored)})
    if stored.doc.get("release_policy") is not None:
        body["release_policy"] = stored.doc["release_policy"]
    return body


def render_item(
    state: VaultState, request: web.Request | None, stored: StoredVersion, *, versioned_id: bool
) -> dict[str, Any]:
    """A KeyItem (list entry): id, attributes, tags, managed; no key material at all."""
    path = key_path(stored.name, stored.version if versioned_id else None)
    return _render_common(state, stored, {"kid": object_url(state, request, path)})


def render_deleted(
    state: VaultState, request: web.Request | None, deleted: DeletedObject
) -> dict[str, Any]:
    """A DeletedKeyBundle."""
    body = render_key(state, request, deleted.latest)
    body.update(softdelete.deleted_fields(state, request, deleted))
    return body


def render_deleted_item(
    state: VaultState, request: web.Request | None, deleted: DeletedObject
) -> dict[str, Any]:
    """A DeletedKeyItem."""
    item = render_item(state, request, deleted.latest, versioned_id=False)
    item.update(softdelete.deleted_fields(state, request, deleted))
    return item
