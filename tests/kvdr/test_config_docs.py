"""The key reference in docs/configuration.md is generated from the models
(kvdr/config_docs.py), and the models' errors never show a rejected value
(kvdr/_config_model.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kvdr._config_fields import Problems
from kvdr._config_tuning import ReplicationSection, VaultSection, read_replication, read_vault
from kvdr.config_docs import (
    DOCS,
    KIND_TABLES,
    SECTIONS,
    main,
    render,
    render_kind_table,
    render_table,
)
from replicator.settings import ReplicatorSettings
from vault.settings import VaultSettings


class TestKeyReference:
    def test_checked_in_docs_match_the_models(self) -> None:
        """docs/configuration.md is what `python -m kvdr.config_docs` writes: a key added,
        renamed or re-defaulted in a model without regenerating the docs fails here."""
        text = DOCS.read_text(encoding="utf-8")
        assert render(text) == text, "stale key reference: run python -m kvdr.config_docs"

    def test_every_model_has_a_marked_table(self) -> None:
        """Each section model's table is in the docs between its markers."""
        text = DOCS.read_text(encoding="utf-8")
        for model in SECTIONS:
            assert f"<!-- keys: {model.section} -->\n{render_table(model)}<!-- end keys -->" in text
        for name, models in KIND_TABLES.items():
            table = render_kind_table(models)
            assert f"<!-- keys: {name} -->\n{table}<!-- end keys -->" in text

    def test_kind_tables_say_which_kinds_take_a_key(self) -> None:
        """A key of some kinds names them, required ones marked; a key of all is "all"."""
        rows = {
            row.split(" | ")[0]: row.split(" | ")[1:]
            for row in render_kind_table(KIND_TABLES["credential"]).splitlines()[2:]
        }
        assert rows["| `client_secret_env`"][:2] == ["client-secret (required)", "required"]
        assert rows["| `ca_file`"][:2] == ["all", "none"]
        assert rows["| `tenant_id`"][0] == (
            "default, cli, client-secret (required), client-certificate (required)"
        )

    def test_every_key_is_described(self) -> None:
        """No key reaches the reference without a meaning."""
        for model in SECTIONS:
            joined = {key for _, *others in model.joined.values() for key in others}
            joined |= model.elsewhere
            for name, info in model.model_fields.items():
                if (info.alias or name) not in joined:
                    assert info.description, f"{model.section}.{info.alias or name}"
        for table, models in KIND_TABLES.items():
            for kind_model in models:
                assert kind_model.__dict__.get("__doc__"), f"{table}: {kind_model.__name__}"
                for name, info in kind_model.model_fields.items():
                    if name != "kind":
                        assert info.description, f"{table}.{name} ({kind_model.__name__})"

    def test_check_mode_reports_drift_without_writing(self, tmp_path: Path) -> None:
        """--check exits 1 on a stale file and leaves it alone; a run rewrites it."""
        stale = DOCS.read_text(encoding="utf-8").replace("| per request |", "| old |")
        path = tmp_path / "configuration.md"
        path.write_text(stale, encoding="utf-8")
        assert main(["--check", "--file", str(path)]) == 1
        assert path.read_text(encoding="utf-8") == stale
        assert main(["--file", str(path)]) == 0
        assert main(["--check", "--file", str(path)]) == 0

    def test_an_unknown_marked_section_is_refused(self) -> None:
        """A marker naming no model is an error, not an empty table."""
        with pytest.raises(ValueError, match="unknown section 'nope'"):
            render("<!-- keys: nope -->\n<!-- end keys -->")


class TestModels:
    def test_defaults_are_the_settings_defaults(self) -> None:
        """An empty section gives exactly the settings dataclasses' defaults."""
        problems = Problems()
        replication = read_replication(None, problems)
        assert replication == (ReplicatorSettings(), 60.0)
        assert read_vault(None, problems) == VaultSettings()
        assert problems.items == []

    def test_rejected_values_are_never_shown(self) -> None:
        """Whatever the value a key refuses, its message does not contain it."""
        secret = "s3cr3t-Value-do-not-print"
        problems = Problems()
        read_vault(
            {"max_attempts": secret, "ca_file": [secret], "verify_challenge_resource": secret},
            problems,
        )
        read_replication({"event_read_share": {"x": secret}, "poll_interval": [secret]}, problems)
        assert len(problems.items) == 5
        for problem in problems.items:
            assert secret not in problem.message

    def test_a_section_that_is_not_a_table(self) -> None:
        """`vault = 3` is one error at the section, naming the type only."""
        problems = Problems()
        assert read_vault(3, problems) is None
        assert [(p.path, p.message) for p in problems.items] == [
            (("vault",), "expected a table, got an integer")
        ]

    def test_keys_are_the_written_names(self) -> None:
        """The models know their keys as the file writes them."""
        assert "poll_interval" in ReplicationSection.written_keys()
        assert "request_timeout" in VaultSection.written_keys()
        assert "request_timeout_seconds" not in VaultSection.written_keys()
