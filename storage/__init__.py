"""The blob seam: put-if-absent, get, list, delete, conditional write (one
compare-and-swap function), lease and running work while it is held."""

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
    WriteConflict,
)
from storage.lease import (
    DEFAULT_LEASE_SECONDS,
    MAX_LEASE_SECONDS,
    MIN_LEASE_SECONDS,
    LeaseKeeper,
    LeaseTiming,
    PairLease,
    keeping,
    lease_blob_name,
    parse_lease_blob_name,
    run_while_held,
)
from storage.local_folder import LocalFolderStore
from storage.open import open_store
from storage.settings import AzureBlobSettings, LocalFolderSettings, StorageSettings
from storage.store import (
    Blob,
    BlobInfo,
    BlobStore,
    ConditionalReader,
    compare_and_swap,
    get_if_changed,
)

__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "MAX_LEASE_SECONDS",
    "MIN_LEASE_SECONDS",
    "AzureBlobSettings",
    "AzureBlobStore",
    "Blob",
    "BlobExists",
    "BlobInfo",
    "BlobNotFound",
    "BlobStore",
    "ConditionalReader",
    "CorruptBlob",
    "LeaseHeld",
    "LeaseKeeper",
    "LeaseLost",
    "LeaseTiming",
    "LocalFolderSettings",
    "LocalFolderStore",
    "PairLease",
    "PreconditionFailed",
    "StorageError",
    "StorageSettings",
    "StorageUnavailable",
    "WriteConflict",
    "compare_and_swap",
    "get_if_changed",
    "keeping",
    "lease_blob_name",
    "open_store",
    "parse_lease_blob_name",
    "run_while_held",
]
