"""Key Vault rules every object kind shares: names, request bodies, attributes, tags, ids,
the live-version lookup and the rules for names that are taken or managed."""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

from emulator.errors import KeyVaultError, bad_parameter, conflict, not_found
from emulator.state import VaultState
from emulator.store import StoredVersion

NAME_RE = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
# Azure allows at most 15 tags; names up to 512 and values up to 256 characters.
MAX_TAGS = 15
MAX_TAG_NAME = 512
MAX_TAG_VALUE = 256
# Largest request body accepted; a 25 KB secret value is far below it, a backup blob of
# a key or certificate with many versions is not.
MAX_BODY_BYTES = 4 * 1024 * 1024


def check_name(name: str) -> str:
    """An object name from the URL: 1-127 letters, digits and hyphens, else 400."""
    if not NAME_RE.match(name):
        raise bad_parameter(
            f"The request URI contains an invalid name: {name[:130]!r}. Names are 1-127 "
            "characters of letters, digits and hyphens."
        )
    return name


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or 400 BadParameter naming what is wrong."""
    raw = await request.read()
    if not raw:
        raise bad_parameter("The request body is empty; a JSON object is required.")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        # Only the parser's position goes into the message, never the body: it may be a
        # secret value.
        position = getattr(exc, "pos", None)
        where = f" at character {position}" if position is not None else ""
        raise bad_parameter(f"The request body is not valid JSON{where}.") from None
    if not isinstance(body, dict):
        raise bad_parameter("The request body must be a JSON object.")
    return body


def parse_tags(value: Any) -> dict[str, str] | None:
    """`tags`: a JSON object of at most 15 string pairs."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise bad_parameter("tags must be a JSON object of string names and values.")
    if len(value) > MAX_TAGS:
        raise bad_parameter(f"tags: at most {MAX_TAGS} tags are allowed, got {len(value)}.")
    for key, item in value.items():
        if not isinstance(item, str):
            raise bad_parameter(f"tags: the value of tag {key[:64]!r} must be a string.")
        if len(key) > MAX_TAG_NAME or len(item) > MAX_TAG_VALUE:
            raise bad_parameter(
                f"tags: tag {key[:64]!r} is too long (names <= {MAX_TAG_NAME}, "
                f"values <= {MAX_TAG_VALUE} characters)."
            )
    return dict(value)


def _int_or_none(value: Any, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_parameter(f"attributes.{field} must be a Unix time in seconds.")
    return int(value)


def parse_attributes(value: Any) -> dict[str, Any]:
    """The writable part of `attributes` (enabled, nbf, exp) from a request body."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise bad_parameter("attributes must be a JSON object.")
    parsed: dict[str, Any] = {}
    if "enabled" in value and value["enabled"] is not None:
        if not isinstance(value["enabled"], bool):
            raise bad_parameter("attributes.enabled must be true or false.")
        parsed["enabled"] = value["enabled"]
    for field in ("nbf", "exp"):
        if field in value:
            parsed[field] = _int_or_none(value[field], field)
    nbf, exp = parsed.get("nbf"), parsed.get("exp")
    if nbf is not None and exp is not None and nbf > exp:
        raise bad_parameter("attributes.nbf must not be later than attributes.exp.")
    return parsed


def new_attributes(state: VaultState, given: dict[str, Any]) -> dict[str, Any]:
    """Stored attributes of a new version: enabled by default, created = updated = now."""
    now = state.now()
    return {
        "enabled": given.get("enabled", True),
        "nbf": given.get("nbf"),
        "exp": given.get("exp"),
        "created": now,
        "updated": now,
    }


def updated_attributes(
    state: VaultState, current: dict[str, Any], given: dict[str, Any]
) -> dict[str, Any]:
    """Stored attributes after an update: given fields replaced, `updated` = now."""
    merged = dict(current)
    merged.update(given)
    nbf, exp = merged.get("nbf"), merged.get("exp")
    if nbf is not None and exp is not None and nbf > exp:
        raise bad_parameter("attributes.nbf must not be later than attributes.exp.")
    merged["updated"] = state.now()
    return merged


def render_attributes(state: VaultState, stored: dict[str, Any]) -> dict[str, Any]:
    """Attributes as Key Vault returns them: stored fields plus the vault's recovery level."""
    out = {k: v for k, v in stored.items() if v is not None}
    out["recoveryLevel"] = state.settings.recovery_level
    out["recoverableDays"] = state.settings.retention_days
    return out


def object_url(state: VaultState, request: web.Request | None, path: str) -> str:
    """An absolute id: the vault URL the client used + `path`; a full URL is kept as is."""
    if path.startswith("https://") or path.startswith("http://"):
        return path
    return f"{state.vault_url(request)}{path}"


def live_version(state: VaultState, kind: str, name: str, version: str = "") -> StoredVersion:
    """A live version of an object (empty `version`: the latest), or 404 naming it."""
    stored = (
        state.store.get_version(kind, name, version)
        if version
        else state.store.get_latest(kind, name)
    )
    if stored is None:
        raise not_found(kind, name, version or None)
    return stored


def refuse_managed(kind: str, stored: StoredVersion, operation: str) -> None:
    """403 for changing a certificate's key or secret on its own, as Key Vault refuses it."""
    if stored.doc.get("managed"):
        raise KeyVaultError(
            403,
            "Forbidden",
            f"Operation {operation} is not allowed on {kind} {stored.name}: it is managed by "
            "a certificate; change the certificate instead.",
        )


def writable_latest(
    state: VaultState, kind: str, name: str, operation: str
) -> StoredVersion | None:
    """The latest version before a new one is written (None for a new name).

    409 while the name is soft-deleted (Azure keeps it until recovery or purge); 403 when
    a certificate manages the object.
    """
    if state.store.name_state(kind, name) == "deleted":
        raise conflict(kind, name, deleted=True)
    latest = state.store.get_latest(kind, name)
    if latest is not None:
        refuse_managed(kind, latest, operation)
    return latest


def refuse_taken(state: VaultState, kind: str, name: str) -> None:
    """409 when a live or soft-deleted object holds the name (a restore needs it free)."""
    name_state = state.store.name_state(kind, name)
    if name_state is not None:
        raise conflict(kind, name, deleted=name_state == "deleted")
