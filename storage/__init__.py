"""The blob seam: put-if-absent, get, list, delete, conditional write, lease."""

from storage.errors import (
    BlobExists,
    BlobNotFound,
    CorruptBlob,
    LeaseHeld,
    LeaseLost,
    PreconditionFailed,
    StorageError,
    StorageUnavailable,
)
from storage.store import Blob, BlobInfo, BlobStore

__all__ = [
    "Blob",
    "BlobExists",
    "BlobInfo",
    "BlobNotFound",
    "BlobStore",
    "CorruptBlob",
    "LeaseHeld",
    "LeaseLost",
    "PreconditionFailed",
    "StorageError",
    "StorageUnavailable",
]
