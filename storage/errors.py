"""Errors of the blob seam. Only the backends map `azure.core.exceptions` into these.

StorageError
├── StorageUnavailable     request not sent or no answer (transient)
├── BlobNotFound           no blob by that name
├── BlobExists             put_if_absent found the name taken
├── PreconditionFailed     conditional write lost the race (ETag changed)
├── LeaseHeld              someone else holds the lease
├── LeaseLost              our lease expired or was taken (or could not be kept
│                          while `storage.lease` ran work under it)
└── CorruptBlob            the bytes read are not what was written (e.g. MD5 mismatch)

WriteConflict              `compare_and_swap` lost: another writer changed (or created)
├── CheckpointConflict     the blob since it was read (replicator/errors.py)
└── GuardConflict

`WriteConflict` is not a `StorageError`: storage worked and answered, the document is
someone else's now. Callers that retry or skip on a `StorageError` (unreachable storage)
must not do so on a conflict, which means another writer owns the state.
"""

from __future__ import annotations


class StorageError(Exception):
    """Base of every error raised by the blob seam."""

    def __init__(self, message: str, *, blob: str = "") -> None:
        super().__init__(message)
        self.blob = blob


class StorageUnavailable(StorageError):
    pass


class BlobNotFound(StorageError):
    pass


class BlobExists(StorageError):
    pass


class PreconditionFailed(StorageError):
    pass


class LeaseHeld(StorageError):
    pass


class LeaseLost(StorageError):
    pass


class CorruptBlob(StorageError):
    pass


class WriteConflict(Exception):
    """Another writer changed the blob since it was read (`compare_and_swap` lost).

    Subclasses name the document (`what`) for the message; catch this for any of them.
    """

    what = "blob"

    def __init__(self, message: str, *, blob: str = "") -> None:
        super().__init__(message)
        self.blob = blob
