"""Loading kvdr's TOML configuration: valid files, located errors, env overrides, local stack."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from kvdr.config import (
    ConfigError,
    ConfigIssue,
    DaemonSettings,
    KvdrConfig,
    check_config,
    load_config,
)
from replicator.settings import PairSettings
from storage.settings import AzureBlobSettings, LocalFolderSettings
from vault.models import ItemKind, VaultRef

FULL = """\
# A production-like configuration: managed identity, RA-GZRS storage.
[daemon]
listen = "0.0.0.0:9090"
instance_id = "kvdr-a"
state_dir = "/var/lib/kvdr"
log_format = "json"
log_level = "DEBUG"
allowed_hosts = ["kvdr.contoso.internal"]
events_secret_env = "KVDR_EVENTS_SECRET"
status_token_env = "KVDR_STATUS_TOKEN"

[credential]
kind = "managed-identity"
client_id = "11111111-2222-3333-4444-555555555555"

[regions.eastus]
vault_url = "https://contoso-east.vault.azure.net/"

[regions.westus]
vault_url = "https://contoso-west.vault.azure.net"

[regions.northeurope]
vault_url = "https://contoso-neu.vault.azure.net"

[storage]
container = "kvdr-journal"
account_url = "https://contosokvdr.blob.core.windows.net"
secondary_account_url = "https://contosokvdr-secondary.blob.core.windows.net"
retries = 1
connect_timeout = "2s"
primary_retry = "1m"

[replication]
poll_interval = "5s"
reconcile_interval = "15m"
deep_reconcile_interval = "2d"
max_concurrent_items = 32
drain_timeout = 20
rpo_objective = "2m"

[vault]
max_concurrency = 8
secret_creates_per_10s = 200
other_ops_per_10s = 3000
max_attempts = 4
request_timeout = "45s"
verify_challenge_resource = true

[[pairs]]
name = "apps"
primary = "eastus"
secondaries = ["westus", "northeurope"]
kinds = ["secret", "key", "certificate"]
include = ["app-*"]
exclude = ["app-*-temp"]
adopt = true
rpo_objective = "30s"

