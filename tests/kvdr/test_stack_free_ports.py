"""A stack on free ports (drills, tests, benches) survives losing a port between finding
it free and binding it: the fault proxy names the port it could not listen on, and the
stack starts again on other ports."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

import kvdr.local_stack as local_stack
from kvdr.local_stack import HOST, LocalStack, StackError, StackPorts, port_in_use

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def taken() -> Iterator[int]:
    """A port something else listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_a_port_taken_before_the_proxy_binds_it_is_named_and_retried(
    taken: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_free = StackPorts.free
    handed: list[StackPorts] = []

    def free() -> StackPorts:
        # The first set's eastus port is taken after the check (the race).
        ports = real_free()
        if not handed:
            ports = StackPorts(
                taken,
                *(
                    getattr(ports, f)
                    for f in ("westus", "blob", "blob_secondary", "proxy_api", "daemon")
                ),
            )
        handed.append(ports)
        return ports

    checked: list[StackPorts] = []

    def check_later(ports: StackPorts) -> None:
        if checked:
            real_check(ports)
        checked.append(ports)

    real_check = local_stack.check_ports
    monkeypatch.setattr(StackPorts, "free", staticmethod(free))
    monkeypatch.setattr(local_stack, "check_ports", check_later)
    with capture_logs() as logs:
        stack = LocalStack.start_on_free_ports(tmp_path / ".kvdr", ROOT)
    try:
        assert len(handed) == 2 and stack.ports == handed[1]
        (retried,) = [e for e in logs if e["event"] == "stack.port_taken"]
        assert f"{HOST}:{taken}" in retried["error"]
        assert "address already in use" in retried["error"]
        assert port_in_use(stack.ports.eastus)
    finally:
        stack.stop()


def test_other_failures_are_not_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def broken(self: LocalStack) -> None:
        calls.append(1)
        raise StackError("Azurite exited with code 1 while starting")

    monkeypatch.setattr(LocalStack, "start", broken)
    with pytest.raises(StackError, match="Azurite exited"):
        LocalStack.start_on_free_ports(tmp_path / ".kvdr", ROOT)
    assert calls == [1]
