"""Key rotation: `POST /keys/{name}/rotate` and the rotation policy (`/rotationpolicy`).

A rotation makes a new version of the same key type, size, curve and exponent, with the
latest version's key_ops, tags and release policy; its `exp` is now + the policy's
`expiryTime` when the policy has one, as in Key Vault. The policy is stored and checked
with Key Vault's rules (ISO-8601 durations; expiry at least 28 days; triggers at least 7
days; Notify only before expiry); the emulator does not run its lifetime actions on a
timer (docs/emulator-keys.md), rotation happens when a client asks for it.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from emulator.errors import bad_parameter
from emulator.keydocs import (
    KIND,
    add_key_version,
    charge_key_create,
    check_kty_allowed,
    key_path,
    material_of,
    publish_new_version,
    render_key,
)
from emulator.keymaterial import KeyMaterial
from emulator.objects import check_name, live_version, object_url, read_json, refuse_managed
from emulator.state import VaultState, vault_state

POLICY_NAMESPACE = "key-rotation-policy"
DAY = 86400
# Key Vault's limits: a policy's expiry at least 28 days, any trigger at least 7 days.
MIN_EXPIRY_SECONDS = 28 * DAY
MIN_TRIGGER_SECONDS = 7 * DAY
# What Key Vault answers for a key that never had a policy set.
DEFAULT_ACTIONS: list[dict[str, Any]] = [
    {"trigger": {"timeBeforeExpiry": "P30D"}, "action": {"type": "Notify"}}
]
ACTION_TYPES = {"rotate": "Rotate", "notify": "Notify"}

_DURATION = re.compile(
    r"^P(?:(?P<y>\d+)Y)?(?:(?P<mo>\d+)M)?(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?"
    r"(?:T(?:(?P<h>\d+)H)?(?:(?P<mi>\d+)M)?(?:(?P<s>\d+)S)?)?$"
)
# Calendar units counted as Key Vault counts them for its minimums.
_UNIT_SECONDS = {
    "y": 365 * DAY,
    "mo": 30 * DAY,
    "w": 7 * DAY,
    "d": DAY,
    "h": 3600,
    "mi": 60,
    "s": 1,
}


def duration_seconds(value: object, field: str) -> int:
    """An ISO-8601 duration ('P90D', 'P1Y2M', 'PT48H') in seconds, or 400 naming the field."""
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None or value in ("P", "PT") or str(value).endswith("T"):
        raise bad_parameter(
            f"{field}: {str(value)[:40]!r} is not an ISO-8601 duration such as P90D or P1Y."
        )
    return sum(int(n) * _UNIT_SECONDS[unit] for unit, n in match.groupdict().items() if n)


def _parse_action(raw: object, index: int, expiry: int | None) -> dict[str, Any]:
    where = f"lifetimeActions[{index}]"
    if not isinstance(raw, dict):
        raise bad_parameter(f"{where} must be a JSON object with trigger and action.")
    action = raw.get("action")
    kind = action.get("type") if isinstance(action, dict) else None
    canonical = ACTION_TYPES.get(kind.lower()) if isinstance(kind, str) else None
    if canonical is None:
        raise bad_parameter(f"{where}.action.type must be Rotate or Notify.")
    trigger = raw.get("trigger")
    if not isinstance(trigger, dict):
        raise bad_parameter(f"{where}.trigger must be a JSON object.")
    given = {
        k: v
        for k, v in trigger.items()
        if k in ("timeAfterCreate", "timeBeforeExpiry") and v is not None
    }
    if len(given) != 1:
        raise bad_parameter(
            f"{where}.trigger must have exactly one of timeAfterCreate and timeBeforeExpiry."
        )
    ((field, value),) = given.items()
    seconds = duration_seconds(value, f"{where}.trigger.{field}")
    if seconds < MIN_TRIGGER_SECONDS:
        raise bad_parameter(f"{where}.trigger.{field} must be at least 7 days (P7D).")
    if canonical == "Notify" and field != "timeBeforeExpiry":
        raise bad_parameter(f"{where}: a Notify action needs a timeBeforeExpiry trigger.")
    if field == "timeBeforeExpiry":
        if expiry is None:
            raise bad_parameter(
                f"{where}.trigger.timeBeforeExpiry needs attributes.expiryTime in the policy."
            )
        if seconds >= expiry:
            raise bad_parameter(
                f"{where}.trigger.timeBeforeExpiry must be shorter than attributes.expiryTime."
            )
    return {"trigger": {field: value}, "action": {"type": canonical}}


def parse_policy(body: dict[str, Any]) -> dict[str, Any]:
    """A KeyRotationPolicy request body, checked with Key Vault's rules."""
    attributes = body.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise bad_parameter("attributes must be a JSON object.")
    expiry_time = attributes.get("expiryTime")
    expiry = None
    if expiry_time is not None:
        expiry = duration_seconds(expiry_time, "attributes.expiryTime")
        if expiry < MIN_EXPIRY_SECONDS:
            raise bad_parameter("attributes.expiryTime must be at least 28 days (P28D).")
    raw_actions = body.get("lifetimeActions") or []
    if not isinstance(raw_actions, list):
        raise bad_parameter("lifetimeActions must be a list.")
    actions = [_parse_action(raw, i, expiry) for i, raw in enumerate(raw_actions)]
    kinds = [a["action"]["type"] for a in actions]
    for kind in set(kinds):
        if kinds.count(kind) > 1:
            raise bad_parameter(f"lifetimeActions: at most one {kind} action is allowed.")
    return {"lifetimeActions": actions, "expiryTime": expiry_time}


