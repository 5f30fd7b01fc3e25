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


async def test_deep_compares_the_public_material_of_keys_and_certificates(
    world: World, tmp_path: Path
) -> None:
    """A key replaced on the target under the same name with kvdr's tags kept reads the
    same in the listings; --deep sees its material differ, and a certificate's."""
    from azure.keyvault.certificates import CertificatePolicy

    from tests.fixtures.emulator import aio_certificate_client, aio_key_client

    config = write_config(
        world,
        tmp_path / "kvdr.toml",
        port=free_port(),
        extra='kinds = ["secret", "key", "certificate"]',
    )
    east, west = world.emulators["eastus"], world.emulators["westus"]
    policy = CertificatePolicy("Self", subject="CN=web.example.com", validity_in_months=12)
    async with aio_key_client(east) as keys, aio_certificate_client(east) as certs:
        await keys.create_rsa_key("signing", size=2048)
        await keys.create_ec_key("ledger", curve="P-256")
        await certs.create_certificate("web", policy)
    synced = run_kvdr("sync", "--once", "--config", str(config))
    assert synced.returncode == 0, synced.stderr
    code, doc, _ = verify(config, "--deep")
    assert (code, doc["differences"], doc["errors"]) == (0, [], [])
    assert doc["items_compared"] == 3

    # Same name, same tags and dates where the listing shows them; other material.
    westus = world.vaults["westus"]
    ledger = (await westus.list_versions(ItemKind.KEY, "ledger"))[-1]
    web = (await westus.list_versions(ItemKind.CERTIFICATE, "web"))[-1]
    async with aio_key_client(west) as keys, aio_certificate_client(west) as certs:
        await keys.create_ec_key("ledger", curve="P-256", tags=dict(ledger.tags))
        created = await certs.create_certificate("web", policy)
        assert created.properties is not None
        await certs.update_certificate_properties(
            "web", created.properties.version or "", tags=dict(web.tags)
        )
    code, listing, _ = verify(config)
    # The new certificate's dates show in the listing; the key's new material does not.
    assert code == 1 and {d["name"] for d in listing["differences"]} == {"web"}
    code, deep, printed = verify(config, "--deep")
    assert code == 1
    material = {
        (d["kind"], d["name"]) for d in deep["differences"] if d["what"] == "key material differs"
    }
    assert material == {("key", "ledger"), ("certificate", "web")}
    assert "signing" not in printed
