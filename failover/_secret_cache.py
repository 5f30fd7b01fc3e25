"""The failover client's last known values: bounded (LRU, `max_entries`) and aged (TTL).

In memory only, never written anywhere: the values are secrets. An entry older than the
TTL is never served, so a secret rotated during an outage is served stale for at most
that long.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class SecretCache(Generic[K, V]):
    def __init__(self, max_entries: int, ttl_seconds: float, clock: Callable[[], float]) -> None:
        self._max = max_entries
        self._ttl = ttl_seconds
        self._clock = clock
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, key: K, value: V) -> None:
        self._entries[key] = (self._clock(), value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def get(self, key: K) -> tuple[V, float] | None:
        """The value and its age in seconds, or None when absent or older than the TTL
        (an expired entry is dropped)."""
        found = self._entries.get(key)
        if found is None:
            return None
        stored, value = found
        age = self._clock() - stored
        if age > self._ttl:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value, age
