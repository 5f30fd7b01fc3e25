"""Failover on the local stack as a user meets it: two emulators behind the fault
proxy, Azurite, the daemon as a process, `kvdr failover` commands as processes, the
emulator read-only fence the stack configures.

- a planned switchover under a steady write load loses no acknowledged write, the
  daemon then mirrors the other way, and switching back works the same;
- a promotion while the primary's link is cut reports, from the journal, the write it
  lost; the new primary's writes reach the old one when its link returns, and the old
  primary is fenced before kvdr writes to it; failback returns to it;
- after a promotion, the daemon of the old epoch writes nothing more to the new
  primary, while the control store answers slowly (latency on the storage link).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import pytest
from azure.core.exceptions import HttpResponseError

from chaos.faults import Faults
from kvdr.local_stack import LocalStack
from tests.e2e.stack_clients import stack_secret_client
from tests.fixtures.daemon import DaemonProcess
from tests.fixtures.stack_failover import (
    WriteLoad,
    assert_all_present,
    emulator_api,
    holds,
    kvdr_json,
    pair_doc,
    running_stack,
    source_is,
)
from tests.fixtures.waiting import WaitTimeout, wait_for

PAIR = "demo"
# A stack of its own and three transitions (about 2 minutes): in the slow suite, which
# `make test` and CI run after the default one.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalStack, DaemonProcess]]:
    with running_stack(tmp_path_factory.mktemp("failover-stack")) as running:
        yield running.with_daemon()


class TestSwitchoverOnTheStack:
    async def test_switchover_under_load_loses_nothing_and_back(
        self, stack: tuple[LocalStack, DaemonProcess]
    ) -> None:
        local, daemon = stack
        await wait_for(lambda: pair_doc(daemon).get("last_reconcile"), 90, "the first pass")
        load = WriteLoad(local, "switch-load")
        writer = asyncio.create_task(load.run())
        try:
            await asyncio.sleep(1.0)
            code, doc = await kvdr_json(
                local, daemon, "switchover", "--pair", PAIR, "--to", "westus", "--yes"
            )
            assert code == 0, doc
            load.active = "westus"
            assert doc["fence"]["action"] == "emulator-readonly" and doc["loss_items"] == 0
            assert doc["fences"]["eastus"] == "applied"
            await wait_for(lambda: source_is(daemon, "westus"), 20, "the daemon reversed")
            await asyncio.sleep(1.0)
        finally:
            load.stop.set()
            await writer
        before = [w for w in load.ledger if w[2] == "eastus"]
        after = [w for w in load.ledger if w[2] == "westus"]
        assert before and after, load.ledger
        # Every acknowledged write is on the new primary, and mirrored back to eastus.
        await assert_all_present(local, load, "westus")
        await assert_all_present(local, load, "eastus")
        # Applications cannot write to the fenced old primary; kvdr is exempt.
        fence = emulator_api(local, "eastus", "read-only")
        assert fence["read_only"] is True and fence["exempt_principals"] == ["kvdr-local"]
        assert emulator_api(local, "westus", "read-only")["read_only"] is False

        # And back, the same way.
        back = WriteLoad(local, "switch-back-load", active="westus")
        writer = asyncio.create_task(back.run())
        try:
            await asyncio.sleep(1.0)
            code, doc = await kvdr_json(
                local, daemon, "switchover", "--pair", PAIR, "--to", "eastus", "--yes"
            )
            assert code == 0, doc
            back.active = "eastus"
            assert doc["epoch"] == 2 and doc["fences"] == {"eastus": "none", "westus": "applied"}
            await wait_for(lambda: source_is(daemon, "eastus"), 20, "eastus is the source")
            await asyncio.sleep(1.0)
        finally:
            back.stop.set()
            await writer
        await assert_all_present(local, back, "eastus")
        await assert_all_present(local, back, "westus")
        assert emulator_api(local, "eastus", "read-only")["read_only"] is False


class TestPromoteOnTheStack:
    async def test_promote_with_the_primary_cut_off_then_failback(
        self, stack: tuple[LocalStack, DaemonProcess], faults: Faults
    ) -> None:
        local, daemon = stack
        await wait_for(lambda: source_is(daemon, "eastus"), 60, "eastus active")
        # Steady first (the first pass done, the emulators' event subscriptions
        # validated): a write made before then reaches the daemon only by a later poll.
        await wait_for(lambda: pair_doc(daemon).get("last_reconcile"), 90, "the first pass")
        async with stack_secret_client(local.state_dir, local.ports.eastus) as eastus:
            async with faults.down("westus-vault"):
                await eastus.set_secret("never-mirrored", "lost-value")
                # The daemon saw it (pending for westus) though westus cannot get it;
                # promote waits for the daemon's journal to make it durable.
                try:
                    await wait_for(
                        lambda: pair_doc(daemon)["targets"][0]["pending"] > 0,
                        30,
                        "the write pending for westus",
                    )
                except WaitTimeout:
                    tail = "\n".join(daemon.logs().splitlines()[-60:])
                    pytest.fail(f"never pending: {json.dumps(pair_doc(daemon))[:4000]}\n{tail}")
                await faults.set_down("eastus-vault")
            started = time.monotonic()
            code, doc = await kvdr_json(
                local, daemon, "promote", "--pair", PAIR, "--to", "westus", "--yes"
            )
            took = time.monotonic() - started
            assert code == 0, doc
            assert doc["state"] == "failed-over" and doc["fences"]["eastus"] == "required"
            assert doc["rto_seconds"] <= took
            lost = {(item["kind"], item["name"]) for item in doc["lost"]}
            assert doc["loss_items"] == len(lost)
            # Listed whether the daemon read it before the link went (the journal has
            # its version) or only knew of it (its lag tracker held it as pending),
            # unless it reached westus once westus's link was back (the daemon retried
            # a copy it had read). The per-item arithmetic is
            # tests/failover/test_promote_loss.py.
            assert "journal" in doc["loss_basis"] and "pending items" in doc["loss_basis"]
            assert "lost-value" not in json.dumps(doc)
            if ("secret", "never-mirrored") not in lost:
                async with stack_secret_client(local.state_dir, local.ports.westus) as westus:
                    assert await holds(westus, "never-mirrored", "lost-value"), doc
            await wait_for(lambda: source_is(daemon, "westus"), 20, "the daemon reversed")
            async with stack_secret_client(local.state_dir, local.ports.westus) as westus:
                await westus.set_secret("written-after-promote", "w")
                await faults.set_up("eastus-vault")
                # Back: fenced by the daemon first, then it receives westus's writes.
                await wait_for(
                    lambda: emulator_api(local, "eastus", "read-only")["read_only"], 30, "fence"
                )
                await wait_for(lambda: holds(eastus, "written-after-promote", "w"), 60, "copy")
                with pytest.raises(HttpResponseError) as refused:
                    await eastus.set_secret("app-on-fenced", "x")
                assert refused.value.status_code == 403
                control = pair_doc(daemon)["control"]
                assert control["fences"]["eastus"] == "applied"

            code, back = await kvdr_json(local, daemon, "failback", "--pair", PAIR, "--yes")
            assert code == 0, back
            assert (back["to_region"], back["state"]) == ("eastus", "normal")
            # The lost write stayed on eastus and is mirrored to westus again.
            await wait_for(lambda: source_is(daemon, "eastus"), 20, "eastus is the source")
            async with stack_secret_client(local.state_dir, local.ports.westus) as westus:
                await wait_for(
                    lambda: holds(westus, "never-mirrored", "lost-value"), 60, "the lost write"
                )
            assert emulator_api(local, "eastus", "read-only")["read_only"] is False
            assert emulator_api(local, "westus", "read-only")["read_only"] is True


class TestOldEpochWritesNothing:
    async def test_no_write_from_the_old_direction_after_the_switch(
        self, stack: tuple[LocalStack, DaemonProcess], faults: Faults
    ) -> None:
        """800 ms of latency on the storage link (the daemon reads the control record
        slowly) and a write load on eastus: after a forced promotion of westus
        returns, westus receives no more writes from the daemon's old direction."""
        local, daemon = stack
        await wait_for(lambda: source_is(daemon, "eastus"), 60, "eastus active")
        load = WriteLoad(local, "old-epoch-load")
        writer = asyncio.create_task(load.run())
        try:
            async with faults.toxic("blob", "latency", attributes={"latency": 800}):
                await asyncio.sleep(2.0)
                code, doc = await kvdr_json(
                    local, daemon, "promote", "--pair", PAIR, "--to", "westus", "--yes", "--force"
                )
                assert code == 0, doc
                stats = emulator_api(local, "westus", "stats")
                writes_then = stats["by_op"].get("SetSecret", {}).get("200", 0)
                await asyncio.sleep(4.0)
                stats = emulator_api(local, "westus", "stats")
                writes_later = stats["by_op"].get("SetSecret", {}).get("200", 0)
        finally:
            load.stop.set()
            await writer
        assert writes_later == writes_then, (writes_then, writes_later)
        assert load.refused > 0  # eastus fenced: the load's later writes were refused
        await wait_for(lambda: source_is(daemon, "westus"), 20, "the daemon reversed")
        # Leave eastus active for whatever runs next.
        code, back = await kvdr_json(local, daemon, "failback", "--pair", PAIR, "--yes")
        assert code == 0, back
