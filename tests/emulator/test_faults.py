"""Drill faults of the management API (`/_emulator/faults`) as an SDK user meets them."""

from __future__ import annotations

import json
import urllib.error

import pytest
import requests
from azure.core.exceptions import HttpResponseError

from tests.fixtures.emulator import EmulatorFactory, StaticTokenCredential, secret_client


class TestErrorShare:
    """A share of requests answered 429 Throttled or 503."""

    def test_half_the_requests_throttled_then_cleared(self, make_emulator: EmulatorFactory) -> None:
        """share 0.5 throttles every second request with Retry-After; DELETE clears it."""
        emu = make_emulator()
        emu.management(
            "PUT", "faults", {"errors": {"status": 429, "share": 0.5, "retry_after_seconds": 0}}
        )
        session = requests.Session()
        token = StaticTokenCredential().get_token("https://vault.azure.net/.default").token
        codes = []
        headers = []
        for _ in range(6):
            resp = session.get(
                f"{emu.url}/secrets?api-version=7.5",
                headers={"Authorization": f"Bearer {token}"},
                verify=str(emu.ca_path),
                timeout=10,
            )
            codes.append(resp.status_code)
            headers.append(resp.headers.get("Retry-After"))
            if resp.status_code == 429:
                assert resp.json()["error"]["code"] == "Throttled"
        assert codes == [200, 429] * 3
        assert headers[1] == "0"
        assert emu.management("GET", "faults")["active"] is True
        emu.management("DELETE", "faults")
        assert emu.management("GET", "faults") == {"active": False, "errors": None, "deny": []}
        assert emu.health()["faults"] is False

    def test_503_share_one_fails_every_sdk_call(self, make_emulator: EmulatorFactory) -> None:
        """share 1 with 503: the SDK's call fails with 503 once its retries are spent."""
        emu = make_emulator()
        emu.management("PUT", "faults", {"errors": {"status": 503, "share": 1}})
        client = secret_client(emu, retry_total=0)
        with pytest.raises(HttpResponseError) as caught:
            client.set_secret("down", "v")
        assert caught.value.status_code == 503

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"errors": {"status": 500, "share": 0.5}}, "errors.status"),
            ({"errors": {"status": 429, "share": 2}}, "errors.share"),
            ({"deny": 7}, "deny"),
            ({"latency": 1}, "latency"),
        ],
    )
    def test_bad_fault_is_refused_naming_the_field(
        self, make_emulator: EmulatorFactory, body: dict[str, object], field: str
    ) -> None:
        """A malformed fault is 400 BadParameter naming the field, and nothing is set."""
        emu = make_emulator()
        with pytest.raises(urllib.error.HTTPError) as caught:
            emu.management("PUT", "faults", body)
        assert caught.value.code == 400
        assert field in json.loads(caught.value.read())["error"]["message"]
        assert emu.management("GET", "faults")["active"] is False


class TestDenyAccess:
    """Deny access to all principals or to a list, as Chaos Studio's Key Vault fault."""

    def test_denied_principal_gets_403_others_served(self, make_emulator: EmulatorFactory) -> None:
        """Only the listed principal is refused (reads too); others keep working."""
        emu = make_emulator()
        kvdr = secret_client(emu, StaticTokenCredential("kvdr-local"))
        app = secret_client(emu, StaticTokenCredential("some-app"))
        kvdr.set_secret("kept", "v")
        emu.management("PUT", "faults", {"deny": ["kvdr-local"]})
        with pytest.raises(HttpResponseError) as caught:
            kvdr.get_secret("kept")
        assert caught.value.status_code == 403
        assert app.get_secret("kept").value == "v"
        emu.management("DELETE", "faults")
        assert kvdr.get_secret("kept").value == "v"

    def test_deny_all_and_restart_clears(self, make_emulator: EmulatorFactory) -> None:
        """deny "*" refuses everyone; faults live in memory, so a restart clears them."""
        emu = make_emulator()
        emu.management("PUT", "faults", {"deny": "*"})
        with pytest.raises(HttpResponseError) as caught:
            secret_client(emu).set_secret("x", "v")
        assert caught.value.status_code == 403
        emu.restart()
        assert emu.management("GET", "faults")["active"] is False
