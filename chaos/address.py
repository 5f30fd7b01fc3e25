"""Addresses as Toxiproxy writes them: "host:port", "[v6]:port", ":port"."""

from __future__ import annotations

import asyncio
import socket

from chaos.errors import ApiError


def split_host_port(address: str) -> tuple[str, int]:
    """Parse "host:port", "[v6]:port" or ":port" the way Go's net package does."""
    if address.startswith("["):
        host, bracket, rest = address[1:].partition("]")
        if not bracket or not rest.startswith(":"):
            raise ValueError(f"address {address}: missing port in address")
        port_text = rest[1:]
    else:
        host, colon, port_text = address.rpartition(":")
        if not colon:
            raise ValueError(f"address {address}: missing port in address")
        if ":" in host:
            raise ValueError(f"address {address}: too many colons in address")
    if not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"address {address}: invalid port {port_text!r}")
    return host, int(port_text)


def join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def resolve_listen(address: str) -> tuple[str, int]:
    """Resolve a listen address to one IP (IPv4 first, as Go resolves "localhost").

    An empty host means 127.0.0.1 here, where Toxiproxy would listen on every
    interface: kvdr binds only to loopback unless told an address explicitly.
    """
    try:
        # Go listens on a free port for an empty address, and so do we.
        host, port = split_host_port(address) if address else ("", 0)
    except ValueError as exc:
        # Go's net.Listen names no address when it cannot parse one: "listen tcp:
        # address local373: missing port in address" (the parse error names it).
        raise ApiError.listen_failed(f"listen tcp: {exc}") from exc
    if not host:
        host = "127.0.0.1"
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        raise ApiError.listen_failed(f"listen tcp {address}: lookup {host}: {exc}") from exc
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    return str(infos[0][4][0]), port
