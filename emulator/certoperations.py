"""Certificate pending operations, merge, contacts and issuers.

- `/certificates/{name}/pending`: get, cancel (PATCH) and delete the operation that a
  create started. Issuer "Self" completes at once; issuer "Unknown" waits for a merge;
  a named issuer is stored but never contacted, so its operations fail with a clear
  `NotImplemented` error instead of waiting forever.
- `/certificates/{name}/pending/merge`: completes an "Unknown" operation with the
  certificate (chain) a CA signed for its CSR.
- `/certificates/contacts` and `/certificates/issuers[/{name}]`: stored vault settings.
  An issuer's password is kept but never returned, as in Key Vault.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from emulator.certbundle import (
    KIND,
    add_certificate_version,
    check_name_free,
    delete_operation,
    get_operation,
    put_operation,
    render_bundle,
    render_operation,
)
from emulator.certimport import load_certificates_der
from emulator.certmaterial import CertificateMaterial, CertMaterialError, public_keys_match
from emulator.errors import KeyVaultError, bad_parameter, conflict
from emulator.keymaterial import KeyMaterial
from emulator.objects import check_name, parse_attributes, parse_tags, read_json
from emulator.paging import page_body, page_request
from emulator.state import VaultState, vault_state

CONTACTS = "certificate-contacts"
ISSUERS = "certificate-issuers"


def _pending_not_found(name: str) -> KeyVaultError:
    return KeyVaultError(
        404, "PendingCertificateNotFound", f"Pending certificate not found: {name}"
    )


def _operation_or_404(state: VaultState, name: str) -> dict[str, Any]:
    operation = get_operation(state, name)
    if operation is None:
        raise _pending_not_found(name)
    return operation


def forget_operation(state: VaultState, name: str) -> None:
    """Drop a certificate's operation (the certificate was deleted)."""
    delete_operation(state, name)


def _finished(operation: Mapping[str, Any], **changes: Any) -> dict[str, Any]:
    """The operation with its private key and pending policy dropped."""
    kept = {k: v for k, v in operation.items() if k not in ("key", "policy", "tags", "enabled")}
    kept.update(changes)
    return kept


async def get_pending(request: web.Request) -> web.Response:
    """GET /certificates/{name}/pending."""
    state = vault_state(request)
    operation = _operation_or_404(state, check_name(request.match_info["name"]))
    return web.json_response(render_operation(state, request, operation))


async def cancel_pending(request: web.Request) -> web.Response:
    """PATCH /certificates/{name}/pending: request cancellation of an operation in progress."""
    state = vault_state(request)
    name = check_name(request.match_info["name"])
    body = await read_json(request)
    requested = body.get("cancellation_requested")
    if not isinstance(requested, bool):
        raise bad_parameter("cancellation_requested is required and must be true or false.")
    operation = _operation_or_404(state, name)
    if requested and operation.get("status") == "inProgress":
        # Nothing outside the emulator works on the request, so it stops at once.
        operation = _finished(
            operation,
            status="cancelled",
            cancellation_requested=True,
            status_details="The certificate operation was cancelled.",
        )
        put_operation(state, operation)
    return web.json_response(render_operation(state, request, operation))


async def delete_pending(request: web.Request) -> web.Response:
    """DELETE /certificates/{name}/pending: forget the operation (its key is discarded)."""
    state = vault_state(request)
    name = check_name(request.match_info["name"])
    operation = _operation_or_404(state, name)
    delete_operation(state, name)
    return web.json_response(render_operation(state, request, operation))


def _x5c(body: Mapping[str, Any]) -> list[bytes]:
    value = body.get("x5c")
    if not isinstance(value, list) or not value:
        raise bad_parameter("x5c is required: the signed certificate (and its chain), base64 DER.")
    blobs = []
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise bad_parameter(f"x5c[{index}] must be a base64 string.")
        try:
            blobs.append(base64.b64decode(item, validate=True))
        except (binascii.Error, ValueError):
            raise bad_parameter(f"x5c[{index}] is not valid base64.") from None
    return blobs


