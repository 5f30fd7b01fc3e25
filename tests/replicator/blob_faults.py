"""Blob storage that fails on cue for one client only: a relay to Azurite that can refuse
connections (`stop()`) or accept them and never answer (`swallow()`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from storage import AzureBlobStore
from tests.fixtures.azurite import ACCOUNT, ACCOUNT_KEY, Azurite
from tests.storage.tcp_relay import TcpRelay


class BlackHoleRelay(TcpRelay):
    """A relay that can also swallow requests: connections are accepted, never answered."""

    black_hole = False

    async def swallow(self) -> None:
        """From now on nothing is answered; pooled connections are cut so new ones come."""
        self.black_hole = True
        for writer in list(self._open):
            writer.transport.abort()
        self._open.clear()

    async def _relay(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if self.black_hole:
            with contextlib.suppress(ConnectionError, OSError):
                while await client_r.read(65536):
                    pass
            return
        await super()._relay(client_r, client_w)


@contextlib.asynccontextmanager
async def store_through_relay(
    azurite: Azurite, container: str
) -> AsyncIterator[tuple[AzureBlobStore, BlackHoleRelay]]:
    """A second `AzureBlobStore` on `container` that reaches Azurite through a relay."""
    relay = BlackHoleRelay(azurite.port)
    await relay.start()
    conn = (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};"
        f"AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint=http://127.0.0.1:{relay.port}/{ACCOUNT};"
    )
    settings = azurite.settings(container, connection_string=conn, retries=0)
    store = await AzureBlobStore(settings).open()
    try:
        yield store, relay
    finally:
        await store.close()
        await relay.stop()
