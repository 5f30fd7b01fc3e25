"""Envelope encryption of one backup object.

Layout of a sealed object (format 2; format 1, written before signing, is still read)::

    "KVDRBAK" | format (1 byte) | header length (4 bytes, big endian) | header | ciphertext

The header is canonical JSON: the binding (pair, generation, object kind, sequence range,
blob name), the cipher and compression names, the GCM nonce, the data key's wraps (one
per key-encryption key), the signer's id and algorithm, and the padding scheme. Nothing
in it names a secret. The whole prefix and header are the AES-256-GCM associated data,
so no header byte can change unnoticed.

The ciphertext is AES-256-GCM, under a fresh data key per object, of (format 2)::

    len(z) (4 bytes) | z = zlib(plaintext) | len(sig) (2 bytes) | sig | SHA-256(plaintext) | zeros

Compression before encryption; the plaintext's digest travels encrypted (a digest in the
clear would let anyone test guesses of a small plaintext against it), and so does the
signature (it covers that digest, so in the clear it would be the same oracle). The
zeros pad the body to a size bucket (`padded_size`): compression makes the size depend
on how much a value resembles its neighbours, so without buckets an attacker who can
plant a guess next to a secret learns from the blob size whether the guess matched.

`sig` is the signer's signature over `signers.signing_digest(kind, header, digest,
prev)`; `Opened.check_signature` checks it once the predecessor digest (the object's
first plaintext line) is known. Format 1 objects carry none and open as unsigned.

A reader passes the binding it expects from the blob's name (not the one in the header):
an object copied under another name, or into another pair or generation, fails to open.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import os
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from backups.errors import TamperedObject, UnknownFormat
from backups.keks import DATA_KEY_BYTES, KekRing, Wrap
from backups.signers import SignatureBlock, SignerRing, signing_digest

MAGIC = b"KVDRBAK"
FORMAT = 2
UNSIGNED_FORMAT = 1
PADDING = "buckets-v1"
# Bodies pad to 512 bytes at least, then to the next 2^k or 3 * 2^(k-1) bytes: at most 50%
# more, and sizes that differ by a few dozen bytes (one value compressing better than
# another: 732 vs 757-759 bytes measured before padding) land in the same bucket.
MIN_BUCKET = 512
CIPHER = "AES-256-GCM"
COMPRESSION = "zlib"
NONCE_BYTES = 12
DIGEST_BYTES = 32
# A header carries a handful of wraps of a few hundred bytes; anything far larger is not ours.
MAX_HEADER_BYTES = 64 * 1024
_PREFIX = len(MAGIC) + 1 + 4
# Level 6: zlib's default, most of level 9's ratio on JSON at a third of the time.
COMPRESSION_LEVEL = 6
_CHUNK = 256 * 1024


@dataclass(frozen=True)
class Binding:
    """What an object is bound to; part of the authenticated data."""

    pair: str
    generation: str
    kind: str
    first: int
    last: int
    blob: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "pair": self.pair,
            "generation": self.generation,
            "kind": self.kind,
            "first": self.first,
            "last": self.last,
            "blob": self.blob,
        }


@dataclass(frozen=True)
class Header:
    """The parsed clear header of a sealed object (`signer` None: format 1, unsigned)."""

    binding: dict[str, Any]
    nonce: bytes
    wraps: tuple[Wrap, ...]
    raw: bytes = field(repr=False)
    format: int = FORMAT
    signer: str | None = None
    signature_algorithm: str | None = None


def padded_size(size: int) -> int:
    """The bucket a body of `size` bytes is padded to (see MIN_BUCKET)."""
    if size <= MIN_BUCKET:
        return MIN_BUCKET
    power = 1 << (size - 1).bit_length()  # the smallest 2^k >= size
    three_quarters = power // 4 * 3
    return three_quarters if size <= three_quarters else power


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _canonical(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _compress(chunks: Iterable[bytes]) -> tuple[bytes, bytes]:
    """zlib of the concatenated chunks and the SHA-256 of the plaintext."""
    digest = hashlib.sha256()
    packer = zlib.compressobj(COMPRESSION_LEVEL)
    out: list[bytes] = []
    for chunk in chunks:
        digest.update(chunk)
        out.append(packer.compress(chunk))
    out.append(packer.flush())
    return b"".join(out), digest.digest()


async def seal(
    chunks: Iterable[bytes], binding: Binding, keks: KekRing, *, prev: str = ""
) -> tuple[bytes, bytes]:
    """Seal and sign the plaintext given as `chunks` (whose predecessor digest is
    `prev`); returns (object bytes, plaintext SHA-256).

    Chunks are compressed as they come, so a large snapshot is never held uncompressed.
    """
    # In a worker thread: a snapshot of a large pair takes seconds to encode and compress,
    # and the event loop keeps replicating meanwhile (zlib releases the GIL).
    compressed, digest = await asyncio.to_thread(_compress, chunks)
    data_key = AESGCM.generate_key(bit_length=256)
    nonce = os.urandom(NONCE_BYTES)
    wraps = await keks.wrap_all(data_key)
    headers: dict[str, bytes] = {}

    def header_for(signer: str, algorithm: str) -> bytes:
        headers[signer] = _canonical(
            {
                "format": FORMAT,
                "cipher": CIPHER,
                "compression": COMPRESSION,
                "padding": PADDING,
                "nonce": _b64(nonce),
                "binding": binding.as_dict(),
                "wraps": [{"kek": w.kek, "alg": w.algorithm, "key": _b64(w.key)} for w in wraps],
                "signer": signer,
                "sig_alg": algorithm,
            }
        )
        return signing_digest(binding.kind, headers[signer], digest.hex(), prev)

    block = await keks.signers.sign(f"backup object {binding.blob!r}", header_for)
    header = headers[block.signer]
    prefix = MAGIC + bytes([FORMAT]) + len(header).to_bytes(4, "big")
    body = (
        len(compressed).to_bytes(4, "big")
        + compressed
        + len(block.value).to_bytes(2, "big")
        + block.value
        + digest
    )
    body += bytes(padded_size(len(body)) - len(body))
    ciphertext = AESGCM(data_key).encrypt(nonce, body, prefix + header)
    return prefix + header + ciphertext, digest


def read_header(data: bytes, blob: str) -> Header:
    """The clear header of a sealed object (unauthenticated until `open_sealed`)."""
    if len(data) < _PREFIX or not data.startswith(MAGIC):
        raise UnknownFormat(blob, "not a kvdr backup object (no KVDRBAK prefix)")
    version = data[len(MAGIC)]
    if version not in (UNSIGNED_FORMAT, FORMAT):
        raise UnknownFormat(
            blob,
            f"format version {version}; this kvdr reads formats {UNSIGNED_FORMAT} and "
            f"{FORMAT} (upgrade kvdr)",
        )
    size = int.from_bytes(data[len(MAGIC) + 1 : _PREFIX], "big")
    if size > MAX_HEADER_BYTES or _PREFIX + size > len(data):
        raise TamperedObject(blob, "header length is out of range (truncated or altered)")
    raw = data[_PREFIX : _PREFIX + size]
    try:
        doc = json.loads(raw)
        if doc.get("cipher") != CIPHER or doc.get("compression") != COMPRESSION:
            raise UnknownFormat(
                blob, f"cipher {doc.get('cipher')!r} / compression {doc.get('compression')!r}"
            )
        nonce = base64.b64decode(doc["nonce"], validate=True)
        wraps = tuple(
            Wrap(kek=str(w["kek"]), algorithm=str(w["alg"]), key=base64.b64decode(w["key"]))
            for w in doc["wraps"]
        )
        binding = dict(doc["binding"])
        signer = str(doc["signer"]) if version == FORMAT else None
        algorithm = str(doc["sig_alg"]) if version == FORMAT else None
        if version == FORMAT and doc.get("padding") != PADDING:
            raise UnknownFormat(blob, f"padding {doc.get('padding')!r}")
    except UnknownFormat:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError, binascii.Error):
        raise TamperedObject(blob, "header is not valid (truncated or altered)") from None
    if len(nonce) != NONCE_BYTES:
        raise TamperedObject(blob, "header nonce has the wrong length")
    return Header(
        binding=binding,
        nonce=nonce,
        wraps=wraps,
        raw=raw,
        format=version,
        signer=signer,
        signature_algorithm=algorithm,
    )


@dataclass(frozen=True)
class Opened:
    """A decrypted object: its compressed plaintext and the digest it must match."""

    blob: str
    digest: bytes
    compressed: bytes = field(repr=False)
    header: Header | None = field(default=None, repr=False)
    signature: SignatureBlock | None = None

    def check_signature(self, signers: SignerRing, prev: str) -> bool:
        """Raise `SignatureRefused` unless a pinned signer signed this object with
        predecessor `prev`; False for an unsigned one the ring lets through."""
        assert self.header is not None
        kind = str(self.header.binding.get("kind", ""))
        digest = signing_digest(kind, self.header.raw, self.digest.hex(), prev)
        return signers.check(self.signature, digest, self.blob)

    def chunks(self) -> Iterator[bytes]:
        """The plaintext in pieces; raises `TamperedObject` at the end if its SHA-256
        does not match (read to the end before trusting what was read)."""
        unpacker = zlib.decompressobj()
        hasher = hashlib.sha256()
        view = memoryview(self.compressed)
        try:
            for start in range(0, len(view), _CHUNK):
                piece = unpacker.decompress(view[start : start + _CHUNK])
                if piece:
                    hasher.update(piece)
                    yield piece
            tail = unpacker.flush()
        except zlib.error:
            raise TamperedObject(self.blob, "compressed plaintext is damaged") from None
        if tail:
            hasher.update(tail)
            yield tail
        if not unpacker.eof or unpacker.unused_data:
            raise TamperedObject(self.blob, "compressed plaintext is incomplete")
        if hasher.digest() != self.digest:
            raise TamperedObject(self.blob, "plaintext SHA-256 does not match its digest")

    def lines(self) -> Iterator[bytes]:
        """The plaintext's lines (without newlines), digest checked at the end."""
        rest = b""
        for piece in self.chunks():
            rest += piece
            *complete, rest = rest.split(b"\n")
            yield from complete
        if rest:
            yield rest

    def plaintext(self) -> bytes:
        return b"".join(self.chunks())


