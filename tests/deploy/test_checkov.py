"""checkov over deploy/ (Terraform, Bicep, Kubernetes, kustomize, Dockerfile): no failed
check, and every skip is listed with its reason in deploy/checkov-skips.yaml."""

from __future__ import annotations

import json
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.iac import DEPLOY, REPO
from tests.deploy.monitoring import load_yaml

# checkov needs packaging<24 (pytest needs >=24) and brings its own `hcl2` module, so it
# lives in an environment of its own, installed by `make install-checkov` (which
# `make test` runs) from its hashed lock, requirements-checkov.lock.
TOOL_VENV = REPO / ".venv" / "tools" / "checkov"
CHECKOV = TOOL_VENV / "bin" / "checkov"
SKIPS = DEPLOY / "checkov-skips.yaml"
FRAMEWORKS = ("terraform", "bicep", "kubernetes", "dockerfile")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def checkov() -> Path:
    if not CHECKOV.exists():
        pytest.fail(f"checkov is not installed at {CHECKOV}: run `make install-checkov`")
    return CHECKOV


@pytest.fixture(scope="module")
def reports(checkov: Path) -> list[dict[str, Any]]:
    """One checkov run over deploy/ without any skip, as JSON reports per framework.
    --skip-download: no call to any platform, so it runs offline."""
    result = subprocess.run(
        [str(checkov), "-d", str(DEPLOY), "--skip-download", "--quiet", "--compact", "-o", "json"],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
        timeout=600,
    )
    assert result.stdout.strip(), result.stderr
    doc = json.loads(result.stdout)
    return doc if isinstance(doc, list) else [doc]


def _skips() -> dict[str, dict[str, Any]]:
    skips: dict[str, dict[str, Any]] = load_yaml(SKIPS)["skips"]
    return skips


def _failures(reports: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Failed check ids, with the frameworks they failed in."""
    failed: dict[str, set[str]] = defaultdict(set)
    for report in reports:
        for check in report["results"].get("failed_checks", []):
            failed[check["check_id"]].add(report["check_type"])
    return failed


class TestCheckov:
    def test_every_framework_was_scanned(self, reports: list[dict[str, Any]]) -> None:
        """Terraform, Bicep, Kubernetes and the Dockerfile parsed (a parse error would
        make every check of that file silently pass)."""
        summaries = {r["check_type"]: r["summary"] for r in reports}
        for framework in FRAMEWORKS:
            assert framework in summaries, f"checkov scanned no {framework}"
            assert summaries[framework]["parsing_errors"] == 0, framework
            assert summaries[framework]["resource_count"] > 0, framework
            assert summaries[framework]["passed"] > 0, framework

    def test_no_failed_check_outside_the_skip_list(self, reports: list[dict[str, Any]]) -> None:
        """Every failure is a listed skip, in a framework the list names for it."""
        skips = _skips()
        unlisted = {
            check_id: sorted(frameworks - set(skips.get(check_id, {}).get("frameworks", [])))
            for check_id, frameworks in _failures(reports).items()
        }
        assert {k: v for k, v in unlisted.items() if v} == {}

    def test_every_skip_still_fails_and_says_why(self, reports: list[dict[str, Any]]) -> None:
        """A skip whose check passes now is stale and must go; each skip has a reason."""
        failed = _failures(reports)
        for check_id, skip in _skips().items():
            assert len(skip.get("reason", "")) > 40, f"{check_id}: no reason given"
            assert check_id in failed, f"{check_id} passes now: remove it from {SKIPS.name}"
            assert set(skip["frameworks"]) <= failed[check_id] | {"kustomize"}, check_id

    def test_no_inline_skips(self) -> None:
        """The skip list is the only place a check is skipped."""
        for path in DEPLOY.rglob("*"):
            if path.is_file() and path != SKIPS:
                assert "checkov:skip" not in path.read_text(errors="replace"), path
