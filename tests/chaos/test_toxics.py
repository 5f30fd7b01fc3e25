"""Measured effects of each toxic, through raw HTTP and through toxiproxy-python.

Every test runs for each server of `fault_proxy` and each `driver` (HTTP requests or
toxiproxy-python). Timings are the effects the toxics promise, with the tolerances the issue sets (a
busy machine gets more than one attempt at an upper bound, never at a lower one);
counts use binomial bounds, not luck.
"""

from __future__ import annotations

import math
import socket
import statistics
import threading
import time

import pytest

from tests.fixtures.chaos import (
    Driver,
    EchoServer,
    FaultProxyEndpoint,
    connect,
    recv_exact,
    recv_until_closed,
)

# A loaded machine can only make things slower: lower bounds are checked on every
# attempt, and upper bounds must hold in one of this many attempts.
ATTEMPTS = 3


def round_trips(listen: str, count: int, payload: bytes = b"ping") -> list[float]:
    """Milliseconds for `count` request/response round trips on one connection."""
    samples = []
    with connect(listen) as sock:
        for _ in range(count):
            start = time.perf_counter()
            sock.sendall(payload)
            recv_exact(sock, len(payload))
            samples.append((time.perf_counter() - start) * 1000)
    return samples


def echo_transfer_seconds(listen: str, size: int) -> float:
    """Seconds to send `size` bytes through the echo upstream and get them all back."""
    payload = bytes(range(256)) * (size // 256)
    with connect(listen, timeout=30) as sock:
        start = time.perf_counter()
        sender = threading.Thread(target=sock.sendall, args=(payload,))
        sender.start()
        received = recv_exact(sock, len(payload))
        elapsed = time.perf_counter() - start
        sender.join()
    assert received == payload
    return elapsed


class TestLatency:
    """latency: every chunk is delayed by latency +/- jitter milliseconds."""

    @pytest.mark.parametrize("stream", ["downstream", "upstream"])
    def test_latency_within_jitter(
        self,
        fault_proxy: FaultProxyEndpoint,
        driver: Driver,
        echo_server: EchoServer,
        stream: str,
    ) -> None:
        """Round trips take latency +/- jitter, plus at most 10 ms."""
        latency, jitter = 100, 20
        listen = driver.create_proxy("lat", echo_server.address)
        attributes = {"latency": latency, "jitter": jitter}
        driver.add_toxic("lat", "latency", stream, attributes=attributes)
        attempts = []
        for _ in range(ATTEMPTS):
            samples = round_trips(listen, 8)
            attempts.append(samples)
            # Never early, whatever the load on the machine.
            assert min(samples) >= latency - jitter, samples
            # One sample may lose the CPU to another process; the rest must be in bounds.
            if sum(s <= latency + jitter + 10 for s in samples) >= len(samples) - 1:
                break
        else:
            pytest.fail(f"round trips above latency + jitter + 10 ms: {attempts}")

    def test_zero_latency(
        self, fault_proxy: FaultProxyEndpoint, driver: Driver, echo_server: EchoServer
    ) -> None:
        """A latency toxic with no delay leaves round trips fast."""
        listen = driver.create_proxy("lat", echo_server.address)
        driver.add_toxic("lat", "latency", attributes={"latency": 0})
        assert statistics.median(round_trips(listen, 8)) < 50


class TestBandwidth:
    """bandwidth: a link carries at most `rate` KB/s."""

    @pytest.mark.parametrize("stream", ["downstream", "upstream"])
    def test_rate_within_ten_percent(
        self,
        fault_proxy: FaultProxyEndpoint,
        driver: Driver,
        echo_server: EchoServer,
        stream: str,
    ) -> None:
        """Moving N bytes takes N / rate seconds, within 10%."""
        rate_kb, size = 400, 400_128
        listen = driver.create_proxy("bw", echo_server.address)
        driver.add_toxic("bw", "bandwidth", stream, attributes={"rate": rate_kb})
        expected = size / (rate_kb * 1000)
        attempts = []
        for _ in range(ATTEMPTS):
            elapsed = echo_transfer_seconds(listen, size)
            attempts.append(elapsed)
            # Never faster than the rate allows, whatever the load on the machine.
            assert elapsed >= 0.9 * expected, (elapsed, expected)
            if elapsed <= 1.1 * expected:
                break
        else:
            pytest.fail(f"transfers slower than {rate_kb} KB/s - 10%: {attempts} s")


class TestTimeout:
    """timeout: data is dropped and the connection closes after `timeout` ms (0: never)."""

    def test_timeout_holds_then_closes(
        self, fault_proxy: FaultProxyEndpoint, driver: Driver, echo_server: EchoServer
    ) -> None:
        """Nothing gets through, and the connection closes once the timeout has passed."""
        listen = driver.create_proxy("to", echo_server.address)
        driver.add_toxic("to", "timeout", attributes={"timeout": 300})
        with connect(listen) as sock:
            start = time.perf_counter()
            sock.sendall(b"hello")
            data, _ = recv_until_closed(sock)
            elapsed = time.perf_counter() - start
        assert data == b""
        assert 0.29 <= elapsed < 2.0, elapsed

    def test_timeout_toxic_closes_connection_on_remove(
        self, fault_proxy: FaultProxyEndpoint, driver: Driver, echo_server: EchoServer
    ) -> None:
        """timeout=0 holds the connection open; removing the toxic closes it."""
        listen = driver.create_proxy("to", echo_server.address)
        name = driver.add_toxic("to", "timeout", attributes={"timeout": 0})
        with connect(listen) as sock:
            sock.sendall(b"hello")
            sock.settimeout(0.3)
            with pytest.raises(TimeoutError):
                sock.recv(100)
            sock.settimeout(5)
            driver.remove_toxic("to", name)
            data, _ = recv_until_closed(sock)
        assert data == b""


class TestResetPeer:
    """reset_peer: the connection is reset (TCP RST) after `timeout` ms."""

    @pytest.mark.parametrize("stream", ["downstream", "upstream"])
    def test_reset_peer_gives_econnreset(
        self,
        fault_proxy: FaultProxyEndpoint,
        driver: Driver,
        echo_server: EchoServer,
        stream: str,
    ) -> None:
        """The client's read fails with ECONNRESET, not a clean EOF."""
        listen = driver.create_proxy("rp", echo_server.address)
        driver.add_toxic("rp", "reset_peer", stream, attributes={"timeout": 0})
        with connect(listen) as sock:
            sock.sendall(b"reset toxic payload\n")
            with pytest.raises(ConnectionResetError):
                sock.recv(100)

    def test_reset_peer_with_timeout(
        self, fault_proxy: FaultProxyEndpoint, driver: Driver, echo_server: EchoServer
    ) -> None:
        """With a timeout the reset comes after it, measured from the first data."""
        listen = driver.create_proxy("rp", echo_server.address)
        driver.add_toxic("rp", "reset_peer", "upstream", attributes={"timeout": 200})
        with connect(listen) as sock:
            start = time.perf_counter()
            sock.sendall(b"reset toxic payload\n")
            with pytest.raises(ConnectionResetError):
                sock.recv(100)
            elapsed = time.perf_counter() - start
        assert 0.19 <= elapsed < 1.0, elapsed


class TestLimitData:
    """limit_data: the connection closes once `bytes` bytes went through."""

    def test_closes_after_n_bytes(
        self, fault_proxy: FaultProxyEndpoint, driver: Driver, echo_server: EchoServer
    ) -> None:
        """Exactly N bytes arrive, then the connection ends."""
        listen = driver.create_proxy("ld", echo_server.address)
        driver.add_toxic("ld", "limit_data", attributes={"bytes": 10})
        with connect(listen) as sock:
            sock.sendall(b"0123456789abcdefghijklmnopqrstuvwxyz")
            data, how = recv_until_closed(sock)
        assert (data, how) == (b"0123456789", "eof")

    def test_limit_spans_chunks(
        self, fault_proxy: FaultProxyEndpoint, driver: Driver, echo_server: EchoServer
    ) -> None:
        """The count runs across writes: 3 + 3 bytes pass a limit of 5 as 3 + 2."""
        listen = driver.create_proxy("ld", echo_server.address)
        driver.add_toxic("ld", "limit_data", attributes={"bytes": 5})
        with connect(listen) as sock:
            sock.sendall(b"abc")
            assert recv_exact(sock, 3) == b"abc"
            sock.sendall(b"def")
            data, how = recv_until_closed(sock)
        assert (data, how) == (b"de", "eof")


class TestDown:
    """down (enabled=false): the listener closes and open connections drop."""

    def test_down_refuses_and_drops(
        self, fault_proxy: FaultProxyEndpoint, driver: Driver, echo_server: EchoServer
    ) -> None:
        """New connections are refused, an open one ends, and enabling restores it."""
        listen = driver.create_proxy("dn", echo_server.address)
        with connect(listen) as open_conn:
            open_conn.sendall(b"x")
            assert recv_exact(open_conn, 1) == b"x"
            driver.set_enabled("dn", False)
            with pytest.raises(ConnectionRefusedError):
                connect(listen)
            data, _ = recv_until_closed(open_conn)
            assert data == b""
        driver.set_enabled("dn", True)
        assert round_trips(listen, 1)


class TestSlicer:
    """slicer: data arrives in small pieces, all of it, in order."""

    def test_delivers_all_bytes_in_pieces(
        self, fault_proxy: FaultProxyEndpoint, driver: Driver, echo_server: EchoServer
    ) -> None:
        """1000 bytes sliced to ~10-byte pieces 2 ms apart arrive complete in many reads."""
        listen = driver.create_proxy("sl", echo_server.address)
        driver.add_toxic(
            "sl", "slicer", attributes={"average_size": 10, "size_variation": 5, "delay": 2000}
        )
        payload = bytes(range(250)) * 4
        reads = 0
        received = bytearray()
        with connect(listen) as sock:
            sock.sendall(payload)
            while len(received) < len(payload):
                piece = sock.recv(4096)
                assert piece, "connection closed early"
                received.extend(piece)
                reads += 1
        assert bytes(received) == payload
        assert reads >= 20, reads


class TestSlowClose:
    """slow_close: the close is held back by `delay` ms."""

    def test_close_is_delayed(
        self, fault_proxy: FaultProxyEndpoint, driver: Driver, echo_server: EchoServer
    ) -> None:
        """After the client finishes sending, the connection ends only after the delay."""
        listen = driver.create_proxy("sc", echo_server.address)
        driver.add_toxic("sc", "slow_close", attributes={"delay": 300})
        with connect(listen) as sock:
            sock.sendall(b"bye")
            assert recv_exact(sock, 3) == b"bye"
            start = time.perf_counter()
            sock.shutdown(socket.SHUT_WR)  # the upstream sees EOF and closes
            recv_until_closed(sock)
            elapsed = time.perf_counter() - start
        assert 0.29 <= elapsed < 2.0, elapsed


class TestToxicity:
    """toxicity: the share of connections a toxic applies to."""

    def test_half_of_connections(
        self, fault_proxy: FaultProxyEndpoint, driver: Driver, echo_server: EchoServer
    ) -> None:
        """With toxicity 0.5, about half of 200 connections are hit (5 sigma bounds)."""
        listen = driver.create_proxy("tx", echo_server.address)
        # limit_data with 0 bytes closes a connection at its first byte: easy to tell.
        driver.add_toxic("tx", "limit_data", toxicity=0.5, attributes={"bytes": 0})
        trials, share = 200, 0.5
        hit = 0
        for _ in range(trials):
            with connect(listen) as sock:
                sock.sendall(b"ping")
                data, _ = recv_until_closed(sock, limit=4)
                hit += data == b""
        sigma = math.sqrt(trials * share * (1 - share))
        assert abs(hit - trials * share) <= 5 * sigma, hit

    def test_zero_toxicity_never_applies(
        self, fault_proxy: FaultProxyEndpoint, driver: Driver, echo_server: EchoServer
    ) -> None:
        """With toxicity 0 no connection is hit."""
        listen = driver.create_proxy("tx", echo_server.address)
        driver.add_toxic("tx", "limit_data", toxicity=0.0, attributes={"bytes": 0})
        for _ in range(20):
            with connect(listen) as sock:
                sock.sendall(b"ping")
                assert recv_exact(sock, 4) == b"ping"


class TestDirection:
    """upstream toxics act on client -> server bytes, downstream ones on server -> client."""

    def test_upstream_limit_cuts_what_the_server_gets(
        self, fault_proxy: FaultProxyEndpoint, driver: Driver, echo_server: EchoServer
    ) -> None:
        """An upstream limit of 5 bytes: the server receives exactly 5."""
        listen = driver.create_proxy("dir", echo_server.address)
        driver.add_toxic("dir", "limit_data", "upstream", attributes={"bytes": 5})
        with connect(listen) as sock:
            sock.sendall(b"0123456789")
            recv_until_closed(sock)
        assert echo_server.wait_finished(0) == b"01234"

    def test_downstream_limit_cuts_what_the_client_gets(
        self, fault_proxy: FaultProxyEndpoint, driver: Driver, echo_server: EchoServer
    ) -> None:
        """A downstream limit of 5 bytes: the server gets all 10, the client 5."""
        listen = driver.create_proxy("dir", echo_server.address)
        driver.add_toxic("dir", "limit_data", "downstream", attributes={"bytes": 5})
        with connect(listen) as sock:
            sock.sendall(b"0123456789")
            data, _ = recv_until_closed(sock)
        assert data == b"01234"
        assert echo_server.wait_finished(0) == b"0123456789"
