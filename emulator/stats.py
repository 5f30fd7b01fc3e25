"""Request counts by operation and status, for benchmarks that count requests per change."""

from __future__ import annotations

from collections import Counter
from typing import Any


class RequestStats:
    """Counts every vault request the emulator answered."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, int]] = Counter()

    def count(self, op: str, status: int) -> None:
        """Record one answered request."""
        self._counts[(op, status)] += 1

    def reset(self) -> None:
        """Forget all counts."""
        self._counts.clear()

    def snapshot(self) -> dict[str, Any]:
        """`{"total": n, "by_op": {op: {status: n}}, "by_status": {status: n}}`."""
        by_op: dict[str, dict[str, int]] = {}
        by_status: Counter[str] = Counter()
        for (op, status), n in sorted(self._counts.items()):
            by_op.setdefault(op, {})[str(status)] = n
            by_status[str(status)] += n
        return {
            "total": sum(self._counts.values()),
            "by_op": by_op,
            "by_status": dict(by_status),
        }
