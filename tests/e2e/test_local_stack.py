"""The local stack (two regions, Azurite, fault proxy) on free ports with its daemon:
faults injected on the stack's links (issue 6) seen in `kvdr status`, the journal through
a storage outage, signed backups, signed event deliveries, sealed checkpoints. `kvdr up`
and `kvdr down` themselves are in test_kvdr_up.py."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from chaos.faults import Faults
from kvdr.config import load_config
from kvdr.local_stack import LocalStack
from replicator.checkpoint import checkpoint_blob_name
from replicator.state_seal import StateSealer, read_state_document
from storage import AzureBlobSettings, AzureBlobStore, StorageUnavailable
from tests.e2e.stack_clients import kvdr, stack_certificate_client, stack_secret_client
from tests.fixtures.daemon import DaemonProcess
from tests.fixtures.stack_failover import running_stack
from tests.fixtures.waiting import wait_for, wait_for_sync

SNAPSHOT_SECONDS = 15
# A write to an unreachable storage endpoint fails after the storage client's retries
# (about 15 s); the journal reports the outage after its first failed write.
OUTAGE_SECONDS = 90


def snapshots_every_few_seconds(text: str) -> str:
    """Snapshots fall due every few seconds here (10 minutes in `kvdr up`), so a test
    can have one fall due during an outage it makes."""
    assert 'snapshot_interval = "10m"' in text
    return text.replace('snapshot_interval = "10m"', f'snapshot_interval = "{SNAPSHOT_SECONDS}s"')


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalStack, DaemonProcess]]:
    """The local stack on free ports, with its daemon as a process."""
    folder = tmp_path_factory.mktemp("stack")
    with running_stack(folder, edit_config=snapshots_every_few_seconds) as running:
        yield running.with_daemon()


async def watch_status(
    daemon: DaemonProcess, until: Callable[[dict[str, Any]], bool], seconds: float
) -> list[dict[str, Any]]:
    """Status documents every 0.2 s until one satisfies `until` or `seconds` pass."""
    samples: list[dict[str, Any]] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        samples.append(await asyncio.to_thread(daemon.status))
        if until(samples[-1]):
            break
        await asyncio.sleep(0.2)
    return samples


def westus_lag(doc: dict[str, Any]) -> float:
    return float(doc["pairs"][0]["targets"][0]["lag_seconds"]) if doc["pairs"] else 0.0


class TestFaultsOnTheStack:
    async def test_latency_on_secondary_link_raises_lag_then_it_falls(
        self, stack: tuple[LocalStack, DaemonProcess], faults: Faults
    ) -> None:
        """1.5 s of latency on the westus link shows as replication lag in status, and the
        lag returns to 0 once the toxic is gone."""
        local, daemon = stack
        # The first full pass must be over, or the toxic slows it rather than the change.
        first_pass = await watch_status(
            daemon, lambda d: bool(d["pairs"]) and d["pairs"][0]["last_reconcile"], 60
        )
        assert first_pass[-1]["pairs"][0]["last_reconcile"], daemon.logs()
        items_before = first_pass[-1]["pairs"][0]["targets"][0]["items"]
        async with stack_secret_client(local.state_dir, local.ports.eastus) as primary:
            async with faults.toxic("westus-vault", "latency", attributes={"latency": 1500}):
                await primary.set_secret("slow-link", "value-a")
                samples = await watch_status(daemon, lambda d: westus_lag(d) >= 1.5, 30)
            lags = [westus_lag(s) for s in samples]
            assert max(lags) >= 1.5, (lags, daemon.logs()[-4000:])
            await primary.set_secret("fast-link", "value-b")
            after = await watch_status(
                daemon,
                lambda d: (
                    d["pairs"][0]["targets"][0]["items"] == items_before + 2
                    and westus_lag(d) == 0.0
                    and d["pairs"][0]["rpo_seconds"] == 0.0
                ),
                30,
            )
        assert after[-1]["pairs"][0]["targets"][0]["items"] == items_before + 2
        assert westus_lag(after[-1]) == 0.0, [westus_lag(s) for s in after]
        assert after[-1]["pairs"][0]["rpo_seconds"] == 0.0

    async def test_primary_link_down_then_region_recovers(
        self, stack: tuple[LocalStack, DaemonProcess], faults: Faults
    ) -> None:
        """With the eastus link down the daemon reports the region unreachable, and it
        reports it up again by itself when the link returns."""
        _, daemon = stack

        def eastus_up(doc: dict[str, Any]) -> bool | None:
            return {r["region"]: r["up"] for r in doc["regions"]}["eastus"]

        async with faults.down("eastus-vault"):
            await wait_for(
                lambda: eastus_up(daemon.status()) is False, 30, "eastus unreachable", interval=0.5
            )
            assert eastus_up(daemon.status()) is False
            code, metrics = daemon.get("/metrics")
            assert code == 200
            assert 'kvdr_region_up{region="eastus"} 0.0' in metrics.decode()
        await wait_for(lambda: eastus_up(daemon.status()) is True, 30, "eastus up", interval=0.5)
        assert eastus_up(daemon.status()) is True


def journal_problems(doc: dict[str, Any]) -> list[dict[str, Any]]:
    health = doc.get("journal_health")
    assert health is not None, "the daemon reports no journal health"
    problems: list[dict[str, Any]] = health["problems"]
    return problems


def demo_journal(doc: dict[str, Any]) -> dict[str, Any]:
    """The demo pair's journal position (all zero before it recorded its first change)."""
    found = [j for j in doc["journal"] if j["pair"] == "demo"]
    if not found:
        return {"buffered": 0, "durable_sequence": 0, "last_snapshot_sequence": 0}
    return found[0]