[[pairs]]
name = "platform"
primary = "eastus"
secondaries = ["westus"]
exclude = ["app-*"]
"""

MINIMAL = """\
[regions.eastus]
vault_url = "https://a.vault.azure.net"
[regions.westus]
vault_url = "https://b.vault.azure.net"
[storage]
path = "/tmp/kvdr-blobs"
[[pairs]]
name = "p"
primary = "eastus"
secondaries = ["westus"]
"""


def write(tmp_path: Path, text: str, name: str = "kvdr.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def errors_of(path: Path, env: dict[str, str] | None = None) -> list[ConfigIssue]:
    return [i for i in check_config(path, env or {}) if i.severity == "error"]


def only_issue(path: Path, env: dict[str, str] | None = None) -> ConfigIssue:
    issues = errors_of(path, env)
    assert len(issues) == 1, [str(i) for i in issues]
    return issues[0]


def line_of(text: str, fragment: str) -> int:
    """The 1-based line of the first line of `text` that contains `fragment`."""
    for number, line in enumerate(textwrap.dedent(text).splitlines(), start=1):
        if fragment in line:
            return number
    raise AssertionError(fragment)


class TestValidConfig:
    """A valid file becomes the settings dataclasses of every part."""

    def test_full_config_loads_into_the_dataclasses(self, tmp_path: Path) -> None:
        """Every section lands in its part's settings, durations in seconds."""
        env = {"KVDR_EVENTS_SECRET": "e" * 32, "KVDR_STATUS_TOKEN": "t" * 32}
        config = load_config(write(tmp_path, FULL), env=env)
        assert isinstance(config, KvdrConfig)
        assert config.daemon == DaemonSettings(
            listen_host="0.0.0.0",
            listen_port=9090,
            instance_id="kvdr-a",
            state_dir=Path("/var/lib/kvdr"),
            log_format="json",
            log_level="debug",
            allowed_hosts=("kvdr.contoso.internal",),
            status_token="t" * 32,
            events_secret="e" * 32,
        )
        assert config.credential.kind == "managed-identity"
        assert config.credential.client_id == "11111111-2222-3333-4444-555555555555"
        east = VaultRef("eastus", "https://contoso-east.vault.azure.net")
        assert config.regions["eastus"] == east
        assert list(config.regions) == ["eastus", "westus", "northeurope"]
        assert config.storage == AzureBlobSettings(
            container="kvdr-journal",
            account_url="https://contosokvdr.blob.core.windows.net",
            secondary_account_url="https://contosokvdr-secondary.blob.core.windows.net",
            retries=1,
            connect_timeout_seconds=2.0,
            primary_retry_seconds=60.0,
        )
        rep = config.replicator
        assert (rep.poll_interval_seconds, rep.reconcile_interval_seconds) == (5.0, 900.0)
        assert rep.deep_reconcile_interval_seconds == 2 * 86400.0
        assert (rep.max_concurrent_items, rep.drain_seconds) == (32, 20.0)
        apps, platform = rep.pairs
        assert apps == PairSettings(
            name="apps",
            primary=east,
            secondaries=(config.regions["westus"], config.regions["northeurope"]),
            kinds=frozenset(ItemKind),
            include=("app-*",),
            exclude=("app-*-temp",),
            adopt=True,
            rpo_objective_seconds=30.0,
        )
        # Pair defaults; the RPO objective comes from [replication].
        assert platform.kinds == frozenset({ItemKind.SECRET})
        assert platform.include == ("*",)
        assert platform.adopt is False
        assert platform.rpo_objective_seconds == 120.0
        vault = config.vault
        assert (vault.max_concurrency, vault.secret_creates_per_10s) == (8, 200)
        assert (vault.other_ops_per_10s, vault.max_attempts) == (3000, 4)
        assert vault.request_timeout_seconds == 45.0
        assert vault.verify_challenge_resource is True
        assert config.warnings == ()
        assert config.source == tmp_path / "kvdr.toml"

    def test_minimal_config_takes_defaults(self, tmp_path: Path) -> None:
        """Sections left out take the documented defaults."""
        config = load_config(write(tmp_path, MINIMAL), env={})
        assert config.daemon.listen_host == "127.0.0.1"
        assert config.daemon.listen_port == 8080
        assert config.daemon.state_dir == Path(".kvdr")
        assert config.daemon.log_format == "auto"
        assert config.daemon.instance_id  # hostname-pid
        assert config.credential.kind == "default"
        assert config.storage == LocalFolderSettings(path="/tmp/kvdr-blobs")
        assert config.replicator.poll_interval_seconds == 10.0
        assert config.replicator.deep_reconcile_interval_seconds == 86400.0
        assert config.replicator.pairs[0].rpo_objective_seconds == 60.0
        assert config.vault.secret_creates_per_10s == 270

    def test_client_secret_comes_from_the_named_variable(self, tmp_path: Path) -> None:
        """client_secret_env is read from the environment and never shown in repr."""
        text = MINIMAL + textwrap.dedent("""\
            [credential]
            kind = "client-secret"
            client_id = "app"
            tenant_id = "tenant"
            client_secret_env = "KVDR_TEST_SECRET"
            """)
        config = load_config(write(tmp_path, text), env={"KVDR_TEST_SECRET": "pa55-w0rd"})
        assert config.credential.client_secret == "pa55-w0rd"
        assert "pa55-w0rd" not in repr(config)

    def test_connection_string_env_is_resolved_and_hidden(self, tmp_path: Path) -> None:
        """A connection string from the environment is used and kept out of repr and summary."""
        text = MINIMAL.replace('path = "/tmp/kvdr-blobs"', 'connection_string_env = "BLOBS"')
        conn = "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=c2VjcmV0a2V5"
        config = load_config(write(tmp_path, text), env={"BLOBS": conn})
        assert isinstance(config.storage, AzureBlobSettings)
        assert config.storage.connection_string == conn
        assert "c2VjcmV0a2V5" not in repr(config)
        assert "c2VjcmV0a2V5" not in str(config.summary())

    def test_inline_tables_and_dotted_keys_are_accepted(self, tmp_path: Path) -> None:
        """TOML's other spellings of the same keys load the same settings."""
        text = """\
            regions.eastus.vault_url = "https://a.vault.azure.net"
            regions.westus = { vault_url = "https://b.vault.azure.net" }
            storage = { path = "/tmp/x" }
            pairs = [ { name = "p", primary = "eastus", secondaries = ["westus"] } ]
            """
        config = load_config(write(tmp_path, text), env={})
        assert set(config.regions) == {"eastus", "westus"}
        assert config.replicator.pairs[0].name == "p"


