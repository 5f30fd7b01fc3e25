"""The fault proxy's API under hostile bodies (hypothesis): whatever is posted, it
answers with a status and a JSON error, never a crash, and keeps serving. Runs against
kvdr's server (and Shopify's where installed, through the `fault_proxy` fixture)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fixtures.chaos import EchoServer, FaultProxyEndpoint
from tests.fixtures.hostile import json_values

values = json_values(allow_infinity=False, max_leaves=20)
# Bodies shaped like the real ones, with any values, so the checks past "is it JSON"
# are reached too.
proxy_bodies = st.fixed_dictionaries(
    {},
    optional={"name": values, "upstream": values, "listen": values, "enabled": values},
)
toxic_bodies = st.fixed_dictionaries(
    {},
    optional={
        "name": values,
        "type": st.sampled_from(["latency", "bandwidth", "timeout", "slicer", "walrus"]) | values,
        "stream": values,
        "toxicity": values,
        "attributes": values,
    },
)

HOSTILE = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def answered(response: Any) -> None:
    assert response.status_code < 500 or "error" in response.json(), response.text
    if response.status_code >= 400:
        assert isinstance(response.json().get("error"), str), response.text


@pytest.mark.parametrize("path", ["/proxies", "/populate"])
@HOSTILE
@given(body=proxy_bodies | values)
def test_proxy_bodies(fault_proxy: FaultProxyEndpoint, path: str, body: Any) -> None:
    if fault_proxy.kind != "kvdr":
        pytest.skip("Shopify's server answers some malformed bodies as it likes")
    try:
        answered(fault_proxy.api("POST", path, json=body))
    finally:
        fault_proxy.clear()
    assert fault_proxy.api("GET", "/version").status_code == 200


@HOSTILE
@given(body=toxic_bodies | values)
def test_toxic_bodies(fault_proxy: FaultProxyEndpoint, echo_server: EchoServer, body: Any) -> None:
    if fault_proxy.kind != "kvdr":
        pytest.skip("Shopify's server answers some malformed bodies as it likes")
    fault_proxy.create_proxy("target", echo_server.address)
    try:
        answered(fault_proxy.api("POST", "/proxies/target/toxics", json=body))
        answered(fault_proxy.api("POST", "/proxies/target", json=body))
    finally:
        fault_proxy.clear()
    assert fault_proxy.api("GET", "/version").status_code == 200


def test_deeply_nested_body(fault_proxy: FaultProxyEndpoint) -> None:
    """Nested arrays (JSON's parser recurses): a 400 with an error, and it keeps serving."""
    if fault_proxy.kind != "kvdr":
        pytest.skip("kvdr's server only")
    nested = b"[" * 50_000 + b"]" * 50_000
    response = fault_proxy.api("POST", "/proxies", data=nested)
    assert response.status_code == 400 and isinstance(response.json().get("error"), str)
    assert fault_proxy.api("GET", "/version").status_code == 200
