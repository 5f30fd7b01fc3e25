"""Errors of the backups part. Every message names the blob (or pair) it is about and
never carries a secret name, value or key material.

    BackupError
    ├── ObjectUnreadable          one blob cannot be opened or does not check out
    │   ├── UnknownFormat         not a kvdr backup object, or a format version we lack
    │   ├── NoUsableKek           no configured key-encryption key can unwrap its data key
    │   ├── TamperedObject        authentication, binding or digest check failed
    │   └── SignatureRefused      not signed by a pinned signer (see backups.signers)
    │       ├── Unsigned          no signature at all (older than signing, or forged)
    │       ├── UnpinnedSigner    signed by a key the configuration does not pin
    │       └── BadSignature      the signature does not match: forged or altered
    ├── ChainBroken               objects do not follow each other (digest link, gap)
    │   └── JournalGap            sequence numbers missing between two objects
    ├── KekUnavailable            a key-encryption key could not wrap (vault down, no key)
    │   └── SignerUnavailable     no signing key could sign (vault down, rotated key)
    ├── JournalUnavailable        the journal cannot take changes now (storage, KEK)
    │   └── JournalFenced         another writer owns this pair's journal
    └── RestoreRefused            a restore that must not run as asked (time, gap, target)

`ObjectUnreadable` and `ChainBroken` are corruption (an object or the lineage is not what
kvdr wrote); `KekUnavailable` and `JournalUnavailable` are transient faults.
"""

from __future__ import annotations


class BackupError(Exception):
    """Base of every error of the backups part."""


class ObjectUnreadable(BackupError):
    """A backup object that cannot be opened or fails a check."""

    def __init__(self, blob: str, message: str) -> None:
        super().__init__(f"backup object {blob!r}: {message}")
        self.blob = blob
        self.detail = message


class UnknownFormat(ObjectUnreadable):
    pass


class NoUsableKek(ObjectUnreadable):
    pass


class TamperedObject(ObjectUnreadable):
    pass


class SignatureRefused(ObjectUnreadable):
    """An object (or the journal head) that is not signed by a pinned signer."""


class Unsigned(SignatureRefused):
    pass


class UnpinnedSigner(SignatureRefused):
    pass


class BadSignature(SignatureRefused):
    pass


class ChainBroken(BackupError):
    """Objects of one generation that do not link up."""

    def __init__(self, message: str, *, blob: str = "") -> None:
        super().__init__(message)
        self.blob = blob


class JournalGap(ChainBroken):
    """Sequence numbers `first`..`last` of a generation are missing."""

    def __init__(
        self, message: str, *, generation: str, first: int, last: int, blob: str = ""
    ) -> None:
        super().__init__(message, blob=blob)
        self.generation = generation
        self.first = first
        self.last = last


class KekUnavailable(BackupError):
    """A key-encryption key could not wrap a data key (transient or misconfigured)."""


class SignerUnavailable(KekUnavailable):
    """No signing key could sign an object: as transient as a KEK that cannot wrap (the
    journal retries the very same way), or a vault key that no longer matches its pin."""


class JournalUnavailable(BackupError):
    """The journal cannot accept changes now; the replicator retries the item later."""


class JournalFenced(JournalUnavailable):
    """Another process wrote this pair's journal; this one must stop writing."""


class RestoreRefused(BackupError):
    """A restore that kvdr will not run as asked; the message says why and what to do."""
