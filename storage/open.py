"""Open the blob store that a settings object describes."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

from azure.core.credentials_async import AsyncTokenCredential

from storage.azure_blob import AzureBlobStore
from storage.local_folder import LocalFolderStore
from storage.settings import AzureBlobSettings, LocalFolderSettings, StorageSettings
from storage.store import BlobStore


def open_store(
    settings: StorageSettings, credential: AsyncTokenCredential | None = None
) -> AbstractAsyncContextManager[BlobStore]:
    """`async with open_store(settings) as store:` for either backend.

    `credential` is used by Azure Blob settings with an `account_url`; the caller owns it.
    """
    if isinstance(settings, AzureBlobSettings):
        return AzureBlobStore(settings, credential)
    if isinstance(settings, LocalFolderSettings):
        return LocalFolderStore(settings)
    raise TypeError(f"unknown storage settings type {type(settings).__name__}")
