"""Key Vault certificate policies: validate, fill in defaults, merge updates.

A policy travels as JSON (`key_props`, `secret_props`, `x509_props`, `lifetime_actions`,
`issuer`, `attributes`). `normalize_policy()` checks every field a request may carry and
returns the complete policy Key Vault would store, with Key Vault's defaults filled in
(RSA 2048, exportable, PKCS#12, 12 months, server and client auth, AutoRenew at 80 %).
`key_spec()` and `x509_spec()` turn a stored policy into what `emulator.certmaterial`
builds from. Every error is a `CertMaterialError` naming the field, which the REST
layer answers with 400 `BadParameter`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Literal

from emulator.certmaterial import (
    CLIENT_AUTH,
    CONTENT_TYPES,
    CURVE_BY_SIZE,
    CURVES,
    EC_KEY_TYPES,
    KEY_USAGES,
    PKCS12,
    RSA_KEY_SIZES,
    RSA_KEY_TYPES,
    SERVER_AUTH,
    CertMaterialError,
    KeySpec,
    SubjectAltNames,
    X509Spec,
)

Purpose = Literal["create", "import"]
Json = dict[str, Any]

SELF_ISSUER = "Self"
UNKNOWN_ISSUER = "Unknown"
ACTIONS = ("EmailContacts", "AutoRenew")
# The longest validity Key Vault's self-signed issuer accepts is not documented; 100
# years keeps add_months() inside datetime's range with room to spare.
MAX_VALIDITY_MONTHS = 1200
_SAN_FIELDS = (
    ("dns_names", "dns_names"),
    ("emails", "emails"),
    ("upns", "upns"),
    ("uris", "uris"),
    ("ipAddresses", "ip_addresses"),
)
_KEY_USAGE_BY_LOWER = {name.lower(): name for name in KEY_USAGES}


def _section(doc: Mapping[str, Any], name: str, where: str) -> Mapping[str, Any]:
    value = doc.get(name)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise CertMaterialError(f"{where}.{name} must be an object")
    return value


def _bool(section: Mapping[str, Any], name: str, where: str, default: bool) -> bool:
    value = section.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise CertMaterialError(f"{where}.{name} must be true or false")
    return value


def _int(section: Mapping[str, Any], name: str, where: str) -> int | None:
    value = section.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise CertMaterialError(f"{where}.{name} must be an integer")
    return value


def _str(section: Mapping[str, Any], name: str, where: str) -> str | None:
    value = section.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise CertMaterialError(f"{where}.{name} must be a string")
    return value


def _str_list(section: Mapping[str, Any], name: str, where: str) -> list[str] | None:
    value = section.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CertMaterialError(f"{where}.{name} must be a list of strings")
    return list(value)


def _key_props(section: Mapping[str, Any]) -> Json:
    where = "policy.key_props"
    kty = _str(section, "kty", where) or "RSA"
    canonical = {t.lower(): t for t in RSA_KEY_TYPES + EC_KEY_TYPES}.get(kty.lower())
    if canonical is None:
        raise CertMaterialError(
            f"{where}.kty {kty!r} is not a certificate key type; use one of "
            f"{list(RSA_KEY_TYPES + EC_KEY_TYPES)}"
        )
    size = _int(section, "key_size", where)
    props: Json = {
        "exportable": _bool(section, "exportable", where, True),
        "kty": canonical,
    }
    if canonical in RSA_KEY_TYPES:
        size = size if size is not None else 2048
        if size not in RSA_KEY_SIZES:
            raise CertMaterialError(
                f"{where}.key_size {size} is not valid for {canonical}; use one of "
                f"{list(RSA_KEY_SIZES)}"
            )
        props["key_size"] = size
    else:
        curve = _str(section, "crv", where)
        if curve is None:
            curve = CURVE_BY_SIZE.get(size, "") if size is not None else "P-256"
            if not curve:
                raise CertMaterialError(
                    f"{where}.key_size {size} names no curve; use one of {sorted(CURVE_BY_SIZE)}"
                )
        canonical_curve = {c.upper(): c for c in CURVES}.get(curve.upper())
        if canonical_curve is None:
            raise CertMaterialError(f"{where}.crv {curve!r} is not one of {sorted(CURVES)}")
        curve_size = CURVES[canonical_curve].key_size
        if size is not None and size != curve_size:
            raise CertMaterialError(
                f"{where}.key_size {size} does not match crv {canonical_curve} ({curve_size})"
            )
        props["key_size"] = curve_size
        props["crv"] = canonical_curve
    props["reuse_key"] = _bool(section, "reuse_key", where, False)
    return props


def _x509_props(section: Mapping[str, Any], kty: str) -> Json:
    where = "policy.x509_props"
    props: Json = {"subject": _str(section, "subject", where) or ""}
    sans_doc = _section(section, "sans", where)
    sans: Json = {}
    for wire, _ in _SAN_FIELDS:
        values = _str_list(sans_doc, wire, f"{where}.sans")
        if values:
            sans[wire] = values
    if sans:
        props["sans"] = sans
    ekus = _str_list(section, "ekus", where)
    props["ekus"] = ekus if ekus is not None else [SERVER_AUTH, CLIENT_AUTH]
    usage = _str_list(section, "key_usage", where)
    if usage is None:
        usage = (
            ["digitalSignature"] if kty in EC_KEY_TYPES else ["digitalSignature", "keyEncipherment"]
        )
    canonical_usage = []
    for name in usage:
        canonical = _KEY_USAGE_BY_LOWER.get(name.lower())
        if canonical is None:
            raise CertMaterialError(f"{where}.key_usage {name!r} is not one of {list(KEY_USAGES)}")
        canonical_usage.append(canonical)
    props["key_usage"] = canonical_usage
    months = _int(section, "validity_months", where)
    months = 12 if months is None else months
    if not 1 <= months <= MAX_VALIDITY_MONTHS:
        raise CertMaterialError(
            f"{where}.validity_months {months} must be between 1 and {MAX_VALIDITY_MONTHS}"
        )
    props["validity_months"] = months
    props["basic_constraints"] = {"ca": False}
    return props


def _lifetime_actions(value: Any, default_action: str) -> list[Json]:
    where = "policy.lifetime_actions"
    if value is None:
        return [{"trigger": {"lifetime_percentage": 80}, "action": {"action_type": default_action}}]
    if not isinstance(value, list):
        raise CertMaterialError(f"{where} must be a list")
    actions = []
    for index, entry in enumerate(value):
        here = f"{where}[{index}]"
        if not isinstance(entry, Mapping):
            raise CertMaterialError(f"{here} must be an object")
        trigger_doc = _section(entry, "trigger", here)
        percentage = _int(trigger_doc, "lifetime_percentage", f"{here}.trigger")
        days = _int(trigger_doc, "days_before_expiry", f"{here}.trigger")
        if (percentage is None) == (days is None):
            raise CertMaterialError(
                f"{here}.trigger needs exactly one of lifetime_percentage and days_before_expiry"
            )
        if percentage is not None and not 1 <= percentage <= 99:
            raise CertMaterialError(
                f"{here}.trigger.lifetime_percentage {percentage} must be between 1 and 99"
            )
        if days is not None and days < 1:
            raise CertMaterialError(f"{here}.trigger.days_before_expiry {days} must be positive")
        action = _str(_section(entry, "action", here), "action_type", f"{here}.action")
        canonical = {a.lower(): a for a in ACTIONS}.get((action or "").lower())
        if canonical is None:
            raise CertMaterialError(f"{here}.action.action_type {action!r} is not one of {ACTIONS}")
        trigger: Json = (
            {"lifetime_percentage": percentage}
            if percentage is not None
            else {"days_before_expiry": days}
        )
        actions.append({"trigger": trigger, "action": {"action_type": canonical}})
    return actions


def _issuer(section: Mapping[str, Any], default_name: str) -> Json:
    where = "policy.issuer"
    name = _str(section, "name", where) or default_name
    # "Self" and "Unknown" are reserved and matched case-insensitively, as in Key Vault.
    for reserved in (SELF_ISSUER, UNKNOWN_ISSUER):
        if name.lower() == reserved.lower():
            name = reserved
    issuer: Json = {"name": name}
    cty = _str(section, "cty", where)
    if cty is not None:
        issuer["cty"] = cty
    transparency = section.get("cert_transparency")
    if transparency is not None:
        issuer["cert_transparency"] = _bool(section, "cert_transparency", where, False)
    return issuer


def _platform_managed(value: Any) -> Json | None:
    """`platformManaged` as given: a required `certificateUsage`, optional `metadata`."""
    where = "policy.platformManaged"
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise CertMaterialError(f"{where} must be an object")
    usage = _str(value, "certificateUsage", where)
    if not usage:
        raise CertMaterialError(f"{where}.certificateUsage is required")
    result: Json = {"certificateUsage": usage}
    metadata = value.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, Mapping):
            raise CertMaterialError(f"{where}.metadata must be an object")
        # Its schema is undefined (the REST spec says so): kept exactly as given.
        result["metadata"] = copy.deepcopy(dict(metadata))
    return result


def is_platform_managed(policy: Mapping[str, Any]) -> bool:
    """Whether a stored policy sets the platform-managed flag."""
    return policy.get("platformManaged") is not None


def normalize_policy(doc: Any, purpose: Purpose) -> Json:
    """The complete policy Key Vault stores for a create or import request's `policy`.

    An import's x509_props and key type come from the certificate itself later
    (`policy_for_import`); here they only get checked.
    """
    if doc is None:
        doc = {}
    if not isinstance(doc, Mapping):
        raise CertMaterialError("policy must be an object")
    key_props = _key_props(_section(doc, "key_props", "policy"))
    secret_doc = _section(doc, "secret_props", "policy")
    content_type = _str(secret_doc, "contentType", "policy.secret_props") or PKCS12
    if content_type not in CONTENT_TYPES:
        raise CertMaterialError(
            f"policy.secret_props.contentType {content_type!r} is not one of {list(CONTENT_TYPES)}"
        )
    x509_props = _x509_props(_section(doc, "x509_props", "policy"), key_props["kty"])
    default_issuer = SELF_ISSUER if purpose == "create" else UNKNOWN_ISSUER
    issuer = _issuer(_section(doc, "issuer", "policy"), default_issuer)
    # Key Vault cannot renew what it did not issue, so those policies only email.
    default_action = "AutoRenew" if issuer["name"] == SELF_ISSUER else "EmailContacts"
    policy: Json = {
        "key_props": key_props,
        "secret_props": {"contentType": content_type},
        "x509_props": x509_props,
        "lifetime_actions": _lifetime_actions(doc.get("lifetime_actions"), default_action),
        "issuer": issuer,
        "attributes": {
            "enabled": _bool(
                _section(doc, "attributes", "policy"), "enabled", "policy.attributes", True
            )
        },
    }
    platform_managed = _platform_managed(doc.get("platformManaged"))
    if platform_managed is not None:
        # Azure accepts a platform-managed policy without subject or SANs: the platform,
        # not the caller, decides what the certificate names.
        policy["platformManaged"] = platform_managed
    elif purpose == "create" and not x509_props["subject"] and "sans" not in x509_props:
        raise CertMaterialError(
            "policy.x509_props needs a subject or at least one subject alternative name"
        )
    return policy


def merge_policy(current: Mapping[str, Any], patch: Any) -> Json:
    """`current` with the sections and fields `patch` carries replaced, then re-checked."""
    if not isinstance(patch, Mapping):
        raise CertMaterialError("policy must be an object")
    merged = copy.deepcopy(dict(current))
    for name in ("key_props", "secret_props", "x509_props", "issuer", "attributes"):
        section = _section(patch, name, "policy")
        if section:
            target = dict(merged.get(name) or {})
            target.update({k: v for k, v in section.items() if v is not None and k != "sans"})
            if isinstance(section.get("sans"), Mapping):
                # The SDK sends an empty `sans` object with every x509_props; only the
                # lists it actually carries replace the stored ones.
                sans = dict(target.get("sans") or {})
                sans.update({k: v for k, v in section["sans"].items() if v is not None})
                target["sans"] = sans
            merged[name] = target
    for name in ("lifetime_actions", "platformManaged"):
        if patch.get(name) is not None:
            merged[name] = patch[name]
    # An EC key_size left over from an RSA policy (or the reverse) must not block a kty change.
    patched_key = _section(patch, "key_props", "policy")
    if patched_key.get("kty") is not None and patched_key.get("key_size") is None:
        merged["key_props"].pop("key_size", None)
        if patched_key.get("crv") is None:
            merged["key_props"].pop("crv", None)
    issuer_name = str(merged.get("issuer", {}).get("name") or SELF_ISSUER)
    return normalize_policy(merged, "create" if issuer_name != UNKNOWN_ISSUER else "import")


def key_spec(policy: Mapping[str, Any]) -> KeySpec:
    """What certmaterial generates for a stored policy's key_props."""
    props = policy["key_props"]
    return KeySpec(
        kty=props["kty"],
        key_size=props.get("key_size"),
        curve=props.get("crv"),
        exportable=props["exportable"],
        reuse_key=props["reuse_key"],
    )


