"""Printing benchmark results: aligned tables, percentiles, ratios and target verdicts.

Benchmarks report and never fail on a missed target (tests assert); a verdict names the
target and, when missed, by how much. A verdict given a `figure` name is also recorded
for `python -m bench`, which gathers every run's figures into bench/results.json and
docs/performance.md (`RESULTS_ENV` names the file a benchmark process appends to).
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

# Set by `python -m bench` for each benchmark process: a JSON-lines file of figures.
RESULTS_ENV = "KVDR_BENCH_RESULTS"


def record(figure: str, value: float, target: float, unit: str, rule: str, met: bool) -> None:
    """Append one figure with its target to the run's results file, if there is one."""
    path = os.environ.get(RESULTS_ENV)
    if not path:
        return
    benchmark = os.path.splitext(os.path.basename(sys.argv[0]))[0]
    doc = {
        "benchmark": benchmark,
        "figure": figure,
        "value": None if math.isnan(value) else value,
        "unit": unit.strip(),
        "target": f"{rule} {target:g}{unit}",
        "met": met,
    }
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(doc) + "\n")


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of `values`; NaN for none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def ratio(numerator: float, denominator: float) -> str:
    """`12.3x`, or `n/a` when the denominator is zero."""
    if denominator <= 0 or math.isnan(numerator) or math.isnan(denominator):
        return "n/a"
    return f"{numerator / denominator:.1f}x"


def at_least(value: float, target: float, unit: str = "", *, figure: str | None = None) -> str:
    """Verdict for a higher-is-better figure (recorded as `figure` when named)."""
    if figure is not None:
        record(figure, value, target, unit, ">=", not math.isnan(value) and value >= target)
    if math.isnan(value):
        return f"target >= {target:g}{unit}: no data"
    if value >= target:
        return f"target >= {target:g}{unit}: met"
    short = f"{target - value:.3g}{unit}"
    return f"target >= {target:g}{unit}: MISSED by {short} ({value / target:.1%} of it)"


def at_most(value: float, target: float, unit: str = "", *, figure: str | None = None) -> str:
    """Verdict for a lower-is-better figure (recorded as `figure` when named)."""
    if figure is not None:
        record(figure, value, target, unit, "<", not math.isnan(value) and value < target)
    if math.isnan(value):
        return f"target < {target:g}{unit}: no data"
    if value < target:
        return f"target < {target:g}{unit}: met"
    over = f"{value - target:.3g}{unit}"
    return f"target < {target:g}{unit}: MISSED by {over} ({value / target:.1f}x it)"


def no_more_than(value: float, target: float, unit: str = "", *, figure: str | None = None) -> str:
    """Verdict for a lower-is-better figure whose target includes the bound (recorded as
    `figure` when named)."""
    if figure is not None:
        record(figure, value, target, unit, "<=", not math.isnan(value) and value <= target)
    if math.isnan(value):
        return f"target <= {target:g}{unit}: no data"
    if value <= target:
        return f"target <= {target:g}{unit}: met"
    over = f"{value - target:.3g}{unit}"
    return f"target <= {target:g}{unit}: MISSED by {over} ({value / target:.1f}x it)"


def table(
    headers: Sequence[str], rows: Sequence[Sequence[object]], align: str | None = None
) -> str:
    """A plain aligned table. `align` has one letter per column, `l` or `r`; by default
    the first column is left-aligned and the rest right-aligned (figures)."""
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    sides = align or "l" + "r" * (len(headers) - 1)
    if len(sides) != len(headers) or set(sides) - {"l", "r"}:
        raise ValueError(f"align {align!r} must be one l or r per column ({len(headers)})")

    def line(row: list[str]) -> str:
        parts = [
            c.ljust(w) if side == "l" else c.rjust(w)
            for c, w, side in zip(row, widths, sides, strict=True)
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def _cell(value: object) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def header(title: str) -> str:
    """Title line with date and machine, printed before each benchmark's table."""
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    cpus = os.cpu_count() or 0
    python = f"{platform.python_implementation()} {platform.python_version()}"
    load = os.getloadavg()[0]
    return f"== {title}\n   {when}, {cpus} cores, {python}, load average (1 min) {load:.2f}"
