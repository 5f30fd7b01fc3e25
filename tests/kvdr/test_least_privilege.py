"""Least privilege, enforced: the daemon runs against emulators in RBAC mode with exactly
the Key Vault roles deploy/terraform/roles.tf grants it (tests/fixtures/deploy_roles.py)
and its own principal's signed tokens. Everything works with them: replication of
secrets, keys and certificates, the journal (vault KEK and vault signer), `kvdr verify
--deep`, a restore and a switchover with the reverse direction. Taking one role away
makes exactly the matching operation fail, named in status and logs, while the rest goes
on and the daemon keeps running; given back, it recovers without a restart."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from azure.keyvault.certificates import CertificatePolicy
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.backups.test_commands import backups_toml
from tests.fixtures.cli import run_kvdr
from tests.fixtures.daemon import DaemonProcess, free_port, write_config
from tests.fixtures.deploy_roles import Grant, daemon_grants, write_rbac_file
from tests.fixtures.emulator import (
    AsyncStaticTokenCredential,
    aio_certificate_client,
    aio_key_client,
)
from tests.fixtures.regions import World, WorldFactory
from tests.fixtures.waiting import wait_for, wait_for_sync
from tests.kvdr.test_cli_failover import caught_up, control_stores, holds
from vault.errors import ItemNotFound
from vault.models import Attributes, ItemKind

DAEMON = "kvdr-daemon"
ADMIN = "test-admin"
REGIONS = ("eastus", "westus")


def kvdr(*args: str) -> subprocess.CompletedProcess[str]:
    return run_kvdr(*args, timeout=180)


async def rbac_world(
    make_world: WorldFactory, folder: Path, grants: list[Grant]
) -> tuple[World, Path]:
    """Two emulators in RBAC mode sharing one file: the daemon's grants, and an
    administrator principal for the test's own reads and writes."""
    rbac = write_rbac_file(
        folder / "rbac.json", grants, DAEMON, [(ADMIN, "Key Vault Administrator", "*")]
    )
    admin = AsyncStaticTokenCredential(ADMIN, token_key_file=folder / "tenant.key")
    world = await make_world(
        regions=REGIONS,
        extra_args=["--rbac", str(rbac)],
        credential=admin,
    )
    return world, rbac


