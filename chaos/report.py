"""A drill's reports, all built from one document (`report_document`): report.json,
report.md and a self-contained report.html whose timeline chart is inline SVG (write
rate, replication lag, fault windows, promotion and failback marks; no script, no font
or stylesheet from elsewhere). Ledger entries carry names and versions, never values.
"""

from __future__ import annotations

import html
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chaos.journal import DrillResult


def _iso(ts: float | None) -> str | None:
    return (
        None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")
    )


def write_rate(result: DrillResult, bucket: float = 1.0) -> list[dict[str, float]]:
    """Acknowledged and failed writes per second, per one-second bucket from the start."""
    start = result.started_at
    end = max(result.ended_at, start + bucket)
    count = math.ceil((end - start) / bucket)
    ok = [0] * count
    failed = [0] * count
    for attempt in result.ledger.attempts:
        index = min(count - 1, max(0, int((attempt.at - start) / bucket)))
        (ok if attempt.ok else failed)[index] += 1
    return [
        {"t": round(i * bucket, 3), "ok": ok[i] / bucket, "failed": failed[i] / bucket}
        for i in range(count)
    ]


def report_document(result: DrillResult) -> dict[str, Any]:
    """The drill as one JSON-ready document (what every report renders)."""
    scenario = result.scenario
    start = result.started_at
    marks = [
        {"t": round(e.at - start, 3), "kind": e.kind, "label": e.detail.get("to") or ""}
        for e in result.events
        if e.kind in ("promoted", "failback")
    ]
    windows = [
        {
            "id": w["id"],
            "what": w["what"],
            "start": round(w["start"] - start, 3),
            "end": round((w["end"] or result.ended_at) - start, 3),
        }
        for w in result.fault_windows
    ]
    rto = result.rto_seconds
    return {
        "kvdr_drill_report": 1,
        "scenario": scenario.name,
        "description": scenario.description,
        "source": result.source,
        "run_id": result.run_id,
        "target": {
            "kind": result.target.kind,
            "environment": result.target.environment,
            "pair": result.target.pair,
            "primary": result.target.primary,
            "regions": result.target.regions,
        },
        "started_at": _iso(result.started_at),
        "ended_at": _iso(result.ended_at),
        "duration_seconds": round(result.ended_at - result.started_at, 3),
        "status": result.status,
        "reason": result.reason,
        "passed": result.passed,
        "verdict": "pass" if result.passed else "fail",
        "why_not": result.why_not(),
        "objectives": scenario.objectives.model_dump(),
        "measured": {
            "rpo_items": result.rpo_items,
            "rpo_seconds": round(result.rpo_seconds, 3),
            "rto_seconds": None if rto is None else round(rto, 3),
            "writes_acknowledged": len(result.ledger.entries),
            "writes_failed": result.ledger.failures(),
        },
        "rpo": [loss.to_dict() for loss in result.losses],
        "rto": result.recovery.to_dict() if result.recovery else None,
        "accounting": [a.to_dict() for a in result.accounting],
        "hypothesis": result.hypothesis,
        "rollbacks": result.rollbacks,
        "left_behind": result.left_behind,
        "timeline": [e.to_dict() | {"time": _iso(e.at)} for e in result.events],
        "chart": {
            "write_rate": write_rate(result),
            "lag": [
                {"t": round(s["at"] - start, 3), "lag_seconds": s["lag_seconds"]}
                for s in result.samples
            ],
            "fault_windows": windows,
            "marks": marks,
        },
        "ledger": [e.to_dict() for e in result.ledger.entries],
    }


