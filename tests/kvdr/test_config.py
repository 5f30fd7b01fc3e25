"""Loading kvdr's TOML configuration: valid files, located errors, env overrides, local stack."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from kvdr.config import (
    LOCAL_SOURCE,
    ConfigError,
    ConfigIssue,
    DaemonSettings,
    KvdrConfig,
    check_config,
    load_config,
    local_config,
    local_events_secret,
    local_state_key,
    parse_config,
    render_local_toml,
    write_local_config,
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


class TestEnvironmentOverrides:
    """KVDR__SECTION__KEY variables override any key of the file."""

    def test_scalar_override_is_parsed_as_toml(self, tmp_path: Path) -> None:
        """Numbers, booleans and plain words become the right types."""
        env = {
            "KVDR__VAULT__MAX_CONCURRENCY": "4",
            "KVDR__VAULT__VERIFY_CHALLENGE_RESOURCE": "false",
            "KVDR__DAEMON__LISTEN": "127.0.0.1:9999",
            "KVDR__REPLICATION__POLL_INTERVAL": "750ms",
        }
        config = load_config(write(tmp_path, MINIMAL), env=env)
        assert config.vault.max_concurrency == 4
        assert config.vault.verify_challenge_resource is False
        assert config.daemon.listen_port == 9999
        assert config.replicator.poll_interval_seconds == 0.75

    def test_names_are_case_insensitive(self, tmp_path: Path) -> None:
        """Lower- or mixed-case variable names reach the same keys."""
        config = load_config(write(tmp_path, MINIMAL), env={"kvdr__Daemon__Log_Level": "error"})
        assert config.daemon.log_level == "error"

    def test_pairs_are_addressed_by_index(self, tmp_path: Path) -> None:
        """KVDR__PAIRS__0__ADOPT changes the first pair; an array replaces a list."""
        env = {
            "KVDR__PAIRS__0__ADOPT": "true",
            "KVDR__PAIRS__0__KINDS": '["secret", "key"]',
            "KVDR__PAIRS__0__RPO_OBJECTIVE": '"90s"',
        }
        pair = load_config(write(tmp_path, MINIMAL), env=env).replicator.pairs[0]
        assert pair.adopt is True
        assert pair.kinds == frozenset({ItemKind.SECRET, ItemKind.KEY})
        assert pair.rpo_objective_seconds == 90.0

    def test_a_pair_can_be_added_one_past_the_end(self, tmp_path: Path) -> None:
        """Index len(pairs) appends a pair; a plain word for a list is its one element."""
        env = {
            "KVDR__REGIONS__CENTRALUS__VAULT_URL": "https://c.vault.azure.net",
            "KVDR__PAIRS__1__NAME": "second",
            "KVDR__PAIRS__1__PRIMARY": "westus",
            "KVDR__PAIRS__1__SECONDARIES": "centralus",
        }
        config = load_config(write(tmp_path, MINIMAL), env=env)
        second = config.replicator.pairs[1]
        assert second.name == "second"
        assert second.primary == config.regions["westus"]
        assert second.secondaries == (VaultRef("centralus", "https://c.vault.azure.net"),)

    def test_region_url_override(self, tmp_path: Path) -> None:
        """KVDR__REGIONS__EASTUS__VAULT_URL replaces the file's URL."""
        env = {"KVDR__REGIONS__EASTUS__VAULT_URL": "https://moved.vault.azure.net"}
        config = load_config(write(tmp_path, MINIMAL), env=env)
        assert config.regions["eastus"].url == "https://moved.vault.azure.net"
        assert config.replicator.pairs[0].primary.url == "https://moved.vault.azure.net"

    def test_bad_override_names_the_variable(self, tmp_path: Path) -> None:
        """An invalid value from the environment names the variable instead of a line."""
        issue = only_issue(write(tmp_path, MINIMAL), {"KVDR__PAIRS__0__ADOPT": "yes"})
        assert issue.key == "pairs[0].adopt"
        assert issue.line is None
        assert issue.variable == "KVDR__PAIRS__0__ADOPT"
        assert str(issue).startswith(f"{tmp_path / 'kvdr.toml'}: env KVDR__PAIRS__0__ADOPT: ")

    def test_unknown_key_from_the_environment_is_an_error(self, tmp_path: Path) -> None:
        """A misspelt override is refused like a misspelt key, with a suggestion."""
        issue = only_issue(write(tmp_path, MINIMAL), {"KVDR__VAULT__MAX_CONCURENCY": "4"})
        assert issue.variable == "KVDR__VAULT__MAX_CONCURENCY"
        assert "did you mean 'max_concurrency'?" in issue.message

    def test_index_gap_is_refused(self, tmp_path: Path) -> None:
        """An index past the end of the array (other than appending) is an error."""
        issue = only_issue(write(tmp_path, MINIMAL), {"KVDR__PAIRS__5__NAME": "x"})
        assert issue.variable == "KVDR__PAIRS__5__NAME"
        assert "index 5 would leave a gap" in issue.message

    def test_incomplete_pair_from_the_environment_names_its_variable(self, tmp_path: Path) -> None:
        """A pair created from the environment but missing keys points at that variable."""
        issues = errors_of(write(tmp_path, MINIMAL), {"KVDR__PAIRS__1__NAME": "half"})
        assert {i.key for i in issues} == {"pairs[1].primary", "pairs[1].secondaries"}
        assert {i.variable for i in issues} == {"KVDR__PAIRS__1__NAME"}

    def test_literal_client_secret_from_the_environment_is_refused(self, tmp_path: Path) -> None:
        """The rule for client_secret holds for overrides too, without echoing the value."""
        env = {"KVDR__CREDENTIAL__CLIENT_SECRET": "EnvSecretValue1"}
        issue = only_issue(write(tmp_path, MINIMAL), env)
        assert "client_secret_env" in issue.message
        assert "EnvSecretValue1" not in str(issue)


