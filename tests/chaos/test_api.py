"""Toxiproxy HTTP API compatibility: shapes, status codes, defaults and error bodies.

Test names follow Toxiproxy's own api_test.go where one exists. Every test runs against
each server of the `fault_proxy` fixture (kvdr's, and Shopify's when installed).
"""

from __future__ import annotations

import socket
from typing import Any

import pytest

from tests.fixtures.chaos import (
    EchoServer,
    FaultProxyEndpoint,
    connect,
    error_body,
    free_port,
    recv_exact,
)

PROXY_KEYS = {"name", "listen", "upstream", "enabled", "toxics"}


def accepts_connections(listen: str) -> bool:
    try:
        with connect(listen, timeout=1):
            return True
    except ConnectionRefusedError:
        return False


@pytest.fixture
def proxy(fault_proxy: FaultProxyEndpoint, echo_server: EchoServer) -> dict[str, Any]:
    return fault_proxy.create_proxy("mysql_master", echo_server.address)


class TestProxyEndpoints:
    """GET/POST /proxies and GET/POST/PATCH/DELETE /proxies/{name}."""

    def test_index_with_no_proxies(self, fault_proxy: FaultProxyEndpoint) -> None:
        """An empty server lists its proxies as an empty JSON object."""
        response = fault_proxy.api("GET", "/proxies")
        assert response.status_code == 200
        assert response.json() == {}

    def test_create_and_get_proxy(
        self, fault_proxy: FaultProxyEndpoint, echo_server: EchoServer
    ) -> None:
        """Create answers 201 with the proxy: enabled by default, no toxics, a real port."""
        response = fault_proxy.api(
            "POST",
            "/proxies",
            json={"name": "mysql_master", "listen": "127.0.0.1:0", "upstream": echo_server.address},
        )
        assert response.status_code == 201
        created = response.json()
        assert set(created) == PROXY_KEYS
        assert created["name"] == "mysql_master"
        assert created["upstream"] == echo_server.address
        assert created["enabled"] is True
        assert created["toxics"] == []
        host, _, port = created["listen"].rpartition(":")
        assert host == "127.0.0.1" and int(port) > 0
        shown = fault_proxy.api("GET", "/proxies/mysql_master")
        assert shown.status_code == 200
        assert shown.json() == created

    def test_listing_proxies(self, fault_proxy: FaultProxyEndpoint, proxy: dict[str, Any]) -> None:
        """The index maps each name to the same object GET /proxies/{name} returns."""
        listing = fault_proxy.api("GET", "/proxies").json()
        assert listing == {"mysql_master": proxy}

    def test_listen_port_zero_proxies_traffic(
        self, fault_proxy: FaultProxyEndpoint, proxy: dict[str, Any]
    ) -> None:
        """The reported port is where the proxy listens, and bytes reach the upstream."""
        with connect(proxy["listen"]) as sock:
            sock.sendall(b"hello")
            assert recv_exact(sock, 5) == b"hello"

    def test_create_proxy_without_listen(
        self, fault_proxy: FaultProxyEndpoint, echo_server: EchoServer
    ) -> None:
        """Without a listen address the proxy still gets a free port, reachable locally."""
        response = fault_proxy.api(
            "POST", "/proxies", json={"name": "anywhere", "upstream": echo_server.address}
        )
        assert response.status_code == 201
        port = int(response.json()["listen"].rpartition(":")[2])
        assert port > 0
        with connect(f"127.0.0.1:{port}") as sock:
            sock.sendall(b"hi")
            assert recv_exact(sock, 2) == b"hi"

    def test_create_proxy_blank_name(self, fault_proxy: FaultProxyEndpoint) -> None:
        """A proxy without a name is a 400 naming the field."""
        response = fault_proxy.api("POST", "/proxies", json={"upstream": "127.0.0.1:1"})
        assert response.status_code == 400
        assert error_body(response)["error"] == "missing required field: name"

    def test_create_proxy_blank_upstream(self, fault_proxy: FaultProxyEndpoint) -> None:
        """A proxy without an upstream is a 400 naming the field."""
        response = fault_proxy.api("POST", "/proxies", json={"name": "x"})
        assert response.status_code == 400
        assert error_body(response)["error"] == "missing required field: upstream"

    @pytest.mark.parametrize("body", [b"", b"{", b"[1, 2]", b'{"name": 5, "upstream": "a:1"}'])
    def test_create_proxy_bad_body(self, fault_proxy: FaultProxyEndpoint, body: bytes) -> None:
        """A body that is not a proxy object is a 400 "bad request body"."""
        response = fault_proxy.api("POST", "/proxies", data=body)
        assert response.status_code == 400
        assert error_body(response)["error"].startswith("bad request body")

    def test_create_proxy_name_conflict(
        self, fault_proxy: FaultProxyEndpoint, proxy: dict[str, Any]
    ) -> None:
        """A second proxy with the same name is a 409."""
        response = fault_proxy.api(
            "POST", "/proxies", json={"name": "mysql_master", "upstream": "127.0.0.1:1"}
        )
        assert response.status_code == 409
        assert error_body(response) == {"error": "proxy already exists", "status": 409}

    def test_create_proxy_port_conflict(
        self, fault_proxy: FaultProxyEndpoint, proxy: dict[str, Any]
    ) -> None:
        """Listening where another proxy listens fails with the bind error, as a 500."""
        response = fault_proxy.api(
            "POST",
            "/proxies",
            json={"name": "other", "listen": proxy["listen"], "upstream": "127.0.0.1:1"},
        )
        assert response.status_code == 500
        message = error_body(response)["error"]
        assert message == f"listen tcp {proxy['listen']}: bind: address already in use"
        assert fault_proxy.api("GET", "/proxies/other").status_code == 404

    def test_create_disabled_proxy(self, fault_proxy: FaultProxyEndpoint) -> None:
        """enabled=false creates the proxy without a listener."""
        listen = f"127.0.0.1:{free_port()}"
        response = fault_proxy.api(
            "POST",
            "/proxies",
            json={"name": "off", "listen": listen, "upstream": "127.0.0.1:1", "enabled": False},
        )
        assert response.status_code == 201
        assert response.json()["enabled"] is False
        assert response.json()["listen"] == listen
        assert not accepts_connections(listen)

    @pytest.mark.parametrize("method", ["PATCH", "POST"])
    def test_create_disabled_proxy_and_enable(
        self, fault_proxy: FaultProxyEndpoint, echo_server: EchoServer, method: str
    ) -> None:
        """Updating enabled to true (PATCH, or POST as older clients send) starts it."""
        listen = f"127.0.0.1:{free_port()}"
        fault_proxy.api(
            "POST",
            "/proxies",
            json={
                "name": "off",
                "listen": listen,
                "upstream": echo_server.address,
                "enabled": False,
            },
        )
        response = fault_proxy.api(method, "/proxies/off", json={"enabled": True})
        assert response.status_code == 200
        assert response.json()["enabled"] is True
        assert response.json()["listen"] == listen
        assert accepts_connections(listen)

    def test_update_keeps_fields_left_out(
        self, fault_proxy: FaultProxyEndpoint, proxy: dict[str, Any]
    ) -> None:
        """An update that only sets enabled keeps listen and upstream."""
        response = fault_proxy.api("PATCH", "/proxies/mysql_master", json={"enabled": False})
        assert response.status_code == 200
        assert response.json() == {**proxy, "enabled": False}

    def test_update_listen_moves_the_proxy(
        self, fault_proxy: FaultProxyEndpoint, proxy: dict[str, Any]
    ) -> None:
        """A new listen address restarts the proxy there; the old one is closed."""
        new_listen = f"127.0.0.1:{free_port()}"
        response = fault_proxy.api("PATCH", "/proxies/mysql_master", json={"listen": new_listen})
        assert response.status_code == 200
        assert response.json()["listen"] == new_listen
        assert accepts_connections(new_listen)
        assert not accepts_connections(proxy["listen"])

    def test_delete_proxy(self, fault_proxy: FaultProxyEndpoint, proxy: dict[str, Any]) -> None:
        """Delete answers 204 with no body, closes the listener, and a second one 404s."""
        response = fault_proxy.api("DELETE", "/proxies/mysql_master")
        assert response.status_code == 204
        assert response.content == b""
        assert not accepts_connections(proxy["listen"])
        again = fault_proxy.api("DELETE", "/proxies/mysql_master")
        assert again.status_code == 404
        assert error_body(again) == {"error": "proxy not found", "status": 404}

    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("GET", "/proxies/nope"),
            ("PATCH", "/proxies/nope"),
            ("POST", "/proxies/nope"),
            ("DELETE", "/proxies/nope"),
            ("GET", "/proxies/nope/toxics"),
            ("POST", "/proxies/nope/toxics"),
            ("GET", "/proxies/nope/toxics/latency_downstream"),
            ("PATCH", "/proxies/nope/toxics/latency_downstream"),
            ("DELETE", "/proxies/nope/toxics/latency_downstream"),
        ],
    )
    def test_unknown_proxy_is_404(
        self, fault_proxy: FaultProxyEndpoint, method: str, path: str
    ) -> None:
        """Every route under an unknown proxy answers 404 "proxy not found"."""
        response = fault_proxy.api(method, path, json={"type": "latency"})
        assert response.status_code == 404
        assert error_body(response) == {"error": "proxy not found", "status": 404}

    def test_browser_gets_403(self, fault_proxy: FaultProxyEndpoint) -> None:
        """A browser's user agent is refused, so web pages cannot drive faults."""
        response = fault_proxy.api(
            "GET", "/proxies", headers={"User-Agent": "Mozilla/5.0 (Linux x86_64)"}
        )
        assert response.status_code == 403

    def test_non_browser_gets_200(self, fault_proxy: FaultProxyEndpoint) -> None:
        """Other user agents are served."""
        response = fault_proxy.api("GET", "/proxies", headers={"User-Agent": "curl/8.0"})
        assert response.status_code == 200

    def test_request_id(self, fault_proxy: FaultProxyEndpoint) -> None:
        """Every answer carries an X-Toxiproxy-Request-Id header."""
        response = fault_proxy.api("GET", "/proxies")
        assert response.headers.get("X-Toxiproxy-Request-Id")

    def test_version_endpoint_returns_version(self, fault_proxy: FaultProxyEndpoint) -> None:
        """GET /version answers a JSON object with a version string."""
        response = fault_proxy.api("GET", "/version")
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("application/json")
        version = response.json()["version"]
        assert isinstance(version, str) and version


