"""Who may use the daemon's HTTP surface: /events (content type, shared secret, Entra ID
token, names, bounds, budget), /status, /metrics and the dashboard (Host, bearer token),
and no CORS anywhere (kvdr/http_api.py, issue 9)."""

from __future__ import annotations

import base64
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.fixtures.cli import run_kvdr
from tests.fixtures.daemon import DaemonProcess, free_port, write_config
from tests.fixtures.event_receiver import new_version_events
from tests.fixtures.regions import World, WorldFactory
from tests.fixtures.waiting import wait_for
from vault.models import Attributes

SECRET = "events-shared-secret-0123456789"
TOKEN = "status-bearer-token-9876543210"
VALUE_MARKER = "http-surface-value-4c1d"
AUDIENCE = "api://kvdr-events"
ISSUER = "https://login.microsoftonline.com/00000000-0000-0000-0000-000000000001/v2.0"


def post(
    url: str, body: bytes, content_type: str = "application/json", **headers: str
) -> tuple[int, dict[str, Any], Mapping[str, str]]:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": content_type, **headers}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}"), response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}"), exc.headers


def request(url: str, method: str = "GET", **headers: str) -> tuple[int, bytes, Mapping[str, str]]:
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, method=method, headers=headers), timeout=10
        ) as response:
            return response.status, response.read(), response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers


def events(*names: str) -> bytes:
    return new_version_events(list(names))


def handshake(code: str) -> bytes:
    return json.dumps(
        [
            {
                "id": "v",
                "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
                "data": {"validationCode": code},
            }
        ]
    ).encode()


def metric(daemon: DaemonProcess, line_start: str) -> float:
    """The value of the first /metrics sample whose line starts with `line_start`."""
    code, body = daemon.get("/metrics")
    assert code == 200, body
    for line in body.decode().splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def secret_file(tmp_path: Path, value: str = SECRET) -> Path:
    path = tmp_path / "events.secret"
    path.write_text(value + "\n")
    path.chmod(0o600)
    return path


