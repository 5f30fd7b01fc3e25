"""`[replication] state_key_env` / `state_key_file`: the key that seals checkpoints and
deletion guards comes from the environment or a file, never from the file itself."""

from __future__ import annotations

from pathlib import Path

from kvdr.config import ConfigIssue, check_config, load_config
from kvdr.wiring import state_sealer
from tests.kvdr.test_config import MINIMAL
from tests.kvdr.test_config import write as write_file

KEY = "a-state-key-that-is-long-enough-0123"


def write(tmp_path: Path, replication: str) -> Path:
    return write_file(tmp_path, f"{MINIMAL}\n[replication]\n{replication}\n")


def errors(path: Path, env: dict[str, str] | None = None) -> list[ConfigIssue]:
    return [i for i in check_config(path, env or {}) if i.severity == "error"]


def test_an_inline_state_key_is_refused_without_echo(tmp_path: Path) -> None:
    found = errors(write(tmp_path, f'state_key = "{KEY}"'))
    assert [i.key for i in found] == ["replication.state_key"]
    assert "state_key_env" in found[0].message and KEY not in str(found[0])


def test_from_a_file_or_a_variable_and_the_same_key_seals_alike(tmp_path: Path) -> None:
    """The file's first line and the variable's value give the same sealer; none is
    configured without either, and the key never shows in the settings' repr."""
    key_file = tmp_path / "state.key"
    key_file.write_text(KEY + "\n")
    key_file.chmod(0o600)
    from_file = load_config(write(tmp_path, f'state_key_file = "{key_file}"'), env={})
    from_env = load_config(
        write(tmp_path, 'state_key_env = "KVDR_STATE_KEY"'), env={"KVDR_STATE_KEY": KEY}
    )
    assert from_file.replicator.state_key == from_env.replicator.state_key == KEY
    assert KEY not in repr(from_file.replicator)
    sealers = [state_sealer(c) for c in (from_file, from_env)]
    assert sealers[0] is not None and sealers[1] is not None
    assert sealers[0].key_id == sealers[1].key_id
    assert state_sealer(load_config(write_file(tmp_path, MINIMAL), env={})) is None


def test_a_short_or_missing_key_is_an_error_naming_its_source(tmp_path: Path) -> None:
    short = errors(write(tmp_path, 'state_key_env = "KVDR_STATE_KEY"'), {"KVDR_STATE_KEY": "x"})
    assert [i.key for i in short] == ["replication.state_key_env"]
    assert "at least 16 characters" in short[0].message
    missing = errors(write(tmp_path, 'state_key_file = "/nonexistent/state.key"'))
    assert [i.key for i in missing] == ["replication.state_key_file"]
    assert "cannot read /nonexistent/state.key" in missing[0].message
