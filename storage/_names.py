"""One naming rule for blob names, metadata and leases, checked by every backend.

Both backends accept exactly the same names, so a container can always be copied to a
local folder (an offline copy) and back. The rule is the intersection of what Azure Blob
Storage accepts and what a POSIX file system can hold as a relative path.
"""

from __future__ import annotations

import re
import uuid

# Azure allows 1,024 characters per blob name; most file systems allow 255 bytes per
# path segment.
MAX_NAME_CHARS = 1024
MAX_SEGMENT_BYTES = 255
# The local folder backend keeps its own bookkeeping under this folder of the root.
RESERVED_FIRST_SEGMENT = ".kvdr-store"
# Azure takes metadata names that are C# identifiers and sends them as HTTP headers, so
# values must be printable ASCII.
_METADATA_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_METADATA_VALUE = re.compile(r"[\x20-\x7e]*\Z")
# Azure accepts lease durations of 15-60 s (or infinite, which kvdr never wants: a
# crashed holder would keep the lease forever).
MIN_LEASE_SECONDS = 15
MAX_LEASE_SECONDS = 60


def check_blob_name(name: str) -> str:
    """Return `name` when it is a valid blob name, else raise `ValueError` naming it."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"blob name must be a non-empty string, got {name!r}")
    if len(name) > MAX_NAME_CHARS:
        raise ValueError(f"blob name {name[:40]!r}... is longer than {MAX_NAME_CHARS} characters")
    if name.startswith("/"):
        raise ValueError(f"blob name {name!r} must be relative (no leading '/')")
    if "\\" in name:
        # Azure turns "\" into "/", a file system does not: refuse rather than diverge.
        raise ValueError(f"blob name {name!r} must not contain '\\'")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
        raise ValueError(f"blob name {name!r} must not contain control characters")
    segments = name.split("/")
    for segment in segments:
        if segment == "":
            raise ValueError(
                f"blob name {name!r} has an empty path segment ('//' or a trailing '/')"
            )
        if segment in (".", ".."):
            raise ValueError(f"blob name {name!r} must not contain '.' or '..' segments")
        if len(segment.encode()) > MAX_SEGMENT_BYTES:
            raise ValueError(
                f"blob name {name!r} has a segment longer than {MAX_SEGMENT_BYTES} bytes"
            )
    if name.endswith("."):
        # Azure silently drops trailing dots of a name.
        raise ValueError(f"blob name {name!r} must not end with '.'")
    if segments[0] == RESERVED_FIRST_SEGMENT:
        raise ValueError(f"blob name {name!r} uses the reserved folder {RESERVED_FIRST_SEGMENT!r}")
    return name


def check_prefix(prefix: str) -> str:
    """A list prefix is any string a name could start with; only type and reserved checks."""
    if not isinstance(prefix, str):
        raise ValueError(f"list prefix must be a string, got {prefix!r}")
    if "\\" in prefix or prefix.startswith("/"):
        raise ValueError(f"list prefix {prefix!r} can never match a valid blob name")
    return prefix


def check_metadata(metadata: dict[str, str] | None) -> dict[str, str]:
    """Return a copy of `metadata` when valid, else raise `ValueError` naming the key."""
    if metadata is None:
        return {}
    seen: set[str] = set()
    for key, value in metadata.items():
        if not isinstance(key, str) or not _METADATA_KEY.match(key):
            raise ValueError(
                f"metadata key {key!r} must be letters, digits and '_' and not start with a digit"
            )
        if key.lower() in seen:
            # Azure treats metadata names case-insensitively.
            raise ValueError(f"metadata key {key!r} repeats another key in a different case")
        seen.add(key.lower())
        if not isinstance(value, str) or not _METADATA_VALUE.match(value):
            raise ValueError(f"metadata value of {key!r} must be printable ASCII")
        if value != value.strip():
            raise ValueError(f"metadata value of {key!r} must not start or end with spaces")
    return dict(metadata)


def check_lease(lease_id: str, seconds: int | None = None) -> None:
    """Raise `ValueError` unless `lease_id` is a GUID (Azure's rule) and seconds is 15-60."""
    try:
        uuid.UUID(lease_id)
    except (ValueError, TypeError, AttributeError):
        raise ValueError(f"lease id {lease_id!r} must be a GUID, e.g. str(uuid.uuid4())") from None
    if seconds is not None and (
        isinstance(seconds, bool)
        or not isinstance(seconds, int)
        or not MIN_LEASE_SECONDS <= seconds <= MAX_LEASE_SECONDS
    ):
        raise ValueError(
            f"lease duration {seconds!r} must be {MIN_LEASE_SECONDS}-{MAX_LEASE_SECONDS} seconds"
        )