class TestJournalOnTheStack:
    async def test_blob_link_down_while_a_snapshot_is_due_then_back(
        self, stack: tuple[LocalStack, DaemonProcess], faults: Faults
    ) -> None:
        """With the blob link cut while changes wait and a snapshot falls due, the
        journal's failure shows in status, /readyz and the error counter; when the link
        returns it resumes by itself, writes what it held and the snapshot, and a restore
        plan from the journal matches the primary: nothing recorded was lost."""
        local, daemon = stack
        await watch_status(
            daemon, lambda d: bool(d["pairs"]) and d["pairs"][0]["last_reconcile"], 60
        )
        names = [f"during-outage-{i}" for i in range(4)]
        async with stack_secret_client(local.state_dir, local.ports.eastus) as primary:
            # The journal has this pair open, its first snapshot written, and one more
            # change durable but not in a snapshot yet when the link goes: the next
            # snapshot falls due during the outage.
            await primary.set_secret("before-outage", "value-before")
            await watch_status(
                daemon,
                lambda d: (
                    demo_journal(d)["durable_sequence"] > 0
                    and demo_journal(d)["last_snapshot_sequence"]
                    == demo_journal(d)["durable_sequence"]
                ),
                30,
            )
            await primary.set_secret("before-outage-2", "value-before-2")
            opened = await watch_status(
                daemon,
                lambda d: (
                    demo_journal(d)["durable_sequence"] > demo_journal(d)["last_snapshot_sequence"]
                    and demo_journal(d)["buffered"] == 0
                ),
                30,
            )
            before = demo_journal(opened[-1])
            assert before["durable_sequence"] > before["last_snapshot_sequence"], daemon.logs()[
                -3000:
            ]
            async with faults.down("blob"):
                for name in names:
                    await primary.set_secret(name, f"value-of-{name}")
                during = await watch_status(
                    daemon,
                    lambda d: any(p["what"] == "journal_snapshot" for p in journal_problems(d)),
                    OUTAGE_SECONDS,
                )
                assert any(p["what"] == "journal_snapshot" for p in journal_problems(during[-1])), (
                    [(d["journal"], d.get("journal_health")) for d in during[::10]],
                    daemon.logs()[-3000:],
                )
                held = demo_journal(during[-1])
                assert (
                    held["buffered"] >= 1 and held["durable_sequence"] == before["durable_sequence"]
                )
                code, body = daemon.get("/readyz")
                assert code == 503 and "journal failing" in json.loads(body)["reason"]
                _, metrics = daemon.get("/metrics")
                assert 'target="journal"' in metrics.decode()
                shown = kvdr("status", "--config", str(daemon.config), cwd=local.state_dir)
                assert "journal failing" in shown.stdout, shown.stdout + shown.stderr
        after = await watch_status(
            daemon,
            lambda d: (
                not journal_problems(d)
                and demo_journal(d)["buffered"] == 0
                and demo_journal(d)["last_snapshot_sequence"] == demo_journal(d)["durable_sequence"]
            ),
            OUTAGE_SECONDS,
        )
        assert journal_problems(after[-1]) == [], daemon.logs()[-3000:]
        resumed = demo_journal(after[-1])
        assert resumed["durable_sequence"] >= before["durable_sequence"] + len(names)
        assert resumed["last_snapshot_sequence"] == resumed["durable_sequence"]
        assert daemon.get("/readyz")[0] == 200
        # The pair's lease lapsed during the outage: the daemon takes the pair back and
        # replicates and journals a new change as before.
        async with stack_secret_client(local.state_dir, local.ports.eastus) as primary:
            await primary.set_secret("after-outage", "value-after")
        settled = await watch_status(
            daemon,
            lambda d: (
                demo_journal(d)["durable_sequence"] > resumed["durable_sequence"]
                and demo_journal(d)["buffered"] == 0
                and d["pairs"][0]["rpo_seconds"] == 0.0
            ),
            OUTAGE_SECONDS,
        )
        assert demo_journal(settled[-1])["durable_sequence"] > resumed["durable_sequence"], (
            daemon.logs()[-3000:]
        )
        planned = kvdr(
            "restore",
            "--pair",
            "demo",
            "--at",
            datetime.now(UTC).isoformat(),
            "--target",
            f"https://127.0.0.1:{local.ports.eastus}",
            "--dry-run",
            "--json",
            "--config",
            str(daemon.config),
            cwd=local.state_dir,
        )
        assert planned.returncode == 0, planned.stdout + planned.stderr
        plan = json.loads(planned.stdout)["plan"]
        # Every item the primary holds is in the journal as it is there: the four written
        # during the outage included, nothing to create, change or delete.
        assert plan["counts"]["unchanged"] == plan["target_items"] >= len(names) + 3
        assert {op: n for op, n in plan["counts"].items() if op != "unchanged" and n} == {}


