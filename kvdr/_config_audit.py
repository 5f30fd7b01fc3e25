"""`[audit]`: the tamper-evident audit trail (docs/audit.md).

    [audit]
    enabled = true          # default: on when [backups] has a signer that can sign
    retention = "400d"      # whole segments older than this are deleted
    flush_interval = "5s"

The trail is signed by the `[backups]` signers. Without one it cannot be signed, and an
unsigned trail proves nothing: `enabled = true` without a signer is an error, and with
`enabled` unset the trail is off and `kvdr config check` warns.
"""

from __future__ import annotations

from typing import Annotated

from backups.settings import AuditSettings, BackupSettings, PinnedSignerSettings
from kvdr._config_fields import Problems, integer
from kvdr._config_lines import KeyPath
from kvdr._config_model import Check, Duration, Flag, Section, build, read_section, setting

_A = AuditSettings()
DAY = 86400.0


class AuditSection(Section):
    section = "audit"

    enabled: Flag | None = setting(
        None,
        "`false` turns the audit trail off; `true` requires a `[[backups.signers]]` that can sign",
        shown="on when `[backups]` has a signer",
    )
    retention_seconds: Duration = setting(
        _A.retention_seconds,
        "whole audit segments older than this are deleted (a signed start marker "
        "records where the trail now begins)",
    )
    retention_interval_seconds: Duration = setting(
        _A.retention_interval_seconds,
        "how often the daemon applies the audit retention",
    )
    flush_interval_seconds: Duration = setting(
        _A.flush_interval_seconds,
        "buffered audit entries are written at least this often",
    )
    flush_max_entries: Annotated[int, Check(integer(1, 10_000), "integer")] = setting(
        _A.flush_max_entries, "... or as soon as this many wait (1-10,000)"
    )
    max_buffered: Annotated[int, Check(integer(1, 1_000_000), "integer")] = setting(
        _A.max_buffered,
        "unwritten entries kept while storage is down; beyond, entries are dropped, "
        "counted, and the trail says how many",
    )


def can_sign(backups: BackupSettings | None) -> bool:
    return backups is not None and any(
        not isinstance(s, PinnedSignerSettings) for s in backups.signers
    )


def read_audit(
    raw: object, backups: BackupSettings | None, problems: Problems
) -> AuditSettings | None:
    """The `[audit]` section: None when the trail is off."""
    path: KeyPath = ("audit",)
    section = read_section(AuditSection, raw, path, problems)
    if section is None:
        return None
    if section.enabled is False:
        return None
    if not can_sign(backups):
        why = "the audit trail is signed by a [[backups.signers]] key that can sign"
        if section.enabled:
            problems.error((*path, "enabled"), f"{why}, and none is configured")
        elif raw is not None or backups is not None:
            problems.warning(path, f"{why}; none is configured, so kvdr keeps no audit trail")
        return None
    if section.retention_seconds < DAY:
        problems.error((*path, "retention"), "must be at least 1d")
        return None
    return build(
        AuditSettings, section, max_buffered=max(section.max_buffered, section.flush_max_entries)
    )
