"""`kvdr snapshot create|list|verify|export` and `kvdr restore` as a user runs them (real
processes), with the journal fed by the real replicator (`kvdr sync --once`), and the
`[backups]` configuration section."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from kvdr.config import ConfigError, parse_config
from tests.backups.conftest import (
    create_rsa_key,
    ec_public_pem,
    recovery_private_pem,
    recovery_public_pem,
)
from tests.fixtures.cli import run_kvdr
from tests.fixtures.daemon import free_port, write_config
from tests.fixtures.regions import World, WorldFactory
from vault.models import Attributes, ItemKind


def kvdr(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return run_kvdr(*args, cwd=cwd, timeout=180)


def backups_toml(tmp: Path, *, vault_kek: bool = True) -> str:
    public = tmp / "recovery.pub.pem"
    public.write_bytes(recovery_public_pem())
    vault = '\n[[backups.keks]]\nkind = "vault"\nregion = "eastus"\nkey = "kvdr-backup"\n'
    return f"""
[backups]
flush_interval = "1s"
snapshot_interval = "1h"
{vault if vault_kek else ""}
[[backups.keks]]
kind = "recovery"
public_key = "{public}"

[[backups.keks]]
kind = "file"
path = "{tmp / "keys" / "backup.key"}"
create = true

[[backups.signers]]
kind = "file"
path = "{tmp / "signing" / "backup-signing.key"}"
create = true
"""


class TestCommands:
    async def test_sync_journals_then_list_snapshot_verify_restore_export(
        self, make_world: WorldFactory, tmp_path: Path
    ) -> None:
        """The whole cycle through the command line, each with --json."""
        world: World = await make_world(regions=("eastus", "westus", "centralus"))
        await create_rsa_key(world.emulators["eastus"], "kvdr-backup")
        primary = world.vaults["eastus"]
        for i in range(3):
            await primary.set_secret(f"cli-{i}", f"value-{i}", Attributes(tags={"n": str(i)}))
        config = write_config(
            world, tmp_path / "kvdr.toml", port=free_port(), extra=backups_toml(tmp_path)
        )
        cfg = ["--config", str(config)]
        synced = kvdr("sync", "--once", "--json", *cfg)
        assert synced.returncode == 0, synced.stderr

        listed = kvdr("snapshot", "list", "--json", *cfg)
        assert listed.returncode == 0, listed.stderr
        (pair,) = json.loads(listed.stdout)["pairs"]
        assert pair["pair"] == "app" and pair["generations"][0]["last_sequence"] == 3
        assert json.loads(listed.stdout)["read_from"] == "primary"

        created = json.loads(kvdr("snapshot", "create", "--json", *cfg).stdout)
        assert created["snapshots"][0]["created"] is True
        assert created["snapshots"][0]["sequence"] == 3

        verified = kvdr("snapshot", "verify", "--restore-test", "--json", *cfg)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        report = json.loads(verified.stdout)["pairs"][0]
        assert report["decrypted"] == 2 and report["restore_test"]["items_compared"] == 3

        target = world.emulators["centralus"].url
        restore = ["restore", "--pair", "app", "--at", "-0s", "--target", target, "--json", *cfg]
        dry = json.loads(kvdr(*restore, "--dry-run").stdout)
        assert dry["plan"]["counts"]["create"] == 3 and dry["report"] is None
        assert await world.vaults["centralus"].list_items(ItemKind.SECRET) == []
        applied = kvdr(*restore)
        assert applied.returncode == 0, applied.stdout + applied.stderr
        assert json.loads(applied.stdout)["report"]["items_restored"] == 3
        assert (await world.vaults["centralus"].get_secret("cli-1")).value == "value-1"

        exported = kvdr("snapshot", "export", str(tmp_path / "offline"), "--json", *cfg)
        assert json.loads(exported.stdout)["pairs"][0]["copied"] == 2
        for out in (synced, listed, verified, applied):
            assert "value-1" not in out.stdout + out.stderr

    async def test_restore_refusals_and_bad_input(self, world: World, tmp_path: Path) -> None:
        """Bad TIME or --item exit 2; a time outside the window exits 1; the offline
        recovery key alone can restore (the local key file replaced by another key)."""
        await world.vaults["eastus"].set_secret("one", "v-one", Attributes())
        config = write_config(
            world,
            tmp_path / "kvdr.toml",
            port=free_port(),
            extra=backups_toml(tmp_path, vault_kek=False),
        )
        cfg = ["--config", str(config)]
        base = ["restore", "--pair", "app", "--target", world.emulators["westus"].url, *cfg]
        assert kvdr(*base, "--at", "yesterday").returncode == 2
        too_far = kvdr(*base, "--at", "-99999999999d")
        assert too_far.returncode == 2 and "before the year 1" in too_far.stderr
        assert "Traceback" not in too_far.stderr
        bad_item = kvdr(*base, "--at", "-1m", "--item", "thing/x")
        assert bad_item.returncode == 2 and "KIND/NAME" in bad_item.stderr
        assert kvdr("sync", "--once", *cfg).returncode == 0
        early = kvdr(*base, "--at", "2000-01-01T00:00:00Z")
        assert early.returncode == 1 and "outside the retention window" in early.stderr
        (tmp_path / "keys" / "backup.key").rename(tmp_path / "moved.key")
        (tmp_path / "keys" / "backup.key").write_text("kvdr-local-kek-v1:" + "A" * 43 + "=\n")
        private = tmp_path / "recovery.pem"
        private.write_bytes(recovery_private_pem())
        dry = kvdr(*base, "--at", "-0s", "--dry-run", "--json", "--recovery-key", str(private))
        assert dry.returncode == 0, dry.stderr
        assert json.loads(dry.stdout)["point"]["sequence"] == 1

    def test_no_backups_section_is_a_usage_error(self, tmp_path: Path) -> None:
        """Backup commands on a configuration without [backups] exit 2 saying so."""
        config = tmp_path / "kvdr.toml"
        config.write_text(MINIMAL)
        result = kvdr("snapshot", "list", "--config", str(config))
        assert result.returncode == 2 and "[backups]" in result.stderr


MINIMAL = """
[credential]
kind = "cli"

