"""failover.hooks: webhooks against a real local aiohttp server, commands as real
processes."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from failover.hooks import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    CommandHook,
    TransitionEvent,
    WebhookHook,
    run_hooks,
    verify_signature,
)

SECRET = "hook-signing-secret-for-tests"
EVENT = TransitionEvent(
    pair="app",
    kind="switchover",
    from_region="eastus",
    to_region="westus",
    epoch=4,
    active_vault_url="https://kv-app-westus.vault.azure.net",
    at="2026-12-03T10:00:00+00:00",
    by="alice",
    reason="planned",
    rto_seconds=1.25,
    loss_items=0,
)


class Receiver:
    """A webhook receiver: answers each request with the next status of `answers`
    (then 200), after `delay` seconds; keeps what it received."""

    def __init__(self) -> None:
        self.answers: list[int] = []
        self.delay = 0.0
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((dict(request.headers), await request.read()))
        if self.delay:
            await asyncio.sleep(self.delay)
        status = self.answers.pop(0) if self.answers else 200
        return web.Response(status=status)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    app = web.Application()
    app.router.add_post("/hook", found.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    found.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield found
    finally:
        await runner.cleanup()


async def no_sleep(seconds: float) -> None:
    waits.append(seconds)


waits: list[float] = []
ENV = {"HOOK_SECRET": SECRET}


class TestWebhook:
    async def test_delivers_the_event_signed(self, receiver: Receiver) -> None:
        """The receiver gets the event as JSON; the signature over timestamp and body
        verifies with the shared secret, and not with another or a changed body."""
        hook = WebhookHook(receiver.url, secret_env="HOOK_SECRET")
        [result] = await run_hooks([hook], EVENT, env=ENV)
        assert result.ok and result.attempts == 1 and result.status == 200
        headers, body = receiver.received[0]
        assert json.loads(body)["active_vault_url"] == EVENT.active_vault_url
        assert json.loads(body)["epoch"] == 4
        stamp, signature = headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER]
        assert verify_signature(SECRET.encode(), body, stamp, signature)
        assert not verify_signature(b"other", body, stamp, signature)
        assert not verify_signature(SECRET.encode(), body + b" ", stamp, signature)
        # A replay later than the tolerance is refused.
        assert not verify_signature(SECRET.encode(), body, stamp, signature, now=time.time() + 301)
        assert SECRET not in json.dumps(result.to_dict())

    async def test_retries_a_500_with_backoff_then_succeeds(
        self, receiver: Receiver, tmp_path: Path
    ) -> None:
        """500, 503, then 200: three attempts, waits doubling from the backoff."""
        receiver.answers = [500, 503]
        secret_file = tmp_path / "secret"
        secret_file.write_text(SECRET + "\n")
        waits.clear()
        hook = WebhookHook(receiver.url, secret_file=str(secret_file), backoff_seconds=0.5)
        [result] = await run_hooks([hook], EVENT, sleep=no_sleep)
        assert (result.ok, result.attempts, result.status) == (True, 3, 200)
        assert waits == [0.5, 1.0]
        deliveries = {headers["X-Kvdr-Delivery"] for headers, _ in receiver.received}
        assert len(deliveries) == 1
        for headers, body in receiver.received:
            assert verify_signature(
                SECRET.encode(), body, headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER]
            )

    async def test_a_4xx_is_not_retried(self, receiver: Receiver) -> None:
        """The receiver refusing (401) is final: one attempt, status recorded."""
        receiver.answers = [401]
        hook = WebhookHook(receiver.url, secret_env="HOOK_SECRET")
        [result] = await run_hooks([hook], EVENT, env=ENV, sleep=no_sleep)
        assert (result.ok, result.attempts, result.status) == (False, 1, 401)
        assert result.error == "HTTP 401 Unauthorized"

    async def test_timeout_then_gives_up_after_the_retries(self, receiver: Receiver) -> None:
        """A receiver slower than the timeout: each attempt times out, the result says so."""
        receiver.delay = 1.0
        hook = WebhookHook(receiver.url, secret_env="HOOK_SECRET", timeout_seconds=0.2, retries=1)
        [result] = await run_hooks([hook], EVENT, env=ENV, sleep=no_sleep)
        assert (result.ok, result.attempts, result.status) == (False, 2, None)
        assert result.error == "no answer within 0.2 s"

    async def test_missing_secret_fails_the_hook_not_the_caller(self, receiver: Receiver) -> None:
        """No secret: nothing is sent unsigned; the error names the variable."""
        hook = WebhookHook(receiver.url, secret_env="NOT_SET_ANYWHERE")
        [result] = await run_hooks([hook], EVENT, env={})
        assert not result.ok and result.attempts == 0
        assert "NOT_SET_ANYWHERE" in result.error
        assert receiver.received == []

    def test_https_is_required_except_on_loopback(self) -> None:
        """http:// to anything but loopback is refused; exactly one secret source."""
        with pytest.raises(ValueError, match="must use https"):
            WebhookHook("http://hooks.example.com/x", secret_env="S")
        WebhookHook("http://[::1]:8080/x", secret_env="S")
        WebhookHook("https://hooks.example.com/x", secret_env="S")
        with pytest.raises(ValueError, match="exactly one of secret_env or secret_file"):
            WebhookHook("https://hooks.example.com/x", secret_env="S", secret_file="/f")


