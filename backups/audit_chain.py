"""The audit trail's format, pure: entries chained by hash, segments, start markers, and
the check that finds every removed, reordered, edited or forged piece.

    audit/segments/<first:012d>.jsonl    one segment: entries seq first.., one per line,
                                         then one signature line
    audit/starts/<first:012d>.json       a signed start marker left by audit retention

An entry is one JSON object: `seq` (1, 2, ... never reused), `time` (UTC ISO-8601),
`actor` {principal, host}, `pair`, `item` {kind, name} or null, `operation`, `outcome`,
`detail` (a small dict; never a value), `prev` (the previous entry's hash, "" before the
first) and `hash`: SHA-256 over the canonical JSON of the entry without `hash`. So an
edited entry no longer matches its hash, and a removed or reordered one breaks `prev`.

A segment is named by its first sequence only: two writers that chain onto the same tail
both try to create the same name, and put-if-absent lets exactly one win (a name with
the range in it would let `11-15` and `11-12` coexist and fork the chain). Its last line
is a signature of a pinned signer (the backups' `SignerRing`) over the segment's name,
the digest of its entry lines and the hash it chains onto, so a segment that someone
wrote without a signing key, or edited after, is told apart from one kvdr wrote.

Truncation of the newest segments leaves a shorter chain that checks out: that is what
immutable (WORM) storage guards against, see docs/audit.md.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from backups.errors import SignatureRefused
from backups.signers import SignatureBlock, SignerRing, signing_digest

PREFIX = "audit/"
SEGMENTS = f"{PREFIX}segments/"
STARTS = f"{PREFIX}starts/"
SEQUENCE_DIGITS = 12
SEGMENT_KIND = "audit-segment"
START_KIND = "audit-start"
SIGNATURE_KEY = "kvdr-audit-signature"
FORMAT_VERSION = 1
# Blob metadata of a segment: its newest entry's time (epoch seconds). Not authenticated:
# it only picks what audit retention considers; the entries carry the times verify reads.
LAST_AT_KEY = "last_at"

_SEGMENT = re.compile(rf"{re.escape(SEGMENTS)}(\d{{{SEQUENCE_DIGITS}}})\.jsonl")
_START = re.compile(rf"{re.escape(STARTS)}(\d{{{SEQUENCE_DIGITS}}})\.json")


def canonical(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def segment_blob(first: int) -> str:
    if isinstance(first, bool) or not isinstance(first, int) or first < 1:
        raise ValueError(f"audit segment first sequence {first!r} must be an integer >= 1")
    return f"{SEGMENTS}{first:0{SEQUENCE_DIGITS}d}.jsonl"


def start_blob(first: int) -> str:
    return f"{STARTS}{first:0{SEQUENCE_DIGITS}d}.json"


def parse_segment_blob(name: str) -> int | None:
    """The first sequence a segment blob name says, or None for any other name."""
    match = _SEGMENT.fullmatch(name)
    return int(match.group(1)) if match else None


def parse_start_blob(name: str) -> int | None:
    match = _START.fullmatch(name)
    return int(match.group(1)) if match else None


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Actor:
    """Who acted: the credential's principal (or what the configuration says of it) and
    the host kvdr ran on."""

    principal: str
    host: str

    def to_dict(self) -> dict[str, str]:
        return {"principal": self.principal, "host": self.host}


@dataclass(frozen=True)
class AuditEvent:
    """One action, before it is numbered and chained. `item` is (kind, name) with the
    name already hashed when the pair hides names; `detail` holds counts, regions, epochs,
    reasons, never a value."""

    operation: str
    outcome: str
    actor: Actor
    time: datetime
    pair: str | None = None
    item: tuple[str, str] | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)


def entry_hash(entry: Mapping[str, Any]) -> str:
    """SHA-256 over the canonical JSON of everything but `hash` (a key someone adds is
    covered too)."""
    return hashlib.sha256(canonical({k: v for k, v in entry.items() if k != "hash"})).hexdigest()


def seal(events: Sequence[AuditEvent], first: int, prev: str) -> list[dict[str, Any]]:
    """Number `events` from `first` and chain them onto `prev` (pure)."""
    out: list[dict[str, Any]] = []
    for offset, event in enumerate(events):
        entry: dict[str, Any] = {
            "seq": first + offset,
            "time": iso(event.time),
            "actor": event.actor.to_dict(),
            "pair": event.pair,
            "item": {"kind": event.item[0], "name": event.item[1]} if event.item else None,
            "operation": event.operation,
            "outcome": event.outcome,
            "detail": dict(event.detail),
            "prev": prev,
        }
        entry["hash"] = prev = entry_hash(entry)
        out.append(entry)
    return out


def segment_digest(name: str, body: bytes, prev: str) -> bytes:
    """What a segment's signer signs: its name, its entry lines and the hash it chains
    onto (the previous segment's last entry)."""
    return signing_digest(SEGMENT_KIND, name.encode(), hashlib.sha256(body).hexdigest(), prev)


def start_digest(name: str, first: int, prev: str) -> bytes:
    return signing_digest(START_KIND, name.encode(), str(first), prev)


def encode_entries(entries: Sequence[Mapping[str, Any]]) -> bytes:
    return b"".join(canonical(e) + b"\n" for e in entries)


def signature_line(block: SignatureBlock) -> bytes:
    doc = {
        SIGNATURE_KEY: FORMAT_VERSION,
        "signer": block.signer,
        "algorithm": block.algorithm,
        "value": base64.b64encode(block.value).decode("ascii"),
    }
    return canonical(doc) + b"\n"


async def encode_segment(entries: Sequence[Mapping[str, Any]], ring: SignerRing) -> bytes:
    """The blob of one segment: its entry lines and the signature line."""
    name = segment_blob(int(entries[0]["seq"]))
    body = encode_entries(entries)
    digest = segment_digest(name, body, str(entries[0]["prev"]))
    block = await ring.sign(f"audit segment {name}", lambda _id, _alg: digest)
    return body + signature_line(block)


async def encode_start(first: int, prev: str, ring: SignerRing) -> bytes:
    """A start marker: the chain legitimately begins at `first`, chained onto `prev`
    (the last hash of what audit retention deleted)."""
    name = start_blob(first)
    digest = start_digest(name, first, prev)
    block = await ring.sign(f"audit start marker {name}", lambda _id, _alg: digest)
    doc = {"first": first, "prev": prev, "signature": json.loads(signature_line(block))}
    return canonical(doc)


def _block(doc: Any) -> SignatureBlock | None:
    if not isinstance(doc, dict) or doc.get(SIGNATURE_KEY) != FORMAT_VERSION:
        return None
    try:
        value = base64.b64decode(str(doc["value"]), validate=True)
        return SignatureBlock(str(doc["signer"]), str(doc["algorithm"]), value)
    except (KeyError, binascii.Error):
        return None


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the trail: where (blob, sequence) and what."""

    blob: str
    what: str
    seq: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"blob": self.blob, "seq": self.seq, "what": self.what}

    def __str__(self) -> str:
        at = f" seq {self.seq}" if self.seq is not None else ""
        return f"{self.blob}{at}: {self.what}"


@dataclass
class Segment:
    """A segment as read: its entries (parsed lines) and its signature, or what is wrong
    with its shape."""

    blob: str
    first: int
    entries: list[dict[str, Any]]
    body: bytes
    block: SignatureBlock | None
    problems: list[Problem]


def decode_segment(blob: str, data: bytes) -> Segment:
    """Parse a segment blob without trusting it (pure)."""
    first = parse_segment_blob(blob) or 0
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    problems: list[Problem] = []
    block: SignatureBlock | None = None
    if lines:
        try:
            block = _block(json.loads(lines[-1]))
        except ValueError:
            block = None
        if block is not None:
            lines.pop()
    entries: list[dict[str, Any]] = []
    for number, line in enumerate(lines, 1):
        try:
            doc = json.loads(line)
        except ValueError:
            doc = None
        if not isinstance(doc, dict) or not isinstance(doc.get("seq"), int):
            problems.append(Problem(blob, f"line {number} is not an audit entry"))
            continue
        entries.append(doc)
    body = b"".join(line + b"\n" for line in lines)
    return Segment(blob, first, entries, body, block, problems)


@dataclass(frozen=True)
class Start:
    """Where the chain legitimately begins: seq 1 after "", or a retention marker's."""

    first: int = 1
    prev: str = ""
    blob: str = ""


def decode_start(blob: str, data: bytes, ring: SignerRing) -> Start | Problem:
    """A start marker, checked; a Problem when it is not one kvdr signed."""
    try:
        doc = json.loads(data)
        first, prev = int(doc["first"]), str(doc["prev"])
        block = _block(doc["signature"])
    except (ValueError, KeyError, TypeError):
        return Problem(blob, "not a start marker")
    if first != parse_start_blob(blob):
        return Problem(blob, f"start marker says seq {first}, its name another")
    try:
        ring.check(block, start_digest(blob, first, prev), blob)
    except SignatureRefused as exc:
        return Problem(blob, f"start marker refused: {exc.detail}")
    return Start(first, prev, blob)


@dataclass
class ChainReport:
    """What verification found: entries checked, the range, and every problem."""

    segments: int = 0
    entries: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    last_hash: str = ""
    start: Start = field(default_factory=Start)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_chain(segments: Sequence[Segment], start: Start, ring: SignerRing) -> ChainReport:
    """Check signatures, sequence contiguity, `prev` links and hashes of `segments`
    (sorted by first sequence), beginning at `start` (pure apart from the signature
    arithmetic). Every problem names its blob and, where one is known, its sequence."""
    report = ChainReport(start=start)
    expected, prev = start.first, start.prev
    for segment in segments:
        report.segments += 1
        report.problems += segment.problems
        blob = segment.blob
        if not segment.entries:
            report.problems.append(Problem(blob, "holds no entries"))
            continue
        claimed = str(segment.entries[0].get("prev", ""))
        try:
            ring.check(segment.block, segment_digest(blob, segment.body, claimed), blob)
        except SignatureRefused as exc:
            report.problems.append(Problem(blob, f"signature refused: {exc.detail}"))
        head = int(segment.entries[0]["seq"])
        if segment.first != head:
            report.problems.append(
                Problem(blob, f"named for seq {segment.first} but starts at {head}", head)
            )
        if head > expected:
            gap = f"seq {expected}" if head == expected + 1 else f"seq {expected}-{head - 1}"
            why = "before the first segment" if report.segments == 1 else "(removed segment?)"
            report.problems.append(Problem(blob, f"{gap} missing {why}", head))
        for index, entry in enumerate(segment.entries):
            expected, prev = _check_entry(blob, entry, expected, prev, report, index == 0)
    if report.entries:
        report.last_hash = prev
    return report


def _check_entry(
    blob: str,
    entry: Mapping[str, Any],
    expected: int,
    prev: str,
    report: ChainReport,
    opens_segment: bool,
) -> tuple[int, str]:
    """One entry against its predecessor; returns the next expected seq and prev. A gap
    before a segment's first entry is the segment's problem (reported by the caller)."""
    seq = int(entry["seq"])
    report.entries += 1
    if report.first_seq is None:
        report.first_seq = seq
    report.last_seq = seq
    if entry_hash(entry) != entry.get("hash"):
        report.problems.append(Problem(blob, "edited: its content does not match its hash", seq))
    if seq < expected:
        report.problems.append(
            Problem(blob, f"out of order: seq {seq} where {expected} was due (reordered?)", seq)
        )
    elif seq > expected and not opens_segment:
        gap = f"seq {expected}" if seq == expected + 1 else f"seq {expected}-{seq - 1}"
        report.problems.append(Problem(blob, f"{gap} missing (removed entry?)", seq))
    if entry.get("prev") != prev:
        report.problems.append(
            Problem(blob, "does not chain onto the entry before it (removed or reordered?)", seq)
        )
    return max(seq, expected - 1) + 1, str(entry.get("hash", ""))
