"""`kvdr verify` as a user runs it (real processes: emulators, Azurite): every target is
compared with the primary item by item; every difference is named, exit 1 on any; with
--deep the secrets' values are compared too, and no value is ever printed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.fixtures.cli import run_kvdr
from tests.fixtures.daemon import free_port, write_config
from tests.fixtures.regions import World
from vault.models import Attributes, ItemKind

VALUES = ("first-secret-value", "second-secret-value", "forged-secret-value", "late-value")


def verify(config: Path, *more: str) -> tuple[int, dict[str, Any], str]:
    result = run_kvdr("verify", "--pair", "app", "--json", "--config", str(config), *more)
    doc = json.loads(result.stdout) if result.stdout.strip() else {}
    return result.returncode, doc, result.stdout + result.stderr


async def test_verify_names_every_difference_and_never_a_value(
    world: World, tmp_path: Path
) -> None:
    config = write_config(world, tmp_path / "kvdr.toml", port=free_port())
    primary, westus = world.vaults["eastus"], world.vaults["westus"]
    await primary.set_secret("db", VALUES[0], Attributes(tags={"env": "prod"}))
    await primary.set_secret("api", VALUES[1], Attributes())
    synced = run_kvdr("sync", "--once", "--config", str(config))
    assert synced.returncode == 0, synced.stderr

    code, doc, _ = verify(config, "--deep")
    assert (code, doc["ok"], doc["differences"]) == (0, True, [])
    assert (doc["primary"], doc["targets"], doc["items_compared"]) == ("eastus", ["westus"], 2)

    # Someone changes westus behind kvdr's back, and the primary moves on unsynced.
    copy = (await westus.list_versions(ItemKind.SECRET, "api"))[-1]
    await westus.set_secret("api", VALUES[2], Attributes(tags=dict(copy.tags)))
    db = (await westus.list_versions(ItemKind.SECRET, "db"))[-1]
    await westus.update_properties(
        ItemKind.SECRET,
        "db",
        db.version,
        Attributes(
            enabled=False,
            tags={"env": "dev", **{k: v for k, v in db.tags.items() if k.startswith("kvdr-")}},
        ),
    )
    await primary.set_secret("late", VALUES[3], Attributes())
    await westus.set_secret("stray", "x", Attributes())

    code, doc, _ = verify(config)
    assert code == 1 and doc["ok"] is False
    found = {(d["name"], d["what"]) for d in doc["differences"]}
    assert found == {
        ("db", "enabled: True on the primary, False here"),
        ("db", "tags differ: env"),
        ("late", "missing"),
        ("stray", "not on the primary"),
    }
    code, deep, printed = verify(config, "--deep")
    assert code == 1
    assert ("api", "value differs") in {(d["name"], d["what"]) for d in deep["differences"]}
    for value in VALUES:
        assert value not in printed

    text = run_kvdr("verify", "--pair", "app", "--config", str(config))
    assert text.returncode == 1
    assert "westus: secret late: missing" in text.stdout


async def test_an_unknown_pair_is_a_usage_error(world: World, tmp_path: Path) -> None:
    config = write_config(world, tmp_path / "kvdr.toml", port=free_port())
    result = run_kvdr("verify", "--pair", "nope", "--config", str(config))
    assert result.returncode == 2 and "--pair: no pair named 'nope'" in result.stderr