class TestCommand:
    async def test_gets_the_event_on_stdin_and_in_the_environment(self, tmp_path: Path) -> None:
        """A command hook writes what it got to a file: the JSON and KVDR_* variables."""
        out = tmp_path / "event.json"
        script = (
            "import json, os, sys; event = json.load(sys.stdin); "
            "event['env_url'] = os.environ['KVDR_ACTIVE_VAULT_URL']; "
            "event['env_epoch'] = os.environ['KVDR_EPOCH']; "
            f"open({str(out)!r}, 'w').write(json.dumps(event))"
        )
        hook = CommandHook((sys.executable, "-c", script))
        [result] = await run_hooks([hook], EVENT)
        assert (result.ok, result.exit_code) == (True, 0)
        written = json.loads(out.read_text())
        assert written["to_region"] == "westus"
        assert written["env_url"] == EVENT.active_vault_url
        assert written["env_epoch"] == "4"

    async def test_a_failing_command_is_recorded_with_its_exit_code(self) -> None:
        """Exit 3 with a message: not ok, the code and the last stderr line kept; the
        other hooks still run."""
        failing = CommandHook((sys.executable, "-c", "import sys; sys.exit('dns update refused')"))
        fine = CommandHook((sys.executable, "-c", "pass"), name="fine")
        missing = CommandHook(("/nonexistent/kvdr-hook",))
        results = await run_hooks([failing, fine, missing], EVENT)
        assert (results[0].ok, results[0].exit_code) == (False, 1)
        assert results[0].error == "exit 1: dns update refused"
        assert results[1].ok and results[1].hook == "fine"
        assert not results[2].ok and "cannot start /nonexistent/kvdr-hook" in results[2].error

    async def test_a_hanging_command_is_killed_at_its_timeout(self) -> None:
        """A command past its timeout is killed and reported."""
        hook = CommandHook(
            (sys.executable, "-c", "import time; time.sleep(30)"), timeout_seconds=0.5
        )
        started = time.monotonic()
        [result] = await run_hooks([hook], EVENT)
        assert time.monotonic() - started < 5
        assert not result.ok and result.error == "killed after 0.5 s"


class TestDocumentedReceiver:
    async def test_the_receiver_in_the_docs_accepts_a_real_delivery(
        self, receiver: Receiver
    ) -> None:
        """docs/failover.md's `verify` accepts what kvdr sends and refuses a changed body."""
        text = (Path(__file__).resolve().parents[2] / "docs" / "failover.md").read_text()
        block = text.split("### Verifying a webhook in the receiver", 1)[1]
        code = block.split("```python\n", 1)[1].split("```", 1)[0]
        namespace: dict[str, object] = {}
        exec(compile(code, "docs/failover.md", "exec"), namespace)
        verify = namespace["verify"]
        hook = WebhookHook(receiver.url, secret_env="HOOK_SECRET")
        await run_hooks([hook], EVENT, env=ENV)
        headers, body = receiver.received[0]
        assert callable(verify)
        assert verify(SECRET.encode(), body, headers) is True
        assert verify(SECRET.encode(), body.replace(b"westus", b"eastus"), headers) is False
