"""Issuing certificate versions: create (from a policy) and import (PFX or PEM).

Create with issuer "Self" generates the key and the self-signed certificate and
completes at once; the answer is 202 with an operation whose status is already
"completed", so the SDK's poller finishes without sleeping. Issuer "Unknown" leaves an
operation in progress with a CSR until a merge (`emulator.certoperations`). Key
generation and signing run in a worker thread so an RSA-4096 key does not stall the
event loop; every store write stays on the loop.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import secrets as random
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives.serialization import Encoding

from emulator import certoperations
from emulator.certbundle import (
    KIND,
    add_certificate_version,
    check_name_free,
    get_operation,
    private_key_of,
    put_operation,
    render_bundle,
    render_operation,
)
from emulator.certimport import load_import, x509_spec_of
from emulator.certmaterial import (
    CertificateMaterial,
    CertMaterialError,
    PrivateKey,
    build_csr,
    build_self_signed,
    describe_key,
    generate_private_key,
)
from emulator.certpolicy import (
    SELF_ISSUER,
    UNKNOWN_ISSUER,
    is_platform_managed,
    key_spec,
    merge_policy,
    normalize_policy,
    policy_for_import,
    x509_spec,
)
from emulator.errors import bad_parameter, conflict
from emulator.keymaterial import KeyMaterial
from emulator.objects import check_name, parse_attributes, parse_tags, read_json
from emulator.state import VaultState, vault_state

HSM_SKUS = ("premium", "managed-hsm")


def _name(request: web.Request) -> str:
    return check_name(request.match_info["name"])


_IN_PROGRESS = "Pending certificate created. Certificate request is in progress."
_AWAITING_MERGE = "Pending certificate created. Please Perform Merge to complete the request."


def policy_or_400(
    doc: Any, purpose: str, current: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    try:
        if current is not None:
            return merge_policy(current, doc)
        return normalize_policy(doc, "create" if purpose == "create" else "import")
    except CertMaterialError as exc:
        raise bad_parameter(str(exc)) from None


def stamp_policy(
    state: VaultState, policy: dict[str, Any], previous: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Policy attributes: created when the certificate was first made, updated now."""
    now = state.now()
    created = ((previous or {}).get("attributes") or {}).get("created", now)
    enabled = (policy.get("attributes") or {}).get("enabled", True)
    return {**policy, "attributes": {"enabled": enabled, "created": created, "updated": now}}


def check_sku(state: VaultState, policy: Mapping[str, Any]) -> None:
    kty = str(policy["key_props"]["kty"])
    if kty.endswith("-HSM") and state.settings.sku not in HSM_SKUS:
        raise bad_parameter(
            f"policy.key_props.kty {kty} needs a Premium vault; this vault's SKU is "
            f"{state.settings.sku}."
        )


def _check_no_pending(state: VaultState, name: str) -> None:
    operation = get_operation(state, name)
    if operation is not None and operation.get("status") == "inProgress":
        raise conflict(
            KIND,
            name,
            message=f"Certificate {name} has a pending operation in progress; merge, cancel "
            "or delete it first.",
        )


def _enabled(body: Mapping[str, Any]) -> bool:
    return bool(parse_attributes(body.get("attributes")).get("enabled", True))


def _preserve_order(body: Mapping[str, Any]) -> bool | None:
    value = body.get("preserveCertOrder")
    if value is not None and not isinstance(value, bool):
        raise bad_parameter("preserveCertOrder must be true or false.")
    return value


def _vault_now(state: VaultState) -> dt.datetime:
    return dt.datetime.fromtimestamp(state.now(), dt.UTC)


def _issue_self_signed(
    policy: Mapping[str, Any], key: PrivateKey | None, now: dt.datetime
) -> CertificateMaterial:
    """Key (unless reused) and self-signed certificate; CPU-bound, runs in a thread."""
    private_key = key if key is not None else generate_private_key(key_spec(policy))
    return CertificateMaterial(private_key, build_self_signed(private_key, x509_spec(policy), now))


def _csr_for(policy: Mapping[str, Any], key: PrivateKey | None) -> tuple[PrivateKey, bytes]:
    """Key (unless reused) and DER CSR for a pending certificate; runs in a thread."""
    private_key = key if key is not None else generate_private_key(key_spec(policy))
    return private_key, build_csr(private_key, x509_spec(policy)).public_bytes(Encoding.DER)


