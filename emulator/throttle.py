"""Key Vault's service limits per vault per 10 s, enforced with sliding windows.

Published limits (per vault, per region, per 10 s):
- secrets: create (set) 300; all other secret and vault transactions 4,000;
- keys, create: software 20, HSM 10 (any type and size);
- keys, other transactions: software RSA-2048 / EC 4,000, RSA-3072 1,000, RSA-4096 500;
  HSM RSA-2048 / EC 2,000, RSA-3072 500, RSA-4096 250.
Above a limit Key Vault answers 429 `Throttled` with Retry-After; so does this module.
Windows use the monotonic clock, not the vault clock: offsetting expiry must not reset them.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass

from emulator.errors import throttled

WINDOW_SECONDS = 10.0


@dataclass(frozen=True)
class Bucket:
    """A named request budget shared by the operations charged to it."""

    name: str
    limit: int


SECRET_CREATE = Bucket("secret-create", 300)
VAULT_OPS = Bucket("vault-ops", 4000)
KEY_CREATE_SOFTWARE = Bucket("key-create", 20)
KEY_CREATE_HSM = Bucket("key-create-hsm", 10)

# Operation names (route names) that draw on a bucket other than VAULT_OPS. `None` means
# the handler charges the bucket itself because it depends on the request body (a key's
# type decides its create and crypto budget).
OP_BUCKETS: dict[str, Bucket | None] = {"SetSecret": SECRET_CREATE}


def key_create_bucket(hsm: bool) -> Bucket:
    """Budget for creating (or rotating to) a key: 20 software or 10 HSM per 10 s."""
    return KEY_CREATE_HSM if hsm else KEY_CREATE_SOFTWARE


def key_ops_bucket(kty: str, size: int | None, hsm: bool) -> Bucket:
    """Budget for other transactions on a key, by its type and size."""
    base = 2000 if hsm else 4000
    if kty.startswith("RSA") and size == 3072:
        base = 500 if hsm else 1000
    elif kty.startswith("RSA") and size == 4096:
        base = 250 if hsm else 500
    label = f"key-ops-{'hsm' if hsm else 'software'}-{kty.split('-')[0].lower()}{size or ''}"
    return Bucket(label, base)


class Throttle:
    """Counts requests per bucket in a sliding 10 s window; `off` counts nothing."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._windows: dict[str, deque[float]] = {}
        self.throttled_count = 0

    def charge(self, bucket: Bucket) -> None:
        """Count one request against `bucket` or raise 429 Throttled."""
        if not self.enabled:
            return
        now = time.monotonic()
        window = self._windows.setdefault(bucket.name, deque())
        while window and window[0] <= now - WINDOW_SECONDS:
            window.popleft()
        if len(window) >= bucket.limit:
            self.throttled_count += 1
            retry_after = max(1, math.ceil(window[0] + WINDOW_SECONDS - now))
            raise throttled(retry_after, bucket.limit, bucket.name)
        window.append(now)

    def charge_op(self, op: str) -> None:
        """Charge the bucket of a named operation (VAULT_OPS unless listed in OP_BUCKETS)."""
        bucket = OP_BUCKETS.get(op, VAULT_OPS)
        if bucket is not None:
            self.charge(bucket)