def render_markdown(doc: dict[str, Any]) -> str:
    m, o = doc["measured"], doc["objectives"]
    rto = "-" if m["rto_seconds"] is None else f"{m['rto_seconds']:.3f} s"
    lines = [
        f"# Drill {doc['scenario']}: {doc['verdict'].upper()}",
        "",
        doc["description"],
        "",
        f"- run {doc['run_id']} on {doc['target']['kind']} stack "
        f"({doc['target']['environment']}), pair {doc['target']['pair']}, primary "
        f"{doc['target']['primary']}",
        f"- {doc['started_at']} to {doc['ended_at']} ({doc['duration_seconds']:.1f} s), "
        f"status {doc['status']}" + (f": {doc['reason']}" if doc["reason"] else ""),
        "",
        "| | objective | measured |",
        "|---|---|---|",
        f"| RPO (writes lost) | at most {o['rpo_items']} | {m['rpo_items']} |",
        f"| RPO (age of the oldest lost) | at most {o['rpo_seconds']:g} s | "
        f"{m['rpo_seconds']:.3f} s |",
        f"| RTO | at most {o['rto_seconds']:g} s | {rto} |",
        "",
        f"Writes acknowledged: {m['writes_acknowledged']}, failed: {m['writes_failed']}.",
        "",
    ]
    if doc["why_not"]:
        lines += ["## Why it failed", "", *(f"- {w}" for w in doc["why_not"]), ""]
    lines += ["## Steady-state hypothesis", ""]
    for phase, results in doc["hypothesis"].items():
        for r in results:
            lines.append(f"- {phase}: {r['probe']} {'ok' if r['ok'] else 'FAILED'} ({r['detail']})")
    lines += ["", "## Rollbacks", ""]
    lines += [
        f"- {r['what']} ({r['by']}): {'ok' if r['ok'] else 'FAILED ' + r.get('error', '')}"
        for r in doc["rollbacks"]
    ] or ["- none needed"]
    lines += ["", "## Left behind", ""]
    lines += [f"- {what}" for what in doc["left_behind"]] or ["- nothing"]
    lines += ["", "## Timeline", "", "| time | event | detail |", "|---|---|---|"]
    for e in doc["timeline"]:
        detail = {k: v for k, v in e.items() if k not in ("at", "kind", "time")}
        text = json.dumps(detail, default=str)[:200].replace("|", "\\|")
        lines.append(f"| {e['time']} | {e['kind']} | {text} |")
    return "\n".join(lines) + "\n"


def render_svg(doc: dict[str, Any], width: int = 960, height: int = 320) -> str:
    """The timeline chart: writes/s (bars), lag (line), faults (bands), marks (lines)."""
    chart = doc["chart"]
    left, right, top, bottom = 56, 56, 20, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    span = float(max(doc["duration_seconds"], 1.0))
    rates = chart["write_rate"]
    max_rate = float(max([r["ok"] + r["failed"] for r in rates] + [1.0]))
    lags = [p for p in chart["lag"] if p["lag_seconds"] is not None]
    max_lag = float(max([p["lag_seconds"] for p in lags] + [1.0]))

    def x(t: float) -> float:
        return left + plot_w * min(max(t, 0.0), span) / span

    def y_rate(v: float) -> float:
        return top + plot_h * (1 - v / max_rate)

    def y_lag(v: float) -> float:
        return top + plot_h * (1 - v / max_lag)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="timeline" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="drill timeline">',
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fafafa" '
        'stroke="#999"/>',
    ]
    bar_w = max(plot_w / max(len(rates), 1) - 1, 1)
    for r in rates:
        x0 = x(r["t"])
        if r["ok"]:
            out.append(
                f'<rect class="writes" x="{x0:.1f}" y="{y_rate(r["ok"]):.1f}" '
                f'width="{bar_w:.1f}" height="{top + plot_h - y_rate(r["ok"]):.1f}" '
                'fill="#4a7ebb"/>'
            )
        if r["failed"]:
            y0 = y_rate(r["ok"] + r["failed"])
            out.append(
                f'<rect class="failed" x="{x0:.1f}" y="{y0:.1f}" width="{bar_w:.1f}" '
                f'height="{y_rate(r["ok"]) - y0:.1f}" fill="#8b1a1a"/>'
            )
    # Drawn over the bars (translucent) with a solid strip under the axis, so a fault
    # shows even where the write rate fills the plot.
    for w in chart["fault_windows"]:
        x0, x1 = x(w["start"]), x(w["end"])
        width_w = max(x1 - x0, 1)
        out.append(
            f'<rect class="fault" x="{x0:.1f}" y="{top}" width="{width_w:.1f}" '
            f'height="{plot_h}" fill="#f4a6a6" fill-opacity="0.45">'
            f"<title>{html.escape(w['what'])}</title></rect>"
            f'<rect class="fault-strip" x="{x0:.1f}" y="{top + plot_h + 2}" '
            f'width="{width_w:.1f}" height="8" fill="#f4a6a6"/>'
        )
    if lags:
        points = " ".join(f"{x(p['t']):.1f},{y_lag(p['lag_seconds']):.1f}" for p in lags)
        out.append(
            f'<polyline class="lag" points="{points}" fill="none" stroke="#e69500" '
            'stroke-width="2"/>'
        )
    for mark in chart["marks"]:
        xm = x(mark["t"])
        out.append(
            f'<line class="mark" x1="{xm:.1f}" y1="{top}" x2="{xm:.1f}" y2="{top + plot_h}" '
            'stroke="#222" stroke-dasharray="4 3" stroke-width="2"/>'
            f'<text x="{xm + 3:.1f}" y="{top + 12}" font-size="11">'
            f"{html.escape(mark['kind'])} {html.escape(str(mark['label']))}</text>"
        )
    for i in range(5):
        t = span * i / 4
        out.append(
            f'<text x="{x(t):.1f}" y="{height - 22}" font-size="11" text-anchor="middle">'
            f"{t:.0f} s</text>"
        )
    out += [
        f'<text x="{left - 6}" y="{top + 10}" font-size="11" text-anchor="end">'
        f"{max_rate:.0f}/s</text>",
        f'<text x="{left + plot_w + 6}" y="{top + 10}" font-size="11">{max_lag:.1f} s</text>',
        f'<text x="{left}" y="{height - 6}" font-size="11">writes/s: acknowledged (blue), '
        "failed (dark red); replication lag (orange); faults (red bands); promotion / failback "
        "(dashed)</text>",
        "</svg>",
    ]
    return "\n".join(out)


