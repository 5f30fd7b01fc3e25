"""The metric names the Grafana dashboard and the Prometheus rules query."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]  # PyYAML (via yamllint) has no stubs

from tests.deploy.iac import DEPLOY

RULES = DEPLOY / "monitoring" / "kvdr-alerts.yaml"
RULE_TESTS = sorted((DEPLOY / "monitoring" / "tests").glob("*.test.yaml"))
DASHBOARD = DEPLOY / "monitoring" / "kvdr-dashboard.json"
_METRIC = re.compile(r"\b(kvdr_[a-z0-9_]+|up)\b(?!\s*\()")


def rules() -> list[dict[str, Any]]:
    doc: dict[str, Any] = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    doc = json.loads(DASHBOARD.read_text())
    return [t["expr"] for panel in doc["panels"] for t in panel.get("targets", [])]


def metric_names(exprs: list[str]) -> set[str]:
    """Metric names in PromQL expressions (label names and functions left out)."""
    names: set[str] = set()
    for expr in exprs:
        # Drop label matchers and grouping clauses: `{job="kvdr"}`, `by (pair)`.
        bare = re.sub(r"\{[^}]*\}", "", expr)
        bare = re.sub(r"\b(by|on|without|ignoring|group_left|group_right)\s*\([^)]*\)", "", bare)
        names.update(_METRIC.findall(bare))
    return names


def queried_metrics() -> set[str]:
    """Every metric the dashboard or a rule queries."""
    return metric_names(dashboard_exprs() + [rule["expr"] for rule in rules()])


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())