class TestPairChecks:
    """Pairs are checked against each other."""

    BASE = """\
        [regions.eastus]
        vault_url = "https://a.vault.azure.net"
        [regions.westus]
        vault_url = "https://b.vault.azure.net"
        [regions.centralus]
        vault_url = "https://c.vault.azure.net"
        [storage]
        path = "/tmp/x"
        """

    def pairs(self, tmp_path: Path, *bodies: str) -> list[ConfigIssue]:
        text = textwrap.dedent(self.BASE) + "".join(
            f"[[pairs]]\n{textwrap.dedent(body)}" for body in bodies
        )
        return check_config(write(tmp_path, text), {})

    def test_same_primary_overlapping_selection_is_an_error(self, tmp_path: Path) -> None:
        """Two pairs from one primary that select the same name are refused with an example."""
        issues = self.pairs(
            tmp_path,
            'name = "a"\nprimary = "eastus"\nsecondaries = ["westus"]\ninclude = ["db-*"]\n',
            'name = "b"\nprimary = "eastus"\nsecondaries = ["centralus"]\n',
        )
        [issue] = issues
        assert issue.severity == "error"
        assert issue.key == "pairs[1]"
        assert "selects the same items as pairs[0] ('a')" in issue.message
        assert "'db-x'" in issue.message

    def test_globs_that_split_the_names_are_accepted(self, tmp_path: Path) -> None:
        """include on one pair and the same exclude on the other is a clean split."""
        issues = self.pairs(
            tmp_path,
            'name = "a"\nprimary = "eastus"\nsecondaries = ["westus"]\ninclude = ["db-*"]\n',
            'name = "b"\nprimary = "eastus"\nsecondaries = ["centralus"]\nexclude = ["db-*"]\n',
        )
        assert issues == []

    def test_two_catch_all_pairs_split_by_excludes_warn(self, tmp_path: Path) -> None:
        """Both including '*' with excludes the check cannot prove disjoint is a warning."""
        issues = self.pairs(
            tmp_path,
            'name = "a"\nprimary = "eastus"\nsecondaries = ["westus"]\nexclude = ["[a-m]*"]\n',
            'name = "b"\nprimary = "eastus"\nsecondaries = ["centralus"]\nexclude = ["[!a-m]*"]\n',
        )
        [issue] = issues
        assert issue.severity == "warning"
        assert "include '*'" in issue.message

    def test_different_kinds_do_not_overlap(self, tmp_path: Path) -> None:
        """Pairs that mirror different kinds may select the same names."""
        issues = self.pairs(
            tmp_path,
            'name = "a"\nprimary = "eastus"\nsecondaries = ["westus"]\n',
            'name = "b"\nprimary = "eastus"\nsecondaries = ["westus"]\nkinds = ["key"]\n',
        )
        assert issues == []

    def test_two_pairs_writing_one_secondary_overlap(self, tmp_path: Path) -> None:
        """Two primaries mirroring the same names into one secondary are refused."""
        issues = self.pairs(
            tmp_path,
            'name = "a"\nprimary = "eastus"\nsecondaries = ["westus"]\n',
            'name = "b"\nprimary = "centralus"\nsecondaries = ["westus"]\n',
        )
        [issue] = issues
        assert "the same secondary 'westus'" in issue.message

    def test_pair_names_are_unique_ignoring_case(self, tmp_path: Path) -> None:
        """A second pair named like the first (in any case) is refused at its name."""
        issues = self.pairs(
            tmp_path,
            'name = "Main"\nprimary = "eastus"\nsecondaries = ["westus"]\n',
            'name = "main"\nprimary = "centralus"\nsecondaries = ["eastus"]\nkinds = ["key"]\n',
        )
        [issue] = issues
        assert issue.key == "pairs[1].name"
        assert "already used by pairs[0]" in issue.message


