"""`python -m bench`'s results (bench/_report.py, bench/_results.py): a verdict given a
figure name lands in the run's file with its target and whether it was met, and the run
becomes bench/results.json and the table of docs/performance.md."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench import _results
from bench._report import RESULTS_ENV, at_least, at_most, no_more_than

ROOT = Path(__file__).resolve().parents[1]


def test_named_verdicts_are_recorded_with_their_targets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    figures = tmp_path / "figures.jsonl"
    monkeypatch.setenv(RESULTS_ENV, str(figures))
    assert at_most(4.2, 5.0, " s", figure="promote p99").endswith("met")
    assert "MISSED" in at_least(0.5, 0.8, "x", figure="share")
    no_more_than(math.nan, 1.2, figure="reads per change")
    at_most(1.0, 2.0)  # unnamed: printed only
    found = _results.read_figures(figures)
    assert [(f["figure"], f["value"], f["target"], f["met"]) for f in found] == [
        ("promote p99", 4.2, "< 5 s", True),
        ("share", 0.5, ">= 0.8x", False),
        ("reads per change", None, "<= 1.2", False),
    ]
    figures.write_text(figures.read_text() + '{"torn": ')
    assert len(_results.read_figures(figures)) == 3


def test_the_page_table_is_regenerated_between_its_markers() -> None:
    figures = [
        {
            "benchmark": "failover_rto",
            "figure": "promote p99",
            "value": 4.2,
            "unit": "s",
            "target": "< 5 s",
            "met": True,
        },
        {
            "benchmark": "replication_read_cost",
            "figure": "reads per change",
            "value": 2.0,
            "unit": "",
            "target": "<= 1.2",
            "met": False,
        },
    ]
    benchmarks = [
        {"name": "failover_rto", "result": "ok", "seconds": 12.0},
        {"name": "proxy_overhead", "result": "CRASHED (exit 1)", "seconds": 1.0},
    ]
    doc = _results.document(
        "quick", datetime(2026, 12, 6, tzinfo=UTC), _results.machine(), benchmarks, figures
    )
    assert (doc["targets_met"], doc["targets_missed"]) == (1, 1)
    page = (ROOT / "docs" / "performance.md").read_text()
    updated = _results.updated_page(page, _results.table(doc))
    assert "| `failover_rto` | promote p99 | 4.2 s | < 5 s | yes |" in updated
    assert "| `replication_read_cost` | reads per change | 2 | <= 1.2 | **no** |" in updated
    assert "Crashed: `proxy_overhead`." in updated
    # Everything outside the markers is kept, and a second run replaces the first.
    assert updated.split(_results.BEGIN)[0] == page.split(_results.BEGIN)[0]
    assert _results.updated_page(updated, _results.table(doc)) == updated
    with pytest.raises(ValueError, match="markers"):
        _results.updated_page("no markers here", "x")
