"""The `[audit]` section: on where a signer can sign, an error when asked for without
one, a warning when it is off for want of one, and its durations read."""

from __future__ import annotations

from pathlib import Path

import pytest

from kvdr.config import ConfigError, check_config, parse_config
from tests.backups.test_commands import MINIMAL


def signer(tmp: Path) -> str:
    return f"""
[backups]
[[backups.keks]]
kind = "file"
path = "{tmp / "k.key"}"
create = true

[[backups.signers]]
kind = "file"
path = "{tmp / "s.key"}"
create = true
"""


class TestAuditSection:
    def test_on_by_default_where_a_signer_can_sign(self, tmp_path: Path) -> None:
        """No [audit] table, a file signer: the trail is on with 400 days' retention."""
        config = parse_config(MINIMAL + signer(tmp_path), "kvdr.toml")
        assert config.audit is not None
        assert config.audit.retention_seconds == 400 * 86400.0

    def test_keys_are_read(self, tmp_path: Path) -> None:
        """retention, flush_interval, flush_max_entries, max_buffered."""
        text = signer(tmp_path) + (
            '\n[audit]\nretention = "30d"\nflush_interval = "2s"\n'
            "flush_max_entries = 10\nmax_buffered = 100\n"
        )
        audit = parse_config(MINIMAL + text, "kvdr.toml").audit
        assert audit is not None
        assert (audit.retention_seconds, audit.flush_interval_seconds) == (30 * 86400.0, 2.0)
        assert (audit.flush_max_entries, audit.max_buffered) == (10, 100)

    def test_off_when_asked(self, tmp_path: Path) -> None:
        config = parse_config(MINIMAL + signer(tmp_path) + "\n[audit]\nenabled = false\n", "x")
        assert config.audit is None

    def test_enabled_without_a_signer_is_an_error_naming_the_key(self) -> None:
        """`enabled = true` with nothing to sign with: refused at load, by key."""
        with pytest.raises(ConfigError) as caught:
            parse_config(MINIMAL + "\n[audit]\nenabled = true\n", "kvdr.toml")
        assert "audit.enabled" in str(caught.value)
        assert "[[backups.signers]]" in str(caught.value)

    def test_without_a_signer_it_is_off_with_a_warning(self, tmp_path: Path) -> None:
        """[audit] written but no signer: off, and `kvdr config check` says why."""
        path = tmp_path / "kvdr.toml"
        path.write_text(MINIMAL + '\n[audit]\nretention = "30d"\n')
        issues = check_config(path)
        assert [(i.key, i.severity) for i in issues] == [("audit", "warning")]
        assert "no audit trail" in issues[0].message

    def test_a_short_retention_and_a_bad_duration_are_refused(self, tmp_path: Path) -> None:
        for bad, words in (('"1h"', "at least 1d"), ('"soon"', "retention")):
            with pytest.raises(ConfigError) as caught:
                parse_config(MINIMAL + signer(tmp_path) + f"\n[audit]\nretention = {bad}\n", "x")
            assert words in str(caught.value) and "audit.retention" in str(caught.value)
