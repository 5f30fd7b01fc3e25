"""Certificate versions in the store: writing one (with its key and secret) and rendering it.

As in Azure, every certificate version comes with a managed key version and a managed
secret version of the same name: the key holds the key pair (`managed: true`), the
secret holds the PFX or PEM (with the private key when the policy makes it exportable).
The three are written in one store transaction, so a crash never leaves a certificate
without its key or secret.

A stored certificate version is
`{"attributes", "tags", "cer", "x5t", "contentType", "policy", "kid", "sid",
"preserveCertOrder"}` with `kid`/`sid` as vault-relative paths. The policy lives in every
version and the latest version's copy is the certificate's policy (Key Vault keeps one
policy per certificate); a policy update rewrites the latest version's copy.

Pending operations (`/certificates/{name}/pending`) live in the store's singletons under
`OPERATIONS`, keyed by the lower-cased name; the private key of a pending merge sits
there as a JWK, like every key the store holds, and is never rendered.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from emulator import secrets, softdelete
from emulator.certmaterial import CertificateMaterial, PrivateKey
from emulator.certpolicy import key_ops_for
from emulator.errors import KeyVaultError, conflict
from emulator.keydocs import add_key_version, material_of
from emulator.keymaterial import KeyMaterial
from emulator.objects import new_attributes, object_url, render_attributes
from emulator.state import VaultState
from emulator.store import DeletedObject, StoredVersion, new_version_id

KIND = "certificate"
OPERATIONS = "certificate-operations"
# The kinds that move together when a certificate is deleted, recovered or purged.
MANAGED_KINDS = ("key", "secret")


def certificate_path(name: str, version: str | None = None) -> str:
    """The vault-relative id of a certificate (or one version of it)."""
    return f"/certificates/{name}/{version}" if version else f"/certificates/{name}"


def check_name_free(state: VaultState, name: str) -> None:
    """Refuse to write under a name a soft-deleted certificate, or a foreign key/secret holds.

    Key Vault keeps the name of a soft-deleted certificate until it is purged or
    recovered, and a certificate cannot take over a key or secret it does not manage.
    """
    store = state.store
    if store.name_state(KIND, name) == "deleted":
        raise conflict(KIND, name, deleted=True)
    for kind in MANAGED_KINDS:
        name_state = store.name_state(kind, name)
        if name_state == "deleted":
            raise conflict(
                KIND,
                name,
                deleted=True,
                message=f"A deleted {kind} named {name} still holds this name; purge or "
                f"recover it before creating certificate {name}.",
            )
        latest = store.get_latest(kind, name)
        if latest is not None and not latest.doc.get("managed"):
            raise conflict(
                KIND,
                name,
                message=f"A {kind} named {name} that no certificate manages already exists; "
                f"certificate {name} cannot be created under its name.",
            )


def add_certificate_version(
    state: VaultState,
    name: str,
    material: CertificateMaterial,
    policy: Mapping[str, Any],
    *,
    enabled: bool,
    tags: dict[str, str] | None,
    preserve_order: bool | None,
) -> StoredVersion:
    """Write certificate, key and secret versions in one transaction; then announce them.

    The caller validated the name and called `check_name_free`.
    """
    cert = material.certificate
    nbf = int(cert.not_valid_before_utc.timestamp())
    exp = int(cert.not_valid_after_utc.timestamp())
    given = {"enabled": enabled, "nbf": nbf, "exp": exp}
    content_type = policy["secret_props"]["contentType"]
    exportable = bool(policy["key_props"]["exportable"])
    # Key Vault gives the certificate, its key and its secret the same version id.
    version = new_version_id()
    kid = f"/keys/{name}/{version}"
    with state.store.transaction():
        add_key_version(
            state,
            name,
            KeyMaterial.from_private_key(material.private_key),
            attributes=given,
            tags=tags,
            key_ops=key_ops_for(policy),
            managed=True,
            kty=str(policy["key_props"]["kty"]),
            version=version,
        )
        secrets.add_secret_version(
            state,
            name,
            material.secret_value(content_type, include_private_key=exportable),
            content_type=content_type,
            tags=tags,
            attributes=given,
            kid=kid,
            managed=True,
            version=version,
        )
        doc: dict[str, Any] = {
            "attributes": new_attributes(state, given),
            "tags": tags,
            "cer": base64.b64encode(material.cer).decode(),
            "x5t": material.x5t,
            "contentType": content_type,
            "policy": dict(policy),
            "kid": kid,
            "sid": f"/secrets/{name}/{version}",
            "preserveCertOrder": preserve_order,
        }
        stored = state.store.add_version(KIND, name, doc, version)
    # Azure announces the certificate and the key and secret that come with it.
    for kind in ("key", "secret", KIND):
        state.events.publish("NewVersionCreated", kind, name, version, nbf=nbf, exp=exp)
    return stored


def private_key_of(state: VaultState, stored: StoredVersion) -> PrivateKey:
    """The private key behind a certificate version (from its managed key)."""
    kid = str(stored.doc.get("kid") or "")
    key_version = kid.rsplit("/", 1)[-1]
    key = state.store.get_version("key", stored.name, key_version) if key_version else None
    if key is None:
        raise KeyVaultError(
            500,
            "InternalServerError",
            f"The key backing certificate {stored.name} is missing from the vault.",
        )
    return material_of(key).private_key()


def render_policy(
    state: VaultState, request: web.Request | None, name: str, policy: Mapping[str, Any]
) -> dict[str, Any]:
    """A CertificatePolicy body: the stored policy plus its id."""
    body = {"id": object_url(state, request, f"/certificates/{name}/policy")}
    body.update({k: v for k, v in policy.items() if v is not None})
    return body


def render_bundle(
    state: VaultState,
    request: web.Request | None,
    stored: StoredVersion,
    *,
    policy: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A CertificateBundle: ids of the certificate, key and secret, x5t, cer, policy."""
    doc = stored.doc
    body: dict[str, Any] = {
        "id": object_url(state, request, certificate_path(stored.name, stored.version)),
        "kid": object_url(state, request, doc["kid"]),
        "sid": object_url(state, request, doc["sid"]),
        "x5t": doc["x5t"],
        "cer": doc["cer"],
        "contentType": doc.get("contentType"),
        "attributes": render_attributes(state, doc.get("attributes") or {}),
        "policy": render_policy(state, request, stored.name, policy or doc["policy"]),
    }
    if doc.get("tags") is not None:
        body["tags"] = doc["tags"]
    if doc.get("preserveCertOrder") is not None:
        body["preserveCertOrder"] = doc["preserveCertOrder"]
    return body


