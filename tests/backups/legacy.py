"""Backups as kvdr wrote them before signing (envelope format 1, head format 1): what an
upgraded installation finds in its container. Built from the documented layout
(backups/envelope.py), so the tests can check how such generations are treated."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Sequence
from datetime import UTC, datetime

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from backups import envelope, paths, records
from backups.envelope import Binding
from backups.keks import KekRing
from storage.store import BlobStore
from vault.models import Change

UNSIGNED = 1


async def seal_unsigned(lines: Sequence[bytes], binding: Binding, keks: KekRing) -> bytes:
    """Format 1: zlib(plaintext) || SHA-256(plaintext) under AES-256-GCM, no signature."""
    compressed, digest = envelope._compress(lines)
    data_key = AESGCM.generate_key(bit_length=256)
    nonce = os.urandom(envelope.NONCE_BYTES)
    wraps = await keks.wrap_all(data_key)
    header = envelope._canonical(
        {
            "format": UNSIGNED,
            "cipher": envelope.CIPHER,
            "compression": envelope.COMPRESSION,
            "nonce": base64.b64encode(nonce).decode(),
            "binding": binding.as_dict(),
            "wraps": [
                {"kek": w.kek, "alg": w.algorithm, "key": base64.b64encode(w.key).decode()}
                for w in wraps
            ],
        }
    )
    prefix = envelope.MAGIC + bytes([UNSIGNED]) + len(header).to_bytes(4, "big")
    body = AESGCM(data_key).encrypt(nonce, compressed + digest, prefix + header)
    return prefix + header + body


async def write_unsigned_generation(
    store: BlobStore, keks: KekRing, pair: str, changes: Sequence[Change], started: datetime
) -> str:
    """One unsigned segment per change (sequences 1..n) and a format 1 head; returns
    the generation id."""
    generation = paths.new_generation(started)
    prev = ""
    for sequence, change in enumerate(changes, start=1):
        at = change.observed_at.timestamp()
        name = paths.segment_blob(pair, generation, sequence, sequence)
        head = {
            "type": "segment",
            "format": 1,
            "pair": pair,
            "generation": generation,
            "first": sequence,
            "last": sequence,
            "prev": prev,
            "first_at": at,
            "last_at": at,
        }
        stamped = Change(
            pair=pair,
            item=change.item,
            op=change.op,
            observed_at=change.observed_at,
            properties=change.properties,
            payload=change.payload,
            sequence=sequence,
        )
        lines = [records.dumps(head) + b"\n", records.change_to_line(stamped, at) + b"\n"]
        binding = Binding(pair, generation, "segment", sequence, sequence, name)
        data = await seal_unsigned(lines, binding, keks)
        await store.put(name, data, metadata=paths.object_metadata(at, at))
        prev = hashlib.sha256(b"".join(lines)).hexdigest()
    doc = {
        "format": 1,
        "pair": pair,
        "generation": generation,
        "sequence": len(changes),
        "updated_at": datetime.now(UTC).timestamp(),
        "writer": "kvdr before signing",
    }
    await store.put(paths.head_blob(pair), json.dumps(doc, sort_keys=True).encode())
    return generation