class TestErrorLocations:
    """Each kind of error names the file, the dotted key and the line."""

    def test_unknown_key_suggests_the_close_one(self, tmp_path: Path) -> None:
        """A misspelt key is an error with a 'did you mean' suggestion."""
        path = write(tmp_path, MINIMAL + '[replication]\npoll_intervall = "5s"\n')
        issue = only_issue(path)
        assert issue.file == str(path)
        assert issue.key == "replication.poll_intervall"
        assert issue.line == 12
        assert "did you mean 'poll_interval'?" in issue.message

    def test_unknown_section_suggests_the_close_one(self, tmp_path: Path) -> None:
        """A misspelt section name is an error with a suggestion."""
        issue = only_issue(write(tmp_path, MINIMAL + "[replicaton]\npoll_interval = 5\n"))
        assert (issue.key, issue.line) == ("replicaton", 11)
        assert "did you mean 'replication'?" in issue.message

    def test_wrong_type_names_what_was_expected(self, tmp_path: Path) -> None:
        """A string where an integer belongs says so."""
        issue = only_issue(write(tmp_path, MINIMAL + '[vault]\nmax_concurrency = "8"\n'))
        assert (issue.key, issue.line) == ("vault.max_concurrency", 12)
        assert issue.message == "expected an integer, got a string"

    def test_limit_above_key_vault_budget_is_refused(self, tmp_path: Path) -> None:
        """secret_creates_per_10s above Key Vault's 300 is out of range."""
        issue = only_issue(write(tmp_path, MINIMAL + "[vault]\nsecret_creates_per_10s = 301\n"))
        assert issue.key == "vault.secret_creates_per_10s"
        assert "between 1 and 300" in issue.message

    def test_bad_duration_is_located(self, tmp_path: Path) -> None:
        """A duration that does not parse names its key and line."""
        issue = only_issue(write(tmp_path, MINIMAL + '[replication]\ndrain_timeout = "10 sec"\n'))
        assert (issue.key, issue.line) == ("replication.drain_timeout", 12)
        assert "not a duration" in issue.message

    def test_missing_key_is_reported_at_its_table(self, tmp_path: Path) -> None:
        """A missing required key points at the [[pairs]] header that lacks it."""
        text = MINIMAL.replace('secondaries = ["westus"]\n', "")
        issue = only_issue(write(tmp_path, text))
        assert issue.key == "pairs[0].secondaries"
        assert issue.line == line_of(text, "[[pairs]]")
        assert "missing required key 'secondaries'" in issue.message

    def test_bad_array_element_is_reported_at_its_index(self, tmp_path: Path) -> None:
        """An unknown region in a multi-line array names the element's index and line."""
        text = MINIMAL.replace(
            'secondaries = ["westus"]', 'secondaries = [\n  "westus",\n  "westsu",\n]'
        )
        issue = only_issue(write(tmp_path, text))
        assert issue.key == "pairs[0].secondaries[1]"
        assert issue.line == line_of(text, '"westsu"')
        assert "unknown region 'westsu' (did you mean 'westus'?)" in issue.message

    def test_secondary_equal_to_primary_is_refused(self, tmp_path: Path) -> None:
        """A pair cannot replicate a region into itself."""
        text = MINIMAL.replace('["westus"]', '["westus", "eastus"]')
        issue = only_issue(write(tmp_path, text))
        assert issue.key == "pairs[0].secondaries[1]"
        assert "is the pair's primary" in issue.message

    def test_syntax_error_reports_tomllib_line_and_column(self, tmp_path: Path) -> None:
        """Broken TOML gives the parser's line and column."""
        path = write(tmp_path, MINIMAL + "[vault\nmax_concurrency = 4\n")
        issue = only_issue(path)
        assert issue.line == 11
        assert issue.message.startswith("TOML syntax error:")
        assert "column" in issue.message

    def test_duplicate_key_is_a_syntax_error(self, tmp_path: Path) -> None:
        """A key defined twice is reported at its second definition."""
        issue = only_issue(write(tmp_path, MINIMAL + 'name = "again"\n'))
        assert issue.line == 11
        assert "TOML syntax error" in issue.message

    def test_literal_client_secret_is_refused_without_echo(self, tmp_path: Path) -> None:
        """A client secret in the file is refused, the message says to use client_secret_env."""
        text = MINIMAL + textwrap.dedent("""\
            [credential]
            kind = "client-secret"
            client_id = "app"
            tenant_id = "tenant"
            client_secret = "Sup3r-Secret-Value"
            """)
        issues = errors_of(write(tmp_path, text))
        refused = next(i for i in issues if i.key == "credential.client_secret")
        assert refused.line == line_of(text, "client_secret =")
        assert "client_secret_env" in refused.message
        assert all("Sup3r-Secret-Value" not in str(i) for i in issues)
        with pytest.raises(ConfigError) as caught:
            load_config(tmp_path / "kvdr.toml", env={})
        assert "Sup3r-Secret-Value" not in str(caught.value)

    def test_unset_secret_variable_is_named(self, tmp_path: Path) -> None:
        """client_secret_env naming an unset variable is an error naming that variable."""
        text = MINIMAL + textwrap.dedent("""\
            [credential]
            kind = "client-secret"
            client_id = "app"
            tenant_id = "tenant"
            client_secret_env = "NOT_SET_ANYWHERE"
            """)
        issue = only_issue(write(tmp_path, text))
        assert issue.key == "credential.client_secret_env"
        assert "NOT_SET_ANYWHERE is not set" in issue.message

    def test_vault_url_must_be_https(self, tmp_path: Path) -> None:
        """A plain-http vault URL is refused at its line."""
        text = MINIMAL.replace("https://a.vault", "http://a.vault")
        issue = only_issue(write(tmp_path, text))
        assert (issue.key, issue.line) == ("regions.eastus.vault_url", 2)
        assert issue.message.startswith("'http://a.vault.azure.net' must be an https:// URL")

    def test_account_url_with_a_sas_token_is_refused_without_echo(self, tmp_path: Path) -> None:
        """A SAS token pasted into account_url is refused and not repeated."""
        text = MINIMAL.replace(
            'path = "/tmp/kvdr-blobs"',
            'account_url = "https://a.blob.core.windows.net/?sv=2024&sig=S1gnatureZZ"',
        )
        issue = only_issue(write(tmp_path, text))
        assert issue.key == "storage.account_url"
        assert "must not carry a query" in issue.message
        assert "S1gnatureZZ" not in str(issue)

    def test_two_storage_backends_conflict(self, tmp_path: Path) -> None:
        """Choosing two storage backends at once is an error at the second."""
        text = MINIMAL.replace(
            'path = "/tmp/kvdr-blobs"',
            'path = "/tmp/kvdr-blobs"\naccount_url = "https://a.blob.core.windows.net"',
        )
        issue = only_issue(write(tmp_path, text))
        assert issue.key == "storage.path"
        assert "conflicts with account_url" in issue.message

    def test_connection_string_errors_never_quote_it(self, tmp_path: Path) -> None:
        """A malformed connection string is refused without showing its text."""
        text = MINIMAL.replace('path = "/tmp/kvdr-blobs"', 'connection_string = "justAKeyZZZ9"')
        issue = only_issue(write(tmp_path, text))
        assert issue.key == "storage.connection_string"
        assert "justAKeyZZZ9" not in str(issue)

    def test_missing_file_is_named(self, tmp_path: Path) -> None:
        """A file that does not exist is one issue naming it."""
        missing = tmp_path / "nope.toml"
        [issue] = check_config(missing, {})
        assert issue.file == str(missing)
        assert issue.message == "file not found"


