"""The blob seam: put-if-absent, get, list, delete, conditional write, lease."""

from storage.azure_blob import AzureBlobStore
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
from storage.local_folder import LocalFolderStore
from storage.open import open_store
from storage.settings import AzureBlobSettings, LocalFolderSettings, StorageSettings
from storage.store import Blob, BlobInfo, BlobStore

__all__ = [
    "AzureBlobSettings",
    "AzureBlobStore",
    "Blob",
    "BlobExists",
    "BlobInfo",
    "BlobNotFound",
    "BlobStore",
    "CorruptBlob",
    "LeaseHeld",
    "LeaseLost",
    "LocalFolderSettings",
    "LocalFolderStore",
    "PreconditionFailed",
    "StorageError",
    "StorageSettings",
    "StorageUnavailable",
    "open_store",
]