async def backup_keys(world: World, folder: Path) -> str:
    """The vault KEK and vault signing key on eastus (as deploy/ makes them), and the
    [backups] section that uses them."""
    emu, admin = world.emulators["eastus"], world.credential
    async with aio_key_client(emu, credential=admin) as keys:
        await keys.create_rsa_key("kvdr-backup", size=2048)
        signing = await keys.create_ec_key("kvdr-backup-signing", curve="P-256")
    x, y = signing.key.x or b"", signing.key.y or b""
    public = ec.EllipticCurvePublicNumbers(
        int.from_bytes(x, "big"), int.from_bytes(y, "big"), ec.SECP256R1()
    ).public_key()
    pem = folder / "signing.pub.pem"
    pem.write_bytes(
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    section = backups_toml(folder, vault_kek=True)
    # The deployment's signer is the vault key, not a file.
    start = section.index("[[backups.signers]]")
    return (
        section[:start]
        + '[[backups.signers]]\nkind = "vault"\nregion = "eastus"\n'
        + f'key = "kvdr-backup-signing"\npublic_key = "{pem}"\n'
    )


def daemon_config(world: World, folder: Path, port: int, extra: str) -> Path:
    config = write_config(
        world,
        folder / "kvdr.toml",
        port=port,
        extra='kinds = ["secret", "key", "certificate"]\n' + extra,
    )
    text = config.read_text()
    # The daemon's own principal: its tokens carry it, and only its roles apply.
    config.write_text(
        text.replace('kind = "emulator"\n', f'kind = "emulator"\nclient_id = "{DAEMON}"\n', 1)
    )
    return config


async def seed(world: World, name: str) -> None:
    """A secret, a key and a certificate on eastus, written by the administrator."""
    emu, admin = world.emulators["eastus"], world.credential
    await world.vaults["eastus"].set_secret(f"{name}-db", f"{name}-value", Attributes())
    async with aio_key_client(emu, credential=admin) as keys:
        await keys.create_rsa_key(f"{name}-signing", size=2048)
    async with aio_certificate_client(emu, credential=admin) as certs:
        policy = CertificatePolicy("Self", subject=f"CN={name}.example.com")
        await certs.create_certificate(f"{name}-tls", policy)


async def present(world: World, region: str, kind: ItemKind, name: str) -> bool:
    try:
        return bool(await world.vaults[region].list_versions(kind, name))
    except ItemNotFound:
        return False


def westus(daemon: DaemonProcess) -> dict[str, Any]:
    (target,) = [t for t in daemon.status()["pairs"][0]["targets"] if t["region"] == "westus"]
    return dict(target)


@pytest.mark.slow
async def test_the_deployed_roles_are_enough(make_world: WorldFactory, tmp_path: Path) -> None:
    world, _ = await rbac_world(make_world, tmp_path, daemon_grants("eastus", ["westus"]))
    extra = await backup_keys(world, tmp_path) + control_stores(tmp_path)
    port = free_port()
    config = daemon_config(world, tmp_path, port, extra)
    cfg = ("--config", str(config))
    await seed(world, "app")
    daemon = DaemonProcess(config, port).start()
    try:
        for kind, name in (
            (ItemKind.SECRET, "app-db"),
            (ItemKind.KEY, "app-signing"),
            (ItemKind.CERTIFICATE, "app-tls"),
        ):
            await wait_for(lambda k=kind, n=name: present(world, "westus", k, n), 30, name)
        wait_for_sync(lambda: caught_up(daemon), 30, "westus caught up")
        assert westus(daemon)["recent_errors"] == []
        assert daemon.status()["pairs"][0]["journal_errors"] == []

        verified = kvdr("verify", "--pair", "app", "--deep", "--json", *cfg)
        assert verified.returncode == 0, verified.stdout + verified.stderr

        def journaled() -> bool:
            listed = kvdr("snapshot", "list", "--json", *cfg)
            pairs = json.loads(listed.stdout)["pairs"] if listed.returncode == 0 else []
            generations = pairs[0]["generations"] if pairs else []
            return bool(generations and generations[-1]["last_sequence"] >= 3)

        wait_for_sync(journaled, 30, "the journal signed and sealed with the vault keys")
        await world.vaults["westus"].delete_item(ItemKind.SECRET, "app-db")
        target = world.emulators["westus"].url
        restored = kvdr(
            "restore",
            "--pair",
            "app",
            "--at",
            "-0s",
            "--target",
            target,
            "--force",
            "--json",
            *cfg,
        )
        assert restored.returncode == 0, restored.stdout + restored.stderr
        assert await holds(world.vaults["westus"], "app-db", "app-value")

        switched = kvdr(
            "failover", "switchover", "--pair", "app", "--to", "westus", "--yes", "--json", *cfg
        )
        assert switched.returncode == 0, switched.stdout + switched.stderr
        await world.vaults["westus"].set_secret("after-switch", "from-westus", Attributes())
        await wait_for(
            lambda: holds(world.vaults["eastus"], "after-switch", "from-westus"),
            30,
            "westus's write on eastus",
        )
    finally:
        daemon.terminate()
    assert "ForbiddenByRbac" not in daemon.logs()


# Grant taken away (roles.tf resource, region) and the first data action kvdr is then
# refused: without Secrets Officer on a target even listing its versions is refused.
CASES = {
    "secrets officer on westus": (
        "daemon_secrets_officer_secondary",
        "westus",
        "secrets/readMetadata/action",
    ),
    "crypto officer on westus": ("daemon_crypto_officer", "westus", "keys/restore/action"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
async def test_one_role_taken_away_fails_exactly_its_operation(
    make_world: WorldFactory, tmp_path: Path, case: str
) -> None:
    resource, region, action = CASES[case]
    grants = daemon_grants("eastus", ["westus"])
    kept = [g for g in grants if not (g.resource == resource and g.region == region)]
    assert len(kept) == len(grants) - 1
    world, rbac = await rbac_world(make_world, tmp_path, kept)
    port = free_port()
    config = daemon_config(world, tmp_path, port, "")
    await seed(world, "app")
    daemon = DaemonProcess(config, port).start()
    try:
        denied_kind = ItemKind.SECRET if "secrets" in action else ItemKind.KEY
        others = {
            ItemKind.SECRET: "app-db",
            ItemKind.KEY: "app-signing",
            ItemKind.CERTIFICATE: "app-tls",
        }
        denied_name = others.pop(denied_kind)
        for kind, name in others.items():
            await wait_for(lambda k=kind, n=name: present(world, "westus", k, n), 30, name)

        def named_in_status() -> bool:
            return any(action in error["message"] for error in westus(daemon)["recent_errors"])

        wait_for_sync(named_in_status, 30, f"{action} named in westus's status")
        assert not await present(world, "westus", denied_kind, denied_name)
        assert daemon.process is not None and daemon.process.poll() is None
        assert action in daemon.logs()

        # Given back, the daemon catches up by itself.
        write_rbac_file(rbac, grants, DAEMON, [(ADMIN, "Key Vault Administrator", "*")])
        await wait_for(lambda: present(world, "westus", denied_kind, denied_name), 60, "recovered")
    finally:
        daemon.terminate()
    starts = daemon.logs().count('"event": "daemon.started"')
    assert starts <= 1, "the daemon restarted"


# Every grant of roles.tf taken away alone (a deployment mirroring all three kinds, with
# failover_roles): the data actions kvdr is then refused, or the grant that still covers
# what it was for. Several grants overlap in such a deployment, so taking one away
# changes nothing until a second goes: Key Vault Crypto Officer (keys/*) holds every key
# action the KEK user and the signer's Crypto User carry; Secrets Officer on the primary
# (failover_roles) holds what Secrets User and Reader give there; Crypto User holds the
# primary's key read and backup.
MATRIX: dict[tuple[str, str], tuple[str, ...]] = {
    ("daemon_secrets_user_primary", "eastus"): (),
    ("daemon_reader_primary", "eastus"): (),
    ("daemon_secrets_officer_secondary", "westus"): ("secrets/readMetadata/action",),
    ("daemon_secrets_officer_primary", "eastus"): (),
    ("daemon_crypto_officer", "eastus"): (),
    ("daemon_crypto_officer", "westus"): ("keys/restore/action",),
    ("daemon_certificates_officer", "eastus"): ("certificates/backup/action",),
    ("daemon_certificates_officer", "westus"): ("certificatecas/read", "certificates/read"),
    ("daemon_kek_user", "eastus"): (),
    ("daemon_kek_user", "westus"): (),
    ("daemon_signer", "eastus"): (),
    ("daemon_signer", "westus"): (),
}


def test_the_matrix_covers_every_grant() -> None:
    """A grant added to roles.tf must be added to the matrix below (and so tested)."""
    grants = {(g.resource, g.region) for g in daemon_grants("eastus", ["westus"])}
    assert grants == set(MATRIX)


@pytest.mark.slow
@pytest.mark.parametrize("grant", sorted(MATRIX), ids=lambda g: f"{g[0]}-{g[1]}")
async def test_every_grant_taken_away(
    make_world: WorldFactory, tmp_path: Path, grant: tuple[str, str]
) -> None:
    """Each grant alone taken away: exactly the expected actions are refused (named in
    the daemon's log), everything else still reaches westus, the daemon keeps running."""
    refused = MATRIX[grant]
    grants = daemon_grants("eastus", ["westus"])
    kept = [g for g in grants if (g.resource, g.region) != grant]
    world, _ = await rbac_world(make_world, tmp_path, kept)
    port = free_port()
    config = daemon_config(world, tmp_path, port, await backup_keys(world, tmp_path))
    await seed(world, "app")
    items = {
        (ItemKind.SECRET, "app-db"),
        (ItemKind.KEY, "app-signing"),
        (ItemKind.CERTIFICATE, "app-tls"),
    }
    blocked = {
        "secrets/readMetadata/action": ItemKind.SECRET,
        "keys/restore/action": ItemKind.KEY,
        "certificates/backup/action": ItemKind.CERTIFICATE,
        "certificates/read": ItemKind.CERTIFICATE,
        "certificatecas/read": ItemKind.CERTIFICATE,
    }
    expected = {(k, n) for k, n in items if k not in {blocked[a] for a in refused}}
    daemon = DaemonProcess(config, port).start()
    try:
        for kind, name in sorted(expected):
            await wait_for(lambda k=kind, n=name: present(world, "westus", k, n), 30, name)
        if refused:
            wait_for_sync(
                lambda: all(a in daemon.logs() for a in refused), 30, f"{refused} in the log"
            )
        else:
            wait_for_sync(lambda: caught_up(daemon), 30, "westus caught up")
        for kind, name in items - expected:
            assert not await present(world, "westus", kind, name), name
        assert daemon.process is not None and daemon.process.poll() is None
    finally:
        daemon.terminate()
    named = set(re.findall(r"Action: 'Microsoft\.KeyVault/vaults/([^']+)'", daemon.logs()))
    assert named == set(refused)


SHORT_THROTTLE = """
name = "rbac-throttled-target"
description = "The secondary answers 429 to half the requests for a few seconds."
max_duration_seconds = 120
[objectives]
rpo_items = 0
rto_seconds = 30
[load]
rate = 4
[[steps]]
action = "load_start"
[[steps]]
action = "wait"
seconds = 2
[[steps]]
action = "vault_errors"
id = "throttle"
region = "westus"
status = 429
share = 0.5
retry_after_seconds = 1
duration_seconds = 4
[[steps]]
action = "load_stop"
[[steps]]
action = "await"
condition = { probe = "lag_below", seconds = 2 }
timeout_seconds = 60
[[steps]]
action = "verify"
settle_seconds = 10
"""


@pytest.mark.slow
async def test_a_drill_runs_with_the_deployed_roles(
    make_world: WorldFactory, tmp_path: Path
) -> None:
    """`kvdr drill run --stack config` with the daemon's identity and roles: its write
    load on the active vault, the vault fault, the verification reads on westus and the
    drill record all work, and the drill passes."""
    grants = daemon_grants("eastus", ["westus"])
    world, rbac = await rbac_world(make_world, tmp_path, grants)
    # On Azure the drill's load and probes use the daemon's identity; against the
    # emulator they take principals of their own (kvdr/drill_stack.py), given the same.
    stand_ins = [
        (who, g.role, g.region) for who in ("kvdr-drill-load", "kvdr-drill-probe") for g in grants
    ]
    write_rbac_file(rbac, grants, DAEMON, [(ADMIN, "Key Vault Administrator", "*"), *stand_ins])
    port = free_port()
    config = daemon_config(world, tmp_path, port, "")
    config.write_text('environment = "drill"\n' + config.read_text())
    scenario = tmp_path / "drill.toml"
    scenario.write_text(SHORT_THROTTLE)
    daemon = DaemonProcess(config, port).start()
    try:
        wait_for_sync(lambda: caught_up(daemon), 30, "the first pass")
        westus_api = f"westus={world.emulators['westus'].url}"
        result = run_kvdr(
            "drill",
            "run",
            str(scenario),
            "--stack",
            "config",
            "--config",
            str(config),
            "--emulator-api",
            westus_api,
            "--json",
            timeout=240,
        )
        doc = json.loads(result.stdout) if result.stdout.strip() else {}
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        assert doc["passed"] is True and doc["measured"]["rpo_items"] == 0, doc
        assert doc["measured"]["writes_acknowledged"] > 0 and doc["left_behind"] == []
    finally:
        daemon.terminate()
    assert "ForbiddenByRbac" not in daemon.logs()
