"""Blob names of the backups, as pure functions with matching parse functions.

    backups/<pair>/head.json                                   the pair's journal head
    backups/<pair>/<generation>/segments/<first>-<last>.seg    one journal segment
    backups/<pair>/<generation>/snapshots/<sequence>.snap      one snapshot

Sequence numbers are zero-padded to 12 digits so names sort in sequence order. A
generation id is `<UTC start, YYYYMMDDTHHMMSSZ>-<8 hex>`: sortable by start time, unique
without coordination. Names carry pair, generation and sequences only: secret names live
inside the encrypted objects, and so do values. Blob metadata carries the object's time
range (epoch seconds) so a listing can show coverage without opening anything.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

ROOT = "backups"
SEQUENCE_DIGITS = 12
MAX_SEQUENCE = 10**SEQUENCE_DIGITS - 1
HEAD = "head.json"
SEGMENT_SUFFIX = ".seg"
SNAPSHOT_SUFFIX = ".snap"

# The config's pair-name rule: safe as one path segment everywhere.
_PAIR = re.compile(r"[A-Za-z0-9_-]{1,63}")
_GENERATION = re.compile(r"(\d{8}T\d{6}Z)-([0-9a-f]{8})")
_SEQ = rf"\d{{{SEQUENCE_DIGITS}}}"
_SEGMENT = re.compile(rf"({_SEQ})-({_SEQ}){re.escape(SEGMENT_SUFFIX)}")
_SNAPSHOT = re.compile(rf"({_SEQ}){re.escape(SNAPSHOT_SUFFIX)}")


@dataclass(frozen=True, order=True)
class Pos:
    """A position in a pair's journal: generation and sequence number (0 = nothing yet)."""

    generation: str
    sequence: int

    def __str__(self) -> str:
        return f"{self.generation}/{self.sequence}"

    def is_zero(self) -> bool:
        return self.sequence == 0


@dataclass(frozen=True)
class SegmentName:
    pair: str
    generation: str
    first: int
    last: int

    @property
    def blob(self) -> str:
        return segment_blob(self.pair, self.generation, self.first, self.last)


@dataclass(frozen=True)
class SnapshotName:
    pair: str
    generation: str
    sequence: int

    @property
    def blob(self) -> str:
        return snapshot_blob(self.pair, self.generation, self.sequence)


@dataclass(frozen=True)
class HeadName:
    pair: str

    @property
    def blob(self) -> str:
        return head_blob(self.pair)


def check_pair(pair: str) -> str:
    if not isinstance(pair, str) or not _PAIR.fullmatch(pair):
        raise ValueError(f"pair name {pair!r} must be 1-63 letters, digits, '-' or '_'")
    return pair


def check_generation(generation: str) -> str:
    if not isinstance(generation, str) or not _GENERATION.fullmatch(generation):
        raise ValueError(f"generation id {generation!r} is not YYYYMMDDTHHMMSSZ-<8 hex>")
    return generation


