"""Azure Blob backend against Azurite: secondary read fallback, container, integrity, errors."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import AsyncIterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob.aio import ContainerClient
from structlog.testing import capture_logs

from storage import (
    AzureBlobSettings,
    AzureBlobStore,
    BlobNotFound,
    CorruptBlob,
    StorageError,
    StorageUnavailable,
)
from tests.fixtures.azurite import (
    ACCOUNT,
    ACCOUNT_KEY,
    Azurite,
    fresh_container,
    unique_container,
)
from tests.storage.tcp_relay import TcpRelay


def relayed(azurite: Azurite, hop: TcpRelay, container: str, **extra: object) -> AzureBlobSettings:
    """Primary through the relay (so a test can cut it), secondary straight to Azurite."""
    primary = f"http://127.0.0.1:{hop.port}/{ACCOUNT}"
    return azurite.settings(
        container,
        connection_string=azurite.connection_string.replace(azurite.blob_endpoint, primary),
        secondary_account_url=azurite.secondary_endpoint,
        retries=0,
        **extra,
    )


@pytest.fixture
async def relayed_store(azurite: Azurite, azurite_relay: TcpRelay) -> AsyncIterator[AzureBlobStore]:
    container = unique_container()
    async with AzureBlobStore(relayed(azurite, azurite_relay, container)) as store:
        yield store
    await delete_container(azurite, container)


async def delete_container(azurite: Azurite, container: str) -> None:
    async with ContainerClient.from_connection_string(
        azurite.connection_string, container
    ) as client:
        await client.delete_container()


def blob_container_name(store: AzureBlobStore) -> str:
    return store.description.rsplit("/", 1)[1]


def events(logs: list[MutableMapping[str, Any]], name: str) -> list[MutableMapping[str, Any]]:
    return [entry for entry in logs if entry["event"] == name]


class TestSecondaryFallback:
    async def test_reads_fall_back_when_primary_unreachable(
        self, relayed_store: AzureBlobStore, azurite_relay: TcpRelay, azurite: Azurite
    ) -> None:
        """With the primary cut, get and list are served by the secondary; logged once."""
        for i in range(3):
            await relayed_store.put_if_absent(f"journal/{i}", f"segment {i}".encode())
        await relayed_store.get("journal/0")
        assert relayed_store.secondary_reads == 0
        await azurite_relay.stop()
        with capture_logs() as logs:
            assert (await relayed_store.get("journal/1")).data == b"segment 1"
            listed = await relayed_store.list("journal/")
            assert (await relayed_store.get("journal/2")).data == b"segment 2"
        assert [info.name for info in listed] == ["journal/0", "journal/1", "journal/2"]
        # Counted, so commands can say their reads came from the secondary.
        assert relayed_store.secondary_reads == 3
        [fallback] = events(logs, "storage.read_fallback")
        container = blob_container_name(relayed_store)
        assert fallback["secondary"] == f"{azurite.secondary_endpoint}/{container}"
        assert ACCOUNT_KEY not in repr(logs)

    async def test_writes_fail_when_primary_unreachable(
        self, relayed_store: AzureBlobStore, azurite_relay: TcpRelay
    ) -> None:
        """Writes never go to the secondary: with the primary cut they raise StorageUnavailable."""
        await azurite_relay.stop()
        with pytest.raises(StorageUnavailable) as caught:
            await relayed_store.put_if_absent("checkpoints/p/westus.json", b"{}")
        assert caught.value.blob == "checkpoints/p/westus.json"
        assert "checkpoints/p/westus.json" in str(caught.value)
        await azurite_relay.start()
        assert await relayed_store.list("checkpoints/") == []

    async def test_primary_used_again_after_it_returns(
        self, azurite: Azurite, azurite_relay: TcpRelay
    ) -> None:
        """After primary_retry_seconds, reads return to the primary and say so in the log."""
        container = unique_container()
        settings = relayed(azurite, azurite_relay, container, primary_retry_seconds=0.2)
        async with AzureBlobStore(settings) as store:
            await store.put_if_absent("control", b"epoch=1")
            with capture_logs() as logs:
                await azurite_relay.stop()
                await store.get("control")
                await azurite_relay.start()
                await asyncio.sleep(0.3)
                await store.get("control")
                await azurite_relay.stop()
                await store.get("control")
        await delete_container(azurite, container)
        names = [e["event"] for e in logs if str(e["event"]).startswith("storage.")]
        assert names == ["storage.read_fallback", "storage.primary_back", "storage.read_fallback"]

    async def test_open_while_primary_unreachable(
        self, azurite: Azurite, azurite_relay: TcpRelay
    ) -> None:
        """A store opens during a primary outage and reads from the secondary."""
        container = unique_container()
        async with AzureBlobStore(relayed(azurite, azurite_relay, container)) as store:
            await store.put_if_absent("snapshots/1", b"state")
        await azurite_relay.stop()
        with capture_logs() as logs:
            async with AzureBlobStore(relayed(azurite, azurite_relay, container)) as store:
                assert (await store.get("snapshots/1")).data == b"state"
                assert (await store.list("snapshots/"))[0].name == "snapshots/1"
                assert store.secondary_reads == 2
        assert events(logs, "storage.container_check_skipped")
        # The open found the primary gone: the reads went straight to the secondary
        # (one fallback, named at the open, no retries of the primary per read).
        [fallback] = events(logs, "storage.read_fallback")
        assert fallback["operation"] == "open"
        await delete_container(azurite, container)

    async def test_both_endpoints_down_then_back(self, azurite: Azurite) -> None:
        """With Azurite stopped, reads name the blob and both endpoints; data survives restart."""
        async with fresh_container(azurite, retries=0) as store:
            await store.put_if_absent("kept", b"bytes")
            assert store.secondary_description is not None
            assert store.secondary_description.startswith(azurite.secondary_endpoint)
            azurite.stop()
            try:
                with pytest.raises(StorageUnavailable) as caught:
                    await store.get("kept")
                assert caught.value.blob == "kept"
                assert "primary and secondary" in str(caught.value)
                with pytest.raises(StorageUnavailable) as caught:
                    await store.put("kept", b"new")
                assert f"127.0.0.1:{azurite.port}/{ACCOUNT} unreachable" in str(caught.value)
            finally:
                azurite.start()
            assert (await store.get("kept")).data == b"bytes"


class TestContainer:
    async def test_open_creates_missing_container(self, azurite: Azurite) -> None:
        """Opening a store on a container that does not exist creates it."""
        container = unique_container()
        async with ContainerClient.from_connection_string(
            azurite.connection_string, container
        ) as client:
            assert not await client.exists()
            async with AzureBlobStore(azurite.settings(container)) as store:
                await store.put_if_absent("a", b"1")
            assert await client.exists()
            async with AzureBlobStore(azurite.settings(container)) as store:
                assert (await store.get("a")).data == b"1"
            await client.delete_container()

    async def test_description_names_endpoint_not_key(self, blob_container: AzureBlobStore) -> None:
        """The store's description names account and container, never the key."""
        assert blob_container.description.startswith("azure-blob http://127.0.0.1:")
        assert f"/{ACCOUNT}/t-" in blob_container.description
        assert ACCOUNT_KEY not in blob_container.description

    async def test_wrong_key_is_a_clear_error_without_the_key(self, azurite: Azurite) -> None:
        """A rejected credential fails at open with a message naming the role, not the key."""
        wrong_key = base64.b64encode(os.urandom(64)).decode()
        settings = azurite.settings(
            unique_container(),
            connection_string=azurite.connection_string.replace(ACCOUNT_KEY, wrong_key),
        )
        with pytest.raises(StorageError) as caught:
            async with AzureBlobStore(settings):
                pass
        assert "Storage Blob Data Contributor" in str(caught.value)
        assert wrong_key not in str(caught.value)
        assert wrong_key not in repr(settings)


