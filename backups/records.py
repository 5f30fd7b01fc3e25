"""The plaintext inside backup objects: one JSON document per line.

A change (segment line)::

    {"s": 12, "a": 1735689600.25, "o": "new_version", "k": "secret", "n": "db-password",
     "p": {...properties...}, "x": {"s": "<value>"} | {"b": "<base64 backup>"} | null}

An item (snapshot line)::

    {"k": "key", "n": "signing", "d": false, "t": 1735689600.0,
     "v": [{"p": {...}, "a": 1735689600.0, "x": {...} | null}, ...]}

Properties use short keys (`e` enabled, `nb` not before, `ex` expires, `c` created,
`u` updated, `ct` content type, `t` tags, `m` managed, `kt` key type, `rl` recovery
level); times are epoch seconds. These lines only ever exist inside encrypted objects.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any

from vault.models import Change, ChangeOp, ItemKind, ItemProperties, ItemRef


class RecordError(ValueError):
    """A line that is not a valid record; the message says which field (never a value)."""


def _ts(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def _dt(value: object, field: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RecordError(f"field {field!r} must be epoch seconds")
    return datetime.fromtimestamp(float(value), UTC)


def props_to_doc(p: ItemProperties) -> dict[str, Any]:
    doc: dict[str, Any] = {"v": p.version, "e": p.enabled}
    optional = {
        "nb": _ts(p.not_before),
        "ex": _ts(p.expires_on),
        "c": _ts(p.created_on),
        "u": _ts(p.updated_on),
        "ct": p.content_type,
        "kt": p.key_type,
        "rl": p.recovery_level,
    }
    doc.update({k: v for k, v in optional.items() if v is not None})
    if p.tags:
        doc["t"] = dict(p.tags)
    if p.managed:
        doc["m"] = True
    return doc


def props_from_doc(kind: ItemKind, name: str, doc: object) -> ItemProperties:
    if not isinstance(doc, dict):
        raise RecordError("field 'p' must be an object")
    version = doc.get("v")
    if not isinstance(version, str):
        raise RecordError("field 'p.v' (version) must be a string")
    tags = doc.get("t", {})
    if not isinstance(tags, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in tags.items()
    ):
        raise RecordError("field 'p.t' (tags) must map strings to strings")
    texts = {}
    for key in ("ct", "kt", "rl"):
        value = doc.get(key)
        if value is not None and not isinstance(value, str):
            raise RecordError(f"field 'p.{key}' must be a string")
        texts[key] = value
    return ItemProperties(
        kind=kind,
        name=name,
        version=version,
        enabled=bool(doc.get("e", True)),
        not_before=_dt(doc.get("nb"), "p.nb"),
        expires_on=_dt(doc.get("ex"), "p.ex"),
        created_on=_dt(doc.get("c"), "p.c"),
        updated_on=_dt(doc.get("u"), "p.u"),
        content_type=texts["ct"],
        tags=dict(tags),
        managed=bool(doc.get("m", False)),
        key_type=texts["kt"],
        recovery_level=texts["rl"],
    )


def payload_to_doc(payload: str | bytes | None) -> dict[str, str] | None:
    if payload is None:
        return None
    if isinstance(payload, str):
        return {"s": payload}
    return {"b": base64.b64encode(payload).decode("ascii")}


def payload_from_doc(doc: object) -> str | bytes | None:
    if doc is None:
        return None
    if isinstance(doc, dict) and isinstance(doc.get("s"), str):
        return str(doc["s"])
    if isinstance(doc, dict) and isinstance(doc.get("b"), str):
        try:
            return base64.b64decode(doc["b"], validate=True)
        except (binascii.Error, ValueError):
            raise RecordError("field 'x.b' is not base64") from None
    raise RecordError("field 'x' must be null, {'s': text} or {'b': base64}")


def _item(doc: dict[str, Any]) -> ItemRef:
    try:
        kind = ItemKind(str(doc.get("k")))
    except ValueError:
        raise RecordError("field 'k' is not secret, key or certificate") from None
    name = doc.get("n")
    if not isinstance(name, str) or not name:
        raise RecordError("field 'n' (name) must be a non-empty string")
    return ItemRef(kind, name)


def dumps(doc: dict[str, Any]) -> bytes:
    """One compact JSON line (no newline inside: JSON escapes them in strings)."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def loads(line: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(line)
    except (ValueError, RecursionError):
        raise RecordError("line is not JSON") from None
    if not isinstance(doc, dict):
        raise RecordError("line is not a JSON object")
    return doc


def change_to_line(change: Change, observed_at: float) -> bytes:
    return dumps(
        {
            "s": change.sequence,
            "a": observed_at,
            "o": change.op.value,
            "k": change.item.kind.value,
            "n": change.item.name,
            "p": props_to_doc(change.properties) if change.properties else None,
            "x": payload_to_doc(change.payload),
        }
    )


def change_from_line(pair: str, line: bytes) -> Change:
    doc = loads(line)
    item = _item(doc)
    try:
        op = ChangeOp(str(doc.get("o")))
    except ValueError:
        raise RecordError("field 'o' is not a change operation") from None
    sequence = doc.get("s")
    if isinstance(sequence, bool) or not isinstance(sequence, int) or sequence < 1:
        raise RecordError("field 's' (sequence) must be a positive integer")
    observed = _dt(doc.get("a"), "a")
    if observed is None:
        raise RecordError("field 'a' (observed at) is missing")
    props = doc.get("p")
    return Change(
        pair=pair,
        item=item,
        op=op,
        observed_at=observed,
        properties=props_from_doc(item.kind, item.name, props) if props is not None else None,
        sequence=sequence,
        payload=payload_from_doc(doc.get("x")),
    )


def item_to_line(
    item: ItemRef,
    deleted: bool,
    changed_at: float,
    versions: list[tuple[ItemProperties, float, str | bytes | None]],
) -> bytes:
    return dumps(
        {
            "k": item.kind.value,
            "n": item.name,
            "d": deleted,
            "t": changed_at,
            "v": [
                {"p": props_to_doc(p), "a": at, "x": payload_to_doc(payload)}
                for p, at, payload in versions
            ],
        }
    )


def item_from_line(
    line: bytes,
) -> tuple[ItemRef, bool, float, list[tuple[ItemProperties, float, str | bytes | None]]]:
    doc = loads(line)
    item = _item(doc)
    raw_versions = doc.get("v")
    if not isinstance(raw_versions, list):
        raise RecordError("field 'v' (versions) must be a list")
    versions = []
    for entry in raw_versions:
        if not isinstance(entry, dict):
            raise RecordError("field 'v' holds a non-object")
        at = entry.get("a", 0.0)
        if isinstance(at, bool) or not isinstance(at, int | float):
            raise RecordError("field 'v.a' must be epoch seconds")
        versions.append(
            (
                props_from_doc(item.kind, item.name, entry.get("p")),
                float(at),
                payload_from_doc(entry.get("x")),
            )
        )
    changed = doc.get("t", 0.0)
    if isinstance(changed, bool) or not isinstance(changed, int | float):
        raise RecordError("field 't' must be epoch seconds")
    return item, bool(doc.get("d", False)), float(changed), versions
