"""Settings of the blob seam's backends."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

# Azure's container naming rule: 3-63 characters, lowercase letters, digits and single
# hyphens, starting and ending with a letter or digit.
_CONTAINER_NAME = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}\Z")


def is_container_name(name: str) -> bool:
    """True for a name Azure accepts for a blob container (the configuration checks its
    `container` keys with this same rule)."""
    return bool(_CONTAINER_NAME.match(name))


def _check_url(field_name: str, value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # Print only scheme and host: a pasted URL may carry a SAS token in its query.
        shown = f"{parts.scheme}://{parts.hostname}" if parts.hostname else "(no host)"
        raise ValueError(f"storage {field_name} must be an http(s) URL with a host, got {shown}")


@dataclass(frozen=True)
class AzureBlobSettings:
    """A container in an Azure storage account (or Azurite).

    Either `connection_string`, or `account_url` with the configured Azure credential.
    `secondary_account_url` is the RA-GZRS read endpoint (`<account>-secondary`), used for
    reads when the primary endpoint is unreachable; derived when not given.

    `retries`, `connect_timeout_seconds` and `primary_retry_seconds` bound how long a read
    waits on an unreachable primary before it falls back to the secondary: the SDK's own
    defaults (3 retries starting at 15 s, 20 s connect timeout) would make a fallback take
    about a minute per read. After a fallback, reads go straight to the secondary for
    `primary_retry_seconds` before the primary is tried again.
    """

    container: str = "kvdr"
    connection_string: str | None = field(default=None, repr=False)
    account_url: str | None = None
    secondary_account_url: str | None = None
    retries: int = 3
    connect_timeout_seconds: float = 5.0
    primary_retry_seconds: float = 30.0

    def __post_init__(self) -> None:
        if not isinstance(self.container, str) or not is_container_name(self.container):
            raise ValueError(
                f"storage container {self.container!r} must be 3-63 lowercase letters, digits "
                "and single hyphens, starting and ending with a letter or digit"
            )
        if self.connection_string is not None and self.account_url is not None:
            raise ValueError("storage needs connection_string or account_url, not both")
        if self.connection_string is not None and not self.connection_string.strip():
            raise ValueError("storage connection_string is empty")
        if self.account_url is not None:
            _check_url("account_url", self.account_url)
        if self.secondary_account_url is not None:
            _check_url("secondary_account_url", self.secondary_account_url)
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise ValueError(f"storage retries must be an integer >= 0, got {self.retries!r}")
        for name in ("connect_timeout_seconds", "primary_retry_seconds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"storage {name} must be a number > 0, got {value!r}")


@dataclass(frozen=True)
class LocalFolderSettings:
    """A folder on local disk holding blobs as files."""

    path: str

    def __post_init__(self) -> None:
        if not isinstance(self.path, str) or not self.path.strip():
            raise ValueError(f"local storage path must be a non-empty string, got {self.path!r}")


StorageSettings = AzureBlobSettings | LocalFolderSettings
