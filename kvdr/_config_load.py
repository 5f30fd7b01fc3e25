"""Loading a configuration file into a `KvdrConfig`, collecting every problem."""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Concatenate, Literal, ParamSpec, TypeVar

from backups.settings import AuditSettings, BackupSettings
from failover.settings import FailoverSettings
from kvdr._config_audit import read_audit
from kvdr._config_backups import read_backups
from kvdr._config_daemon import DaemonSettings, read_daemon
from kvdr._config_drills import DrillSchedule, read_drills, read_environment
from kvdr._config_env import apply_env_overrides
from kvdr._config_failover import check_fence_regions, read_failover
from kvdr._config_fields import Problem, Problems, suggest
from kvdr._config_lines import KeyPath, locate_keys
from kvdr._config_pairs import read_pairs
from kvdr._config_storage import read_storage
from kvdr._config_tuning import read_replication, read_vault
from kvdr._config_vaults import declared_regions, read_credential, read_regions
from replicator.settings import DEFAULT_RPO_SECONDS, ReplicatorSettings
from storage.settings import AzureBlobSettings, LocalFolderSettings
from vault.models import VaultRef
from vault.settings import CredentialSettings, VaultSettings


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a configuration: where it is and what is wrong.

    `line` is None when the key is not written in the file (a missing key is reported at
    its table's line when the table is written) or when it comes from the environment
    variable named in `variable`.
    """

    file: str
    key: str
    line: int | None
    message: str
    variable: str | None = None
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        variable = f"env {self.variable}" if self.variable else ""
        warning = "warning" if self.severity == "warning" else ""
        return ": ".join(p for p in (where, variable, self.key, warning, self.message) if p)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class ConfigError(Exception):
    """A configuration that cannot be used; `issues` lists every error found."""

    def __init__(self, issues: Sequence[ConfigIssue]) -> None:
        self.issues = list(issues)
        count = len(self.issues)
        head = f"{count} configuration error{'s' if count != 1 else ''}"
        super().__init__("\n".join([f"{head}:", *(f"  {issue}" for issue in self.issues)]))


@dataclass(frozen=True)
class KvdrConfig:
    """Everything the daemon needs, read from one TOML file (plus the environment)."""

    source: Path
    daemon: DaemonSettings
    credential: CredentialSettings
    regions: dict[str, VaultRef]
    storage: AzureBlobSettings | LocalFolderSettings
    replicator: ReplicatorSettings
    vault: VaultSettings
    # Problems that do not stop kvdr, for the daemon to log at start.
    warnings: tuple[ConfigIssue, ...] = ()
    # `[backups]`: None when the section is absent or disabled.
    backups: BackupSettings | None = None
    # `[failover]`: where the control records live (default: in [storage]).
    failover: FailoverSettings = field(default_factory=FailoverSettings)
    # `environment`: drill | staging | production (None: not marked; drills refuse it).
    environment: str | None = None
    # `[[drills]]`: drills the daemon runs on a schedule.
    drills: tuple[DrillSchedule, ...] = ()
    # `[audit]`: the audit trail (None: off, see kvdr/_config_audit.py).
    audit: AuditSettings | None = None

    def summary(self) -> dict[str, Any]:
        """What the configuration sets up, safe to print (no secret, no connection string)."""
        storage: dict[str, Any]
        if isinstance(self.storage, LocalFolderSettings):
            storage = {"backend": "local-folder", "path": self.storage.path}
        else:
            storage = {
                "backend": "azure-blob",
                "container": self.storage.container,
                "account_url": self.storage.account_url,
                "connection_string": self.storage.connection_string is not None,
                "secondary_account_url": self.storage.secondary_account_url,
            }
        return {
            "listen": f"{self.daemon.listen_host}:{self.daemon.listen_port}",
            "credential": self.credential.kind,
            "regions": {name: ref.url for name, ref in self.regions.items()},
            "storage": storage,
            "pairs": [
                {
                    "name": pair.name,
                    "primary": pair.primary.region,
                    "secondaries": [ref.region for ref in pair.secondaries],
                    "kinds": sorted(kind.value for kind in pair.kinds),
                    "include": list(pair.include),
                    "exclude": list(pair.exclude),
                    "adopt": pair.adopt,
                    "rpo_objective_seconds": pair.rpo_objective_seconds,
                }
                for pair in self.replicator.pairs
            ],
        }


def format_key(path: KeyPath) -> str:
    """A key path as written in messages: `pairs[0].secondaries[1]`, `regions.eastus`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def load_config(path: Path, env: Mapping[str, str] = os.environ) -> KvdrConfig:
    """Read and validate the configuration file at `path`; raise `ConfigError`."""
    return _config_or_raise(*_load_file(Path(path), env))


def check_config(path: Path, env: Mapping[str, str] = os.environ) -> list[ConfigIssue]:
    """Every problem of the configuration at `path`, errors and warnings, by line."""
    return _load_file(Path(path), env)[1]


def parse_config(text: str, source: Path | str, env: Mapping[str, str] = os.environ) -> KvdrConfig:
    """Like `load_config`, for TOML text; `source` names it in messages."""
    return _config_or_raise(*_load_text(text, str(source), env))


def _config_or_raise(config: KvdrConfig | None, issues: list[ConfigIssue]) -> KvdrConfig:
    if config is None:
        raise ConfigError([issue for issue in issues if issue.severity == "error"])
    return config


def _load_file(path: Path, env: Mapping[str, str]) -> tuple[KvdrConfig | None, list[ConfigIssue]]:
    file = str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, [ConfigIssue(file, "", None, "file not found")]
    except IsADirectoryError:
        return None, [ConfigIssue(file, "", None, "is a directory, not a configuration file")]
    except OSError as exc:
        return None, [ConfigIssue(file, "", None, f"cannot read: {exc.strerror or exc}")]
    try:
        # utf-8-sig: editors on Windows may prefix a byte-order mark.
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return None, [ConfigIssue(file, "", line, "not UTF-8 text")]
    config, issues = _load_text(text, file, env)
    if config is not None:
        config = dataclasses.replace(config, source=path)
    return config, issues


T = TypeVar("T")
P = ParamSpec("P")
SECTIONS = (
    "daemon",
    "credential",
    "regions",
    "storage",
    "replication",
    "vault",
    "pairs",
    "backups",
    "failover",
    "environment",
    "drills",
    "audit",
)
_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


def _load_text(
    text: str, file: str, env: Mapping[str, str]
) -> tuple[KvdrConfig | None, list[ConfigIssue]]:
    try:
        doc: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return None, [_syntax_issue(file, text, str(exc))]

    problems = Problems()
    origins = apply_env_overrides(doc, env, problems)
    for section in doc:
        if section not in SECTIONS:
            problems.error((section,), f"unknown section {section!r}{suggest(section, SECTIONS)}")

    def guarded(
        section: str, read: Callable[Concatenate[object, P], T], *args: P.args, **kw: P.kwargs
    ) -> T | None:
        # The settings dataclasses of other parts may validate in __post_init__; a value
        # they refuse is one more problem of the section, not a crash of the loader.
        try:
            return read(doc.get(section), *args, **kw)
        except (ValueError, TypeError) as exc:
            problems.error((section,), str(exc))
            return None

    daemon = guarded("daemon", read_daemon, env, problems)
    credential = guarded("credential", read_credential, env, problems)
    regions = guarded("regions", read_regions, problems) or {}
    storage = guarded("storage", read_storage, env, problems)
    replication = guarded("replication", read_replication, problems, env)
    vault = guarded("vault", read_vault, problems)
    declared = declared_regions(doc.get("regions"))
    default_rpo = replication[1] if replication else DEFAULT_RPO_SECONDS
    pairs = guarded("pairs", read_pairs, regions, declared, default_rpo, problems)
    writer = daemon.instance_id if daemon is not None else ""
    backups = guarded("backups", read_backups, regions, declared, env, problems, writer)
    failover = guarded("failover", read_failover, env, problems)
    if failover is not None and pairs is not None:
        check_fence_regions(failover, pairs, problems)
    environment = read_environment(doc.get("environment"), problems)
    drills = read_drills(doc.get("drills"), problems)
    audit = guarded("audit", read_audit, backups, problems)

    lines = locate_keys(text)
    issues = [_issue(file, problem, lines, origins) for problem in problems.items]
    # By line, as an editor shows them; problems from the environment after the file's.
    issues.sort(key=lambda issue: (issue.line is None, issue.line or 0))
    if (
        problems.has_errors
        or daemon is None
        or credential is None
        or storage is None
        or replication is None
        or vault is None
        or pairs is None
    ):
        return None, issues
    config = KvdrConfig(
        source=Path(file),
        daemon=daemon,
        credential=credential,
        regions=regions,
        storage=storage,
        replicator=dataclasses.replace(replication[0], pairs=pairs),
        vault=vault,
        warnings=tuple(issues),
        backups=backups,
        failover=failover or FailoverSettings(),
        environment=environment,
        drills=drills,
        audit=audit,
    )
    return config, issues


def _syntax_issue(file: str, text: str, message: str) -> ConfigIssue:
    match = _TOML_POSITION.search(message)
    if match:
        line = int(match.group(1))
        detail = f"{message[: match.start()]} (column {match.group(2)})"
    else:
        line = text.count("\n") + 1
        detail = message.replace(" (at end of document)", " at the end of the file")
    return ConfigIssue(file, "", line, f"TOML syntax error: {detail}")


def _issue(
    file: str, problem: Problem, lines: dict[KeyPath, int], origins: dict[KeyPath, str]
) -> ConfigIssue:
    issue = ConfigIssue(
        file, format_key(problem.path), None, problem.message, problem.variable, problem.severity
    )
    if problem.variable is not None:
        return issue
    # The nearest of: a variable that set this key or an ancestor, or the line in the file
    # that defines it or its table. A variable wins at equal depth: it overrides the file.
    for depth in range(len(problem.path), 0, -1):
        current = problem.path[:depth]
        if current in origins:
            return dataclasses.replace(issue, variable=origins[current])
        if current in lines:
            return dataclasses.replace(issue, line=lines[current])
    return issue