class TestSignedBackupsOnTheStack:
    async def test_snapshot_verify_reports_signed_objects(
        self, stack: tuple[LocalStack, DaemonProcess], tmp_path: Path
    ) -> None:
        """The demo's backups are signed: a secret written on the primary is journaled,
        and `kvdr snapshot verify` on the stack finds every object and the journal head
        signed by the stack's pinned signer; `snapshot list` names that signer."""
        local = stack[0]
        config = str(local.state_dir / "kvdr.toml")
        async with stack_secret_client(local.state_dir, local.ports.eastus) as client:
            await client.set_secret("signed-backup-demo", "value-signed")

        def verified() -> dict[str, Any] | None:
            result = kvdr("snapshot", "verify", "--json", "--config", config, cwd=tmp_path)
            doc: dict[str, Any] = json.loads(result.stdout)
            pairs = doc.get("pairs") or [{}]
            return doc if result.returncode == 0 and pairs[0].get("signed", 0) >= 1 else None

        doc = await asyncio.to_thread(
            wait_for_sync, verified, 60, "signed backups of the demo pair", interval=1.0
        )
        (report,) = doc["pairs"]
        assert report["ok"] and report["unsigned"] == 0 and report["head_signed"] is True
        assert report["signed"] == report["decrypted"] == report["objects"]
        assert set(report["generation_signatures"].values()) == {"signed"}
        listed = kvdr("snapshot", "list", "--config", config, cwd=tmp_path)
        assert listed.returncode == 0 and "signed by ed25519:" in listed.stdout
        key = local.state_dir / "backup-signing.key"
        assert key.stat().st_mode & 0o777 == 0o600