def stored_policy(state: VaultState, name: str) -> dict[str, Any] | None:
    """The policy set for a key name, or None."""
    value = state.store.get_value(POLICY_NAMESPACE, name.lower())
    return value if isinstance(value, dict) else None


def put_policy(state: VaultState, name: str, policy: dict[str, Any] | None) -> None:
    """Set (or with None, forget) a key's policy; restore and purge use this too."""
    if policy is None:
        state.store.delete_value(POLICY_NAMESPACE, name.lower())
    else:
        state.store.put_value(POLICY_NAMESPACE, name.lower(), policy)


def _render_policy(
    state: VaultState, request: web.Request, name: str, policy: dict[str, Any] | None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": object_url(state, request, f"{key_path(name)}/rotationpolicy"),
        "lifetimeActions": DEFAULT_ACTIONS if policy is None else policy["lifetimeActions"],
        "attributes": {},
    }
    if policy is not None:
        attributes = {"created": policy["created"], "updated": policy["updated"]}
        if policy.get("expiryTime") is not None:
            attributes["expiryTime"] = policy["expiryTime"]
        body["attributes"] = attributes
    return body


async def get_policy(request: web.Request) -> web.Response:
    """GET /keys/{name}/rotationpolicy."""
    state = vault_state(request)
    name = live_version(state, KIND, check_name(request.match_info["name"])).name
    return web.json_response(_render_policy(state, request, name, stored_policy(state, name)))


async def update_policy(request: web.Request) -> web.Response:
    """PUT /keys/{name}/rotationpolicy: replace the policy."""
    state = vault_state(request)
    name = check_name(request.match_info["name"])
    body = await read_json(request)
    parsed = parse_policy(body)
    name = live_version(state, KIND, name).name
    now = state.now()
    previous = stored_policy(state, name)
    policy = dict(parsed, created=previous["created"] if previous else now, updated=now)
    put_policy(state, name, policy)
    return web.json_response(_render_policy(state, request, name, policy))


async def rotate_key(request: web.Request) -> web.Response:
    """POST /keys/{name}/rotate: a new version of the same type, size and curve."""
    state = vault_state(request)
    name = check_name(request.match_info["name"])
    latest = live_version(state, KIND, name)
    refuse_managed(KIND, latest, "rotate")
    doc = latest.doc
    kty = str(doc["kty"])
    check_kty_allowed(state, kty)
    charge_key_create(state, kty)
    current = material_of(latest)
    material = KeyMaterial.generate(
        kty,
        size=current.key_size if current.kty != "EC" else None,
        curve=current.curve,
        public_exponent=current.public_exponent,
        any_exponent=state.settings.sku == "managed-hsm",
    )
    attributes: dict[str, Any] = {}
    policy = stored_policy(state, latest.name)
    if policy is not None and policy.get("expiryTime"):
        attributes["exp"] = state.now() + duration_seconds(policy["expiryTime"], "expiryTime")
    exportable = (doc.get("attributes") or {}).get("exportable")
    if exportable is not None:
        attributes["exportable"] = exportable
    added = add_key_version(
        state,
        latest.name,
        material,
        attributes=attributes,
        tags=doc.get("tags"),
        key_ops=doc.get("key_ops"),
        managed=False,
        kty=kty,
        release_policy=doc.get("release_policy"),
    )
    publish_new_version(state, added)
    stored = state.store.get_version(KIND, latest.name, added["version"])
    assert stored is not None
    return web.json_response(render_key(state, request, stored))
