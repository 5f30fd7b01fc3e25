"""The vault's clock: wall time plus an offset tests can set, to reach expiry dates now."""

from __future__ import annotations

import time


class Clock:
    """Unix time as the vault sees it (`time.time()` + `offset_seconds`)."""

    def __init__(self, offset_seconds: float = 0.0) -> None:
        self.offset_seconds = offset_seconds

    def now(self) -> float:
        """Current vault time in Unix seconds."""
        return time.time() + self.offset_seconds

    def now_int(self) -> int:
        """Current vault time in whole Unix seconds, as Key Vault's attributes carry it."""
        return int(self.now())