def emulator_events(local: LocalStack, port: int) -> dict[str, Any]:
    """The delivery state of the emulator behind `port`: its one subscriber, the daemon."""
    context = ssl.create_default_context(cafile=str(local.state_dir / "vaults" / "ca-bundle.pem"))
    url = f"https://127.0.0.1:{port}/_emulator/stats"
    with urllib.request.urlopen(url, context=context, timeout=10) as response:
        subscribers: list[dict[str, Any]] = json.loads(response.read())["events"]
    assert len(subscribers) == 1
    return subscribers[0]


class TestEventsOnTheStack:
    async def test_unauthenticated_posts_refused_emulator_deliveries_taken(
        self, stack: tuple[LocalStack, DaemonProcess]
    ) -> None:
        """The stack's /events refuses a POST without the shared secret (401) and a
        text/plain one (415); the emulator, configured with the same secret, passes the
        validation handshake and has its events taken, and never shows the secret."""
        local, daemon = stack
        body = json.dumps(
            [
                {
                    "id": "1",
                    "eventType": "Microsoft.KeyVault.SecretNewVersionCreated",
                    "data": {"VaultName": "eastus", "ObjectType": "Secret", "ObjectName": "x"},
                }
            ]
        ).encode()
        for content_type, expected in (("application/json", 401), ("text/plain", 415)):
            request = urllib.request.Request(
                daemon.url + "/events",
                data=body,
                method="POST",
                headers={"Content-Type": content_type},
            )
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=10)
            assert refused.value.code == expected

        secret = (local.state_dir / "events.secret").read_text().strip()
        # The emulator retries the handshake with backoff until the daemon answers it.
        before = await wait_for(
            lambda: (state := emulator_events(local, local.ports.eastus))["validated"] and state,
            30,
            "the emulator's validation handshake",
            interval=0.5,
        )
        assert "?" not in before["url"]
        async with stack_secret_client(local.state_dir, local.ports.eastus) as primary:
            await primary.set_secret("by-signed-event", "value-e")
        await wait_for(
            lambda: emulator_events(local, local.ports.eastus)["delivered"] > before["delivered"],
            30,
            "the emulator's delivery to be taken",
            interval=0.5,
        )
        assert emulator_events(local, local.ports.eastus)["queued"] == 0
        assert secret not in daemon.logs()
        assert secret not in (local.state_dir / "logs" / "emulator-eastus.log").read_text()


class TestStateOnTheStack:
    async def test_checkpoints_in_azurite_name_no_item(
        self, stack: tuple[LocalStack, DaemonProcess]
    ) -> None:
        """What anyone reading the stack's blob container sees of a mirrored secret: not
        its name. The checkpoint is sealed with the stack's state key (.kvdr/state.key)."""
        local, daemon = stack
        name = "payroll-db-password-e2e"
        await watch_status(daemon, lambda d: bool(d["pairs"]), 60)
        async with stack_secret_client(local.state_dir, local.ports.eastus) as primary:
            await primary.set_secret(name, "value-e2e")
        settings = AzureBlobSettings(connection_string=local.blob_connection_string())
        async with AzureBlobStore(settings) as blobs:
            sealer = StateSealer((local.state_dir / "state.key").read_text().strip())
            blob = checkpoint_blob_name("demo", "westus")

            async def sealed_with_it() -> bytes | None:
                data = (await blobs.get(blob)).data
                opened = json.loads(read_state_document(blob, data, sealer))
                return data if f"secret/{name}" in opened["items"] else None

            data = await wait_for(sealed_with_it, 30, "the new secret checkpointed")
        assert b'"sealed":1' in data
        assert name.encode() not in data and b"demo-" not in data
        assert (local.state_dir / "state.key").stat().st_mode & 0o777 == 0o600