async def merge_certificate(request: web.Request) -> web.Response:
    """POST /certificates/{name}/pending/merge: 201 with the completed certificate."""
    state = vault_state(request)
    name = check_name(request.match_info["name"])
    body = await read_json(request)
    blobs = _x5c(body)
    operation = _operation_or_404(state, name)
    if operation.get("status") != "inProgress" or "key" not in operation:
        raise conflict(
            KIND,
            name,
            message=f"The pending operation of certificate {name} is "
            f"{operation.get('status')}; only an operation in progress can be merged.",
        )
    try:
        certs = load_certificates_der(blobs)
    except CertMaterialError as exc:
        raise bad_parameter(str(exc)) from None
    key = KeyMaterial.from_jwk(operation["key"]).private_key()
    material = CertificateMaterial(key, certs[0], tuple(certs[1:]))
    if not public_keys_match(key, material.certificate):
        raise bad_parameter(
            "x5c[0]: the public key of the certificate does not match the key of the "
            f"pending certificate {name}."
        )
    check_name_free(state, name)
    tags = parse_tags(body["tags"]) if "tags" in body else operation.get("tags")
    enabled = parse_attributes(body.get("attributes")).get(
        "enabled", operation.get("enabled", True)
    )
    stored = add_certificate_version(
        state,
        name,
        material,
        operation["policy"],
        enabled=bool(enabled),
        tags=tags,
        preserve_order=operation.get("preserveCertOrder"),
    )
    put_operation(
        state,
        _finished(operation, status="completed", status_details="", target=f"/certificates/{name}"),
    )
    return web.json_response(render_bundle(state, request, stored), status=201)


# -- issuers that are not "Self" or "Unknown" --------------------------------------------


def require_issuer(state: VaultState, name: str) -> dict[str, Any]:
    """A stored issuer, or 400 as Key Vault answers a policy naming an unknown issuer."""
    issuer = state.store.get_value(ISSUERS, name.lower())
    if not isinstance(issuer, dict):
        raise bad_parameter(
            f"policy.issuer.name {name!r} is neither Self, Unknown nor an issuer of this vault."
        )
    return issuer


def issuer_unreachable(name: str) -> dict[str, Any]:
    """Operation fields for a certificate that a named (CA) issuer would have to sign."""
    message = (
        f"The kvdr emulator does not contact certificate authorities; issuer {name} cannot "
        "sign this request. Use issuer Self, or Unknown and merge a certificate."
    )
    return {
        "status": "failed",
        "status_details": message,
        "error": {"code": "NotImplemented", "message": message},
    }


def platform_managed_refused() -> dict[str, Any]:
    """Operation fields for a certificate whose policy is platform-managed.

    The SDK documents `platform_managed` as "experimental ... for Azure Key Vault internal
    usage. Any calls using this property will fail", and the REST spec says the feature
    is "intended for internal use only": the create is accepted, the certificate is never
    issued. No public recording shows Azure's own wording, so this names the reason.
    """
    message = (
        "The certificate cannot be issued: its policy is platform-managed "
        "(platformManaged), a feature intended for Azure Key Vault's internal use only."
    )
    return {
        "status": "failed",
        "status_details": message,
        "error": {"code": "BadParameter", "message": message},
    }


# -- contacts ----------------------------------------------------------------------------


def _contacts_body(state: VaultState, request: web.Request, contacts: Any) -> dict[str, Any]:
    return {"id": f"{state.vault_url(request)}/certificates/contacts", "contacts": contacts}


def _contacts_or_404(state: VaultState) -> Any:
    contacts = state.store.get_value(CONTACTS, "contacts")
    if contacts is None:
        raise KeyVaultError(404, "ContactsNotFound", "Contacts not found for this vault.")
    return contacts


