"""chaos.faults.Faults: toxics and down/up on named links, from async code."""

from __future__ import annotations

import asyncio
import time

import pytest

from chaos import FaultProxy
from chaos.errors import (
    FaultApiUnreachable,
    FaultError,
    InvalidFault,
    LinkExists,
    LinkNotFound,
)
from chaos.faults import Faults, LinkInfo
from tests.fixtures.chaos import EchoServer, FaultProxyEndpoint, connect, free_port, recv_exact


def round_trip_ms(listen: str) -> float:
    with connect(listen) as sock:
        start = time.perf_counter()
        sock.sendall(b"ping")
        recv_exact(sock, 4)
        return (time.perf_counter() - start) * 1000


def refuses(listen: str) -> bool:
    try:
        connect(listen, timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


@pytest.fixture
def faults(fault_proxy: FaultProxyEndpoint) -> Faults:
    return Faults(fault_proxy.host, fault_proxy.port)


@pytest.fixture
async def link(faults: Faults, echo_server: EchoServer) -> LinkInfo:
    return await faults.create_link("vault_eastus", echo_server.address)


class TestFaults:
    """Driving faults through toxiproxy-python with asyncio.to_thread."""

    async def test_create_link(self, faults: Faults, link: LinkInfo) -> None:
        """A new link listens on a real port and is listed."""
        assert link.name == "vault_eastus" and link.enabled
        assert not link.listen.endswith(":0")
        assert await faults.links() == {"vault_eastus": link}

    async def test_add_and_remove_toxic(self, faults: Faults, link: LinkInfo) -> None:
        """A latency toxic slows the link until it is removed."""
        name = await faults.add_toxic(link.name, "latency", attributes={"latency": 100})
        assert name == "latency_downstream"
        [toxic] = await faults.toxics(link.name)
        assert (toxic.type, toxic.stream, toxic.attributes["latency"]) == (
            "latency",
            "downstream",
            100,
        )
        assert await asyncio.to_thread(round_trip_ms, link.listen) >= 100
        await faults.remove_toxic(link.name, name)
        assert await faults.toxics(link.name) == []
        assert await asyncio.to_thread(round_trip_ms, link.listen) < 90

    async def test_toxic_context(self, faults: Faults, link: LinkInfo) -> None:
        """The toxic() block adds a named toxic and removes it afterwards."""
        async with faults.toxic(
            link.name, "bandwidth", stream="upstream", name="slow", attributes={"rate": 1}
        ) as name:
            assert name == "slow"
            assert [t.name for t in await faults.toxics(link.name)] == ["slow"]
        assert await faults.toxics(link.name) == []

    async def test_down_and_up(self, faults: Faults, link: LinkInfo) -> None:
        """set_down refuses connections; set_up serves them again."""
        await faults.set_down(link.name)
        assert await asyncio.to_thread(refuses, link.listen)
        assert not (await faults.links())[link.name].enabled
        await faults.set_up(link.name)
        assert await asyncio.to_thread(round_trip_ms, link.listen) >= 0

    async def test_down_context_restores_link_on_error(
        self, faults: Faults, link: LinkInfo
    ) -> None:
        """The down() block brings the link back up even when the block fails."""
        with pytest.raises(RuntimeError):
            async with faults.down(link.name):
                assert await asyncio.to_thread(refuses, link.listen)
                raise RuntimeError("drill step failed")
        assert (await faults.links())[link.name].enabled

    async def test_reset(self, faults: Faults, link: LinkInfo) -> None:
        """reset() removes toxics and brings links up."""
        await faults.add_toxic(link.name, "latency")
        await faults.set_down(link.name)
        await faults.reset()
        assert (await faults.links())[link.name].enabled
        assert await faults.toxics(link.name) == []

    async def test_delete_link(self, faults: Faults, link: LinkInfo) -> None:
        """delete_link removes the link."""
        await faults.delete_link(link.name)
        assert await faults.links() == {}

    async def test_version(self, faults: Faults) -> None:
        """version() returns the server's version string."""
        assert await faults.version()


class TestFaultErrors:
    """Client errors become chaos.errors with the server's message and the link's name."""

    async def test_unknown_link(self, faults: Faults) -> None:
        """A link that does not exist raises LinkNotFound naming it."""
        with pytest.raises(LinkNotFound, match="vault_westus"):
            await faults.add_toxic("vault_westus", "latency")
        with pytest.raises(LinkNotFound):
            await faults.set_down("vault_westus")

    async def test_unknown_toxic(self, faults: Faults, link: LinkInfo) -> None:
        """Removing a toxic that is not there raises LinkNotFound with the server's text."""
        with pytest.raises(LinkNotFound, match="toxic not found"):
            await faults.remove_toxic(link.name, "latency_downstream")

    async def test_duplicates(
        self, faults: Faults, link: LinkInfo, echo_server: EchoServer
    ) -> None:
        """A second link or toxic of the same name raises LinkExists."""
        with pytest.raises(LinkExists):
            await faults.create_link(link.name, echo_server.address)
        await faults.add_toxic(link.name, "latency")
        with pytest.raises(LinkExists, match="toxic already exists"):
            await faults.add_toxic(link.name, "latency")

    async def test_a_busy_listen_port_is_named(
        self, faults: Faults, link: LinkInfo, echo_server: EchoServer
    ) -> None:
        """A link that cannot listen (its port is taken) raises FaultError naming the
        link and the server's reason, not a KeyError from the client library."""
        with pytest.raises(FaultError) as caught:
            await faults.create_link("second", echo_server.address, listen=link.listen)
        assert "'second'" in str(caught.value)
        assert "address already in use" in str(caught.value)
        assert "second" not in await faults.links()

    async def test_invalid_toxic(self, faults: Faults, link: LinkInfo) -> None:
        """A malformed toxic raises InvalidFault with the server's reason."""
        with pytest.raises(InvalidFault, match="invalid toxic type"):
            await faults.add_toxic(link.name, "walrus")
        with pytest.raises(InvalidFault, match="stream was invalid"):
            await faults.add_toxic(link.name, "latency", stream="sideways")

    async def test_unreachable_api(self) -> None:
        """No server at the address raises FaultApiUnreachable naming it."""
        port = free_port()
        with pytest.raises(FaultApiUnreachable, match=f"127.0.0.1:{port}"):
            await Faults("127.0.0.1", port).links()


class TestTwoServers:
    """toxiproxy-python's process-wide endpoint does not mix up two servers."""

    async def test_concurrent_calls_reach_their_own_server(self, echo_server: EchoServer) -> None:
        """Interleaved calls to two servers each land on the right one."""
        async with FaultProxy("127.0.0.1", 0) as east, FaultProxy("127.0.0.1", 0) as west:
            east_faults = Faults(east.host, east.port)
            west_faults = Faults(west.host, west.port)
            await east_faults.create_link("east", echo_server.address)
            await west_faults.create_link("west", echo_server.address)
            await asyncio.gather(
                *(
                    faults.add_toxic(link, "latency", name=f"{link}-{i}")
                    for i in range(10)
                    for faults, link in ((east_faults, "east"), (west_faults, "west"))
                )
            )
            assert len(await east_faults.toxics("east")) == 10
            assert len(await west_faults.toxics("west")) == 10
            assert list(await east_faults.links()) == ["east"]
            assert list(await west_faults.links()) == ["west"]
