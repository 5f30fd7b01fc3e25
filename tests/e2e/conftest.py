"""The stack tests' `faults`: the fault proxy of the module's own `stack` fixture (each
module starts its stack with tests.fixtures.stack_failover.running_stack)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from chaos.faults import Faults
from kvdr.local_stack import LocalStack
from tests.fixtures.daemon import DaemonProcess


@pytest.fixture
async def faults(stack: tuple[LocalStack, DaemonProcess]) -> AsyncIterator[Faults]:
    """The stack's fault proxy; reset after the test (every link up, no toxic left)."""
    proxy = Faults(port=stack[0].ports.proxy_api)
    yield proxy
    await proxy.reset()
