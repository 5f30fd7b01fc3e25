"""kvdr's fault proxy: a Toxiproxy-compatible server, and faults driven through its API.

`FaultProxy` serves Toxiproxy 2.x's HTTP API (default 127.0.0.1:8474) and the TCP
proxies it manages; `kvdr chaos-proxy` runs it. `Faults` (in `chaos.faults`) drives
any Toxiproxy-compatible server, ours or Shopify's, through `toxiproxy-python`.
"""

from chaos.api import DEFAULT_HOST, DEFAULT_PORT, FaultProxy, server_version
from chaos.errors import (
    ApiError,
    ChaosError,
    FaultApiUnreachable,
    FaultError,
    InvalidFault,
    LinkExists,
    LinkNotFound,
    ListenError,
)

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "ApiError",
    "ChaosError",
    "FaultApiUnreachable",
    "FaultError",
    "FaultProxy",
    "InvalidFault",
    "LinkExists",
    "LinkNotFound",
    "ListenError",
    "server_version",
]