@contextmanager
def running(
    world: World, tmp_path: Path, env: Mapping[str, str] | None = None, **kw: Any
) -> Iterator[DaemonProcess]:
    port = free_port()
    config = write_config(world, tmp_path / "kvdr.toml", port=port, **kw)
    daemon = DaemonProcess(config, port, env=env).start()
    try:
        yield daemon
    finally:
        daemon.terminate()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed_token(key: rsa.RSAPrivateKey, kid: str, **claims: Any) -> str:
    now = int(time.time())
    body = {"aud": AUDIENCE, "iss": ISSUER, "nbf": now - 10, "exp": now + 600, **claims}
    head = b64url(json.dumps({"alg": "RS256", "kid": kid, "typ": "JWT"}).encode())
    payload = b64url(json.dumps(body).encode())
    signature = key.sign(f"{head}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{head}.{payload}.{b64url(signature)}"


def jwks(key: rsa.RSAPrivateKey, kid: str) -> str:
    numbers = key.public_key().public_numbers()
    n = numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")
    e = numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")
    return json.dumps(
        {"keys": [{"kty": "RSA", "use": "sig", "kid": kid, "n": b64url(n), "e": b64url(e)}]}
    )


class TestEventsEndpoint:
    async def test_only_json_is_taken(self, make_world: WorldFactory, tmp_path: Path) -> None:
        """A text/plain or form POST (what a cross-site page can send without a
        preflight) is refused with 415 and queues nothing; the same body as JSON is
        taken."""
        world = await make_world()
        with running(world, tmp_path, poll_interval="1h", reconcile_interval="1h") as daemon:
            await wait_for(lambda: daemon.status()["pairs"][0]["last_reconcile"], 20, "start")
            await world.vaults["eastus"].set_secret("posted", "v", Attributes())
            for kind in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
                code, _, _ = post(daemon.url + "/events", events("posted"), kind)
                assert code == 415, kind
            assert daemon.status()["pairs"][0]["targets"][0]["items"] == 0
            code, body, _ = post(daemon.url + "/events", events("posted"))
            assert (code, body) == (200, {"accepted": 1})

    async def test_deeply_nested_body_is_a_400_not_a_crash(
        self, make_world: WorldFactory, tmp_path: Path
    ) -> None:
        """Nested arrays within the size limit (JSON's parser recurses): 400 naming the
        body, and the daemon goes on taking events."""
        world = await make_world()
        with running(world, tmp_path, poll_interval="1h", reconcile_interval="1h") as daemon:
            await wait_for(lambda: daemon.status()["pairs"][0]["last_reconcile"], 20, "start")
            code, body, _ = post(daemon.url + "/events", b"[" * 50_000 + b"]" * 50_000)
            assert (code, body) == (400, {"error": "body is not JSON"})
            await world.vaults["eastus"].set_secret("after", "v", Attributes())
            assert post(daemon.url + "/events", events("after"))[:2] == (200, {"accepted": 1})
            assert "Traceback" not in daemon.logs()

    async def test_shared_secret_is_required(
        self, make_world: WorldFactory, tmp_path: Path
    ) -> None:
        """With a shared secret configured, the handshake and events without it or with
        a wrong one get 401; the secret as query parameter or header is accepted; the
        secret never shows in the daemon's log."""
        world = await make_world()
        env = {"KVDR__DAEMON__EVENTS_SECRET_FILE": str(secret_file(tmp_path))}
        with running(world, tmp_path, env=env) as daemon:
            url = daemon.url + "/events"
            assert post(url, handshake("c1"))[0] == 401
            assert post(url + "?secret=wrong-secret-but-long-enough", handshake("c1"))[0] == 401
            assert post(url, events("a"), **{"X-Kvdr-Events-Secret": SECRET[:-1]})[0] == 401
            assert post(url, events("a"))[0] == 401
            code, body, _ = post(f"{url}?secret={SECRET}", handshake("c2"))
            assert (code, body) == (200, {"validationResponse": "c2"})
            code, body, _ = post(url, events("a"), **{"X-Kvdr-Events-Secret": SECRET})
            assert (code, body) == (200, {"accepted": 1})
        assert SECRET not in daemon.logs()

    async def test_entra_id_delivery(self, make_world: WorldFactory, tmp_path: Path) -> None:
        """An RS256 token of a configured key, audience and issuer is accepted; another
        audience, issuer or key, an expired token and `alg: none` get 401."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        keys = tmp_path / "entra-keys.json"
        keys.write_text(jwks(key, "k1"))
        env = {
            "KVDR__DAEMON__EVENTS_ENTRA_AUDIENCE": AUDIENCE,
            "KVDR__DAEMON__EVENTS_ENTRA_ISSUERS": json.dumps([ISSUER]),
            "KVDR__DAEMON__EVENTS_ENTRA_KEYS_FILE": str(keys),
        }
        world = await make_world()
        with running(world, tmp_path, env=env) as daemon:
            url = daemon.url + "/events"

            def with_token(token: str) -> int:
                return post(url, handshake("e"), Authorization=f"Bearer {token}")[0]

            assert with_token(signed_token(key, "k1")) == 200
            assert with_token(signed_token(key, "k1", aud="api://another")) == 401
            assert with_token(signed_token(key, "k1", iss="https://sts.windows.net/x/")) == 401
            assert with_token(signed_token(other, "k1")) == 401
            assert with_token(signed_token(key, "k1", exp=int(time.time()) - 3600)) == 401
            unsigned = signed_token(key, "k1").rsplit(".", 1)[0]
            none_head = b64url(json.dumps({"alg": "none", "kid": "k1"}).encode())
            assert with_token(none_head + "." + unsigned.split(".")[1] + ".") == 401
            assert post(url, handshake("e"))[0] == 401

    async def test_invalid_name_leaves_rpo_alone(
        self, make_world: WorldFactory, tmp_path: Path
    ) -> None:
        """An event naming a secret Key Vault cannot hold is dropped and counted: RPO
        stays 0 and the primary is not reported failing (it was never asked)."""
        world = await make_world()
        with running(world, tmp_path) as daemon:
            await wait_for(lambda: daemon.status()["pairs"][0]["last_reconcile"], 20, "start")
            world.emulators["eastus"].reset_stats()
            code, body, _ = post(daemon.url + "/events", events("bad_name", "no such name"))
            assert (code, body) == (200, {"accepted": 0})
            # A mark would be set before the POST is answered: none is.
            pair = daemon.status()["pairs"][0]
            assert pair["targets"][0]["pending"] == 0 and pair["rpo_seconds"] == 0.0
            assert pair["source_error"] is None
            dropped = metric(daemon, 'kvdr_events_dropped_total{reason="invalid_name"}')
            assert dropped == 2
            by_op = world.emulators["eastus"].stats().get("by_op", {})
            assert "GetSecretVersions" not in by_op

    async def test_a_flood_spends_only_its_share(
        self, make_world: WorldFactory, tmp_path: Path
    ) -> None:
        """With 100 requests per 10 s and a 10% share (5 events), one POST of 20 real
        names makes the primary list versions 5 times, not 20; 15 are counted as rate
        limited, and a repeated name as a duplicate."""
        world = await make_world()
        names = [f"flood-{i:02d}" for i in range(20)]
        for name in names:
            await world.vaults["eastus"].set_secret(name, "v", Attributes())
        env = {
            "KVDR__VAULT__OTHER_OPS_PER_10S": "100",
            "KVDR__REPLICATION__EVENT_READ_SHARE": "0.1",
        }
        with running(world, tmp_path, env=env, poll_interval="1h") as daemon:
            await wait_for(lambda: daemon.status()["pairs"][0]["last_reconcile"], 30, "start")
            primary = world.emulators["eastus"]
            primary.reset_stats()
            code, body, _ = post(daemon.url + "/events", events(names[0], *names))
            assert (code, body) == (200, {"accepted": 5})

            def listings() -> int:
                by_status = primary.stats().get("by_op", {}).get("GetSecretVersions", {})
                return int(sum(by_status.values()))

            await wait_for(lambda: listings() >= 5, 15, "the five event syncs")
            limited = metric(daemon, 'kvdr_events_dropped_total{reason="rate_limited"}')
            duplicate = metric(daemon, 'kvdr_events_dropped_total{reason="duplicate"}')
            assert (limited, duplicate) == (15, 1)
        assert listings() == 5


class TestStatusSurface:
    async def test_host_is_checked(self, make_world: WorldFactory, tmp_path: Path) -> None:
        """/status, /metrics and the dashboard refuse a Host that is not a loopback name,
        an IP address or a configured name (a DNS-rebinding page); /healthz answers."""
        world = await make_world()
        await world.vaults["eastus"].set_secret("named-item", VALUE_MARKER, Attributes())
        env = {"KVDR__DAEMON__ALLOWED_HOSTS": '["kvdr.example.internal"]'}
        with running(world, tmp_path, env=env) as daemon:
            await wait_for(lambda: daemon.status()["pairs"][0]["targets"][0]["items"], 20, "copy")
            for path in ("/status", "/metrics", "/"):
                code, body, _ = request(daemon.url + path, Host="rebound.attacker.example")
                assert code == 421 and b"named-item" not in body, path
                for host in ("kvdr.example.internal", f"localhost:{daemon.port}", "127.0.0.1"):
                    assert request(daemon.url + path, Host=host)[0] == 200, (path, host)
            assert request(daemon.url + "/healthz", Host="rebound.attacker.example")[0] == 200

    async def test_token_required_beyond_loopback(
        self, make_world: WorldFactory, tmp_path: Path
    ) -> None:
        """Listening on all interfaces, /status and /metrics need the bearer token (401
        without it or with a wrong one); `kvdr status` sends the configured token."""
        world = await make_world()
        port = free_port()
        config = write_config(world, tmp_path / "kvdr.toml", port=port)
        env = {
            "KVDR__DAEMON__LISTEN": f"0.0.0.0:{port}",
            "KVDR__DAEMON__EVENTS_SECRET_FILE": str(secret_file(tmp_path)),
            "KVDR__DAEMON__STATUS_TOKEN_ENV": "KVDR_TEST_STATUS_TOKEN",
            "KVDR_TEST_STATUS_TOKEN": TOKEN,
        }
        daemon = DaemonProcess(config, port, env=env, token=TOKEN).start()
        try:
            for path in ("/status", "/metrics"):
                code, _, headers = request(daemon.url + path)
                assert code == 401 and headers["WWW-Authenticate"].startswith("Bearer")
                wrong = {"Authorization": f"Bearer {TOKEN}x"}
                assert request(daemon.url + path, **wrong)[0] == 401
                assert request(daemon.url + path, Authorization=f"Bearer {TOKEN}")[0] == 200
            cli = run_kvdr("status", "--json", "--config", str(config), env={**os.environ, **env})
            assert cli.returncode == 0, cli.stderr
            assert json.loads(cli.stdout)["source"] == "daemon"
            refused = run_kvdr(
                "status",
                "--config",
                str(config),
                env={**os.environ, **env, "KVDR_TEST_STATUS_TOKEN": "w" * 20},
            )
            assert refused.returncode == 1 and "refused" in refused.stderr
            assert TOKEN not in refused.stderr
        finally:
            daemon.terminate()
        assert TOKEN not in daemon.logs()

    async def test_no_cors_headers_ever(self, make_world: WorldFactory, tmp_path: Path) -> None:
        """No answer grants another origin anything: a preflight, a GET with an Origin
        and the CloudEvents handshake carry no Access-Control-* header, and a
        cross-site text/plain POST is refused."""
        world = await make_world()
        origin = {"Origin": "https://attacker.example"}
        with running(world, tmp_path) as daemon:
            answers = [
                request(
                    daemon.url + "/status",
                    "OPTIONS",
                    **origin,
                    **{"Access-Control-Request-Method": "GET"},
                ),
                request(daemon.url + "/status", **origin),
                request(daemon.url + "/metrics", **origin),
                request(
                    daemon.url + "/events",
                    "OPTIONS",
                    **origin,
                    **{"WebHook-Request-Origin": "eventgrid.azure.net"},
                ),
            ]
            for _, _, headers in answers:
                assert not [h for h in headers if h.lower().startswith("access-control-")]
            assert post(daemon.url + "/events", events("x"), "text/plain", **origin)[0] == 415
