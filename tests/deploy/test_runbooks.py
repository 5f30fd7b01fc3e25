"""The runbooks name kvdr commands that exist, with options those commands take; the
ones that wait for another issue say so."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest

from tests.deploy.iac import REPO
from tests.fixtures.cli import run_kvdr

RUNBOOKS = sorted(p for p in (REPO / "docs" / "runbooks").glob("*.md") if p.name != "README.md")
# Subcommands of DESIGN.md's command line that this release does not have yet.
PENDING: dict[str, int] = {}
_GROUPS = {"config", "snapshot", "failover", "drill"}


def _commands(text: str) -> list[str]:
    """Every `kvdr ...` invocation in inline code or code blocks (continuations joined)."""
    text = re.sub(r"\\\n\s*", " ", text)
    found = re.findall(r"`(kvdr [^`]+)`", text)
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        found += [m.group(1) for m in re.finditer(r"(?:^|\s)(kvdr [^\n]+)", block)]
    return found


@cache
def _help(*words: str) -> str:
    result = run_kvdr(*words, "--help")
    assert result.returncode == 0, f"kvdr {' '.join(words)} does not exist:\n{result.stderr}"
    return result.stdout


@pytest.mark.parametrize("runbook", RUNBOOKS, ids=lambda p: p.name)
def test_commands_exist_with_their_options(runbook: Path) -> None:
    """Each kvdr command a runbook names is a real subcommand, and each --option it uses
    is in that subcommand's --help; pending ones are marked PENDING with their issue."""
    text = runbook.read_text()
    commands = _commands(text)
    assert len(commands) >= 3, f"{runbook.name} names hardly any kvdr command"
    for command in commands:
        words = command.split()
        sub = words[1]
        if sub in PENDING:
            assert f"PENDING issue {PENDING[sub]}" in text, f"{command}: not marked pending"
            continue
        path = [sub, words[2]] if sub in _GROUPS and len(words) > 2 else [sub]
        usage = _help(*path)
        for option in re.findall(r"(?<!\S)(--[a-z][a-z-]*)", command):
            where = f"{runbook.name}: `{command}`"
            assert option in usage, f"{where}: kvdr {' '.join(path)} has no {option}"


def test_every_runbook_is_listed() -> None:
    """The runbooks' index lists each runbook."""
    index = (REPO / "docs" / "runbooks" / "README.md").read_text()
    for runbook in RUNBOOKS:
        assert f"({runbook.name})" in index, runbook.name