def render_html(doc: dict[str, Any]) -> str:
    m, o = doc["measured"], doc["objectives"]
    rto = "-" if m["rto_seconds"] is None else f"{m['rto_seconds']:.3f} s"
    verdict = doc["verdict"]

    def esc(value: object) -> str:
        return html.escape(str(value))

    def detail(event: dict[str, Any]) -> str:
        rest = {k: v for k, v in event.items() if k not in ("at", "kind", "time")}
        return esc(json.dumps(rest, default=str)[:240])

    rows = "".join(
        f"<tr><td>{esc(e['time'])}</td><td>{esc(e['kind'])}</td><td>{detail(e)}</td></tr>"
        for e in doc["timeline"]
    )
    why = "".join(f"<li>{esc(w)}</li>" for w in doc["why_not"])
    rollbacks = (
        "".join(
            f"<li>{esc(r['what'])} ({esc(r['by'])}): {'ok' if r['ok'] else 'FAILED'}</li>"
            for r in doc["rollbacks"]
        )
        or "<li>none needed</li>"
    )
    left = "".join(f"<li>{esc(w)}</li>" for w in doc["left_behind"]) or "<li>nothing</li>"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>kvdr drill {esc(doc["scenario"])}: {esc(verdict)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
.pass {{ color: #2e7d32; }} .fail {{ color: #c62828; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: 2px 6px;
font-size: 13px; text-align: left; }}
</style></head><body>
<h1>Drill {esc(doc["scenario"])}:
<span id="verdict" class="{esc(verdict)}">{esc(verdict.upper())}</span></h1>
<p>{esc(doc["description"])}</p>
<p>Run {esc(doc["run_id"])} on the {esc(doc["target"]["kind"])} stack
({esc(doc["target"]["environment"])}), pair {esc(doc["target"]["pair"])};
{esc(doc["started_at"])} to {esc(doc["ended_at"])}; status {esc(doc["status"])}
{esc(doc["reason"])}</p>
<table><tr><th></th><th>objective</th><th>measured</th></tr>
<tr><td>RPO (writes lost)</td><td>at most {o["rpo_items"]}</td>
<td id="rpo-items">{m["rpo_items"]}</td></tr>
<tr><td>RPO (age of the oldest lost)</td><td>at most {o["rpo_seconds"]:g} s</td>
<td>{m["rpo_seconds"]:.3f} s</td></tr>
<tr><td>RTO</td><td>at most {o["rto_seconds"]:g} s</td><td id="rto">{esc(rto)}</td></tr>
</table>
<p>Writes acknowledged {m["writes_acknowledged"]}, failed {m["writes_failed"]}.</p>
{f"<h2>Why it failed</h2><ul>{why}</ul>" if why else ""}
<h2>Timeline</h2>
{render_svg(doc)}
<h2>Rollbacks</h2><ul>{rollbacks}</ul>
<h2>Left behind</h2><ul>{left}</ul>
<h2>Events</h2><table><tr><th>time</th><th>event</th><th>detail</th></tr>{rows}</table>
</body></html>
"""


def write_reports(result: DrillResult, folder: Path) -> dict[str, Any]:
    """report.json, report.md and report.html into `folder`; returns the document."""
    doc = report_document(result)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    (folder / "report.md").write_text(render_markdown(doc))
    (folder / "report.html").write_text(render_html(doc))
    return doc
