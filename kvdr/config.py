"""kvdr's configuration: one TOML file, read into the settings of every part.

`load_config(path)` returns a `KvdrConfig` or raises `ConfigError` listing every problem
(not just the first), each with its file, dotted key (`pairs[0].secondaries`) and line,
or with the environment variable it came from. `check_config(path)` returns the same
problems, warnings included, for `kvdr config check`. Any key can be overridden from the
environment as `KVDR__<SECTION>__<KEY>` (`KVDR__PAIRS__0__ADOPT=true`).

The file's sections map onto settings that each part defines for itself:

    [daemon]       -> DaemonSettings (kvdr's own)
    [credential]   -> vault.settings.CredentialSettings
    [regions.<n>]  -> vault.models.VaultRef, one per region
    [storage]      -> storage.settings.AzureBlobSettings | LocalFolderSettings
    [replication]  -> replicator.settings.ReplicatorSettings (timing and limits)
    [[pairs]]      -> replicator.settings.PairSettings, in ReplicatorSettings.pairs
    [vault]        -> vault.settings.VaultSettings

The built-in local two-region stack's configuration (`kvdr/local.toml`) comes from
`render_local_toml()`, `local_config()` and `write_local_config()`. Module map:

    kvdr/_config_load.py     ConfigIssue, ConfigError, KvdrConfig, load/check/parse
    kvdr/_config_model.py    Section models: pydantic errors -> problems, never the input;
                             build() copies a section into its settings dataclass
    kvdr/_config_daemon.py   DaemonSettings: [daemon] and who may use the HTTP surface
    kvdr/_config_vaults.py   [credential] (a union on kind) and [regions.<name>]
    kvdr/_config_storage.py  [storage] (and [[backups.replicas]], control stores)
    kvdr/_config_tuning.py   [replication] and [vault]
    kvdr/_config_pairs.py    [[pairs]] and the checks between pairs
    kvdr/_config_backups.py  [backups]: KEKs and signers are unions on kind
    kvdr/_config_failover.py [failover]: control stores, fences, [[failover.hooks]]
    kvdr/_config_drills.py   `environment` and [[drills]]
    kvdr/_config_secrets.py  secrets from `<key>_env` / `<key>_file`, never the file
    kvdr/_config_env.py      KVDR__* environment overrides
    kvdr/_config_lines.py    key path -> line number (tomllib gives no positions)
    kvdr/_config_fields.py   the value checks the models use, and Problems
    kvdr/_config_local.py    the local stack's configuration
    kvdr/config_docs.py      docs/configuration.md's key reference, from the models
"""

from __future__ import annotations

from kvdr._config_daemon import DaemonSettings
from kvdr._config_load import (
    ConfigError,
    ConfigIssue,
    KvdrConfig,
    check_config,
    format_key,
    load_config,
    parse_config,
)
from kvdr._config_local import (
    LOCAL_SOURCE,
    local_config,
    local_events_secret,
    local_state_key,
    render_local_toml,
    write_local_config,
)
from kvdr.timegrammar import DurationError, format_duration, parse_duration

__all__ = [
    "LOCAL_SOURCE",
    "ConfigError",
    "ConfigIssue",
    "DaemonSettings",
    "DurationError",
    "KvdrConfig",
    "check_config",
    "format_duration",
    "format_key",
    "load_config",
    "local_config",
    "local_events_secret",
    "local_state_key",
    "parse_config",
    "parse_duration",
    "render_local_toml",
    "write_local_config",
]
