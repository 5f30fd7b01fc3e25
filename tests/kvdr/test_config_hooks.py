"""`[[failover.hooks]]` (kvdr/_config_failover.py): webhook and command tables, errors at
their key path, no inline secret."""

from __future__ import annotations

import pytest

from failover.hooks import CommandHook, WebhookHook
from kvdr.config import ConfigError, parse_config
from tests.kvdr.test_config_failover import BASE

WEBHOOK = """
[[failover.hooks]]
kind = "webhook"
url = "https://hooks.example.com/kvdr"
secret_env = "KVDR_HOOK_SECRET"
timeout = "2s"
retries = 5
"""
COMMAND = """
[[failover.hooks]]
kind = "command"
argv = ["/usr/local/bin/follow", "--pair", "app"]
timeout = "1m"
"""


def issues(text: str) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as caught:
        parse_config(BASE + text, "kvdr.toml")
    return [(i.key, i.message) for i in caught.value.issues]


class TestHooks:
    def test_webhook_and_command_are_read(self) -> None:
        """Both kinds, in order, with their values and defaults."""
        config = parse_config(BASE + WEBHOOK + COMMAND, "kvdr.toml")
        webhook, command = config.failover.hooks
        assert webhook == WebhookHook(
            "https://hooks.example.com/kvdr",
            secret_env="KVDR_HOOK_SECRET",
            timeout_seconds=2.0,
            retries=5,
        )
        assert command == CommandHook(("/usr/local/bin/follow", "--pair", "app"), 60.0)

    def test_no_hooks_by_default(self) -> None:
        assert parse_config(BASE, "kvdr.toml").failover.hooks == ()

    def test_an_inline_secret_is_refused_without_its_value(self) -> None:
        """`secret = "..."` is an error naming the key, never echoing the value."""
        found = issues(WEBHOOK + 'secret = "s3cr3t-value"\n')
        assert [key for key, _ in found] == ["failover.hooks[0].secret"]
        assert "secret_env" in found[0][1] and "s3cr3t-value" not in found[0][1]

    @pytest.mark.parametrize(
        ("table", "key", "words"),
        [
            ('kind = "email"', "failover.hooks[0].kind", "not one of 'webhook', 'command'"),
            ('kind = "webhook"\nsecret_env = "S"', "failover.hooks[0].url", "missing required key"),
            (
                'kind = "webhook"\nurl = "http://hooks.example.com/"\nsecret_env = "S"',
                "failover.hooks[0].url",
                "must use https",
            ),
            (
                'kind = "webhook"\nurl = "https://h.example.com/"',
                "failover.hooks[0].secret_env",
                "exactly one of secret_env or secret_file",
            ),
            ('kind = "command"\nargv = []', "failover.hooks[0].argv", "non-empty"),
            ('kind = "command"\nargv = ["x", ""]', "failover.hooks[0].argv[1]", "empty string"),
            (
                'kind = "command"\nargv = ["x"]\nurl = "https://h/"',
                "failover.hooks[0].url",
                "unknown",
            ),
            (
                'kind = "webhook"\nurl = "https://h.example.com/"\nsecret_env = "S"\nretries = 99',
                "failover.hooks[0].retries",
                "",
            ),
        ],
    )
    def test_errors_name_the_key_path(self, table: str, key: str, words: str) -> None:
        """Each bad table is one error at its index and key."""
        found = issues(f"\n[[failover.hooks]]\n{table}\n")
        assert len(found) == 1, found
        assert found[0][0] == key and words in found[0][1], found

    def test_hooks_must_be_tables(self) -> None:
        found = issues('\n[failover]\nhooks = "x"\n')
        assert found == [
            ("failover.hooks", "expected an array of tables: write each hook as [[failover.hooks]]")
        ]
