"""Sealed state documents: checkpoints and deletion guards that name no item in the clear.

Blob names never carry an item name, but the checkpoint (what was applied, per item) and
the deletion guard (the deletions it withholds) are JSON documents keyed by item names.
Anyone who may read the storage container would learn every secret's name from them.
With a state key configured (`[replication] state_key_env` or `state_key_file`, the same
on every daemon), each document is written as

    {"sealed": 1, "key_id": "<16 hex>", "nonce": "<base64>", "data": "<base64>"}

where `data` is the document encrypted with AES-256-GCM under a key derived from the
state key (HKDF-SHA256), bound to the blob's name (a document copied to another name
does not open), and `key_id` tells which state key sealed it (an HMAC of the key, not
the key). A document written before the key was configured is still read, and sealed at
its next write.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SEALED_FORMAT = 1
_INFO = b"kvdr state documents v1"
_NONCE_BYTES = 12


class StateDocumentUnreadable(ValueError):
    """A state document that cannot be opened; names the blob, never its contents."""

    def __init__(self, blob: str, reason: str) -> None:
        super().__init__(f"state document {blob!r}: {reason}")
        self.blob = blob


class StateSealer:
    """Seals and opens state documents with one state key."""

    def __init__(self, state_key: str) -> None:
        if not state_key:
            raise ValueError("the state key is empty")
        self._key = HKDF(hashes.SHA256(), 32, salt=None, info=_INFO).derive(state_key.encode())
        self.key_id = hmac.new(self._key, b"kvdr state key id", hashlib.sha256).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"StateSealer(key_id={self.key_id!r})"

    def seal(self, blob: str, data: bytes) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = AESGCM(self._key).encrypt(nonce, data, blob.encode())
        doc = {
            "sealed": SEALED_FORMAT,
            "key_id": self.key_id,
            "nonce": base64.b64encode(nonce).decode(),
            "data": base64.b64encode(sealed).decode(),
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    def open(self, blob: str, doc: dict[str, Any]) -> bytes:
        """The plaintext of a sealed document `doc` read from `blob`."""
        if doc.get("key_id") != self.key_id:
            raise StateDocumentUnreadable(
                blob,
                f"sealed with another state key (key id {doc.get('key_id')!r}, the configured "
                f"one is {self.key_id!r}): every daemon must use the same state key",
            )
        try:
            nonce = base64.b64decode(str(doc["nonce"]), validate=True)
            sealed = base64.b64decode(str(doc["data"]), validate=True)
            return AESGCM(self._key).decrypt(nonce, sealed, blob.encode())
        except (KeyError, ValueError, InvalidTag):
            raise StateDocumentUnreadable(
                blob, "does not open with the state key: damaged, or written for another blob"
            ) from None


def is_sealed(doc: object) -> bool:
    return isinstance(doc, dict) and doc.get("sealed") == SEALED_FORMAT


def read_state_document(blob: str, data: bytes, sealer: StateSealer | None) -> bytes:
    """The plaintext JSON of a state document as stored in `blob`: opened when sealed,
    as it is when written in the clear (before a state key was configured)."""
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        raise StateDocumentUnreadable(blob, "is not JSON") from None
    if not is_sealed(doc):
        return data
    if sealer is None:
        raise StateDocumentUnreadable(
            blob,
            "is sealed with a state key, and none is configured: set "
            "replication.state_key_env or replication.state_key_file as on the daemons",
        )
    return sealer.open(blob, doc)


def write_state_document(blob: str, data: bytes, sealer: StateSealer | None) -> bytes:
    """What to store in `blob` for the plaintext JSON `data`."""
    return data if sealer is None else sealer.seal(blob, data)