def x509_spec(policy: Mapping[str, Any]) -> X509Spec:
    """What certmaterial builds for a stored policy's x509_props."""
    props = policy["x509_props"]
    sans_doc = props.get("sans") or {}
    sans = SubjectAltNames(
        **{field: tuple(sans_doc.get(wire) or ()) for wire, field in _SAN_FIELDS}
    )
    return X509Spec(
        subject=props["subject"],
        sans=sans,
        ekus=tuple(props["ekus"]),
        key_usage=tuple(props["key_usage"]),
        validity_months=props["validity_months"],
    )


def policy_for_import(
    policy: Mapping[str, Any], spec: X509Spec, kty: str, key_size: int, curve: str | None
) -> Json:
    """An import's policy: key type and x509_props as the imported certificate has them."""
    result = copy.deepcopy(dict(policy))
    key_props: Json = {
        "exportable": policy["key_props"]["exportable"],
        "kty": kty,
        "key_size": key_size,
        "reuse_key": policy["key_props"]["reuse_key"],
    }
    if curve is not None:
        key_props["crv"] = curve
    result["key_props"] = key_props
    x509_props: Json = {"subject": spec.subject}
    sans = {wire: list(getattr(spec.sans, field)) for wire, field in _SAN_FIELDS}
    sans = {wire: values for wire, values in sans.items() if values}
    if sans:
        x509_props["sans"] = sans
    x509_props["ekus"] = list(spec.ekus)
    x509_props["key_usage"] = list(spec.key_usage)
    x509_props["validity_months"] = spec.validity_months
    x509_props["basic_constraints"] = {"ca": False}
    result["x509_props"] = x509_props
    return result


def key_ops_for(policy: Mapping[str, Any]) -> list[str]:
    """The key_ops of a certificate's managed key, from its key usage."""
    usage = set(policy["x509_props"].get("key_usage") or ())
    kty = policy["key_props"]["kty"]
    ops: list[str] = []
    if usage & {"digitalSignature", "nonRepudiation", "keyCertSign", "cRLSign"} or not usage:
        ops += ["sign", "verify"]
    if kty in RSA_KEY_TYPES:
        if "keyEncipherment" in usage or not usage:
            ops += ["wrapKey", "unwrapKey", "encrypt", "decrypt"]
        elif "dataEncipherment" in usage:
            ops += ["encrypt", "decrypt"]
    return ops
