"""Toxiproxy HTTP API compatibility for toxics: shapes, defaults, status codes, errors.

Test names follow Toxiproxy's own api_test.go where one exists. Every test runs against
each server of the `fault_proxy` fixture (kvdr's, and Shopify's when installed).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.chaos import EchoServer, FaultProxyEndpoint, error_body

TOXIC_KEYS = {"name", "type", "stream", "toxicity", "attributes"}

# Attributes of every documented toxic type, all zero by default.
TOXIC_ATTRIBUTES = {
    "latency": {"latency", "jitter"},
    "bandwidth": {"rate"},
    "slow_close": {"delay"},
    "timeout": {"timeout"},
    "reset_peer": {"timeout"},
    "slicer": {"average_size", "size_variation", "delay"},
    "limit_data": {"bytes"},
    "noop": set(),
}


@pytest.fixture
def proxy(fault_proxy: FaultProxyEndpoint, echo_server: EchoServer) -> dict[str, Any]:
    return fault_proxy.create_proxy("mysql_master", echo_server.address)


class TestToxicEndpoints:
    """GET/POST /proxies/{name}/toxics and GET/PATCH/DELETE /proxies/{name}/toxics/{toxic}."""

    def test_listing_toxics(self, fault_proxy: FaultProxyEndpoint, proxy: dict[str, Any]) -> None:
        """A new proxy has an empty list of toxics."""
        response = fault_proxy.api("GET", "/proxies/mysql_master/toxics")
        assert response.status_code == 200
        assert response.json() == []

    def test_add_toxic_defaults(
        self, fault_proxy: FaultProxyEndpoint, proxy: dict[str, Any]
    ) -> None:
        """A toxic defaults to downstream, toxicity 1.0, name "<type>_<stream>", zeros."""
        response = fault_proxy.api("POST", "/proxies/mysql_master/toxics", json={"type": "latency"})
        assert response.status_code == 200
        toxic = response.json()
        assert set(toxic) == TOXIC_KEYS
        assert toxic == {
            "name": "latency_downstream",
            "type": "latency",
            "stream": "downstream",
            "toxicity": 1.0,
            "attributes": {"latency": 0, "jitter": 0},
        }
        shown = fault_proxy.api("GET", "/proxies/mysql_master/toxics/latency_downstream")
        assert shown.status_code == 200
        assert shown.json() == toxic
        assert fault_proxy.api("GET", "/proxies/mysql_master").json()["toxics"] == [toxic]

    @pytest.mark.parametrize("toxic_type", sorted(TOXIC_ATTRIBUTES))
    def test_every_toxic_type(
        self, fault_proxy: FaultProxyEndpoint, proxy: dict[str, Any], toxic_type: str
    ) -> None:
        """Each documented toxic type is accepted and reports its attributes."""
        response = fault_proxy.api(
            "POST", "/proxies/mysql_master/toxics", json={"type": toxic_type, "stream": "upstream"}
        )
        assert response.status_code == 200
        toxic = response.json()
        assert toxic["name"] == f"{toxic_type}_upstream"
        assert set(toxic["attributes"]) == TOXIC_ATTRIBUTES[toxic_type]
        assert all(value == 0 for value in toxic["attributes"].values())

    def test_add_toxic_with_toxicity(
        self, fault_proxy: FaultProxyEndpoint, proxy: dict[str, Any]
    ) -> None:
        """Given toxicity and attributes are stored and read back."""
        body = {"type": "latency", "toxicity": 0.2, "attributes": {"latency": 100, "jitter": 10}}
        toxic = fault_proxy.api("POST", "/proxies/mysql_master/toxics", json=body).json()
        assert toxic["toxicity"] == pytest.approx(0.2)
        assert toxic["attributes"] == {"latency": 100, "jitter": 10}

    def test_add_noop(self, fault_proxy: FaultProxyEndpoint, proxy: dict[str, Any]) -> None:
        """The noop toxic with its own name."""
        body = {"name": "foobar", "type": "noop"}
        toxic = fault_proxy.api("POST", "/proxies/mysql_master/toxics", json=body).json()
        assert (toxic["name"], toxic["type"], toxic["stream"]) == ("foobar", "noop", "downstream")
        assert toxic["attributes"] == {}

    def test_add_conflicting_toxic(
        self, fault_proxy: FaultProxyEndpoint, proxy: dict[str, Any]
    ) -> None:
        """A second toxic with the same name is a 409."""
        body = {"name": "foobar", "type": "latency"}
        fault_proxy.api("POST", "/proxies/mysql_master/toxics", json=body)
        response = fault_proxy.api("POST", "/proxies/mysql_master/toxics", json=body)
        assert response.status_code == 409
        assert error_body(response) == {"error": "toxic already exists", "status": 409}

    def test_add_conflicting_toxics_multistream(
        self, fault_proxy: FaultProxyEndpoint, proxy: dict[str, Any]
    ) -> None:
        """Names are unique across both streams."""
        path = "/proxies/mysql_master/toxics"
        fault_proxy.api("POST", path, json={"name": "foobar", "type": "latency"})
        response = fault_proxy.api(
            "POST", path, json={"name": "foobar", "type": "latency", "stream": "upstream"}
        )
        assert response.status_code == 409

    def test_add_conflicting_toxics_multistream_defaults(
        self, fault_proxy: FaultProxyEndpoint, proxy: dict[str, Any]
    ) -> None:
        """Default names differ by stream; the list shows upstream toxics first."""
        path = "/proxies/mysql_master/toxics"
        down = fault_proxy.api("POST", path, json={"type": "latency", "stream": "downstream"})
        up = fault_proxy.api("POST", path, json={"type": "latency", "stream": "upstream"})
        assert (down.status_code, up.status_code) == (200, 200)
        names = [t["name"] for t in fault_proxy.api("GET", path).json()]
        assert names == ["latency_upstream", "latency_downstream"]

    @pytest.mark.parametrize("method", ["PATCH", "POST"])
    def test_update_toxics(
        self, fault_proxy: FaultProxyEndpoint, proxy: dict[str, Any], method: str
    ) -> None:
        """An update merges attributes, keeps toxicity unless given, and is read back."""
        path = "/proxies/mysql_master/toxics"
        body = {"type": "latency", "attributes": {"latency": 100, "jitter": 10}}
        fault_proxy.api("POST", path, json=body)
        first = fault_proxy.api(
            method,
            f"{path}/latency_downstream",
            json={"toxicity": 0.5, "attributes": {"latency": 1000}},
        )
        assert first.status_code == 200
        assert first.json()["toxicity"] == pytest.approx(0.5)
        assert first.json()["attributes"] == {"latency": 1000, "jitter": 10}
        second = fault_proxy.api(
            method, f"{path}/latency_downstream", json={"attributes": {"latency": 500}}
        )
        assert second.json()["toxicity"] == pytest.approx(0.5)
        assert second.json()["attributes"] == {"latency": 500, "jitter": 10}
        shown = fault_proxy.api("GET", f"{path}/latency_downstream").json()
        assert shown == second.json()

    def test_update_unknown_toxic(
        self, fault_proxy: FaultProxyEndpoint, proxy: dict[str, Any]
    ) -> None:
        """Updating a toxic that does not exist is a 404 "toxic not found"."""
        response = fault_proxy.api(
            "PATCH", "/proxies/mysql_master/toxics/nope", json={"toxicity": 0.5}
        )
        assert response.status_code == 404
        assert error_body(response) == {"error": "toxic not found", "status": 404}

    def test_remove_toxic(self, fault_proxy: FaultProxyEndpoint, proxy: dict[str, Any]) -> None:
        """Delete answers 204; the toxic is gone and a second delete 404s."""
        path = "/proxies/mysql_master/toxics"
        fault_proxy.api("POST", path, json={"type": "latency"})
        response = fault_proxy.api("DELETE", f"{path}/latency_downstream")
        assert response.status_code == 204
        assert response.content == b""
        assert fault_proxy.api("GET", path).json() == []
        missing = fault_proxy.api("GET", f"{path}/latency_downstream")
        assert error_body(missing) == {"error": "toxic not found", "status": 404}
        again = fault_proxy.api("DELETE", f"{path}/latency_downstream")
        assert error_body(again) == {"error": "toxic not found", "status": 404}

    def test_invalid_stream(self, fault_proxy: FaultProxyEndpoint, proxy: dict[str, Any]) -> None:
        """A stream other than upstream or downstream is a 400."""
        response = fault_proxy.api(
            "POST", "/proxies/mysql_master/toxics", json={"type": "latency", "stream": "walrus"}
        )
        assert response.status_code == 400
        assert error_body(response)["error"] == (
            "stream was invalid, can be either upstream or downstream"
        )

    def test_invalid_toxic_type(
        self, fault_proxy: FaultProxyEndpoint, proxy: dict[str, Any]
    ) -> None:
        """An unknown toxic type is a 400 "invalid toxic type"."""
        response = fault_proxy.api("POST", "/proxies/mysql_master/toxics", json={"type": "walrus"})
        assert response.status_code == 400
        assert error_body(response) == {"error": "invalid toxic type", "status": 400}

    @pytest.mark.parametrize(
        "body",
        [
            {"type": "latency", "attributes": {"latency": "100"}},
            {"type": "latency", "attributes": {"latency": 1.5}},
            {"type": "latency", "attributes": 7},
            {"type": "latency", "toxicity": "all"},
            {"type": 3},
        ],
    )
    def test_bad_toxic_body(
        self, fault_proxy: FaultProxyEndpoint, proxy: dict[str, Any], body: dict[str, Any]
    ) -> None:
        """Wrongly typed fields are a 400 "bad request body" and nothing is added."""
        response = fault_proxy.api("POST", "/proxies/mysql_master/toxics", json=body)
        assert response.status_code == 400
        assert error_body(response)["error"].startswith("bad request body")
        assert fault_proxy.api("GET", "/proxies/mysql_master/toxics").json() == []
