"""`[daemon]`: the HTTP surface's secrets come from the environment or a file, and a
listener beyond loopback must have them (kvdr/_config_daemon.py)."""

from __future__ import annotations

import json
from pathlib import Path

from kvdr.config import ConfigIssue, check_config, load_config
from tests.fixtures.cli import run_kvdr
from tests.kvdr.test_config import MINIMAL
from tests.kvdr.test_config import write as write_file
from tests.kvdr.test_config_check import clean_env

LONG = "s3cr3t-value-that-is-long-enough"
BASE = MINIMAL


def write(tmp_path: Path, daemon: str) -> Path:
    return write_file(tmp_path, f"[daemon]\n{daemon}\n{MINIMAL}")


def errors(path: Path, env: dict[str, str] | None = None) -> list[ConfigIssue]:
    return [i for i in check_config(path, env or {}) if i.severity == "error"]


def secret_file(tmp_path: Path, value: str = LONG, mode: int = 0o600) -> Path:
    path = tmp_path / "secret"
    path.write_text(value + "\n")
    path.chmod(mode)
    return path


class TestSecretsNeverInline:
    def test_inline_values_are_refused_without_echo(self, tmp_path: Path) -> None:
        """A literal events_secret or status_token is an error at its key and line that
        says where to put it instead, and never repeats the value."""
        path = write(tmp_path, f'events_secret = "{LONG}"\nstatus_token = "{LONG}x"')
        found = errors(path)
        assert [(i.key, i.line) for i in found] == [
            ("daemon.events_secret", 2),
            ("daemon.status_token", 3),
        ]
        assert all("_env" in i.message and "_file" in i.message for i in found)
        assert not any(LONG in str(i) for i in found)

    def test_an_override_cannot_set_one_inline_either(self, tmp_path: Path) -> None:
        """KVDR__DAEMON__EVENTS_SECRET is refused like the key in the file."""
        path = write(tmp_path, "")
        found = errors(path, {"KVDR__DAEMON__EVENTS_SECRET": LONG})
        assert [(i.key, i.variable) for i in found] == [
            ("daemon.events_secret", "KVDR__DAEMON__EVENTS_SECRET")
        ]
        assert LONG not in str(found[0])

    def test_from_a_file_or_a_variable(self, tmp_path: Path) -> None:
        """The file's content (stripped) and the variable's value are taken; neither
        shows in the settings' repr."""
        path = write(
            tmp_path,
            f'events_secret_file = "{secret_file(tmp_path)}"\nstatus_token_env = "TOKEN_VAR"',
        )
        config = load_config(path, {"TOKEN_VAR": LONG + "-token"})
        assert config.daemon.events_secret == LONG
        assert config.daemon.status_token == LONG + "-token"
        assert LONG not in repr(config.daemon)

    def test_unusable_sources_are_named(self, tmp_path: Path) -> None:
        """An unset variable, a missing file, a short secret, both sources at once:
        each an error at its key; a file other users can read is a warning."""
        short = secret_file(tmp_path, "short")
        path = write(
            tmp_path,
            'events_secret_env = "UNSET_VAR"\n'
            f'status_token_file = "{short}"\n'
            f'status_token_env = "TOKEN_VAR"',
        )
        messages = {i.key: i.message for i in errors(path, {"TOKEN_VAR": LONG})}
        assert "UNSET_VAR is not set" in messages["daemon.events_secret_env"]
        assert "conflicts with status_token_env" in messages["daemon.status_token_file"]
        path = write(tmp_path, f'events_secret_file = "{short}"')
        assert "at least 16 characters" in errors(path)[0].message
        path = write(tmp_path, f'events_secret_file = "{tmp_path / "absent"}"')
        assert "cannot read" in errors(path)[0].message
        readable = secret_file(tmp_path, mode=0o644)
        path = write(tmp_path, f'events_secret_file = "{readable}"')
        issues = check_config(path, {})
        assert [i.severity for i in issues] == ["warning"] and "chmod 600" in issues[0].message


class TestBeyondLoopback:
    def test_config_check_refuses_an_open_listener(self, tmp_path: Path) -> None:
        """`kvdr config check` exits 2 for a listener on all interfaces without the
        events secret and the status token, naming daemon.listen for both."""
        path = write(tmp_path, 'listen = "0.0.0.0:8080"')
        result = run_kvdr("config", "check", str(path), "--json", env=clean_env())
        assert result.returncode == 2
        found = json.loads(result.stdout)["errors"]
        assert [e["key"] for e in found] == ["daemon.listen", "daemon.listen"]
        assert "shared secret" in found[0]["message"] and "token" in found[1]["message"]

    def test_loopback_needs_neither_and_an_open_listener_with_both_is_fine(
        self, tmp_path: Path
    ) -> None:
        """127.0.0.1, ::1 and localhost run without secrets; all interfaces with both
        load without a warning (IP addresses are always allowed Hosts)."""
        for host in ("127.0.0.1", "[::1]", "localhost"):
            assert errors(write(tmp_path, f'listen = "{host}:8080"')) == []
        path = write(
            tmp_path,
            'listen = "0.0.0.0:8080"\nevents_secret_env = "E"\nstatus_token_env = "T"',
        )
        issues = check_config(path, {"E": LONG, "T": LONG + "t"})
        assert issues == []

    def test_entra_delivery_counts_as_the_events_guard(self, tmp_path: Path) -> None:
        """Entra ID settings need all three keys and a readable key set."""
        keys = tmp_path / "keys.json"
        keys.write_text('{"keys": []}')
        path = write(
            tmp_path,
            f'listen = "0.0.0.0:8080"\nstatus_token_env = "T"\n'
            f'events_entra_audience = "api://kvdr"\nevents_entra_keys_file = "{keys}"',
        )
        messages = {i.key: i.message for i in errors(path, {"T": LONG})}
        assert "missing" in messages["daemon.events_entra_issuers"]
        assert "holds no RSA signing key" in messages["daemon.events_entra_keys_file"]

    def test_allowed_hosts_are_host_names(self, tmp_path: Path) -> None:
        """A URL or a host with a port in allowed_hosts is an error at its element."""
        path = write(tmp_path, 'allowed_hosts = ["kvdr.example.com", "https://x.example"]')
        assert [i.key for i in errors(path)] == ["daemon.allowed_hosts[1]"]


class TestEventSettings:
    def test_event_queue_limit_and_read_share(self, tmp_path: Path) -> None:
        """[replication] event_queue_limit and event_read_share are read and bounded."""
        text = BASE + '[replication]\nevent_queue_limit = 100\nevent_read_share = "10%"\n'
        path = tmp_path / "kvdr.toml"
        path.write_text(text)
        replicator = load_config(path, {}).replicator
        assert (replicator.event_queue_limit, replicator.event_read_share) == (100, 0.1)
        path.write_text(BASE + "[replication]\nevent_queue_limit = 0\nevent_read_share = 0\n")
        assert [i.key for i in errors(path)] == [
            "replication.event_queue_limit",
            "replication.event_read_share",
        ]
