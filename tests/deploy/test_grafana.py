"""The Grafana dashboard: importable, and it shows what issue 13 asks for."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.deploy.monitoring import DASHBOARD, rules


def _dashboard() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return doc


def _panel_text(panel: dict[str, Any]) -> str:
    return " ".join([panel["title"], *(t["expr"] for t in panel.get("targets", []))])


class TestDashboard:
    def test_importable(self) -> None:
        """A uid, unique panel ids, every query on the templated Prometheus data source,
        and panels that do not overlap on the 24-column grid."""
        doc = _dashboard()
        assert doc["uid"] == "kvdr" and doc["title"]
        (variable,) = doc["templating"]["list"]
        assert variable["type"] == "datasource" and variable["query"] == "prometheus"
        ids = [p["id"] for p in doc["panels"]]
        assert len(ids) == len(set(ids))
        cells: set[tuple[int, int]] = set()
        for panel in doc["panels"]:
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24, panel["title"]
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == "${datasource}"
            for x in range(grid["x"], grid["x"] + grid["w"]):
                for y in range(grid["y"], grid["y"] + grid["h"]):
                    assert (x, y) not in cells, f"{panel['title']} overlaps another panel"
                    cells.add((x, y))

    def test_shows_what_the_issue_asks_for(self) -> None:
        """RPO against the objective per pair, lag per target, changes applied, errors,
        throttling, snapshot age, region health, active region and epoch, last drill's
        RPO and RTO: each has a panel querying its metric."""
        panels = [_panel_text(p) for p in _dashboard()["panels"]]
        wanted = {
            "RPO": r"kvdr_rpo_seconds",
            "lag": r"kvdr_replication_lag_seconds",
            "applied": r"kvdr_changes_applied_total",
            "errors": r"kvdr_replication_errors_total",
            "throttling": r"kvdr_throttled_total",
            "snapshot age": r"time\(\) - .*kvdr_snapshot_last_success_timestamp_seconds",
            "region health": r"kvdr_region_up",
            "active region": r"kvdr_active_region",
            "epoch": r"kvdr_epoch",
            "drill RPO": r"kvdr_drill_rpo_seconds",
            "drill RTO": r"kvdr_drill_rto_seconds",
        }
        for what, pattern in wanted.items():
            assert any(re.search(pattern, text) for text in panels), f"no panel shows {what}"

    def test_rpo_panel_marks_the_objective_of_the_alert(self) -> None:
        """The RPO panel's red threshold is the objective the alert rule compares with."""
        (rpo_rule,) = [r for r in rules() if r["alert"] == "KvdrRpoAboveObjective"]
        objective = float(rpo_rule["expr"].rsplit(">", 1)[1])
        (panel,) = [p for p in _dashboard()["panels"] if p["title"].startswith("RPO")]
        steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert steps[-1] == {"color": "red", "value": objective}