def _check_sequence(what: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SEQUENCE:
        raise ValueError(f"{what} {value!r} must be an integer from 1 to {MAX_SEQUENCE}")
    return value


def _seq(value: int) -> str:
    return f"{value:0{SEQUENCE_DIGITS}d}"


def new_generation(now: datetime, token: str | None = None) -> str:
    """A new generation id starting at `now` (random suffix unless `token`)."""
    suffix = token if token is not None else secrets.token_hex(4)
    return check_generation(f"{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{suffix}")


def generation_started(generation: str) -> datetime:
    """When a generation began, from its id."""
    match = _GENERATION.fullmatch(check_generation(generation))
    assert match is not None
    return datetime.strptime(match.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def pair_prefix(pair: str) -> str:
    return f"{ROOT}/{check_pair(pair)}/"


def generation_prefix(pair: str, generation: str) -> str:
    return f"{pair_prefix(pair)}{check_generation(generation)}/"


def head_blob(pair: str) -> str:
    return f"{pair_prefix(pair)}{HEAD}"


def segment_blob(pair: str, generation: str, first: int, last: int) -> str:
    _check_sequence("segment first sequence", first)
    _check_sequence("segment last sequence", last)
    if last < first:
        raise ValueError(f"segment range {first}-{last} ends before it starts")
    leaf = f"{_seq(first)}-{_seq(last)}{SEGMENT_SUFFIX}"
    return f"{generation_prefix(pair, generation)}segments/{leaf}"


def snapshot_blob(pair: str, generation: str, sequence: int) -> str:
    _check_sequence("snapshot sequence", sequence)
    return f"{generation_prefix(pair, generation)}snapshots/{_seq(sequence)}{SNAPSHOT_SUFFIX}"


def parse_blob(name: str) -> SegmentName | SnapshotName | HeadName:
    """The object a backup blob name stands for; `ValueError` for any other name."""
    parts = name.split("/")
    if len(parts) == 3 and parts[0] == ROOT and parts[2] == HEAD and _PAIR.fullmatch(parts[1]):
        return HeadName(parts[1])
    if len(parts) != 5 or parts[0] == "" or parts[0] != ROOT:
        raise ValueError(f"not a backup blob name: {name!r}")
    _, pair, generation, folder, leaf = parts
    try:
        check_pair(pair)
        check_generation(generation)
    except ValueError as exc:
        raise ValueError(f"not a backup blob name: {name!r} ({exc})") from None
    if folder == "segments" and (m := _SEGMENT.fullmatch(leaf)):
        first, last = int(m.group(1)), int(m.group(2))
        if first < 1 or last < first:
            raise ValueError(f"not a backup blob name: {name!r} (bad sequence range)")
        return SegmentName(pair, generation, first, last)
    if folder == "snapshots" and (m := _SNAPSHOT.fullmatch(leaf)):
        sequence = int(m.group(1))
        if sequence < 1:
            raise ValueError(f"not a backup blob name: {name!r} (bad sequence)")
        return SnapshotName(pair, generation, sequence)
    raise ValueError(f"not a backup blob name: {name!r}")


def parse_pair_from_prefix(name: str) -> str | None:
    """The pair a backup blob belongs to, or None for names outside `backups/`."""
    parts = name.split("/")
    if len(parts) >= 3 and parts[0] == ROOT and _PAIR.fullmatch(parts[1]):
        return parts[1]
    return None


# -- metadata --------------------------------------------------------------------------

FORMAT_KEY = "kvdr_format"
FIRST_AT_KEY = "first_at"
LAST_AT_KEY = "last_at"
SIGNER_KEY = "signer"


def object_metadata(first_at: float, last_at: float, signer: str = "") -> dict[str, str]:
    """Blob metadata of a segment or snapshot: its time range and the id of the signer
    it claims (a hint for listings; `verify` checks the signature itself)."""
    meta = {FORMAT_KEY: "1", FIRST_AT_KEY: f"{first_at:.6f}", LAST_AT_KEY: f"{last_at:.6f}"}
    if signer:
        meta[SIGNER_KEY] = signer
    return meta


def parse_signer(metadata: dict[str, str]) -> str | None:
    """The signer id an object's metadata claims, or None (unsigned, or not said)."""
    lowered = {k.lower(): v for k, v in metadata.items()}
    return lowered.get(SIGNER_KEY) or None


def parse_metadata(metadata: dict[str, str]) -> tuple[float, float] | None:
    """(first_at, last_at) from blob metadata, or None when absent or malformed.

    Metadata is not authenticated: it only guides listings and the choice of objects;
    the times inside each decrypted object are what a restore trusts.
    """
    lowered = {k.lower(): v for k, v in metadata.items()}
    try:
        return float(lowered[FIRST_AT_KEY]), float(lowered[LAST_AT_KEY])
    except (KeyError, ValueError):
        return None
