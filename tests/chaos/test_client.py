"""toxiproxy-python 0.1.1, unmodified, against each server of `fault_proxy`.

Every public call of the client is exercised, with the answers and exceptions a team
using it against Shopify's server gets.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from toxiproxy import Toxiproxy
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists

from tests.fixtures.chaos import EchoServer, FaultProxyEndpoint, connect, recv_exact


class TestServerCalls:
    """Toxiproxy(): proxies, create, populate, reset, version, running."""

    def test_running_and_version(self, fault_proxy: FaultProxyEndpoint) -> None:
        """running() is True and version() returns the JSON version document."""
        server = Toxiproxy()
        assert server.running() is True
        assert isinstance(json.loads(server.version())["version"], str)

    def test_create_reports_real_port(
        self, fault_proxy: FaultProxyEndpoint, echo_server: EchoServer
    ) -> None:
        """create() defaults to 127.0.0.1:0 and gets the real listen address back."""
        proxy = Toxiproxy().create(upstream=echo_server.address, name="redis")
        assert proxy.name == "redis"
        assert proxy.upstream == echo_server.address
        assert proxy.enabled is True
        assert not proxy.listen.endswith(":0")
        with connect(proxy.listen) as sock:
            sock.sendall(b"PING")
            assert recv_exact(sock, 4) == b"PING"

    def test_create_duplicate_raises_proxy_exists(
        self, fault_proxy: FaultProxyEndpoint, echo_server: EchoServer
    ) -> None:
        """A second create() with the same name raises ProxyExists."""
        Toxiproxy().create(upstream=echo_server.address, name="redis")
        with pytest.raises(ProxyExists):
            Toxiproxy().create(upstream=echo_server.address, name="redis")

    def test_proxies_and_get_proxy(
        self, fault_proxy: FaultProxyEndpoint, echo_server: EchoServer
    ) -> None:
        """proxies() maps names to Proxy objects; get_proxy() of an unknown name is None."""
        server = Toxiproxy()
        created = server.create(upstream=echo_server.address, name="redis")
        proxies = server.proxies()
        assert list(proxies) == ["redis"]
        assert proxies["redis"].listen == created.listen
        assert server.get_proxy("nope") is None

    def test_populate_and_destroy_all(
        self, fault_proxy: FaultProxyEndpoint, echo_server: EchoServer
    ) -> None:
        """populate() creates each proxy once; destroy_all() removes them all."""
        server = Toxiproxy()
        specs = [
            {"name": "one", "upstream": echo_server.address, "listen": "127.0.0.1:0"},
            {"name": "two", "upstream": echo_server.address, "listen": "127.0.0.1:0"},
        ]
        created = server.populate(specs)
        assert [p.name for p in created] == ["one", "two"]
        assert sorted(server.proxies()) == ["one", "two"]
        server.destroy_all()
        assert server.proxies() == {}

    def test_reset(self, fault_proxy: FaultProxyEndpoint, echo_server: EchoServer) -> None:
        """reset() is truthy and re-enables proxies and removes toxics."""
        server = Toxiproxy()
        proxy = server.create(upstream=echo_server.address, name="redis")
        proxy.add_toxic(type="latency", attributes={"latency": 100})
        proxy.disable()
        assert server.reset() is True
        after = server.get_proxy("redis")
        assert after.enabled is True
        assert after.toxics() == {}


class TestProxyCalls:
    """Proxy: toxics, add_toxic, destroy_toxic, enable/disable, down(), destroy."""

    @pytest.fixture
    def proxy(self, fault_proxy: FaultProxyEndpoint, echo_server: EchoServer) -> Any:
        return Toxiproxy().create(upstream=echo_server.address, name="redis")

    def test_add_toxic_and_read_back(self, proxy: Any) -> None:
        """add_toxic() with defaults reads back through toxics() and get_toxic()."""
        proxy.add_toxic(type="latency", attributes={"latency": 100, "jitter": 3})
        toxic = proxy.get_toxic("latency_downstream")
        assert (toxic.type, toxic.stream, toxic.toxicity) == ("latency", "downstream", 1.0)
        assert toxic.attributes == {"latency": 100, "jitter": 3}
        assert list(proxy.toxics()) == ["latency_downstream"]

    def test_add_toxic_with_name_stream_and_toxicity(self, proxy: Any) -> None:
        """Explicit name, stream and toxicity are kept."""
        proxy.add_toxic(
            name="slow", type="bandwidth", stream="upstream", toxicity=0.25, attributes={"rate": 10}
        )
        toxic = proxy.get_toxic("slow")
        assert (toxic.stream, toxic.toxicity, toxic.attributes) == ("upstream", 0.25, {"rate": 10})

    def test_add_invalid_toxic_raises(self, proxy: Any) -> None:
        """An unknown type raises InvalidToxic; a duplicate name ProxyExists (409)."""
        with pytest.raises(InvalidToxic):
            proxy.add_toxic(type="walrus")
        proxy.add_toxic(type="latency")
        with pytest.raises(ProxyExists):
            proxy.add_toxic(type="latency")

    def test_destroy_toxic(self, proxy: Any) -> None:
        """destroy_toxic() is True; destroying it again raises NotFound."""
        proxy.add_toxic(type="latency")
        assert proxy.destroy_toxic("latency_downstream") is True
        assert proxy.get_toxic("latency_downstream") is None
        with pytest.raises(NotFound):
            proxy.destroy_toxic("latency_downstream")

    def test_down_context(self, proxy: Any) -> None:
        """Inside down() connections are refused; after it the proxy serves again."""
        listen = proxy.listen
        with proxy.down():
            with pytest.raises(ConnectionRefusedError):
                connect(listen)
            assert Toxiproxy().get_proxy("redis").enabled is False
        with connect(listen) as sock:
            sock.sendall(b"up")
            assert recv_exact(sock, 2) == b"up"

    def test_destroy(self, proxy: Any) -> None:
        """destroy() is True and the proxy is gone."""
        assert proxy.destroy() is True
        assert Toxiproxy().get_proxy("redis") is None