async def create_certificate(request: web.Request) -> web.Response:
    """POST /certificates/{name}/create: 202 with the certificate operation."""
    state = vault_state(request)
    name = _name(request)
    body = await read_json(request)
    latest = state.store.get_latest(KIND, name)
    if body.get("policy") is None and latest is None:
        raise bad_parameter("policy is required to create the first version of a certificate.")
    if body.get("policy") is None:
        assert latest is not None
        policy = dict(latest.doc["policy"])
    else:
        policy = policy_or_400(body["policy"], "create")
    tags = parse_tags(body.get("tags"))
    enabled = _enabled(body)
    preserve = _preserve_order(body)
    check_sku(state, policy)
    _check_no_pending(state, name)
    check_name_free(state, name)
    policy = stamp_policy(state, policy, latest.doc["policy"] if latest else None)
    reused = None
    if latest is not None and policy["key_props"]["reuse_key"]:
        reused = private_key_of(state, latest)
    issuer = policy["issuer"]["name"]
    if issuer not in (SELF_ISSUER, UNKNOWN_ISSUER):
        certoperations.require_issuer(state, str(issuer))
    operation: dict[str, Any] = {
        "name": name,
        "issuer": policy["issuer"],
        "cancellation_requested": False,
        "request_id": random.token_hex(16),
        "preserveCertOrder": preserve,
    }
    if is_platform_managed(policy):
        # Kept so that get_certificate_policy returns the policy as given.
        operation.update(certoperations.platform_managed_refused(), csr=None, policy=policy)
        put_operation(state, operation)
        return _accepted(state, request, operation)
    try:
        if issuer == SELF_ISSUER:
            material = await asyncio.to_thread(
                _issue_self_signed, policy, reused, _vault_now(state)
            )
        else:
            key, csr = await asyncio.to_thread(_csr_for, policy, reused)
    except CertMaterialError as exc:
        raise bad_parameter(str(exc)) from None
    if issuer == SELF_ISSUER:
        stored = add_certificate_version(
            state, name, material, policy, enabled=enabled, tags=tags, preserve_order=preserve
        )
        operation.update(
            status="completed",
            status_details="",
            target=f"/certificates/{stored.name}",
            csr=None,
        )
    elif issuer == UNKNOWN_ISSUER:
        operation.update(
            status="inProgress",
            status_details=_AWAITING_MERGE,
            csr=base64.b64encode(csr).decode(),
            key=KeyMaterial.from_private_key(key).private_jwk(),
            policy=policy,
            tags=tags,
            enabled=enabled,
        )
    else:
        operation.update(
            certoperations.issuer_unreachable(str(issuer)),
            csr=base64.b64encode(csr).decode(),
        )
    put_operation(state, operation)
    return _accepted(state, request, operation)


def _accepted(state: VaultState, request: web.Request, operation: dict[str, Any]) -> web.Response:
    """The 202 answer of a create: the operation, always `inProgress`."""
    # Azure answers every create with "inProgress", and the SDK's poller relies on it: an
    # operation that is finished in the first answer never fetches the certificate. The
    # stored operation is already complete, so the poller's first GET of it finishes.
    if operation["status"] != "inProgress":
        operation = {**operation, "status": "inProgress", "status_details": _IN_PROGRESS}
    return web.json_response(render_operation(state, request, operation), status=202)


async def import_certificate(request: web.Request) -> web.Response:
    """POST /certificates/{name}/import: a PFX or PEM with its private key."""
    state = vault_state(request)
    name = _name(request)
    body = await read_json(request)
    value = body.get("value")
    if not isinstance(value, str) or not value.strip():
        raise bad_parameter("value is required: the base64-encoded PFX or PEM to import.")
    password = body.get("pwd")
    if password is not None and not isinstance(password, str):
        raise bad_parameter("pwd must be a string.")
    latest = state.store.get_latest(KIND, name)
    if body.get("policy") is not None:
        policy = policy_or_400(body["policy"], "import")
    elif latest is not None:
        policy = dict(latest.doc["policy"])
    else:
        policy = policy_or_400(None, "import")
    tags = parse_tags(body.get("tags"))
    enabled = _enabled(body)
    preserve = _preserve_order(body)
    content_type = policy["secret_props"]["contentType"]
    try:
        material = await asyncio.to_thread(load_import, value, password, content_type)
        kty, size, curve = describe_key(material.private_key)
    except CertMaterialError as exc:
        raise bad_parameter(str(exc)) from None
    if str(policy["key_props"]["kty"]).endswith("-HSM"):
        kty = f"{kty}-HSM"
    policy = policy_for_import(policy, x509_spec_of(material.certificate), kty, size, curve)
    check_sku(state, policy)
    _check_no_pending(state, name)
    check_name_free(state, name)
    policy = stamp_policy(state, policy, latest.doc["policy"] if latest else None)
    stored = add_certificate_version(
        state, name, material, policy, enabled=enabled, tags=tags, preserve_order=preserve
    )
    return web.json_response(render_bundle(state, request, stored))
