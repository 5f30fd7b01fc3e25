"""`[failover]`: where the control records live, and how regions are fenced.

    [failover]
    store_timeout = "5s"            # each call to one control store
    fence = "azure-network-deny"    # or "emulator-readonly", or "none" (the default)
    fence_allow_ips = ["203.0.113.7"]   # kvdr's own addresses, kept allowed by the fence
    management_url = "https://management.azure.com"

    [[failover.control_stores]]     # none: the records live in [storage]; else 1 or 3,
    connection_string_env = "..."   # each with the keys of [storage], ideally in
    container = "kvdr-control"      # three regions (a transition needs two of three)

    [[failover.hooks]]              # what runs on every transition of a pair
    kind = "webhook"
    url = "https://hooks.example.com/kvdr"
    secret_env = "KVDR_HOOK_SECRET" # or secret_file = "/run/secrets/hook"; never inline
    timeout = "5s"
    retries = 3
    backoff = "1s"

    [[failover.hooks]]
    kind = "command"
    argv = ["/usr/local/bin/kvdr-dns-follow"]
    timeout = "30s"

Each store and each hook is read on its own (a hook through a discriminated union on
`kind`), so one bad table does not hide the others; errors name `failover.hooks[i].key`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Annotated, Any, Literal

from failover.hooks import CommandHook, Hook, WebhookHook
from failover.settings import FENCE_KINDS, MODES, FailoverSettings
from kvdr._config_fields import Invalid, Problems, choice, integer, text_list
from kvdr._config_lines import KeyPath
from kvdr._config_model import (
    Check,
    Duration,
    DurationOrZero,
    EnvName,
    KindSection,
    Section,
    Text,
    build,
    each,
    kind_of,
    kind_union,
    read_kind,
    read_section,
    setting,
    tables,
)
from kvdr._config_storage import read_storage
from kvdr._config_vaults import https_base_url
from replicator.settings import PairSettings
from storage.settings import StorageSettings


def _addresses(value: object) -> tuple[str, ...]:
    items = text_list(value)
    for index, item in enumerate(items):
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise Invalid(f"{item[:60]!r} is not an IP address or CIDR range", at=index) from None
    return items


class FailoverSection(Section):
    section = "failover"
    # Each store is a table with the keys of [storage], read on its own below.
    elsewhere = frozenset({"control_stores", "hooks"})

    store_timeout_seconds: Duration = setting(
        FailoverSettings.store_timeout_seconds,
        "each call to one control store; a store that does not answer within it counts "
        "against the transition",
    )
    epoch_check_interval_seconds: Duration = setting(
        FailoverSettings.epoch_check_interval_seconds,
        "how often the daemon reads each pair's control record",
    )
    epoch_validity_seconds: Duration = setting(
        FailoverSettings.epoch_validity_seconds,
        "a reading of the control record allows kvdr's writes this long; a transition "
        "waits this long after its commit before the new primary is reported ready",
    )
    require_approvals: Annotated[int, Check(integer(0, 10), "integer")] = setting(
        FailoverSettings.require_approvals,
        "distinct `kvdr failover approve` entries promote and switchover wait for",
    )
    approval_window_seconds: Duration = setting(
        FailoverSettings.approval_window_seconds,
        "an approval counts this long after it was given",
    )
    mode: Annotated[str, Check(choice(MODES), "string")] = setting(
        FailoverSettings.mode,
        "manual: a person promotes; automatic: the lease holder promotes when the "
        "active region is down, the lag was within the objective and a majority agrees",
    )
    automatic_after_seconds: Duration = setting(
        FailoverSettings.automatic_after_seconds,
        "automatic mode: how long the active region must have been down",
    )
    probe_interval_seconds: Duration = setting(
        FailoverSettings.probe_interval_seconds,
        "one health probe per region this often",
    )
    probe_timeout_seconds: Duration = setting(
        FailoverSettings.probe_timeout_seconds,
        "a probe that has no answer within it failed",
    )
    down_after: Annotated[int, Check(integer(1, 100), "integer")] = setting(
        FailoverSettings.down_after, "failed probes within `down_window` that make a region down"
    )
    down_window_seconds: Duration = setting(
        FailoverSettings.down_window_seconds,
        "the window `down_after` counts failures in",
    )
    up_after: Annotated[int, Check(integer(1, 100), "integer")] = setting(
        FailoverSettings.up_after, "successful probes in a row that make a down region up"
    )
    canary_secret: Text | None = setting(
        None,
        "a secret every probe reads, proving the data plane serves values (absent: one "
        "listing page proves the vault answers)",
    )
    control_stores: Annotated[list[Any], tables("store", "failover.control_stores")] = []
    fence: Annotated[str, Check(choice(FENCE_KINDS), "string")] = setting(
        FailoverSettings.fence,
        "how a region that is not active is fenced against application writes: "
        "`emulator-readonly`, `azure-network-deny` (needs `resource_id` on every region "
        "of every pair) or `none` (nothing stops them)",
    )
    fence_allow_ips: Annotated[tuple[str, ...], Check(_addresses, "array of strings")] = setting(
        FailoverSettings.fence_allow_ips,
        "kvdr's own addresses (IP or CIDR): the network fence keeps them allowed, and "
        "`kvdr failover check` looks for them in a secondary's rules",
    )
    management_url: Annotated[str, Check(partial(https_base_url, shown=False), "string")] = setting(
        FailoverSettings.management_url,
        "Azure Resource Manager's base URL; a region's `management_url` overrides it",
    )

    # Each hook is a table of its own kind, read by read_hooks below.
    hooks: Annotated[list[Any], tables("hook", "failover.hooks")] = []


def read_failover(raw: object, env: Mapping[str, str], problems: Problems) -> FailoverSettings:
    path: KeyPath = ("failover",)
    section = read_section(FailoverSection, raw, path, problems)
    where = (*path, "control_stores")
    body = raw.get("control_stores") if isinstance(raw, dict) else None
    # Each store takes the keys of [storage].
    stores: list[StorageSettings] = each(
        body, where, lambda table, at: read_storage(table, env, problems, at)
    )
    # A broken table is reported where it is; the count is checked on sound ones only.
    complete = isinstance(body, list) and len(stores) == len(body)
    if complete and len(stores) not in (0, 1, 3):
        problems.error(
            where,
            f"must be one or three stores, got {len(stores)}: with two, losing either "
            "stops every transition; three survive the loss of one region",
        )
    if not complete or len(stores) not in (0, 1, 3):
        stores = []
    if (
        section is not None
        and section.epoch_validity_seconds <= section.epoch_check_interval_seconds
    ):
        problems.error(
            (*path, "epoch_validity"),
            "must be longer than epoch_check_interval: a reading must outlive the wait "
            "for the next one, or kvdr stops writing between readings",
        )
        return FailoverSettings(control_stores=tuple(stores))
    hooks = read_hooks(
        raw.get("hooks") if isinstance(raw, dict) else None, (*path, "hooks"), problems
    )
    if section is None:
        return FailoverSettings(control_stores=tuple(stores), hooks=hooks)
    return build(FailoverSettings, section, control_stores=tuple(stores), hooks=hooks)


def check_fence_regions(
    failover: FailoverSettings, pairs: Sequence[PairSettings], problems: Problems
) -> None:
    """The network fence works through each vault's resource id: refuse it when a
    region of a pair has none, naming the region."""
    if failover.fence != "azure-network-deny":
        return
    for pair in pairs:
        for ref in (pair.primary, *pair.secondaries):
            if ref.resource_id is None:
                problems.error(
                    ("regions", ref.region, "resource_id"),
                    f'required by [failover] fence = "azure-network-deny": region '
                    f"{ref.region} of pair {pair.name} has no resource_id, so it cannot "
                    "be fenced",
                )


# -- [[failover.hooks]] --------------------------------------------------------------

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
    timeout_seconds: Duration = setting(_DEFAULT_WEBHOOK.timeout_seconds, "per attempt")
    retries: Annotated[int, Check(integer(0, 10), "integer")] = setting(
        _DEFAULT_WEBHOOK.retries, "more attempts after a failed one (5xx, 429, no answer)"
    )
    backoff_seconds: DurationOrZero = setting(
        _DEFAULT_WEBHOOK.backoff_seconds,
        "wait before the first retry, doubled each time",
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
    timeout_seconds: Duration = setting(_DEFAULT_COMMAND.timeout_seconds, "killed after this long")
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
