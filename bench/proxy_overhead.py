"""What kvdr's fault proxy costs with no toxics, against a direct connection.

Runs `kvdr chaos-proxy` as its own process and an upstream (echo + byte sink) in
another, then measures from this process, direct and through the proxy, in the same
run:
- added latency of small request/response round trips (p50, p99);
- throughput of a one-way bulk transfer (MB/s over a few hundred MB).

Targets (issue 6): p50 added < 1 ms, throughput >= 100 MB/s through the proxy.

    .venv/bin/python bench/proxy_overhead.py [--round-trips 5000] [--megabytes 512]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import re
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from multiprocessing.connection import Connection
from pathlib import Path

_READY = re.compile(r"Toxiproxy API on (http://\S+)")
_MESSAGE = 64  # bytes per request and per response in the latency test
_CHUNK = 1 << 20


# --- the upstream, in its own process -------------------------------------------------


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


async def _sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Count bytes until the client half-closes, then answer the count (8 bytes)."""
    total = 0
    while data := await reader.read(1 << 20):
        total += len(data)
    writer.write(struct.pack("!Q", total))
    await writer.drain()
    writer.close()


async def _serve_upstream(ready: Connection) -> None:
    echo = await asyncio.start_server(_echo, "127.0.0.1", 0)
    sink = await asyncio.start_server(_sink, "127.0.0.1", 0, limit=1 << 20)
    ready.send((echo.sockets[0].getsockname()[1], sink.sockets[0].getsockname()[1]))
    await asyncio.Event().wait()


def _upstream_main(ready: Connection) -> None:
    asyncio.run(_serve_upstream(ready))


# --- the fault proxy, as `kvdr chaos-proxy` -----------------------------------------------


def _start_proxy(log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    log_file = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "kvdr", "chaos-proxy", "--port", "0", "--log-level", "warning"],
        stdout=subprocess.DEVNULL,
        stderr=log_file,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        match = _READY.search(log_path.read_text())
        if match:
            return proc, match.group(1)
        if proc.poll() is not None:
            raise SystemExit(f"kvdr chaos-proxy exited:\n{log_path.read_text()}")
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("kvdr chaos-proxy did not start")


def _create_proxy(api: str, name: str, upstream: str) -> str:
    body = json.dumps({"name": name, "upstream": upstream, "listen": "127.0.0.1:0"}).encode()
    request = urllib.request.Request(f"{api}/proxies", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(json.load(response)["listen"])


# --- measurements ---------------------------------------------------------------------


def _connect(address: str) -> socket.socket:
    host, _, port = address.rpartition(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _round_trips_us(address: str, count: int) -> list[float]:
    message = b"k" * _MESSAGE
    samples = []
    with _connect(address) as sock:
        for index in range(count + count // 10):
            start = time.perf_counter()
            sock.sendall(message)
            received = 0
            while received < _MESSAGE:
                received += len(sock.recv(_MESSAGE - received))
            if index >= count // 10:  # the first tenth warms up caches and the loop
                samples.append((time.perf_counter() - start) * 1e6)
    return samples


def _throughput_mb_s(address: str, megabytes: int) -> float:
    block = memoryview(b"\xa5" * _CHUNK)
    total = megabytes * _CHUNK
    with _connect(address) as sock:
        start = time.perf_counter()
        for _ in range(megabytes):
            sock.sendall(block)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while len(answer) < 8:
            piece = sock.recv(8 - len(answer))
            if not piece:
                raise SystemExit("the sink closed before answering")
            answer += piece
        elapsed = time.perf_counter() - start
    (received,) = struct.unpack("!Q", answer)
    if received != total:
        raise SystemExit(f"sink received {received} of {total} bytes")
    return total / elapsed / 1e6


def _percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--round-trips", type=int, default=5000)
    parser.add_argument("--megabytes", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3, help="alternating direct/proxy rounds")
    args = parser.parse_args()

    ready_recv, ready_send = multiprocessing.Pipe(duplex=False)
    upstream = multiprocessing.Process(target=_upstream_main, args=(ready_send,), daemon=True)
    upstream.start()
    echo_port, sink_port = ready_recv.recv()
    with tempfile.TemporaryDirectory() as tmp:
        proxy, api = _start_proxy(Path(tmp) / "chaos-proxy.log")
        try:
            direct = {"echo": f"127.0.0.1:{echo_port}", "sink": f"127.0.0.1:{sink_port}"}
            proxied = {
                name: _create_proxy(api, f"bench_{name}", addr) for name, addr in direct.items()
            }
            latency: dict[str, list[float]] = {"direct": [], "proxy": []}
            rates: dict[str, list[float]] = {"direct": [], "proxy": []}
            # Alternate direct and proxied rounds so drift on the machine hits both alike.
            for _ in range(args.rounds):
                for label, addresses in (("direct", direct), ("proxy", proxied)):
                    latency[label] += _round_trips_us(addresses["echo"], args.round_trips)
                    rates[label].append(_throughput_mb_s(addresses["sink"], args.megabytes))
        finally:
            proxy.terminate()
            proxy.wait(timeout=10)
            upstream.terminate()

    p50 = {label: statistics.median(samples) for label, samples in latency.items()}
    p99 = {label: _percentile(samples, 0.99) for label, samples in latency.items()}
    rate = {label: statistics.median(values) for label, values in rates.items()}
    added_p50 = p50["proxy"] - p50["direct"]
    added_p99 = p99["proxy"] - p99["direct"]
    print(f"kvdr chaos-proxy overhead, no toxics ({args.rounds} rounds each)")
    print(f"round trip of {_MESSAGE} B, {args.round_trips} per round:")
    print(f"  direct  p50 {p50['direct']:8.1f} us   p99 {p99['direct']:8.1f} us")
    print(f"  proxy   p50 {p50['proxy']:8.1f} us   p99 {p99['proxy']:8.1f} us")
    print(f"  added   p50 {added_p50:8.1f} us   p99 {added_p99:8.1f} us")
    ratio_p50 = p50["proxy"] / p50["direct"]
    ratio_p99 = p99["proxy"] / p99["direct"]
    print(f"  ratio   p50 {ratio_p50:8.2f}x    p99 {ratio_p99:8.2f}x")
    print(f"bulk transfer of {args.megabytes} MiB, median of rounds:")
    print(f"  direct  {rate['direct']:8.1f} MB/s")
    print(f"  proxy   {rate['proxy']:8.1f} MB/s")
    print(f"  ratio   {rate['proxy'] / rate['direct']:8.2f}x")
    meets_latency = added_p50 < 1000
    meets_rate = rate["proxy"] >= 100
    print(
        f"targets: p50 added < 1 ms: {'yes' if meets_latency else 'NO'}; "
        f">= 100 MB/s: {'yes' if meets_rate else 'NO'}"
    )


if __name__ == "__main__":
    main()
