"""Local key files: one line, `<prefix><base64 key>`, mode 0600, never overwritten.

The local KEK (`backups/keks.py`) and the local signing keys (`backups/signer_files.py`)
are both such files; the prefix says which kind a file holds, so one is never taken for
the other. Messages name the file (`source`), never the key.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path


def read_key_file(
    path: Path, prefix: str, source: str, not_ours: str, size: int | None = None
) -> bytes:
    """The key in `path`; ValueError naming `source` when it cannot be read, does not
    start with `prefix` (`not_ours` says what it should be), or has the wrong size."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not ASCII text"
        raise ValueError(f"{source}: cannot read ({reason})") from None
    if not text.startswith(prefix):
        raise ValueError(f"{source} {not_ours}")
    try:
        raw = base64.b64decode(text.removeprefix(prefix), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{source}: the key is not valid base64") from None
    if size is not None and len(raw) != size:
        raise ValueError(f"{source} must hold a {size * 8}-bit key")
    return raw


def write_key_file(path: Path, prefix: str, raw: bytes, source: str) -> None:
    """Write a new key file with mode 0600 (from its creation); refuse to overwrite one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ValueError(f"{source} exists already") from None
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(prefix + base64.b64encode(raw).decode() + "\n")
