"""Scenario files: the built-ins parse, `kvdr drill validate` names every error with its
line and exits 2, `kvdr drill list` shows the built-ins."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from chaos.scenario import ScenarioError, builtin_scenarios, parse_scenario
from kvdr.cli import cli

BUILTINS = {
    "planned-switchover",
    "flaky-primary",
    "throttled-target",
    "slow-secondary",
    "daemon-crash",
    "deny-access",
    "storage-outage",
    "region-outage",
}

BROKEN = """name = "broken"
[objectives]
rto_seconds = -1
[load]
rate = 5
colour = "red"
[[steps]]
action = "load_start"
[[steps]]
action = "teleport"
[[steps]]
action = "heal"
fault = "nothing-on"
[[steps]]
action = "toxic"
id = "t"
link = "eastus-vault"
type = "latency"
toxicity = 2
"""


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


class TestBuiltins:
    def test_all_eight_parse(self) -> None:
        """Every built-in the issue names exists and parses."""
        found = builtin_scenarios()
        assert set(found) >= BUILTINS
        for name, path in found.items():
            assert parse_scenario(path.read_text(), str(path)).name == name

    def test_list_json(self) -> None:
        """`kvdr drill list --json` names each built-in with its objectives."""
        code, out, _ = run("drill", "list", "--json")
        assert code == 0
        rows = {row["name"]: row for row in json.loads(out)["scenarios"]}
        assert set(rows) >= BUILTINS
        assert rows["planned-switchover"]["objectives"]["rpo_items"] == 0
        assert rows["region-outage"]["disruptive"] is True


class TestValidate:
    def test_every_error_with_its_line(self, tmp_path: Path) -> None:
        """Four errors, each printed with the line of its key, exit 2."""
        path = tmp_path / "broken.toml"
        path.write_text(BROKEN)
        code, _, err = run("drill", "validate", str(path))
        assert code == 2
        lines = [line for line in err.splitlines() if line.startswith(str(path))]
        text = "\n".join(lines)
        assert f"{path}:3: objectives.rto_seconds:" in text
        assert f"{path}:6: load.colour: unknown key" in text
        assert f"{path}:9: steps[1]: unknown action" in text
        assert f"{path}:19: steps[3].toxicity:" in text
        assert "4 error(s)" in err

    def test_method_errors_after_the_schema(self, tmp_path: Path) -> None:
        """A heal of a fault that is not on, a failback without promotion: named."""
        path = tmp_path / "method.toml"
        path.write_text(
            'name = "m"\n[[steps]]\naction = "heal"\nfault = "x"\n[[steps]]\naction = "failback"\n'
        )
        code, _, err = run("drill", "validate", str(path))
        assert code == 2
        assert f"{path}:4: steps[0].fault: no fault 'x' is on here" in err
        assert f"{path}:5: steps[1]: failback without an earlier promote" in err

    def test_toml_syntax_error(self, tmp_path: Path) -> None:
        path = tmp_path / "bad.toml"
        path.write_text('name = "x"\nsteps = [\n')
        code, _, err = run("drill", "validate", str(path))
        assert code == 2
        assert "not valid TOML" in err

    def test_valid_file(self) -> None:
        path = builtin_scenarios()["daemon-crash"]
        code, out, _ = run("drill", "validate", str(path))
        assert code == 0 and "is valid" in out

    def test_run_of_an_unknown_scenario_is_a_usage_error(self) -> None:
        code, _, err = run("drill", "run", "no-such-drill")
        assert code == 2
        assert "no built-in scenario or file" in err and "flaky-primary" in err


class TestScaling:
    def test_time_scale_shortens_waits_and_durations_only(self) -> None:
        path = builtin_scenarios()["throttled-target"]
        scenario = parse_scenario(path.read_text(), str(path))
        half = scenario.scaled(0.5)
        assert [getattr(s, "seconds", None) for s in half.steps][1] == 2.0
        assert [getattr(s, "duration_seconds", None) for s in half.steps][2] == 12.0
        assert half.steps[4].timeout_seconds == scenario.steps[4].timeout_seconds  # type: ignore[union-attr]

    def test_duplicate_fault_id(self) -> None:
        text = (
            'name = "d"\n'
            '[[steps]]\naction = "read_only"\nid = "a"\nregion = "eastus"\n'
            '[[steps]]\naction = "read_only"\nid = "a"\nregion = "westus"\n'
        )
        with pytest.raises(ScenarioError) as caught:
            parse_scenario(text, "d.toml")
        assert [i.key for i in caught.value.issues] == ["steps[1].id"]
