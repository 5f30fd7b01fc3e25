"""The proxy itself: forwarding, connection lifecycle, and toxics changed on live links.

Names follow Toxiproxy's proxy_test.go and toxic_test.go where one exists; these run
against each server of `fault_proxy`, except the few kvdr extensions marked as such.
"""

from __future__ import annotations

import socket
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.fixtures.chaos import (
    EchoServer,
    FaultProxyEndpoint,
    HttpDriver,
    connect,
    free_port,
    recv_exact,
    recv_until_closed,
)


def median_round_trip_ms(sock: socket.socket, count: int = 5) -> float:
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        sock.sendall(b"ping")
        recv_exact(sock, 4)
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


@pytest.fixture
def listen(fault_proxy: FaultProxyEndpoint, echo_server: EchoServer) -> str:
    return str(fault_proxy.create_proxy("echo", echo_server.address)["listen"])


class TestForwarding:
    """Bytes go through unchanged when there are no toxics."""

    def test_proxy_simple_message(self, listen: str) -> None:
        """A short message comes back as sent."""
        with connect(listen) as sock:
            sock.sendall(b"hello world")
            assert recv_exact(sock, 11) == b"hello world"

    def test_proxy_big_message(self, listen: str) -> None:
        """8 MB go up and come back intact and in order."""
        payload = bytes(range(256)) * (8 * 4096)
        with connect(listen, timeout=30) as sock:
            sender = threading.Thread(target=sock.sendall, args=(payload,))
            sender.start()
            assert recv_exact(sock, len(payload)) == payload
            sender.join()

    def test_many_concurrent_connections(self, listen: str) -> None:
        """40 clients at once each get their own bytes back."""

        def client(index: int) -> bool:
            message = f"client {index:03d} ".encode() * 50
            with connect(listen) as sock:
                for _ in range(10):
                    sock.sendall(message)
                    if recv_exact(sock, len(message)) != message:
                        return False
            return True

        with ThreadPoolExecutor(max_workers=40) as pool:
            assert all(pool.map(client, range(40)))

    def test_proxy_to_down_upstream(self, fault_proxy: FaultProxyEndpoint) -> None:
        """With nothing listening upstream, the client's connection is closed."""
        proxy = fault_proxy.create_proxy("nowhere", f"127.0.0.1:{free_port()}")
        with connect(proxy["listen"]) as sock:
            data, _ = recv_until_closed(sock)
        assert data == b""

    def test_delete_proxy_drops_open_connections(
        self, fault_proxy: FaultProxyEndpoint, listen: str
    ) -> None:
        """Deleting a proxy ends the connections it carried."""
        with connect(listen) as sock:
            assert median_round_trip_ms(sock, 1) >= 0
            fault_proxy.api("DELETE", "/proxies/echo")
            data, _ = recv_until_closed(sock)
        assert data == b""

    def test_half_close_passes_through(self, fault_proxy: FaultProxyEndpoint, listen: str) -> None:
        """kvdr extension: a client that shuts down its sending side still gets the answer."""
        if fault_proxy.kind != "kvdr":
            pytest.skip("Toxiproxy closes both sides on the first EOF")
        payload = b"x" * 300_000
        with connect(listen) as sock:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
            data, how = recv_until_closed(sock)
        assert (len(data), how) == (len(payload), "eof")


class TestLiveToxics:
    """Toxics added, updated or removed apply to connections already open."""

    def test_toxic_add_remove(self, fault_proxy: FaultProxyEndpoint, listen: str) -> None:
        """Latency added to an open connection slows it; removing it makes it fast again."""
        driver = HttpDriver(fault_proxy)
        with connect(listen) as sock:
            assert median_round_trip_ms(sock) < 50
            name = driver.add_toxic("echo", "latency", attributes={"latency": 100})
            assert median_round_trip_ms(sock) >= 100
            driver.remove_toxic("echo", name)
            assert median_round_trip_ms(sock) < 50

    def test_update_applies_to_open_connection(
        self, fault_proxy: FaultProxyEndpoint, listen: str
    ) -> None:
        """A toxic's new attributes take effect on a connection already open."""
        HttpDriver(fault_proxy).add_toxic("echo", "latency", attributes={"latency": 30})
        with connect(listen) as sock:
            assert 30 <= median_round_trip_ms(sock) < 150
            response = fault_proxy.api(
                "PATCH",
                "/proxies/echo/toxics/latency_downstream",
                json={"attributes": {"latency": 150}},
            )
            assert response.status_code == 200
            assert median_round_trip_ms(sock) >= 150

    def test_reset_clears_toxics_on_open_connections(
        self, fault_proxy: FaultProxyEndpoint, listen: str
    ) -> None:
        """POST /reset removes toxics from connections already open."""
        HttpDriver(fault_proxy).add_toxic("echo", "latency", "upstream", attributes={"latency": 80})
        with connect(listen) as sock:
            assert median_round_trip_ms(sock, 2) >= 80
            assert fault_proxy.api("POST", "/reset").status_code == 204
            assert median_round_trip_ms(sock) < 50

    def test_no_data_dropped(self, fault_proxy: FaultProxyEndpoint, listen: str) -> None:
        """Adding and removing toxics under traffic loses, duplicates and reorders nothing."""
        driver = HttpDriver(fault_proxy)
        payload = bytes(range(256)) * (4 * 4096)  # 4 MiB
        received = bytearray()

        with connect(listen, timeout=30) as sock:

            def send() -> None:
                for start in range(0, len(payload), 16384):
                    sock.sendall(payload[start : start + 16384])
                    time.sleep(0.0005)

            def receive() -> None:
                received.extend(recv_exact(sock, len(payload)))

            threads = [threading.Thread(target=send), threading.Thread(target=receive)]
            for thread in threads:
                thread.start()
            toxics = [
                ("latency", "downstream", {"latency": 5, "jitter": 5}),
                ("slicer", "upstream", {"average_size": 1024, "size_variation": 512}),
                ("bandwidth", "downstream", {"rate": 20_000}),
                ("latency", "upstream", {"latency": 3}),
            ]
            cycles = 0
            # Keep changing toxics for as long as bytes flow (at least three rounds).
            while threads[0].is_alive() or cycles < 3:
                cycles += 1
                names = [
                    driver.add_toxic("echo", kind, stream, attributes=attributes)
                    for kind, stream, attributes in toxics
                ]
                time.sleep(0.05)
                for name in reversed(names):
                    driver.remove_toxic("echo", name)
                    time.sleep(0.01)
            for thread in threads:
                thread.join(timeout=30)
        assert len(received) == len(payload)
        assert bytes(received) == payload
