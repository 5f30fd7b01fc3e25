"""--throttle azure: Key Vault's per-10-s limits, seen and retried through the SDK."""

from __future__ import annotations

import asyncio

import pytest
from azure.core.exceptions import HttpResponseError

from tests.fixtures.emulator import EmulatorFactory, aio_secret_client, secret_client


class TestThrottle:
    """429 Throttled with Retry-After."""

    async def test_burst_above_300_sets(self, make_emulator: EmulatorFactory) -> None:
        """Set 301 within 10 s is 429 Throttled; the SDK's retry then gets it through."""
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

        no_retry = secret_client(emu, retry_total=0)
        with pytest.raises(HttpResponseError) as caught:
            no_retry.set_secret("burst-301", "v")
        assert caught.value.status_code == 429
        assert caught.value.error is not None and caught.value.error.code == "Throttled"
        assert caught.value.response is not None
        retry_after = int(caught.value.response.headers["Retry-After"])
        assert 1 <= retry_after <= 10

        # The default SDK policy honours Retry-After and succeeds once the window moves.
        plain.set_secret("burst-302", "v")
        stats = emu.stats()
        assert stats["by_op"]["SetSecret"]["429"] >= 2
        assert stats["by_op"]["SetSecret"]["200"] == 301
        assert stats["throttled"] >= 2

    def test_off_by_default(self, make_emulator: EmulatorFactory) -> None:
        """Without --throttle there is no 429 even well above the limits."""
        emu = make_emulator()
        client = secret_client(emu, retry_total=0)
        for i in range(320):
            client.set_secret(f"free-{i}", "v")
        assert "429" not in emu.stats()["by_status"]
