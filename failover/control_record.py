"""The control record of one pair: which region is active, at which epoch, and why.

One JSON document per pair (`failover/<pair>/control.json` in each control store). It
is the only place that says which region is the primary: a restarted process reads it
and knows where it stands (never "am I primary" in memory only). Pure code: the document
and its strict parser; the transitions from one record to the next are
`failover.control_transitions`, the stores and their majority rule
`failover.control_stores`.

Identity of a write: `epoch` rises by one or more with every transition (a new active
region or a new state of the switch), `txid` names the transition that set the epoch,
and `revision` rises with every write of any kind (a finished switch recording its RTO,
an approval). Two documents with the same (epoch, txid, revision) are the same write.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, NoReturn, cast

from storage.errors import CorruptBlob

FORMAT = 1
STATES = ("normal", "switching-over", "failed-over", "failing-back")
State = Literal["normal", "switching-over", "failed-over", "failing-back"]
# A region's fence: `none` (applications may write), `required` (it must be fenced but
# kvdr has not applied a fence: fencing is not built yet), `applied`.
FENCES = ("none", "required", "applied")
Fence = Literal["none", "required", "applied"]
KINDS = ("switchover", "promote", "failback")
_PAIR_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")


def control_blob_name(pair: str) -> str:
    if not _PAIR_NAME.fullmatch(pair):
        raise ValueError(f"pair name {pair!r} cannot name a control record blob")
    return f"failover/{pair}/control.json"


def parse_control_blob_name(name: str) -> str:
    parts = name.split("/")
    if len(parts) != 3 or parts[0] != "failover" or parts[2] != "control.json":
        raise ValueError(f"{name!r} is not a control record blob name")
    return parts[1]


class MalformedControlRecord(CorruptBlob):
    """A control record blob that is not a valid document; names the blob and the field."""


@dataclass(frozen=True)
class Transition:
    """One entry of the history: a change of the active region or of the state."""

    epoch: int
    txid: str
    kind: str
    from_region: str
    to_region: str
    by: str
    at: str
    reason: str
    # Seconds from the command's start to the record committed; None until measured.
    rto_seconds: float | None = None
    # Items lost by the transition and how that number was established.
    loss_items: int | None = None
    loss_basis: str = ""
    # Change control: the operators whose approvals the transition used, or a
    # break-glass bypass (its reason is `reason`); `forced`: written without a majority
    # of the control stores (`promote --force`).
    approved_by: tuple[str, ...] = ()
    break_glass: bool = False
    forced: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "approved_by": list(self.approved_by),
            "break_glass": self.break_glass,
            "forced": self.forced,
            "epoch": self.epoch,
            "txid": self.txid,
            "kind": self.kind,
            "from_region": self.from_region,
            "to_region": self.to_region,
            "by": self.by,
            "at": self.at,
            "reason": self.reason,
            "rto_seconds": self.rto_seconds,
            "loss_items": self.loss_items,
            "loss_basis": self.loss_basis,
        }


@dataclass(frozen=True)
class Approval:
    operator: str
    at: str

    def to_dict(self) -> dict[str, Any]:
        return {"operator": self.operator, "at": self.at}


@dataclass(frozen=True)
class ControlRecord:
    pair: str
    active_region: str
    epoch: int
    state: State
    txid: str
    revision: int
    fences: dict[str, Fence]
    approvals: tuple[Approval, ...] = ()
    history: tuple[Transition, ...] = field(default=())
    # The committed record this one was computed from, without its own `previous`:
    # while a write that superseded it sits on some stores, it can still be read.
    previous: ControlRecord | None = None
    # The writer's clock when written: tells a transition still collecting its majority
    # from a write left behind (failover.control_stores).
    written_at: str = ""
    # Per fenced region, what its fence action needs to lift the fence again (the
    # network rules it replaced); JSON, no secrets.
    fence_saved: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def lineage(self) -> set[tuple[int, str]]:
        """Every transition this record carries, its own included."""
        return {(t.epoch, t.txid) for t in self.history} | {(self.epoch, self.txid)}

    @property
    def direction_epoch(self) -> int:
        """The epoch at which the active region became active (0: never moved). Writes
        that keep the direction (approvals, fences, an RTO) do not change it."""
        return self.history[-1].epoch if self.history else 0

    @property
    def key(self) -> tuple[int, str, int]:
        """Which write this is: equal keys are the same document."""
        return (self.epoch, self.txid, self.revision)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "pair": self.pair,
            "active_region": self.active_region,
            "epoch": self.epoch,
            "state": self.state,
            "txid": self.txid,
            "revision": self.revision,
            "fences": dict(sorted(self.fences.items())),
            "approvals": [a.to_dict() for a in self.approvals],
            "history": [t.to_dict() for t in self.history],
            "previous": self.previous.to_dict() if self.previous is not None else None,
            "written_at": self.written_at,
            "fence_saved": dict(sorted(self.fence_saved.items())),
        }

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes, blob: str) -> ControlRecord:
        """Parse strictly; anything unexpected raises `MalformedControlRecord` naming
        the blob and the field, never a bare KeyError or TypeError."""
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise MalformedControlRecord(
                f"control record {blob} is not JSON: {exc}", blob=blob
            ) from exc
        return _parse(_Reader(doc, blob, ""))


class _Reader:
    """One JSON object being read, each problem named `blob: field: what`."""

    def __init__(self, doc: object, blob: str, where: str) -> None:
        self.blob = blob
        self.where = where
        if not isinstance(doc, dict):
            self.fail(where or "document", "expected an object")
        self.doc = cast(dict[str, Any], doc)

    def fail(self, key: str, what: str) -> NoReturn:
        raise MalformedControlRecord(f"control record {self.blob}: {key}: {what}", blob=self.blob)

    def path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def only(self, keys: set[str]) -> None:
        extra = sorted(set(self.doc) - keys)
        if extra:
            self.fail(self.path(extra[0]), "unknown field")

    def raw(self, key: str) -> object:
        if key not in self.doc:
            self.fail(self.path(key), "missing")
        return self.doc[key]

    def text(self, key: str, *, empty: bool = False) -> str:
        value = self.raw(key)
        if not isinstance(value, str) or (not empty and not value):
            self.fail(self.path(key), "expected a non-empty string" if not empty else "string")
        return value

    def integer(self, key: str, low: int) -> int:
        value = self.raw(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            self.fail(self.path(key), f"expected an integer >= {low}")
        return value

    def seconds(self, key: str) -> float | None:
        value = self.raw(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            self.fail(self.path(key), "expected a number >= 0 or null")
        return float(cast(float, value))

    def strings(self, key: str) -> list[str]:
        """An optional array of non-empty strings (absent: empty)."""
        value = self.doc.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.fail(self.path(key), "expected an array of non-empty strings")
        return cast(list[str], value)

    def flag(self, key: str) -> bool:
        """An optional boolean (absent: false)."""
        value = self.doc.get(key, False)
        if not isinstance(value, bool):
            self.fail(self.path(key), "expected true or false")
        return value

    def choice(self, key: str, choices: tuple[str, ...]) -> str:
        value = self.text(key)
        if value not in choices:
            self.fail(self.path(key), f"{value!r} is not one of {', '.join(choices)}")
        return value

    def timestamp(self, key: str, *, empty: bool = False) -> str:
        value = self.text(key, empty=empty)
        if empty and not value:
            return value
        try:
            datetime.fromisoformat(value)
        except ValueError:
            self.fail(self.path(key), "expected an ISO-8601 time")
        return value

    def items(self, key: str) -> list[_Reader]:
        value = self.raw(key)
        if not isinstance(value, list):
            self.fail(self.path(key), "expected an array")
        return [
            _Reader(v, self.blob, f"{self.path(key)}[{i}]")
            for i, v in enumerate(cast(list[object], value))
        ]


def _parse(r: _Reader) -> ControlRecord:
    r.only(
        {
            "format",
            "pair",
            "active_region",
            "epoch",
            "state",
            "txid",
            "revision",
            "fences",
            "approvals",
            "history",
            "previous",
            "written_at",
            "fence_saved",
        }
    )
    if r.raw("format") != FORMAT:
        r.fail("format", f"unsupported format {r.raw('format')!r} (this kvdr reads {FORMAT})")
    fences_doc = _Reader(r.raw("fences"), r.blob, "fences")
    fences: dict[str, Fence] = {
        region: cast(Fence, fences_doc.choice(region, FENCES)) for region in fences_doc.doc
    }
    approvals = []
    for a in r.items("approvals"):
        a.only({"operator", "at"})
        approvals.append(Approval(operator=a.text("operator"), at=a.timestamp("at")))
    history = []
    for t in r.items("history"):
        t.only(set(Transition.__dataclass_fields__))
        loss = None if t.raw("loss_items") is None else t.integer("loss_items", 0)
        # Written by kvdr before approvals existed: absent means none.
        approved = t.strings("approved_by")
        history.append(
            Transition(
                epoch=t.integer("epoch", 1),
                txid=t.text("txid"),
                kind=t.choice("kind", KINDS),
                from_region=t.text("from_region"),
                to_region=t.text("to_region"),
                by=t.text("by"),
                at=t.timestamp("at"),
                reason=t.text("reason", empty=True),
                rto_seconds=t.seconds("rto_seconds"),
                loss_items=loss,
                loss_basis=t.text("loss_basis", empty=True),
                approved_by=tuple(approved),
                break_glass=t.flag("break_glass"),
                forced=t.flag("forced"),
            )
        )
    record = ControlRecord(
        pair=r.text("pair"),
        active_region=r.text("active_region"),
        epoch=r.integer("epoch", 0),
        state=cast(State, r.choice("state", STATES)),
        txid=r.text("txid"),
        revision=r.integer("revision", 0),
        fences=fences,
        approvals=tuple(approvals),
        history=tuple(history),
        previous=_previous(r),
        written_at=r.timestamp("written_at", empty=True),
        fence_saved=_fence_saved(r),
    )
    if record.active_region not in record.fences:
        r.fail("fences", f"no entry for the active region {record.active_region!r}")
    return record


def _fence_saved(r: _Reader) -> dict[str, dict[str, Any]]:
    raw = r.doc.get("fence_saved", {})
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and isinstance(v, dict) for k, v in raw.items()
    ):
        r.fail(r.path("fence_saved"), "expected an object of objects by region")
    return cast(dict[str, dict[str, Any]], raw)


def _previous(r: _Reader) -> ControlRecord | None:
    raw = r.raw("previous")
    if raw is None:
        return None
    previous = _parse(_Reader(raw, r.blob, r.path("previous")))
    if previous.previous is not None:
        r.fail("previous.previous", "must be null (one level is kept)")
    return previous