class TestSeveralErrors:
    """All problems of a file are reported together, in line order."""

    TEXT = """\
        [daemon]
        listen = "localhost"
        colour = "blue"

        [regions.eastus]
        vault_url = "https://a.vault.azure.net"

        [storage]

        [replication]
        poll_interval = -1

        [[pairs]]
        name = "bad name!"
        primary = "centralus"
        secondaries = []
        kinds = ["secret", "blob"]
        """

    def test_every_error_is_listed_with_its_line(self, tmp_path: Path) -> None:
        """Eight mistakes give eight located errors, sorted by line."""
        issues = errors_of(write(tmp_path, self.TEXT))
        found = [(i.key, i.line) for i in issues]
        assert found == [
            ("daemon.listen", 2),
            ("daemon.colour", 3),
            ("storage", 8),
            ("replication.poll_interval", 11),
            ("pairs[0].name", 14),
            ("pairs[0].primary", 15),
            ("pairs[0].secondaries", 16),
            ("pairs[0].kinds[1]", 17),
        ]

    def test_config_error_lists_them_all(self, tmp_path: Path) -> None:
        """load_config raises one ConfigError whose text has every problem."""
        path = write(tmp_path, self.TEXT)
        with pytest.raises(ConfigError) as caught:
            load_config(path, env={})
        assert len(caught.value.issues) == 8
        text = str(caught.value)
        assert text.startswith("8 configuration errors:")
        assert f"{path}:17: pairs[0].kinds[1]: 'blob' is not a kind" in text
