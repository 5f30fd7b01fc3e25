"""The JSON state documents in blob storage, declared as typed models.

Checkpoints (`checkpoints/<pair>/<target>.json`), deletion guards (`guards/<pair>.json`)
and member heartbeats (`members/<id>.json`) are read through these models, so a
malformed document is one `StateDocumentUnreadable` naming the blob and the fields that
are wrong, never a `KeyError` deep in a reader. Messages never quote a field's value:
checkpoints name items, and a document may be damaged into anything.

Unknown fields are ignored: a newer kvdr may add fields, and an older one still reads
the ones it knows (the same reason a checkpoint entry's optional fields are appended).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from replicator.state_seal import StateDocumentUnreadable

FORMAT_VERSION = 1
# Errors listed in one message; a document damaged everywhere would make a wall of text.
SHOWN_ERRORS = 5

M = TypeVar("M", bound=BaseModel)


class _Document(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    format: Literal[1]


def _padded_entry(value: object) -> object:
    # An entry is [fingerprint, source, target, applied_at, deleted_at?, history?]: the
    # optional trailing fields are absent in documents written before they existed.
    if isinstance(value, list):
        if not 4 <= len(value) <= 6:
            raise ValueError("an entry has 4 to 6 fields")
        return [*value, *([None] * (6 - len(value)))]
    return value


ItemEntry = Annotated[
    tuple[str, str, str | None, float, float | None, str | None],
    BeforeValidator(_padded_entry),
]


class CheckpointDocument(_Document):
    pair: str
    target: str
    updated_at: float = 0.0
    # The direction it was written in (absent before failover existed: the configured
    # primary, epoch 0).
    source: str | None = None
    epoch: int = 0
    items: dict[str, ItemEntry]


class GuardLimitsDocument(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    min_items: int
    fraction: float


class GuardDocument(_Document):
    pair: str
    tripped: bool = False
    since: float | None = None
    deleted: int = 0
    items: int = 0
    limits: GuardLimitsDocument | None = None
    withheld: tuple[str, ...] = ()
    released_at: float | None = None
    released_by: str | None = None


class HeartbeatDocument(_Document):
    member: str
    instance: str
    beat: int
    at: str
    lease_seconds: int
    held: dict[str, str]
    handing_over: tuple[str, ...]


def read_document(model: type[M], blob: str, data: bytes, what: str) -> M:
    """`data` read as `model`; `StateDocumentUnreadable` naming `blob` otherwise.

    `what` names the document in messages ("checkpoint", "heartbeat").
    """
    try:
        doc: Any = json.loads(data)
    except (ValueError, RecursionError):
        raise StateDocumentUnreadable(blob, f"{what} is not JSON") from None
    if not isinstance(doc, dict):
        raise StateDocumentUnreadable(blob, f"{what} is not a JSON object")
    if doc.get("format") != FORMAT_VERSION:
        # Only the type: the field may hold anything.
        shown = doc["format"] if isinstance(doc.get("format"), int) else "missing or not a number"
        raise StateDocumentUnreadable(blob, f"{what} has an unsupported format ({shown})")
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        raise StateDocumentUnreadable(blob, f"{what} is malformed: {describe(exc)}") from None


def _where(loc: tuple[int | str, ...]) -> str:
    parts = [str(part) for part in loc]
    if len(parts) > 1 and parts[0] == "items" and "/" in parts[1]:
        parts[1] = "<item>"
    return ".".join(parts) or "(document)"


def describe(exc: ValidationError) -> str:
    """The errors of `exc` as `field.path: reason`, without the rejected input.

    A checkpoint's item keys (`kind/name`) are not shown either: a sealed checkpoint is
    sealed because the names are not for every reader of a log.
    """
    errors = exc.errors(include_input=False, include_url=False, include_context=False)
    shown = [f"{_where(error['loc'])}: {error['msg']}" for error in errors[:SHOWN_ERRORS]]
    more = len(errors) - SHOWN_ERRORS
    if more > 0:
        shown.append(f"and {more} more")
    return "; ".join(shown)
