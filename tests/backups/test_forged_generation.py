"""The forged-generation attack of issue 9, as an attacker with write access to the backup
container runs it: kvdr's own journal, pointed at the victim's container, sealing with
only the public halves of the victim's key-encryption keys (the region's vault key
wraps locally from its public half, the recovery key is public) and signing with a key
of its own. `kvdr snapshot verify` and `kvdr restore` refuse the forged objects, naming
them, with and without the offline recovery key; the break-glass configuration pins the
signer from the recovery kit that `kvdr snapshot export` wrote."""

from __future__ import annotations

import json
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519

from backups.catalog import load_catalog
from backups.journal import Journal
from backups.keks import KekRing, RecoveryKek, VaultKek
from backups.signer_files import Ed25519FileSigner
from backups.signers import SignerRing
from backups.stores import BackupStores
from replicator.sink import version_fingerprint
from tests.backups.conftest import (
    create_rsa_key,
    journal_settings,
    recovery_private_pem,
    recovery_public_pem,
    secret_change,
)
from tests.backups.legacy import write_unsigned_generation
from tests.fixtures.cli import run_kvdr
from tests.fixtures.daemon import free_port, write_config
from tests.fixtures.regions import World, WorldFactory
from vault.models import Attributes, ItemKind


def kvdr(*args: str) -> subprocess.CompletedProcess[str]:
    return run_kvdr(*args, timeout=180)


def victim_backups(tmp: Path) -> str:
    public = tmp / "recovery.pub.pem"
    public.write_bytes(recovery_public_pem())
    return f"""
[backups]
flush_interval = "1s"

[[backups.keks]]
kind = "vault"
region = "eastus"
key = "kvdr-backup"

[[backups.keks]]
kind = "recovery"
public_key = "{public}"

[[backups.signers]]
kind = "file"
path = "{tmp / "signing" / "backup-signing.key"}"
create = true
"""


async def forge_generation(world: World) -> str:
    """The attack: a new generation with one segment setting db-password, its id a
    minute in the future so it sorts newest; returns the forged segment's blob."""
    attacker = KekRing(
        [
            VaultKek(world.vaults["eastus"], "kvdr-backup"),
            RecoveryKek.from_public_pem(recovery_public_pem()),
        ],
        SignerRing([Ed25519FileSigner(ed25519.Ed25519PrivateKey.generate(), "attacker")]),
    )
    journal = Journal(
        BackupStores(world.blobs),
        attacker,
        journal_settings(writer="attacker"),
        fingerprint=version_fingerprint,
        clock=lambda: time.time() + 60,
    )
    await journal.record([secret_change("db-password", "f" * 32, "attacker-value")])
    await journal.close()
    newest = (await load_catalog(world.blobs, "app")).ordered()[-1]
    assert len(newest.segments) == 1
    return newest.segments[0].blob