[regions.eastus]
vault_url = "https://east.vault.azure.net"

[regions.westus]
vault_url = "https://west.vault.azure.net"

[storage]
path = "/tmp/kvdr-never-used"

[[pairs]]
name = "app"
primary = "eastus"
secondaries = ["westus"]
"""


class TestConfiguration:
    def test_full_section(self, tmp_path: Path) -> None:
        """Every key reads into BackupSettings."""
        public = tmp_path / "r.pub.pem"
        public.write_bytes(recovery_public_pem())
        signing = tmp_path / "signing.pub.pem"
        signing.write_bytes(ec_public_pem())
        config = parse_config(
            MINIMAL
            + f"""
[backups]
durability = "sync"
flush_interval = "3s"
flush_max_changes = 100
snapshot_interval = "30m"
keep_all_hours = 24
keep_monthly_months = 6

[[backups.keks]]
kind = "vault"
region = "westus"
key = "kvdr-backup"

[[backups.keks]]
kind = "recovery"
public_key = "{public}"

[[backups.signers]]
kind = "vault"
region = "westus"
key = "kvdr-backup-signing"
public_key = "{signing}"

[[backups.replicas]]
path = "{tmp_path / "replica"}"
""",
            "kvdr.toml",
            env={},
        )
        backups = config.backups
        assert backups is not None and backups.durability == "sync"
        assert backups.flush_interval_seconds == 3.0 and backups.flush_max_changes == 100
        assert backups.snapshot_interval_seconds == 1800.0
        assert backups.retention.keep_all_hours == 24 and backups.retention.monthly_months == 6
        assert [type(k).__name__ for k in backups.keks] == [
            "VaultKekSettings",
            "RecoveryKekSettings",
        ]
        assert len(backups.replicas) == 1
        assert [type(k).__name__ for k in backups.signers] == ["VaultSignerSettings"]

    def test_absent_or_disabled_means_off(self) -> None:
        """No section, or enabled = false: no backups."""
        assert parse_config(MINIMAL, "kvdr.toml", env={}).backups is None
        disabled = MINIMAL + "\n[backups]\nenabled = false\n"
        assert parse_config(disabled, "kvdr.toml", env={}).backups is None

    @pytest.mark.parametrize(
        "section,key,message",
        [
            ("[backups]\n", "backups.keks", "at least one key-encryption key"),
            (
                '[backups]\n[[backups.keks]]\nkind = "vault"\nregion = "mars"\nkey = "k"\n',
                "backups.keks[0].region",
                "unknown region 'mars'",
            ),
            (
                '[backups]\n[[backups.keks]]\nkind = "vault"\nregion = "eastus"\nkey = "bad key"\n',
                "backups.keks[0].key",
                "not a Key Vault key name",
            ),
            (
                '[backups]\n[[backups.keks]]\nkind = "hsm"\n',
                "backups.keks[0].kind",
                "'hsm' is not one of",
            ),
            (
                '[backups]\n[[backups.keks]]\nkind = "recovery"\npublic_key = "/nonexistent.pem"\n',
                "backups.keks[0].public_key",
                "cannot read",
            ),
            (
                '[backups]\ndurability = "eventually"\n[[backups.keks]]\nkind = "file"\n'
                'path = "/tmp/x.key"\ncreate = true\n',
                "backups.durability",
                "'eventually' is not one of",
            ),
            (
                '[backups]\n[[backups.replicas]]\ncontainer = "x"\n'
                '[[backups.keks]]\nkind = "file"\npath = "/tmp/x.key"\ncreate = true\n',
                "backups.replicas[0]",
                "set one of",
            ),
        ],
    )
    def test_errors_name_file_key_and_line(self, section: str, key: str, message: str) -> None:
        """Each mistake in [backups] is reported with its key, line and a clear message."""
        with pytest.raises(ConfigError) as caught:
            parse_config(MINIMAL + section, "kvdr.toml", env={})
        issues = [i for i in caught.value.issues if i.key == key]
        assert issues and message in issues[0].message, [str(i) for i in caught.value.issues]
        assert issues[0].line is not None

    def test_private_recovery_key_is_refused(self, tmp_path: Path) -> None:
        """Configuring the recovery key's private half is an error: it stays offline."""
        private = tmp_path / "recovery.pem"
        private.write_bytes(recovery_private_pem())
        section = f'[backups]\n[[backups.keks]]\nkind = "recovery"\npublic_key = "{private}"\n'
        with pytest.raises(ConfigError, match="private half stays offline"):
            parse_config(MINIMAL + section, "kvdr.toml", env={})
