"""Values a user may hold round-trip byte for byte through everything kvdr does with
them: replication by the daemon, the journal and a restore into a third vault, and a
switchover after which the new primary's writes come back the other way. Unicode of
every shape, the largest value Key Vault takes (25,600 bytes), binary-looking text,
the longest name (127 characters), unicode tags and a 255-character content type, as a
user runs it (real processes: emulators, Azurite, `kvdr run`, the command line)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.backups.test_commands import backups_toml
from tests.fixtures.cli import run_kvdr
from tests.fixtures.daemon import DaemonProcess, free_port, write_config
from tests.fixtures.regions import World, WorldFactory
from tests.fixtures.waiting import wait_for, wait_for_sync
from tests.kvdr.test_cli_failover import caught_up, control_stores
from vault.client import VaultItems
from vault.errors import ItemNotFound
from vault.models import Attributes

LONGEST_NAME = ("round-trip-" + "x1-" * 60)[:127]
VALUES: dict[str, str] = {
    # Combining marks, right-to-left override, zero-width space, astral emoji, CJK,
    # line and tab breaks, a NUL.
    "unicode-shapes": "e\u0301 \u202eevil\u202c \u200b\U0001f511 中文 한국어\r\n\tend\u0000",
    # 8,533 three-byte euro signs and one ASCII byte: exactly 25,600 bytes of UTF-8.
    "largest-value": "\u20ac" * 8533 + "x",
    "binary-looking": base64.b64encode(os.urandom(6000)).decode(),
    "pem-looking": "-----BEGIN PRIVATE KEY-----\nMIIE\\x00\\xff\n-----END PRIVATE KEY-----\n",
    "json-looking": '{"value": "\\"quoted\\"", "n": [1, 2, {"deep": null}]}',
    LONGEST_NAME: "a value under the longest name Key Vault allows",
}
TAGS = {"équipe": "données", "emoji": "\U0001f680", "rtl": "\u05e9\u05dc\u05d5\u05dd"}
CONTENT_TYPE = ("application/x-kvdr; charset=utf-8; note=" + "ü" * 300)[:255]


def kvdr(*args: str) -> subprocess.CompletedProcess[str]:
    return run_kvdr(*args, timeout=180)


async def same_on(vault: VaultItems, name: str, value: str) -> bool:
    """True once `vault`'s current version of `name` holds `value`, byte for byte, with
    the tags and content type it was written with."""
    try:
        secret = await vault.get_secret(name)
    except ItemNotFound:
        return False
    if secret.value.encode("utf-8") != value.encode("utf-8"):
        return False
    props = secret.properties
    user_tags = {k: v for k, v in props.tags.items() if not k.startswith("kvdr-")}
    return user_tags == TAGS and props.content_type == CONTENT_TYPE


@pytest.mark.slow
async def test_values_round_trip_through_replication_restore_and_switchover(
    make_world: WorldFactory, tmp_path: Path
) -> None:
    world: World = await make_world(regions=("eastus", "westus", "centralus"))
    assert len(VALUES["largest-value"].encode("utf-8")) == 25_600 and len(LONGEST_NAME) == 127
    eastus, westus, centralus = (world.vaults[r] for r in ("eastus", "westus", "centralus"))
    for name, value in VALUES.items():
        await eastus.set_secret(name, value, Attributes(content_type=CONTENT_TYPE, tags=TAGS))
    port = free_port()
    config = write_config(
        world,
        tmp_path / "kvdr.toml",
        port=port,
        extra=backups_toml(tmp_path, vault_kek=False) + control_stores(tmp_path),
    )
    cfg = ("--config", str(config))
    outputs: list[str] = []
    daemon = DaemonProcess(config, port).start()
    try:
        # Replication.
        for name, value in VALUES.items():
            await wait_for(lambda n=name, v=value: same_on(westus, n, v), 30, f"{name} on westus")
        wait_for_sync(lambda: caught_up(daemon), 30, "westus caught up")

        # The journal, then a restore into a vault that never held them.
        def journaled() -> bool:
            listed = kvdr("snapshot", "list", "--json", *cfg)
            outputs.append(listed.stdout + listed.stderr)
            pairs = json.loads(listed.stdout)["pairs"] if listed.returncode == 0 else []
            generations = pairs[0]["generations"] if pairs else []
            return bool(generations and generations[-1]["last_sequence"] >= len(VALUES))

        wait_for_sync(journaled, 30, "every change in the journal")
        target = world.emulators["centralus"].url
        restored = kvdr(
            "restore", "--pair", "app", "--at", "-0s", "--target", target, "--json", *cfg
        )
        outputs.append(restored.stdout + restored.stderr)
        assert restored.returncode == 0, restored.stdout + restored.stderr
        for name, value in VALUES.items():
            assert await same_on(centralus, name, value), f"{name} restored into centralus"

        # A switchover, then a write on the new primary comes back to eastus.
        switched = kvdr(
            "failover", "switchover", "--pair", "app", "--to", "westus", "--yes", "--json", *cfg
        )
        outputs.append(switched.stdout + switched.stderr)
        assert switched.returncode == 0, switched.stdout + switched.stderr
        after = VALUES["unicode-shapes"][::-1] + VALUES["binary-looking"][:100]
        await westus.set_secret(
            "written-after-switchover", after, Attributes(content_type=CONTENT_TYPE, tags=TAGS)
        )
        await wait_for(
            lambda: same_on(eastus, "written-after-switchover", after), 30, "the write on eastus"
        )
        for name, value in VALUES.items():
            assert await same_on(eastus, name, value), f"{name} unchanged on eastus"
    finally:
        daemon.terminate()
    shown = daemon.logs() + "".join(outputs)
    for value in (*VALUES.values(), after):
        for line in value.splitlines():
            if len(line) > 12:
                assert line not in shown
