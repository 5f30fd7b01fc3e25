"""The alert rules: promtool accepts and unit-tests them, and each leads to a runbook."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.deploy.iac import REPO
from tests.deploy.monitoring import RULE_TESTS, RULES, load_yaml, rules

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool (Debian's prometheus package) is not installed (`make install-prometheus`)",
)

# The alerts issue 13 asks for, by what they catch.
REQUIRED = {
    "KvdrRpoAboveObjective",
    "KvdrReplicationErrors",
    "KvdrSnapshotTooOld",
    "KvdrRegionDown",
    "KvdrDeletionGuardTripped",
    "KvdrFailoverHappened",
    "KvdrDrillFailed",
    "KvdrDrillNotRun",
}


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, check=False, cwd=RULES.parent
    )


def _anchors(markdown: str) -> set[str]:
    """GitHub-style anchors of a Markdown file's headings."""
    anchors = set()
    for heading in re.findall(r"^#+\s+(.+)$", markdown, flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


class TestPromtool:
    @needs_promtool
    def test_check_rules(self) -> None:
        """`promtool check rules` accepts the file and counts every rule."""
        result = _promtool("check", "rules", str(RULES))
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"SUCCESS: {len(rules())} rules found" in result.stdout

    @needs_promtool
    def test_unit_tests_pass(self) -> None:
        """`promtool test rules`: each alert fires on the series that should trip it and
        stays quiet on the others."""
        assert len(RULE_TESTS) == 2
        result = _promtool("test", "rules", *map(str, RULE_TESTS))
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.count("SUCCESS") == len(RULE_TESTS)

    def test_every_alert_has_a_firing_unit_test(self) -> None:
        """No alert goes untested: each one is expected to fire in some unit test."""
        fired = {
            case["alertname"]
            for path in RULE_TESTS
            for test in load_yaml(path)["tests"]
            for case in test.get("alert_rule_test", [])
            if case.get("exp_alerts")
        }
        assert {rule["alert"] for rule in rules()} == fired


class TestAlertContents:
    def test_required_alerts_exist(self) -> None:
        names = {rule["alert"] for rule in rules()}
        assert names >= REQUIRED, REQUIRED - names

    def test_summary_description_severity(self) -> None:
        """Each alert has a summary, a description and a severity a pager can route."""
        for rule in rules():
            annotations = rule["annotations"]
            assert annotations.get("summary") and annotations.get("description"), rule["alert"]
            assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]

    def test_runbook_links_resolve(self) -> None:
        """Each alert's runbook is a section of a runbook file in the repository, and that
        section links on to a full runbook or says what to do."""
        for rule in rules():
            link = rule["annotations"]["runbook"]
            path, _, anchor = link.partition("#")
            file = REPO / path
            assert file.is_file(), f"{rule['alert']}: {path} does not exist"
            text = file.read_text()
            assert anchor in _anchors(text), f"{rule['alert']}: no heading for #{anchor}"
            section = text.split(f"## {rule['alert']}", 1)[1].split("\n## ", 1)[0]
            assert "kvdr " in section, f"{rule['alert']}: the section names no kvdr command"
