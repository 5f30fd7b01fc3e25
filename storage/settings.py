"""Settings of the blob seam's backends."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class AzureBlobSettings:
    """A container in an Azure storage account (or Azurite).

    Either `connection_string`, or `account_url` with the configured Azure credential.
    `secondary_account_url` is the RA-GZRS read endpoint (`<account>-secondary`), used for
    reads when the primary endpoint is unreachable; derived when not given.
    """

    container: str = "kvdr"
    connection_string: str | None = field(default=None, repr=False)
    account_url: str | None = None
    secondary_account_url: str | None = None


@dataclass(frozen=True)
class LocalFolderSettings:
    """A folder on local disk holding blobs as files."""

    path: str


StorageSettings = AzureBlobSettings | LocalFolderSettings
