"""--throttle azure: Key Vault's per-10-s limits, seen and retried through the SDK."""

from __future__ import annotations

import asyncio

from azure.core.exceptions import HttpResponseError

from tests.fixtures.emulator import EmulatorFactory, aio_secret_client, secret_client


class TestThrottle:
    """429 Throttled with Retry-After."""

    async def test_burst_above_300_sets(self, make_emulator: EmulatorFactory) -> None:
        """More than 300 sets in 10 s get 429 Throttled; the SDK's retry then gets through."""
        emu = make_emulator(throttle="azure")
        limit = asyncio.Semaphore(32)

        async with aio_secret_client(emu) as client:

            async def one(i: int) -> None:
                async with limit:
                    await client.set_secret(f"burst-{i}", "v")

            await asyncio.gather(*(one(i) for i in range(300)))

        # Reads draw on the 4,000 budget, not the 300 set budget: still served.
        plain = secret_client(emu)
        assert plain.get_secret("burst-0").value == "v"

        # Keep setting without retries until the window is full: on a slow machine the
        # burst may have spread over more than 10 s, so do not count on the 301st.
        no_retry = secret_client(emu, retry_total=0)
        refused: HttpResponseError | None = None
        for i in range(400):
            try:
                no_retry.set_secret(f"probe-{i}", "v")
            except HttpResponseError as exc:
                refused = exc
                break
        assert refused is not None, "no 429 after 700 sets"
        assert refused.status_code == 429
        assert refused.error is not None and refused.error.code == "Throttled"
        assert refused.response is not None
        retry_after = int(refused.response.headers["Retry-After"])
        assert 1 <= retry_after <= 10

        # The default SDK policy honours Retry-After and succeeds once the window moves.
        plain.set_secret("after-the-wait", "v")
        assert plain.get_secret("after-the-wait").value == "v"
        stats = emu.stats()
        assert stats["by_op"]["SetSecret"]["429"] >= 1
        assert stats["by_op"]["SetSecret"]["200"] >= 301
        assert stats["throttled"] >= 1

    def test_off_by_default(self, make_emulator: EmulatorFactory) -> None:
        """Without --throttle there is no 429 even well above the limits."""
        emu = make_emulator()
        client = secret_client(emu, retry_total=0)
        for i in range(320):
            client.set_secret(f"free-{i}", "v")
        assert "429" not in emu.stats()["by_status"]
