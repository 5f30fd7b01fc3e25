"""The state folder's permissions: only the user running the emulator may read it.

The folder holds `vault.db`, which keeps every secret value and private key unencrypted,
and the identity header (`identity-header`, copied into `endpoint.json`), the only guard
of the managed-identity token endpoint. Anyone who can read either can read the vault,
so the folder is 0700 and those files 0600, also when an earlier run or another tool
left them with looser modes: starting the emulator tightens them.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def ensure_private_dir(path: Path) -> None:
    """Create the folder (and its parents) if needed and make it owner-only (0700)."""
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    # mkdir's mode is masked by the umask and does nothing for a folder that exists.
    os.chmod(path, PRIVATE_DIR_MODE)


def tighten_file(path: Path) -> None:
    """Make an existing file owner-only (0600); a file that does not exist is fine."""
    with contextlib.suppress(FileNotFoundError):
        os.chmod(path, PRIVATE_FILE_MODE)


def ensure_private_file(path: Path) -> None:
    """Create an empty file 0600 if it is missing; tighten it if it exists."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE_MODE)
    os.close(fd)
    os.chmod(path, PRIVATE_FILE_MODE)


def write_private_file(path: Path, data: bytes) -> None:
    """Replace `path` atomically with `data`, readable only by its owner from the start.

    Written to a temporary name (0600 when created), flushed to disk, then renamed: a
    crash never leaves a half-written file that a restart or a reader would load.
    """
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
    os.fchmod(fd, PRIVATE_FILE_MODE)  # a stale tmp file keeps its mode through O_CREAT
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