class TestForgedGeneration:
    async def test_refused_by_verify_and_restore_with_and_without_recovery_key(
        self, make_world: WorldFactory, tmp_path: Path
    ) -> None:
        """verify exits 1 naming the forged blob; restore writes nothing of it: refused
        (the head was rewritten too), and with --allow-gap it restores the real value,
        listing the skipped generation; the same with the offline recovery key and the
        kit's pinned signer alone."""
        world = await make_world(regions=("eastus", "westus", "centralus"))
        await create_rsa_key(world.emulators["eastus"], "kvdr-backup")
        await world.vaults["eastus"].set_secret("db-password", "real-value", Attributes())
        config = write_config(
            world, tmp_path / "kvdr.toml", port=free_port(), extra=victim_backups(tmp_path)
        )
        cfg = ["--config", str(config)]
        assert kvdr("sync", "--once", *cfg).returncode == 0
        offline = tmp_path / "offline"
        exported = kvdr("snapshot", "export", str(offline), "--json", *cfg)
        assert exported.returncode == 0, exported.stderr
        forged = await forge_generation(world)

        verified = kvdr("snapshot", "verify", *cfg)
        assert verified.returncode == 1
        assert f"{forged}: it is signed by ed25519:" in verified.stdout
        assert "which is not pinned" in verified.stdout
        assert "a restore skips generation" in verified.stdout

        target = world.emulators["centralus"].url
        restore = ["restore", "--pair", "app", "--at", "-0s", "--target", target]
        refused = kvdr(*restore, *cfg)
        assert refused.returncode == 1 and forged in refused.stderr
        assert await world.vaults["centralus"].list_items(ItemKind.SECRET) == []
        applied = kvdr(*restore, "--allow-gap", *cfg)
        assert applied.returncode == 0, applied.stdout + applied.stderr
        assert "skipped" in applied.stdout and forged in applied.stdout
        assert (await world.vaults["centralus"].get_secret("db-password")).value == "real-value"

        # Break-glass: no vault key, only the recovery key and the kit's pinned signer.
        kit = (offline / "recovery-kit" / "signers.toml").read_text()
        public = tmp_path / "recovery.pub.pem"
        glass = write_config(
            world,
            tmp_path / "break-glass.toml",
            port=free_port(),
            extra=f'\n[backups]\n[[backups.keks]]\nkind = "recovery"\npublic_key = "{public}"\n'
            + kit,
        )
        private = tmp_path / "recovery.pem"
        private.write_bytes(recovery_private_pem())
        key = ["--recovery-key", str(private), "--config", str(glass)]
        verified = kvdr("snapshot", "verify", "--json", *key)
        assert verified.returncode == 1
        report = json.loads(verified.stdout)["pairs"][0]
        findings = {f["blob"]: f["problem"] for f in report["findings"]}
        assert "not pinned" in findings[forged]
        assert report["signed"] >= 1  # the real objects check out against the kit alone
        refused = kvdr(*restore, "--dry-run", *key)
        assert refused.returncode == 1 and forged in refused.stderr
        dry = kvdr(*restore, "--dry-run", "--allow-gap", "--json", *key)
        assert dry.returncode == 0, dry.stderr
        point = json.loads(dry.stdout)["point"]
        assert [s["generation"] for s in point["generations_skipped"]] == [forged.split("/")[2]]
        for out in (verified, refused, dry, applied):
            assert "attacker-value" not in out.stdout + out.stderr
            assert "real-value" not in out.stdout + out.stderr


class TestUnsignedGenerationOnTheCommandLine:
    async def test_list_verify_and_restore_say_unsigned(
        self, make_world: WorldFactory, tmp_path: Path
    ) -> None:
        """Backups from before signing: `snapshot list` says unsigned, `verify` fails
        unless --allow-unsigned, `restore` refuses unless --allow-unsigned, and then says
        in its output and its report that the state rests on unsigned objects."""
        world = await make_world(regions=("eastus", "westus"))
        await create_rsa_key(world.emulators["eastus"], "kvdr-backup")
        config = write_config(
            world, tmp_path / "kvdr.toml", port=free_port(), extra=victim_backups(tmp_path)
        )
        cfg = ["--config", str(config)]
        keks = KekRing([RecoveryKek.from_public_pem(recovery_public_pem())])
        started = datetime.now(UTC) - timedelta(minutes=5)
        changes = [secret_change("db-password", "a" * 32, "legacy-value", at=started)]
        await write_unsigned_generation(world.blobs, keks, "app", changes, started)
        private = tmp_path / "recovery.pem"
        private.write_bytes(recovery_private_pem())
        key = ["--recovery-key", str(private)]

        listed = kvdr("snapshot", "list", *cfg)
        assert listed.returncode == 0 and "unsigned (restorable only with --allow-unsigned)" in (
            listed.stdout
        )
        assert kvdr("snapshot", "verify", *key, *cfg).returncode == 1
        allowed = kvdr("snapshot", "verify", "--allow-unsigned", *key, *cfg)
        assert allowed.returncode == 0, allowed.stdout + allowed.stderr
        assert "1 unsigned (--allow-unsigned)" in allowed.stdout

        target = world.emulators["westus"].url
        restore = ["restore", "--pair", "app", "--at", "-0s", "--target", target, *key, *cfg]
        refused = kvdr(*restore)
        assert refused.returncode == 1 and "--allow-unsigned" in refused.stderr
        applied = kvdr(*restore, "--allow-unsigned")
        assert applied.returncode == 0, applied.stdout + applied.stderr
        assert "restoring from UNSIGNED objects" in applied.stdout
        assert "rests on unsigned objects" in applied.stdout
        assert (await world.vaults["westus"].get_secret("db-password")).value == "legacy-value"
        again = kvdr(*restore, "--allow-unsigned", "--force", "--json")
        assert json.loads(again.stdout)["report"]["from_unsigned_objects"] is True