class TestLocalConfig:
    """The built-in configuration of the local two-region stack."""

    def test_local_config_loads(self, tmp_path: Path) -> None:
        """eastus -> westus on 8443/8444, emulator credential, Azurite on 10000."""
        config = local_config(tmp_path)
        assert config.source == Path(LOCAL_SOURCE)
        assert config.regions == {
            "eastus": VaultRef("eastus", "https://127.0.0.1:8443"),
            "westus": VaultRef("westus", "https://127.0.0.1:8444"),
        }
        assert config.credential.kind == "emulator"
        assert config.credential.emulator_state_dir == str(tmp_path / "vaults" / "eastus")
        assert isinstance(config.storage, AzureBlobSettings)
        assert config.storage.connection_string is not None
        assert "AccountName=devstoreaccount1" in config.storage.connection_string
        assert "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;" in (
            config.storage.connection_string
        )
        [demo] = config.replicator.pairs
        assert (demo.name, demo.primary.region) == ("demo", "eastus")
        assert [ref.region for ref in demo.secondaries] == ["westus"]
        assert demo.kinds == frozenset({ItemKind.SECRET})
        assert config.vault.verify_challenge_resource is False
        assert config.daemon.listen_port == 8080
        assert config.warnings == ()

    def test_rendered_with_other_ports(self, tmp_path: Path) -> None:
        """Every port of the template can be moved."""
        config = local_config(
            tmp_path, eastus_port=18443, westus_port=18444, blob_port=20000, daemon_port=18080
        )
        assert config.regions["westus"].url == "https://127.0.0.1:18444"
        assert config.daemon.listen_port == 18080
        assert isinstance(config.storage, AzureBlobSettings)
        assert ":20000/devstoreaccount1;" in (config.storage.connection_string or "")

    def test_bad_port_is_refused(self, tmp_path: Path) -> None:
        """A port outside 1-65535 names the parameter."""
        with pytest.raises(ValueError, match="blob_port"):
            render_local_toml(tmp_path, blob_port=70000)

    def test_unusual_state_dir_is_escaped(self, tmp_path: Path) -> None:
        """A folder with quotes and backslashes still renders valid TOML."""
        odd = tmp_path / 'we"ird\\dir'
        config = local_config(odd)
        assert config.daemon.state_dir == odd

    def test_write_local_config_writes_file_and_ca_bundle(self, tmp_path: Path) -> None:
        """The written file loads back; both emulators' CAs land in one bundle."""
        for region, pem in (("eastus", "EAST"), ("westus", "WEST")):
            tls = tmp_path / "vaults" / region / "tls"
            tls.mkdir(parents=True)
            (tls / "ca.pem").write_text(f"-----BEGIN CERTIFICATE-----\n{pem}\n")
        path = tmp_path / "kvdr.toml"
        written = write_local_config(
            path,
            emulator_state_dirs={r: tmp_path / "vaults" / r for r in ("eastus", "westus")},
            blob_connection_string="UseDevelopmentStorage=true",
        )
        loaded = load_config(path, env={})
        assert loaded.regions == written.regions
        bundle = Path(loaded.vault.ca_file or "")
        assert bundle == tmp_path / "vaults" / "ca-bundle.pem"
        assert "EAST" in bundle.read_text() and "WEST" in bundle.read_text()
        assert isinstance(loaded.storage, AzureBlobSettings)
        assert loaded.storage.connection_string == "UseDevelopmentStorage=true"

    def test_template_file_is_the_package_data(self, tmp_path: Path) -> None:
        """kvdr/local.toml is the template (placeholders inside TOML strings); its events
        secret and state key are the state folder's files, made 0600 on first use."""
        template = Path(__file__).parents[2] / "kvdr" / "local.toml"
        assert "${eastus_port}" in template.read_text()
        rendered = render_local_toml(tmp_path)
        assert "${" not in rendered
        secret = local_events_secret(tmp_path)
        assert (tmp_path / "events.secret").stat().st_mode & 0o777 == 0o600
        state_key = local_state_key(tmp_path)
        assert (tmp_path / "state.key").stat().st_mode & 0o777 == 0o600
        config = parse_config(rendered, "x", {})
        assert config.replicator.pairs[0].name == "demo"
        assert config.daemon.events_secret == secret and len(secret) >= 32
        assert config.replicator.state_key == state_key != secret


class TestRegionSku:
    def test_sku_defaults_to_standard_and_is_read(self, tmp_path: Path) -> None:
        """`sku` is optional (standard), case-insensitive, and lands on the VaultRef."""
        text = MINIMAL.replace(
            'vault_url = "https://b.vault.azure.net"',
            'vault_url = "https://b.vault.azure.net"\nsku = "Premium"',
        )
        config = load_config(write(tmp_path, text), env={})
        assert config.regions["eastus"].sku == "standard"
        assert config.regions["westus"].sku == "premium"
        assert config.replicator.pairs[0].secondaries[0].sku == "premium"

    def test_unknown_sku_is_located_with_the_choices(self, tmp_path: Path) -> None:
        """A misspelt sku is an error at its line naming the valid ones."""
        text = MINIMAL.replace(
            'vault_url = "https://b.vault.azure.net"',
            'vault_url = "https://b.vault.azure.net"\nsku = "premum"',
        )
        issue = only_issue(write(tmp_path, text))
        assert (issue.key, issue.line) == ("regions.westus.sku", 5)
        assert "'premium'" in issue.message and "managed-hsm" in issue.message
