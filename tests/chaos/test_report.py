"""Drill reports: the JSON holds no secret value, the Markdown says why a drill failed,
and the self-contained HTML opens in headless Chromium and shows the timeline chart."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, cast

import pytest

from chaos.faults import Faults
from chaos.journal import DrillResult, Event
from chaos.ledger import LedgerEntry, WriteAttempt
from chaos.measure import Loss, Recovery
from chaos.report import render_svg, report_document, write_reports
from chaos.scenario import builtin_scenarios, parse_scenario
from chaos.target import DrillTarget

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def result() -> DrillResult:
    """A region-outage drill as its timeline would record it (no stack needed to render)."""
    path = builtin_scenarios()["region-outage"]
    scenario = parse_scenario(path.read_text(), str(path))
    target = DrillTarget(
        kind="local",
        environment="drill",
        pair="demo",
        primary="eastus",
        regions=["eastus", "westus"],
        faults=Faults(),
        links=["eastus-vault"],
        emulators={},
        writers={},
        readers={},
        daemon=cast(Any, None),
        cli=cast(Any, None),
    )
    start = 1_800_000_000.0
    r = DrillResult(scenario, str(path), target, "abc12345", start, ended_at=start + 40)
    for i in range(160):
        at = start + i * 0.25
        ok = not 10 <= at - start < 16
        region = "eastus" if at - start < 16 else "westus"
        r.ledger.attempts.append(WriteAttempt(at, region, ok))
        if ok:
            r.ledger.entries.append(LedgerEntry(f"drill-{i % 8}", f"v{i}", region, at))
    r.samples = [
        {"at": start + s, "lag_seconds": min(s, 6) if 10 <= s < 20 else 0.2} for s in range(40)
    ]
    r.fault_windows = [
        {"id": "outage", "what": "link eastus-vault down", "start": start + 10, "end": start + 24}
    ]
    r.events = [
        Event(start + 16, "promoted", {"to": "westus"}),
        Event(start + 28, "failback", {"ok": True}),
    ]
    r.losses = [Loss("westus", start + 16, tuple(r.ledger.entries[36:39]), 40)]
    r.recovery = Recovery(start + 10, start + 16.0, "westus", "first write on westus")
    r.status = "completed"
    return r


class TestDocuments:
    def test_json_has_measurements_and_no_values(self, tmp_path: Path) -> None:
        """RPO 3 writes, RTO 6 s, the verdict (RPO too old: fail), names and versions only."""
        doc = write_reports(result(), tmp_path)
        saved = json.loads((tmp_path / "report.json").read_text())
        assert saved["measured"]["rpo_items"] == 3
        assert saved["measured"]["rto_seconds"] == 6.0
        assert saved["verdict"] == doc["verdict"]
        assert set(saved["ledger"][0]) == {"name", "version", "region", "at"}
        assert "value" not in json.dumps(saved["ledger"])

    def test_markdown_says_why(self, tmp_path: Path) -> None:
        r = result()
        r.losses = [Loss("westus", r.started_at + 16, tuple(r.ledger.entries[:30]), 40)]
        write_reports(r, tmp_path)
        md = (tmp_path / "report.md").read_text()
        assert "FAIL" in md.splitlines()[0]
        assert "RPO: 30 acknowledged write(s) lost, objective at most 20" in md

    def test_html_is_self_contained(self, tmp_path: Path) -> None:
        write_reports(result(), tmp_path)
        page = (tmp_path / "report.html").read_text()
        assert "<script" not in page
        assert not re.search(r"""(src|href)=["']?https?:""", page)
        assert "@import" not in page and "url(" not in page

    def test_svg_has_every_series(self) -> None:
        svg = render_svg(report_document(result()))
        assert svg.count('class="writes"') > 10
        assert 'class="failed"' in svg
        assert 'class="lag"' in svg
        assert svg.count('class="fault"') == 1
        assert svg.count('class="mark"') == 2


def png_colours(data: bytes) -> set[tuple[int, int, int]]:
    """The RGB colours of an 8-bit RGB/RGBA PNG (what Chromium writes), no imaging library."""
    import struct
    import zlib

    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, channels = 8, b"", 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, _, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and colour in (2, 6)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw, stride = zlib.decompress(idat), width * channels
    previous, out = bytearray(stride), set()
    for row in range(len(raw) // (stride + 1)):
        kind, line = (
            raw[row * (stride + 1)],
            bytearray(raw[row * (stride + 1) + 1 : (row + 1) * (stride + 1)]),
        )
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = previous[i]
            c = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out.update(tuple(line[i : i + 3]) for i in range(0, stride, channels))  # type: ignore[misc]
        previous = line
    return out


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("chromium is not installed: `make install-browser` (Debian package chromium)")
    return path


@pytest.mark.browser
class TestInBrowser:
    def test_chromium_renders_the_chart(self, tmp_path: Path) -> None:
        """Headless Chromium loads report.html from disk: the DOM has the chart, and the
        screenshot has the chart's colours (blue writes, red fault band)."""
        write_reports(result(), tmp_path)
        common = [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--disable-background-networking",
        ]
        url = (tmp_path / "report.html").as_uri()
        dom = subprocess.run(
            [*common, "--dump-dom", url], capture_output=True, text=True, timeout=60, check=True
        ).stdout
        assert "<svg" in dom and 'id="timeline"' in dom
        assert 'id="verdict"' in dom
        shot = tmp_path / "report.png"
        subprocess.run(
            [*common, f"--screenshot={shot}", "--window-size=1100,900", url],
            capture_output=True,
            timeout=60,
            check=True,
        )
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copy(shot, ARTIFACTS / "drill-report.png")
        colours = png_colours(shot.read_bytes())
        assert (0x4A, 0x7E, 0xBB) in colours  # acknowledged writes
        assert any(r > 240 and 150 < g < 215 and 150 < b < 215 for r, g, b in colours)
