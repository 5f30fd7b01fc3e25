"""The journal head (`backups/<pair>/head.json`): where the newest generation ends, signed.

Plain JSON (nothing secret in it)::

    {"format": 2, "pair": ..., "generation": ..., "sequence": <last durable>,
     "updated_at": ..., "writer": ...,
     "last": {"blob": <newest object>, "sha256": <SHA-256 of its sealed bytes>} | null,
     "signature": {"signer": <id>, "alg": ..., "value": <base64>}}

The signature covers every other field (`signers.signing_digest("head", fields, their
digest, last.sha256)`). So whoever cuts trailing segments must also rewrite the head to
hide it, and cannot sign the rewrite: the cut is detected. The head links to its last
object by the SHA-256 of the sealed bytes, not of the plaintext, so it is no oracle for
guesses of the plaintext. Format 1 heads (before signing) carry no signature.

`load_head` reads and checks a head; `write_head` signs and writes the journal's, with
the ETag condition that fences a second writer.

What a signed head cannot prove: that it is the newest head. An old head, genuinely
signed, put back together with deleting the segments written after it, looks like a
journal that stopped there (docs/security.md).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import structlog

from backups import paths
from backups.errors import (
    JournalFenced,
    JournalUnavailable,
    ObjectUnreadable,
    SignerUnavailable,
    Unsigned,
)
from backups.pair_log import PairLog
from backups.signers import SignatureBlock, SignerRing, signing_digest
from storage.errors import BlobNotFound, StorageError, WriteConflict
from storage.store import BlobStore, compare_and_swap

log = structlog.get_logger("kvdr.backups")

HEAD_FORMAT = 2
UNSIGNED_HEAD_FORMAT = 1
HEAD = "head"


@dataclass(frozen=True)
class Head:
    """A head that checked out (`signed` False: format 1, let through as unsigned)."""

    generation: str
    sequence: int
    last_blob: str | None
    last_sha256: str | None
    signed: bool
    doc: dict[str, Any]


def _canonical(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _digest(fields: dict[str, Any]) -> bytes:
    raw = _canonical(fields)
    last = fields.get("last")
    prev = str(last.get("sha256", "")) if isinstance(last, dict) else ""
    return signing_digest(HEAD, raw, hashlib.sha256(raw).hexdigest(), prev)


async def sign_head(
    signers: SignerRing,
    *,
    pair: str,
    generation: str,
    sequence: int,
    updated_at: float,
    writer: str,
    last: tuple[str, str] | None,
    blob: str,
) -> bytes:
    """The signed head document, as bytes to write."""
    fields: dict[str, Any] = {
        "format": HEAD_FORMAT,
        "pair": pair,
        "generation": generation,
        "sequence": sequence,
        "updated_at": updated_at,
        "writer": writer,
        "last": {"blob": last[0], "sha256": last[1]} if last else None,
    }
    block = await signers.sign(f"journal head {blob!r}", lambda signer, alg: _digest(fields))
    fields["signature"] = {
        "signer": block.signer,
        "alg": block.algorithm,
        "value": base64.b64encode(block.value).decode("ascii"),
    }
    return json.dumps(fields, sort_keys=True).encode()


def read_head(data: bytes, signers: SignerRing, blob: str) -> Head:
    """Parse and check a head; raises `ObjectUnreadable` (a `SignatureRefused` when it
    is not signed by a pinned signer) naming `blob`."""
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        raise ObjectUnreadable(blob, "the journal head is not JSON") from None
    if not isinstance(doc, dict) or doc.get("format") not in (HEAD_FORMAT, UNSIGNED_HEAD_FORMAT):
        raise ObjectUnreadable(blob, "the journal head has an unknown format")
    generation, sequence = doc.get("generation"), doc.get("sequence")
    if (
        not isinstance(generation, str)
        or isinstance(sequence, bool)
        or not isinstance(sequence, int)
    ):
        raise ObjectUnreadable(blob, "the journal head lacks its generation or sequence")
    if doc["format"] == UNSIGNED_HEAD_FORMAT:
        signers.check(None, b"", blob)
        return Head(generation, sequence, None, None, False, doc)
    fields = {k: v for k, v in doc.items() if k != "signature"}
    raw_sig = doc.get("signature")
    block = None
    if isinstance(raw_sig, dict):
        try:
            block = SignatureBlock(
                str(raw_sig["signer"]),
                str(raw_sig["alg"]),
                base64.b64decode(str(raw_sig["value"]), validate=True),
            )
        except (KeyError, binascii.Error, ValueError):
            raise ObjectUnreadable(blob, "the journal head's signature is malformed") from None
    if block is None:
        # A format 2 head is never older than signing: no --allow-unsigned for it.
        raise Unsigned(blob, "the journal head carries no signature: forged or damaged")
    signers.check(block, _digest(fields), blob)
    last = fields.get("last")
    last_blob = str(last.get("blob")) if isinstance(last, dict) else None
    last_sha = str(last.get("sha256")) if isinstance(last, dict) else None
    return Head(generation, sequence, last_blob, last_sha, True, doc)


@dataclass(frozen=True)
class HeadRead:
    """What is at a pair's head blob: the checked head, or why it is not trusted."""

    blob: str
    head: Head | None = None
    etag: str | None = None
    problem: str | None = None
    refused: ObjectUnreadable | None = None

    @property
    def exists(self) -> bool:
        return self.etag is not None