class TestPopulate:
    """POST /populate: create or replace many proxies at once."""

    def test_populate_proxy(self, fault_proxy: FaultProxyEndpoint, echo_server: EchoServer) -> None:
        """201 with {"proxies": [...]} in request order, every proxy listening."""
        body = [
            {"name": "one", "listen": "127.0.0.1:0", "upstream": echo_server.address},
            {"name": "two", "listen": "127.0.0.1:0", "upstream": echo_server.address},
        ]
        response = fault_proxy.api("POST", "/populate", json=body)
        assert response.status_code == 201
        result = response.json()
        assert set(result) == {"proxies"}
        assert [p["name"] for p in result["proxies"]] == ["one", "two"]
        for created in result["proxies"]:
            assert set(created) == PROXY_KEYS
            assert created["enabled"] is True
            assert accepts_connections(created["listen"])

    def test_populate_disabled_proxy(
        self, fault_proxy: FaultProxyEndpoint, echo_server: EchoServer
    ) -> None:
        """enabled=false in /populate creates the proxy stopped."""
        listen = f"127.0.0.1:{free_port()}"
        body = [
            {"name": "one", "listen": listen, "upstream": echo_server.address, "enabled": False}
        ]
        response = fault_proxy.api("POST", "/populate", json=body)
        assert response.status_code == 201
        assert response.json()["proxies"][0]["enabled"] is False
        assert not accepts_connections(listen)

    def test_populate_existing_proxy(
        self, fault_proxy: FaultProxyEndpoint, echo_server: EchoServer
    ) -> None:
        """A proxy whose listen (once resolved) and upstream match is kept, toxics and all."""
        port = free_port()
        fault_proxy.create_proxy("one", echo_server.address, listen=f"127.0.0.1:{port}")
        fault_proxy.api("POST", "/proxies/one/toxics", json={"type": "latency"})
        body = [{"name": "one", "listen": f"localhost:{port}", "upstream": echo_server.address}]
        response = fault_proxy.api("POST", "/populate", json=body)
        assert response.status_code == 201
        kept = response.json()["proxies"][0]
        assert kept["listen"] == f"127.0.0.1:{port}"
        assert [t["type"] for t in kept["toxics"]] == ["latency"]

    def test_populate_replaces_changed_proxy(
        self, fault_proxy: FaultProxyEndpoint, echo_server: EchoServer
    ) -> None:
        """A proxy with a different upstream is replaced: new settings, no toxics."""
        fault_proxy.create_proxy("one", "127.0.0.1:1")
        fault_proxy.api("POST", "/proxies/one/toxics", json={"type": "latency"})
        body = [{"name": "one", "listen": "127.0.0.1:0", "upstream": echo_server.address}]
        response = fault_proxy.api("POST", "/populate", json=body)
        assert response.status_code == 201
        replaced = response.json()["proxies"][0]
        assert replaced["upstream"] == echo_server.address
        assert replaced["toxics"] == []

    def test_populate_with_bad_name(self, fault_proxy: FaultProxyEndpoint) -> None:
        """A nameless entry fails the whole request before anything is created."""
        body = [
            {"name": "one", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1"},
            {"name": "", "listen": "", "upstream": "127.0.0.1:1"},
        ]
        response = fault_proxy.api("POST", "/populate", json=body)
        assert response.status_code == 400
        assert response.json()["error"] == "missing required field: name at proxy 2"
        assert response.json()["status"] == 400
        assert fault_proxy.api("GET", "/proxies").json() == {}

    def test_populate_proxy_with_bad_data_should_return_error(
        self, fault_proxy: FaultProxyEndpoint
    ) -> None:
        """A listen address that cannot be used stops /populate there; earlier ones stay."""
        body = [
            {"name": "one", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1"},
            {"name": "two", "listen": "local373", "upstream": "127.0.0.1:1"},
            {"name": "three", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1"},
        ]
        response = fault_proxy.api("POST", "/populate", json=body)
        result = response.json()
        assert (response.status_code, result["status"]) == (500, 500)
        # Go's net.Listen error for an address it cannot parse, passed through as a 500.
        assert result["error"] == "listen tcp: address local373: missing port in address"
        assert [p["name"] for p in result["proxies"]] == ["one"]
        assert sorted(fault_proxy.api("GET", "/proxies").json()) == ["one"]

    def test_populate_needs_an_array(self, fault_proxy: FaultProxyEndpoint) -> None:
        """A body that is not a JSON array is a 400 "bad request body"."""
        response = fault_proxy.api("POST", "/populate", json={"name": "one"})
        assert response.status_code == 400
        assert response.json()["error"].startswith("bad request body")


class TestReset:
    """POST /reset: every proxy enabled, every toxic removed."""

    def test_reset_state(self, fault_proxy: FaultProxyEndpoint, proxy: dict[str, Any]) -> None:
        """Reset answers 204 and leaves enabled proxies without toxics."""
        fault_proxy.api("POST", "/proxies/mysql_master/toxics", json={"type": "latency"})
        fault_proxy.api("PATCH", "/proxies/mysql_master", json={"enabled": False})
        response = fault_proxy.api("POST", "/reset")
        assert response.status_code == 204
        assert response.content == b""
        after = fault_proxy.api("GET", "/proxies/mysql_master").json()
        assert after["enabled"] is True
        assert after["toxics"] == []
        assert accepts_connections(after["listen"])


def test_unused_port_helper_refuses() -> None:
    """free_port() gives a port nobody listens on (guards the tests above)."""
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", free_port()), timeout=1).close()