class TestIntegrity:
    async def test_flipped_byte_in_storage_is_corrupt_blob(
        self, blob_container: AzureBlobStore, azurite: Azurite
    ) -> None:
        """A byte altered in Azurite's own files is caught on read by the MD5 check."""
        marker = b"kvdr-integrity-marker-" + os.urandom(8).hex().encode()
        await blob_container.put_if_absent("segments/7", marker * 4)
        flip_first(azurite.location, marker)
        with pytest.raises(CorruptBlob) as caught:
            await blob_container.get("segments/7")
        assert caught.value.blob == "segments/7"
        assert "segments/7" in str(caught.value)


def flip_first(root: Path, marker: bytes) -> None:
    """Flip one bit of the first stored copy of `marker` under `root`."""
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        content = path.read_bytes()
        at = content.find(marker)
        if at >= 0:
            with path.open("r+b") as file:
                file.seek(at)
                file.write(bytes([content[at] ^ 0x01]))
            return
    raise AssertionError("marker not found in Azurite's files")


class TestReadOnlyOpen:
    async def test_create_container_false_opens_without_creating(self, azurite: Azurite) -> None:
        """A reader's store (create_container=False) opens on a container that does not
        exist and reads it as absent, leaving no container behind."""
        container = unique_container()
        settings = azurite.settings(container)
        async with AzureBlobStore(settings, create_container=False) as store:
            with pytest.raises(BlobNotFound):
                await store.get("failover/app/control.json")
        async with ContainerClient.from_connection_string(
            azurite.connection_string, container
        ) as client:
            assert not await client.exists()
