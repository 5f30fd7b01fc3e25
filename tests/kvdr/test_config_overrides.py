"""The configuration file: `KVDR__...` environment overrides and the checks between
pairs (kvdr/_config_load.py, kvdr/_config_pairs.py)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from kvdr.config import (
    ConfigIssue,
    check_config,
    load_config,
)
from tests.kvdr.test_config import MINIMAL, errors_of, only_issue, write
from vault.models import ItemKind, VaultRef


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