async def load_head(store: BlobStore, signers: SignerRing, pair: str) -> HeadRead:
    """Read and check `pair`'s head. A head that does not check out is reported in
    `problem` (its etag kept: the journal overwrites it conditionally); StorageError
    other than absence propagates."""
    name = paths.head_blob(pair)
    try:
        blob = await store.get(name)
    except BlobNotFound:
        return HeadRead(name)
    try:
        head = read_head(blob.data, signers, name)
    except ObjectUnreadable as exc:
        return HeadRead(name, etag=blob.info.etag, problem=exc.detail, refused=exc)
    return HeadRead(name, head=head, etag=blob.info.etag)


async def write_head(
    store: BlobStore,
    signers: SignerRing,
    pair_log: PairLog,
    *,
    updated_at: float,
    writer: str,
    creating: bool = False,
) -> None:
    """Rewrite `pair_log`'s head, signed, over the version it last wrote (its etag);
    another writer fences it (`JournalFenced`). Failing to sign or store raises
    `JournalUnavailable` only when `creating`: otherwise the segment is durable already
    and the head catches up with the next one (logged)."""
    name = paths.head_blob(pair_log.pair)
    try:
        data = await sign_head(
            signers,
            pair=pair_log.pair,
            generation=pair_log.generation,
            sequence=pair_log.durable,
            updated_at=updated_at,
            writer=writer,
            last=pair_log.last_object,
            blob=name,
        )
    except SignerUnavailable as exc:
        if creating:
            raise JournalUnavailable(f"cannot sign the journal head {name!r}: {exc}") from exc
        log.warning("backups.head_write_failed", pair=pair_log.pair, error=str(exc))
        return
    try:
        info = await compare_and_swap(store, name, data, pair_log.head_etag)
    except WriteConflict as exc:
        pair_log.fenced = True
        log.error(
            "backups.journal_fenced",
            pair=pair_log.pair,
            generation=pair_log.generation,
            reason="the head blob was written by another process",
        )
        raise JournalFenced(
            f"the journal head of pair {pair_log.pair!r} was written by another process"
        ) from exc
    except StorageError as exc:
        if creating:
            raise JournalUnavailable(f"cannot write the journal head {name!r}: {exc}") from exc
        # The segment itself is durable; the head catches up with the next one.
        log.warning("backups.head_write_failed", pair=pair_log.pair, error=str(exc))
        return
    pair_log.head_etag = info.etag