def render_item(
    state: VaultState, request: web.Request | None, stored: StoredVersion, *, versioned: bool
) -> dict[str, Any]:
    """A CertificateItem (list entry): id, attributes, tags, x5t."""
    version = stored.version if versioned else None
    body: dict[str, Any] = {
        "id": object_url(state, request, certificate_path(stored.name, version)),
        "attributes": render_attributes(state, stored.doc.get("attributes") or {}),
        "x5t": stored.doc["x5t"],
    }
    if stored.doc.get("tags") is not None:
        body["tags"] = stored.doc["tags"]
    return body


def render_deleted(
    state: VaultState, request: web.Request | None, deleted: DeletedObject
) -> dict[str, Any]:
    """A DeletedCertificateBundle."""
    body = render_bundle(state, request, deleted.latest)
    body.update(softdelete.deleted_fields(state, request, deleted))
    return body


def render_deleted_item(
    state: VaultState, request: web.Request | None, deleted: DeletedObject
) -> dict[str, Any]:
    """A DeletedCertificateItem."""
    body = render_item(state, request, deleted.latest, versioned=False)
    body.update(softdelete.deleted_fields(state, request, deleted))
    return body


# -- pending operations ------------------------------------------------------------------


def get_operation(state: VaultState, name: str) -> dict[str, Any] | None:
    """The stored pending operation of a certificate name, or None."""
    value = state.store.get_value(OPERATIONS, name.lower())
    return value if isinstance(value, dict) else None


def put_operation(state: VaultState, operation: dict[str, Any]) -> None:
    """Store (replace) the pending operation of `operation["name"]`."""
    state.store.put_value(OPERATIONS, str(operation["name"]).lower(), operation)


def delete_operation(state: VaultState, name: str) -> bool:
    """Forget a certificate's pending operation; False when there was none."""
    return state.store.delete_value(OPERATIONS, name.lower())


def pending_names(state: VaultState) -> dict[str, dict[str, Any]]:
    """Operations still in progress, by lower-cased name (for includePending listings)."""
    return {
        key: op
        for key, op in state.store.list_values(OPERATIONS).items()
        if isinstance(op, dict) and op.get("status") == "inProgress"
    }


def render_operation(
    state: VaultState, request: web.Request | None, operation: Mapping[str, Any]
) -> dict[str, Any]:
    """A CertificateOperation body; the stored private key and policy stay out of it."""
    name = str(operation["name"])
    body: dict[str, Any] = {
        "id": object_url(state, request, f"/certificates/{name}/pending"),
        "issuer": operation["issuer"],
        "csr": operation.get("csr"),
        "cancellation_requested": bool(operation.get("cancellation_requested")),
        "status": operation["status"],
        "status_details": operation.get("status_details"),
        "request_id": operation.get("request_id"),
    }
    if operation.get("target"):
        body["target"] = object_url(state, request, str(operation["target"]))
    if operation.get("error"):
        body["error"] = operation["error"]
    if operation.get("preserveCertOrder") is not None:
        body["preserveCertOrder"] = operation["preserveCertOrder"]
    return {k: v for k, v in body.items() if v is not None}
