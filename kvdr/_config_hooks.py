"""`[[failover.hooks]]`: what runs on every transition of a pair.

    [[failover.hooks]]
    kind = "webhook"
    url = "https://hooks.example.com/kvdr"
    secret_env = "KVDR_HOOK_SECRET"      # or secret_file = "/run/secrets/hook"; never inline
    timeout = "5s"
    retries = 3
    backoff = "1s"

    [[failover.hooks]]
    kind = "command"
    argv = ["/usr/local/bin/kvdr-dns-follow"]
    timeout = "30s"

Each table is read on its own (a discriminated union on `kind`), so one bad table does
not hide the others; errors name `failover.hooks[i].key`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from failover.hooks import CommandHook, Hook, WebhookHook
from kvdr._config_fields import Problems, integer, text_list
from kvdr._config_lines import KeyPath
from kvdr._config_model import (
    Check,
    Duration,
    DurationOrZero,
    EnvName,
    KindSection,
    Text,
    build,
    kind_of,
    kind_union,
    read_kind,
    setting,
)

_DEFAULT_WEBHOOK = WebhookHook("https://placeholder.invalid/", secret_env="UNUSED")
_DEFAULT_COMMAND = CommandHook(("placeholder",))
_INLINE_SECRET = (
    "a hook's signing secret is never written in the file: name a variable with "
    "secret_env or a file with secret_file"
)


class WebhookTable(KindSection):
    section = "failover.hooks.webhook"
    refused = {"secret": _INLINE_SECRET}
    hints = {"url": " (the https:// address the event is POSTed to)"}
    kind: Literal["webhook"] = setting("webhook", "an HTTP POST of the event, signed")
    url: Text = setting(..., "where the event is POSTed (https; plain http only to loopback)")
    secret_env: EnvName | None = setting(
        None, "variable holding the HMAC-SHA256 signing secret", shown="none"
    )
    secret_file: Text | None = setting(None, "file holding the signing secret", shown="none")
    timeout_seconds: Duration = setting(
        _DEFAULT_WEBHOOK.timeout_seconds, "per attempt", alias="timeout"
    )
    retries: Annotated[int, Check(integer(0, 10), "integer")] = setting(
        _DEFAULT_WEBHOOK.retries, "more attempts after a failed one (5xx, 429, no answer)"
    )
    backoff_seconds: DurationOrZero = setting(
        _DEFAULT_WEBHOOK.backoff_seconds,
        "wait before the first retry, doubled each time",
        alias="backoff",
    )
    name: Text = setting("", "how results and logs name the hook (default: the URL)")
    ca_file: Text | None = setting(None, "CA bundle to trust", shown="system trust")


class CommandTable(KindSection):
    section = "failover.hooks.command"
    hints = {"argv": ' (the program and its arguments: ["/path/to/program", "arg"])'}
    kind: Literal["command"] = setting("command", "a program run with the event")
    argv: Annotated[tuple[str, ...], Check(text_list, "array")] = setting(
        ..., "program and arguments, run without a shell; the event on stdin and in KVDR_*"
    )
    timeout_seconds: Duration = setting(
        _DEFAULT_COMMAND.timeout_seconds, "killed after this long", alias="timeout"
    )
    name: Text = setting("", "how results and logs name the hook (default: the program)")


_HOOKS = {kind_of(m): m for m in (WebhookTable, CommandTable)}
HookTable = kind_union(*_HOOKS.values())


def read_hooks(raw: object, path: KeyPath, problems: Problems) -> tuple[Hook, ...]:
    """The valid hooks of `[[failover.hooks]]` at `path`; every problem recorded."""
    if raw is None or not isinstance(raw, list):
        return ()  # absent, or reported by the section's check
    hooks: list[Hook] = []
    for index, body in enumerate(raw):
        where = (*path, index)
        table = read_kind(HookTable, _HOOKS, body, where, problems)
        try:
            if isinstance(table, WebhookTable):
                if (table.secret_env is None) == (table.secret_file is None):
                    problems.error(
                        (*where, "secret_env"),
                        "set exactly one of secret_env or secret_file: every webhook is signed",
                    )
                    continue
                hooks.append(build(WebhookHook, table))
            elif isinstance(table, CommandTable):
                hooks.append(build(CommandHook, table))
        except ValueError as exc:
            key = "url" if isinstance(table, WebhookTable) else "argv"
            problems.error((*where, key), str(exc))
    return tuple(hooks)
