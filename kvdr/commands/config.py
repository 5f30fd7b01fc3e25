"""`kvdr config check FILE [--json]`: validate a configuration file, reporting every problem."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from kvdr.config import ConfigIssue, KvdrConfig, check_config, load_config

EXIT_OK = 0
EXIT_CONFIG = 2


@click.group("config")
def command() -> None:
    """Work with kvdr configuration files."""


@command.command("check")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=True))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
def check(file: Path, as_json: bool) -> None:
    """Validate FILE (with KVDR__* environment overrides); exit 2 on any error.

    Every error is printed as FILE:LINE: key: message (an override names its variable).
    Warnings are printed too but do not fail the check.
    """
    issues = check_config(file, os.environ)
    errors = [issue for issue in issues if issue.severity == "error"]
    config = None if errors else load_config(file, os.environ)
    if as_json:
        click.echo(json.dumps(_document(file, issues, config), indent=2))
    else:
        for issue in issues:
            click.echo(str(issue))
        if config is not None:
            click.echo(f"{file}: OK")
            for line in _summary_lines(config):
                click.echo(f"  {line}")
        else:
            count = len(errors)
            click.echo(f"{file}: {count} error{'s' if count != 1 else ''}", err=True)
    raise SystemExit(EXIT_CONFIG if errors else EXIT_OK)


def _document(file: Path, issues: list[ConfigIssue], config: KvdrConfig | None) -> dict[str, Any]:
    return {
        "file": str(file),
        "ok": config is not None,
        "errors": [issue.to_dict() for issue in issues if issue.severity == "error"],
        "warnings": [issue.to_dict() for issue in issues if issue.severity == "warning"],
        "summary": config.summary() if config is not None else None,
    }


def _summary_lines(config: KvdrConfig) -> list[str]:
    summary = config.summary()
    regions = ", ".join(f"{name} ({url})" for name, url in summary["regions"].items())
    storage = summary["storage"]
    if storage["backend"] == "local-folder":
        where = f"local folder {storage['path']}"
    else:
        where = f"Azure blob container {storage['container']!r}"
        if storage["account_url"]:
            where += f" at {storage['account_url']}"
    lines = [
        f"regions: {len(summary['regions'])}: {regions}",
        f"pairs: {len(summary['pairs'])}",
    ]
    for pair in summary["pairs"]:
        targets = ", ".join(pair["secondaries"])
        kinds = ", ".join(pair["kinds"])
        lines.append(
            f"  {pair['name']}: {pair['primary']} -> {targets} [{kinds}], "
            f"RPO objective {pair['rpo_objective_seconds']:g} s"
        )
    lines.append(f"storage: {where}")
    lines.append(f"credential: {summary['credential']}; listen: {summary['listen']}")
    return lines