def _parse_contacts(body: Mapping[str, Any]) -> list[dict[str, str]]:
    value = body.get("contacts")
    if not isinstance(value, list):
        raise bad_parameter("contacts is required and must be a list.")
    contacts = []
    for index, entry in enumerate(value):
        if not isinstance(entry, Mapping):
            raise bad_parameter(f"contacts[{index}] must be an object.")
        contact = {}
        for field in ("email", "name", "phone"):
            item = entry.get(field)
            if item is not None and not isinstance(item, str):
                raise bad_parameter(f"contacts[{index}].{field} must be a string.")
            if item is not None:
                contact[field] = item
        if not contact.get("email"):
            raise bad_parameter(f"contacts[{index}].email is required.")
        contacts.append(contact)
    return contacts


async def set_contacts(request: web.Request) -> web.Response:
    """PUT /certificates/contacts: replace the vault's certificate contacts."""
    state = vault_state(request)
    contacts = _parse_contacts(await read_json(request))
    state.store.put_value(CONTACTS, "contacts", contacts)
    return web.json_response(_contacts_body(state, request, contacts))


async def get_contacts(request: web.Request) -> web.Response:
    """GET /certificates/contacts."""
    state = vault_state(request)
    return web.json_response(_contacts_body(state, request, _contacts_or_404(state)))


async def delete_contacts(request: web.Request) -> web.Response:
    """DELETE /certificates/contacts: returns the contacts that were removed."""
    state = vault_state(request)
    contacts = _contacts_or_404(state)
    state.store.delete_value(CONTACTS, "contacts")
    return web.json_response(_contacts_body(state, request, contacts))


# -- issuers -----------------------------------------------------------------------------


def _issuer_or_404(state: VaultState, name: str) -> dict[str, Any]:
    issuer = state.store.get_value(ISSUERS, name.lower())
    if not isinstance(issuer, dict):
        raise KeyVaultError(404, "CertificateIssuerNotFound", f"Issuer not found: {name}")
    return issuer


def _optional_object(body: Mapping[str, Any], field: str) -> dict[str, Any] | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise bad_parameter(f"{field} must be an object.")
    return dict(value)


def _issuer_fields(body: Mapping[str, Any], *, require_provider: bool) -> dict[str, Any]:
    """The writable issuer fields a request carries, checked."""
    fields: dict[str, Any] = {}
    provider = body.get("provider")
    if provider is None and require_provider:
        raise bad_parameter("provider is required (for example DigiCert or GlobalSign).")
    if provider is not None:
        if not isinstance(provider, str) or not provider:
            raise bad_parameter("provider must be a non-empty string.")
        fields["provider"] = provider
    credentials = _optional_object(body, "credentials")
    if credentials is not None:
        for key in ("account_id", "pwd"):
            if credentials.get(key) is not None and not isinstance(credentials[key], str):
                raise bad_parameter(f"credentials.{key} must be a string.")
        fields["credentials"] = {
            k: credentials[k] for k in ("account_id", "pwd") if credentials.get(k) is not None
        }
    org = _optional_object(body, "org_details")
    if org is not None:
        admins = org.get("admin_details")
        if admins is not None and not (
            isinstance(admins, list) and all(isinstance(a, Mapping) for a in admins)
        ):
            raise bad_parameter("org_details.admin_details must be a list of objects.")
        fields["org_details"] = org
    attributes = _optional_object(body, "attributes")
    if attributes is not None:
        enabled = attributes.get("enabled")
        if enabled is not None and not isinstance(enabled, bool):
            raise bad_parameter("attributes.enabled must be true or false.")
        if enabled is not None:
            fields["enabled"] = enabled
    return fields


def _render_issuer(
    state: VaultState, request: web.Request, issuer: Mapping[str, Any]
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": f"{state.vault_url(request)}/certificates/issuers/{issuer['name']}",
        "provider": issuer["provider"],
        "attributes": {
            "enabled": issuer.get("enabled", True),
            "created": issuer["created"],
            "updated": issuer["updated"],
        },
    }
    credentials = issuer.get("credentials") or {}
    if credentials:
        # Key Vault never returns the issuer's password.
        body["credentials"] = {k: v for k, v in credentials.items() if k != "pwd"}
    if issuer.get("org_details") is not None:
        body["org_details"] = issuer["org_details"]
    return body