async def open_sealed(data: bytes, expected: Binding, keks: KekRing) -> Opened:
    """Authenticate and decrypt an object read from blob `expected.blob`."""
    blob = expected.blob
    header = read_header(data, blob)
    if header.binding != expected.as_dict():
        raise TamperedObject(
            blob,
            "its header binds it to another place "
            f"({_describe(header.binding)}, expected {_describe(expected.as_dict())}): "
            "moved, swapped or renamed",
        )
    data_key = await keks.unwrap(header.wraps, blob)
    if len(data_key) != DATA_KEY_BYTES:
        raise TamperedObject(blob, "the unwrapped data key has the wrong size")
    start = _PREFIX + len(header.raw)
    try:
        body = AESGCM(data_key).decrypt(header.nonce, data[start:], data[:start])
    except InvalidTag:
        raise TamperedObject(
            blob, "authentication failed: the object was altered or truncated"
        ) from None
    if header.format == UNSIGNED_FORMAT:
        if len(body) < DIGEST_BYTES:
            raise TamperedObject(blob, "the decrypted body is too short")
        return Opened(
            blob=blob, digest=body[-DIGEST_BYTES:], compressed=body[:-DIGEST_BYTES], header=header
        )
    return _open_signed(blob, header, body)


def _open_signed(blob: str, header: Header, body: bytes) -> Opened:
    """Split a format 2 body (length-prefixed compressed text, signature, digest, zeros)."""
    size = int.from_bytes(body[:4], "big")
    sig_at = 4 + size
    sig_size = int.from_bytes(body[sig_at : sig_at + 2], "big")
    digest_at = sig_at + 2 + sig_size
    if len(body) < digest_at + DIGEST_BYTES or any(body[digest_at + DIGEST_BYTES :]):
        raise TamperedObject(blob, "the decrypted body is malformed")
    assert header.signer is not None and header.signature_algorithm is not None
    return Opened(
        blob=blob,
        digest=body[digest_at : digest_at + DIGEST_BYTES],
        compressed=body[4:sig_at],
        header=header,
        signature=SignatureBlock(
            header.signer, header.signature_algorithm, body[sig_at + 2 : digest_at]
        ),
    )


def _describe(binding: dict[str, Any]) -> str:
    return (
        f"{binding.get('kind')} {binding.get('first')}-{binding.get('last')} of pair "
        f"{binding.get('pair')!r} generation {binding.get('generation')!r} "
        f"as {binding.get('blob')!r}"
    )
