"""`kvdr audit show|verify` as a user runs them (real processes: emulators, Azurite):
mirror writes of `kvdr sync` are in the trail, item by item, never with a value; an
edited, removed or forged segment in storage makes `verify` exit 1 naming it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from backups import audit_chain as chain
from tests.fixtures.cli import run_kvdr
from tests.fixtures.daemon import DaemonProcess, free_port, write_config
from tests.fixtures.regions import World, WorldFactory
from tests.fixtures.waiting import wait_for
from vault.errors import ItemNotFound
from vault.models import Attributes, ItemKind

VALUES = ("audit-value-one-7f3a", "audit-value-two-9c1e")


def signed(tmp: Path, extra: str = "") -> str:
    return f"""
[backups]
flush_interval = "1s"

[[backups.keks]]
kind = "file"
path = "{tmp / "keys" / "backup.key"}"
create = true

[[backups.signers]]
kind = "file"
path = "{tmp / "signing" / "signing.key"}"
create = true

[audit]
flush_interval = "1s"
{extra}
"""


def audit(config: Path, *args: str) -> tuple[int, Any, str]:
    result = run_kvdr("audit", *args, "--config", str(config))
    doc = json.loads(result.stdout) if "--json" in args and result.stdout.strip() else None
    return result.returncode, doc, result.stdout + result.stderr


async def audit_blobs(world: World) -> dict[str, bytes]:
    return {
        info.name: (await world.blobs.get(info.name)).data
        for info in await world.blobs.list(chain.PREFIX)
    }


async def wipe_audit(world: World) -> None:
    for name in await audit_blobs(world):
        await world.blobs.delete(name)


class TestShowAndVerify:
    async def test_sync_writes_are_in_the_trail_and_it_verifies(
        self, world: World, tmp_path: Path
    ) -> None:
        """Each mirrored secret is one `mirror.set_secret` entry for westus; show filters
        by pair and time; verify says intact; no value anywhere in the trail."""
        await wipe_audit(world)
        config = write_config(
            world, tmp_path / "kvdr.toml", port=free_port(), extra=signed(tmp_path)
        )
        primary = world.vaults["eastus"]
        await primary.set_secret("audit-db", VALUES[0], Attributes())
        await primary.set_secret("audit-api", VALUES[1], Attributes())
        synced = run_kvdr("sync", "--once", "--config", str(config))
        assert synced.returncode == 0, synced.stderr

        code, doc, printed = audit(config, "show", "--json", "--pair", "app")
        assert code == 0, printed
        assert doc["intact"] is True and doc["problems"] == []
        sets = {
            e["item"]["name"]: e for e in doc["entries"] if e["operation"] == "mirror.set_secret"
        }
        assert {"audit-db", "audit-api"} <= set(sets)
        entry = sets["audit-db"]
        assert (entry["outcome"], entry["pair"], entry["detail"]["region"]) == (
            "ok",
            "app",
            "westus",
        )
        assert entry["actor"]["host"] and entry["actor"]["principal"]

        code, later, _ = audit(config, "show", "--json", "--since", "2999-01-01T00:00:00Z")
        assert code == 0 and later["entries"] == []
        code, recent, _ = audit(config, "show", "--json", "--since", "-1h")
        assert len(recent["entries"]) == len(doc["entries"])
        code, _, text = audit(config, "show")
        assert code == 0 and "mirror.set_secret ok" in text and "secret/audit-db" in text

        code, report, _ = audit(config, "verify", "--json")
        assert code == 0 and report["ok"] is True
        assert report["entries"] >= 2 and report["first_seq"] == 1

        stored = b"".join((await audit_blobs(world)).values())
        for value in VALUES:
            assert value.encode() not in stored
            assert value not in printed + text

    async def test_tampering_in_storage_is_named_by_verify(
        self, world: World, tmp_path: Path
    ) -> None:
        """An edited entry and a forged appended segment: exit 1, each named; show warns."""
        await wipe_audit(world)
        config = write_config(
            world, tmp_path / "kvdr.toml", port=free_port(), extra=signed(tmp_path)
        )
        await world.vaults["eastus"].set_secret("audit-t1", "v1", Attributes())
        assert run_kvdr("sync", "--once", "--config", str(config)).returncode == 0
        blobs = await audit_blobs(world)
        name = sorted(blobs)[0]
        lines = blobs[name].split(b"\n")
        entry = json.loads(lines[0])
        entry["outcome"] = "failed"
        lines[0] = chain.canonical(entry)
        await world.blobs.delete(name)
        await world.blobs.put_if_absent(name, b"\n".join(lines))
        # An appended segment someone wrote without a signing key.
        last = max(int(json.loads(x)["seq"]) for x in lines if b'"seq"' in x)
        fake = {"seq": last + 1, "time": "2026-01-01T00:00:00.000000Z", "prev": "x"}
        fake["hash"] = chain.entry_hash(fake)
        await world.blobs.put_if_absent(chain.segment_blob(last + 1), chain.canonical(fake))

        code, report, printed = audit(config, "verify", "--json")
        assert code == 1 and report["ok"] is False, printed
        found = {(p["blob"], p["seq"], p["what"]) for p in report["problems"]}
        assert (name, entry["seq"], "edited: its content does not match its hash") in found
        assert any(b == chain.segment_blob(last + 1) and "not signed" in w for b, _, w in found)
        code, _, text = audit(config, "verify")
        assert code == 1 and "NOT INTACT" in text and name in text
        code, _, shown = audit(config, "show")
        assert code == 0 and "the audit trail is not intact" in shown


class TestNames:
    async def test_a_pair_that_hides_names_has_them_hashed(
        self, world: World, tmp_path: Path
    ) -> None:
        """hide_names: the trail names the item as /status does (sha256:...)."""
        await wipe_audit(world)
        config = write_config(
            world,
            tmp_path / "kvdr.toml",
            port=free_port(),
            extra="hide_names = true\n" + signed(tmp_path),
        )
        await world.vaults["eastus"].set_secret("audit-hidden-name", "v", Attributes())
        assert run_kvdr("sync", "--once", "--config", str(config)).returncode == 0
        _, doc, _ = audit(config, "show", "--json")
        names = {e["item"]["name"] for e in doc["entries"] if e["item"]}
        assert names and all(n.startswith("sha256:") for n in names)
        assert b"audit-hidden-name" not in b"".join((await audit_blobs(world)).values())


class TestUsage:
    async def test_usage_errors_exit_2(self, world: World, tmp_path: Path) -> None:
        """A bad --since, an unknown --pair, and no signer to check with: exit 2."""
        config = write_config(
            world, tmp_path / "kvdr.toml", port=free_port(), extra=signed(tmp_path)
        )
        code, _, text = audit(config, "show", "--since", "yesterday")
        assert code == 2 and "--since" in text
        code, _, text = audit(config, "verify", "--pair", "nope")
        assert code == 2 and "no pair named 'nope'" in text
        bare = write_config(world, tmp_path / "bare.toml", port=free_port())
        code, _, text = audit(bare, "verify")
        assert code == 2 and "[[backups.signers]]" in text
        broken = write_config(
            world, tmp_path / "broken.toml", port=free_port(), extra="[audit]\nenabled = true\n"
        )
        code, _, text = audit(broken, "show")
        assert code == 2 and "audit.enabled" in text


async def copied(world: World, name: str) -> bool:
    try:
        return bool(await world.vaults["westus"].list_versions(ItemKind.SECRET, name))
    except ItemNotFound:
        return False


class TestDaemon:
    async def test_the_running_daemon_records_mirror_writes_and_deletes(
        self, world: World, tmp_path: Path
    ) -> None:
        """The real daemon: a new secret and a deletion on the primary show up as
        `mirror.set_secret` and `mirror.delete_item` entries while it runs, and the trail
        verifies after SIGTERM."""
        await wipe_audit(world)
        port = free_port()
        config = write_config(world, tmp_path / "kvdr.toml", port=port, extra=signed(tmp_path))
        text = config.read_text().replace(
            "[replication]\n", '[replication]\ndeletion_sweep_interval = "2s"\n'
        )
        config.write_text(text)
        primary = world.vaults["eastus"]
        await primary.set_secret("audit-daemon-gone", "v", Attributes())
        daemon = DaemonProcess(config, port).start()
        try:
            await wait_for(lambda: copied(world, "audit-daemon-gone"), 30, "the first copy")
            await primary.set_secret("audit-daemon-new", VALUES[0], Attributes())
            await primary.delete_item(ItemKind.SECRET, "audit-daemon-gone")

            def seen() -> bool:
                _, doc, _ = audit(config, "show", "--json")
                ops = {(e["operation"], (e["item"] or {}).get("name")) for e in doc["entries"]}
                return {
                    ("mirror.set_secret", "audit-daemon-new"),
                    ("mirror.delete_item", "audit-daemon-gone"),
                } <= ops

            await wait_for(seen, 60, "the daemon's mirror entries in the audit trail")
        finally:
            assert daemon.terminate() == 0
        code, report, _ = audit(config, "verify", "--json")
        assert code == 0 and report["ok"], report
        assert VALUES[0].encode() not in b"".join((await audit_blobs(world)).values())


class TestCommands:
    async def test_approve_and_restore_are_recorded(
        self, make_world: WorldFactory, tmp_path: Path
    ) -> None:
        """`failover approve` is one entry with its operator; an applied restore is one
        `restore.apply` entry plus one entry per item written to the target; a dry run
        writes none."""
        world = await make_world(regions=("eastus", "westus", "centralus"))
        config = write_config(
            world, tmp_path / "kvdr.toml", port=free_port(), extra=signed(tmp_path)
        )
        cfg = ["--config", str(config)]
        await world.vaults["eastus"].set_secret("restored-one", VALUES[0], Attributes())
        assert run_kvdr("sync", "--once", *cfg).returncode == 0
        approved = run_kvdr("failover", "approve", "--pair", "app", "--operator", "alice", *cfg)
        assert approved.returncode == 0, approved.stderr
        target = world.emulators["centralus"].url
        restore = ["restore", "--pair", "app", "--at", "-0s", "--target", target, *cfg]
        assert run_kvdr(*restore, "--dry-run").returncode == 0
        _, before, _ = audit(config, "show", "--json")
        assert not [e for e in before["entries"] if e["operation"].startswith("restore.")]
        applied = run_kvdr(*restore)
        assert applied.returncode == 0, applied.stdout + applied.stderr

        _, doc, _ = audit(config, "show", "--json", "--pair", "app")
        ops = [(e["operation"], e["outcome"]) for e in doc["entries"]]
        assert ("failover.approve", "ok") in ops and ("restore.apply", "ok") in ops
        (approval,) = [e for e in doc["entries"] if e["operation"] == "failover.approve"]
        assert approval["detail"]["operator"] == "alice"
        assert "user" in approval["actor"]["principal"]
        writes = [e for e in doc["entries"] if e["operation"] == "restore.set_secret"]
        assert [(w["item"]["name"], w["detail"]["region"]) for w in writes] == [
            ("restored-one", "centralus")
        ]
        code, report, _ = audit(config, "verify", "--json")
        assert code == 0 and report["ok"], report
        assert VALUES[0].encode() not in b"".join((await audit_blobs(world)).values())