async def set_issuer(request: web.Request) -> web.Response:
    """PUT /certificates/issuers/{issuer}: create or replace an issuer."""
    state = vault_state(request)
    name = check_name(request.match_info["issuer"])
    fields = _issuer_fields(await read_json(request), require_provider=True)
    previous = state.store.get_value(ISSUERS, name.lower())
    now = state.now()
    created = previous.get("created", now) if isinstance(previous, dict) else now
    issuer = {"name": name, "enabled": True, **fields, "created": created, "updated": now}
    state.store.put_value(ISSUERS, name.lower(), issuer)
    return web.json_response(_render_issuer(state, request, issuer))


async def update_issuer(request: web.Request) -> web.Response:
    """PATCH /certificates/issuers/{issuer}: change the fields given."""
    state = vault_state(request)
    name = check_name(request.match_info["issuer"])
    fields = _issuer_fields(await read_json(request), require_provider=False)
    issuer = _issuer_or_404(state, name)
    issuer.update(fields, updated=state.now())
    state.store.put_value(ISSUERS, name.lower(), issuer)
    return web.json_response(_render_issuer(state, request, issuer))


async def get_issuer(request: web.Request) -> web.Response:
    """GET /certificates/issuers/{issuer}."""
    state = vault_state(request)
    issuer = _issuer_or_404(state, check_name(request.match_info["issuer"]))
    return web.json_response(_render_issuer(state, request, issuer))


async def delete_issuer(request: web.Request) -> web.Response:
    """DELETE /certificates/issuers/{issuer}: returns the removed issuer."""
    state = vault_state(request)
    name = check_name(request.match_info["issuer"])
    issuer = _issuer_or_404(state, name)
    state.store.delete_value(ISSUERS, name.lower())
    return web.json_response(_render_issuer(state, request, issuer))


async def list_issuers(request: web.Request) -> web.Response:
    """GET /certificates/issuers: id and provider of each issuer, paged."""
    state = vault_state(request)
    page = page_request(request)
    after = (page.after or "").lower()
    rows = [v for k, v in state.store.list_values(ISSUERS).items() if k > after]
    body = page_body(
        request,
        state.vault_url(request),
        page,
        rows[: page.size + 1],
        lambda i: {
            "id": f"{state.vault_url(request)}/certificates/issuers/{i['name']}",
            "provider": i["provider"],
        },
        lambda i: str(i["name"]).lower(),
    )
    return web.json_response(body)


def routes(state: VaultState) -> list[web.RouteDef]:
    """Routes for contacts, issuers and pending operations (before `{name}/{version}`)."""
    return [
        web.put("/certificates/contacts", set_contacts, name="SetCertificateContacts"),
        web.get("/certificates/contacts", get_contacts, name="GetCertificateContacts"),
        web.delete("/certificates/contacts", delete_contacts, name="DeleteCertificateContacts"),
        web.get("/certificates/issuers", list_issuers, name="GetCertificateIssuers"),
        web.put("/certificates/issuers/{issuer}", set_issuer, name="SetCertificateIssuer"),
        web.patch("/certificates/issuers/{issuer}", update_issuer, name="UpdateCertificateIssuer"),
        web.get("/certificates/issuers/{issuer}", get_issuer, name="GetCertificateIssuer"),
        web.delete("/certificates/issuers/{issuer}", delete_issuer, name="DeleteCertificateIssuer"),
        web.get("/certificates/{name}/pending", get_pending, name="GetCertificateOperation"),
        web.patch(
            "/certificates/{name}/pending", cancel_pending, name="UpdateCertificateOperation"
        ),
        web.delete(
            "/certificates/{name}/pending", delete_pending, name="DeleteCertificateOperation"
        ),
        web.post("/certificates/{name}/pending/merge", merge_certificate, name="MergeCertificate"),
    ]
