"""What `python -m bench` writes after a run: bench/results.json (the machine, its load,
every benchmark's result and every figure with its target and whether it was met) and
the results table of docs/performance.md, regenerated between its markers. Pure
functions over the figures the benchmarks recorded (`bench._report.record`)."""

from __future__ import annotations

import json
import math
import os
import platform
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BEGIN = "<!-- bench:results -->"
END = "<!-- end bench:results -->"


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count() or 0,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def read_figures(path: Path) -> list[dict[str, Any]]:
    """The figures a run's benchmarks appended (JSON lines); a torn last line is left out."""
    if not path.exists():
        return []
    figures = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and {"benchmark", "figure", "target", "met"} <= set(doc):
            figures.append(doc)
    return figures


def document(
    mode: str,
    started: datetime,
    machine_at_start: dict[str, Any],
    benchmarks: Sequence[dict[str, Any]],
    figures: Sequence[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "kvdr_bench_results": 1,
        "mode": mode,
        "started_at": started.isoformat(),
        "ended_at": datetime.now(UTC).isoformat(),
        "machine": machine_at_start,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "benchmarks": list(benchmarks),
        "figures": list(figures),
        "targets_met": sum(1 for f in figures if f["met"]),
        "targets_missed": sum(1 for f in figures if not f["met"]),
    }


def _value(figure: dict[str, Any]) -> str:
    value = figure.get("value")
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "no data"
    text = f"{value:.3g}" if isinstance(value, float) else str(value)
    return f"{text} {figure.get('unit', '')}".strip()


def table(doc: dict[str, Any]) -> str:
    """The markdown the page shows between its markers."""
    m = doc["machine"]
    lines = [
        BEGIN,
        f"Last run: {doc['started_at'][:16].replace('T', ' ')} UTC, `{doc['mode']}` mode, "
        f"{m['cpus']} cores, {m['python']}, load average {m['load_average'][0]:.2f} at the "
        f"start and {doc['load_average_at_end'][0]:.2f} at the end; "
        f"{doc['targets_met']} targets met, {doc['targets_missed']} missed.",
        "",
        "| benchmark | figure | measured | target | met |",
        "|---|---|---|---|---|",
    ]
    for f in doc["figures"]:
        met = "yes" if f["met"] else "**no**"
        lines.append(
            f"| `{f['benchmark']}` | {f['figure']} | {_value(f)} | {f['target']} | {met} |"
        )
    crashed = [b["name"] for b in doc["benchmarks"] if b["result"] not in ("ok", "skipped")]
    if crashed:
        lines += ["", f"Crashed: {', '.join(f'`{c}`' for c in crashed)}."]
    lines.append(END)
    return "\n".join(lines)


def updated_page(page: str, rendered: str) -> str:
    """`page` with the text between its markers replaced; ValueError without them."""
    start, end = page.find(BEGIN), page.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the page has no {BEGIN} ... {END} markers")
    return page[:start] + rendered + page[end + len(END) :]