class TestStorageLinksOnTheStack:
    async def test_reads_go_through_the_secondary_link_when_the_primary_is_cut(
        self, stack: tuple[LocalStack, DaemonProcess], faults: Faults
    ) -> None:
        """The configuration's `secondary_account_url` answers through the stack's own
        `blob-secondary` link: with `blob` cut a read still succeeds, with both cut it
        fails, so the read really took that link."""
        local, _ = stack
        links = await faults.links()
        assert links["blob-secondary"].listen == f"127.0.0.1:{local.ports.blob_secondary}"
        assert links["blob-secondary"].upstream == links["blob"].upstream
        configured = load_config(local.state_dir / "kvdr.toml").storage
        assert isinstance(configured, AzureBlobSettings)
        settings = dataclasses.replace(configured, retries=0, connect_timeout_seconds=1.0)
        async with AzureBlobStore(settings) as blobs:
            await blobs.put("e2e/secondary-probe", b"through the replica")
            async with faults.down("blob"):
                assert (await blobs.get("e2e/secondary-probe")).data == b"through the replica"
                async with faults.down("blob-secondary"):
                    with pytest.raises(StorageUnavailable):
                        await blobs.get("e2e/secondary-probe")


class TestSecondaryAnswersLikeThePrimary:
    async def test_a_disabled_latest_version_is_refused_on_westus_and_verify_agrees(
        self, stack: tuple[LocalStack, DaemonProcess], tmp_path: Path
    ) -> None:
        """As a user meets it on `kvdr up`: a secret's second version disabled right after
        it was written, and a certificate's renewal disabled the same way. Westus serves
        neither the first value nor the first certificate's secret (it refuses, as eastus
        does), and `kvdr verify --deep` finds every target answering as the primary."""
        from azure.core.exceptions import HttpResponseError
        from azure.keyvault.certificates import CertificatePolicy

        local = stack[0]
        config = str(local.state_dir / "kvdr.toml")
        async with stack_secret_client(local.state_dir, local.ports.eastus) as eastus:
            await eastus.set_secret("rotated-then-revoked", "old-value")
            second = await eastus.set_secret("rotated-then-revoked", "revoked-value")
            await eastus.update_secret_properties(
                "rotated-then-revoked", second.properties.version, enabled=False
            )
            async with stack_secret_client(local.state_dir, local.ports.westus) as westus:

                async def refused_on_westus() -> bool:
                    try:
                        await westus.get_secret("rotated-then-revoked")
                    except HttpResponseError as exc:
                        return exc.status_code == 403
                    return False

                await wait_for(refused_on_westus, 60, "westus refusing like eastus")
                with pytest.raises(HttpResponseError) as on_eastus:
                    await eastus.get_secret("rotated-then-revoked")
                assert on_eastus.value.status_code == 403

                # A certificate renewed and the renewal disabled: westus does not go on
                # serving the first certificate's secret (its private key) either.
                policy = CertificatePolicy("Self", subject="CN=shop.example.com")
                async with stack_certificate_client(local.state_dir, local.ports.eastus) as certs:
                    await certs.create_certificate("shop-tls", policy)
                    renewed = await certs.create_certificate("shop-tls", policy)
                    assert renewed.properties is not None
                    await certs.update_certificate_properties(
                        "shop-tls", renewed.properties.version or "", enabled=False
                    )

                async def certificate_refused_on_westus() -> bool:
                    try:
                        await westus.get_secret("shop-tls")
                    except HttpResponseError as exc:
                        return exc.status_code == 403
                    return False

                await wait_for(certificate_refused_on_westus, 60, "westus refusing the renewal")
                with pytest.raises(HttpResponseError) as cert_on_eastus:
                    await eastus.get_secret("shop-tls")
                assert cert_on_eastus.value.status_code == 403

        def verified() -> dict[str, Any] | None:
            result = kvdr(
                "verify", "--pair", "demo", "--deep", "--json", "--config", config, cwd=tmp_path
            )
            doc: dict[str, Any] = json.loads(result.stdout)
            return doc if result.returncode == 0 else None

        doc = await asyncio.to_thread(wait_for_sync, verified, 60, "verify --deep", interval=1.0)
        assert doc["differences"] == [] and doc["primary"] == "eastus"
        assert "revoked-value" not in json.dumps(doc) and "old-value" not in json.dumps(doc)
