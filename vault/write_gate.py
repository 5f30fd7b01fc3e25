"""The write gate: kvdr writes to a target vault only while its owner allows it.

A pair's replicator mirrors from the region the control record names active, at one
epoch. When a transition moves the epoch (switchover, promote, failback), a replicator
that still works in the old direction must write nothing more: the region it writes
to may now be the active one, taking application writes that an old copy would bury.

The gate is what the replicator asks before every write. Its answer comes from whoever
watches the control record (failover/epoch_watch.py, wired by the daemon); the vault
seam holds only this Protocol, so neither the replicator nor failover import each
other. A target wrapped in `GatedVault` checks the gate before each write call and
raises `WriteFenced` instead of sending it, so every path that writes (mirrors,
deletion sweep, recoveries) is covered by one wrapper, and a refused write is an
ordinary target error: counted, retried on a later pass.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, cast

from vault.client import VaultClient
from vault.errors import VaultError

# The calls of the vault seam that change a vault. Everything else reads.
WRITE_CALLS = frozenset(
    {
        "set_secret",
        "update_properties",
        "delete_item",
        "recover_item",
        "purge_item",
        "restore_item",
        "set_rotation_policy",
        "set_certificate_policy",
        "import_certificate",
        "set_issuer",
        "set_contacts",
    }
)


class WriteFenced(VaultError):
    """A write kvdr did not send: the control record moved on, or cannot be confirmed."""

    @property
    def reason(self) -> str:
        return "fenced"


class WriteGate(Protocol):
    """May this replicator still write to `region`? Raises `WriteFenced` when not."""

    def check(self, region: str) -> None: ...

    async def wait_moved(self) -> None:
        """Returns once the direction this replicator was started in is no longer the
        control record's (a new epoch): the replicator must stop and be rebuilt."""
        ...


class OpenGate:
    """No control record to obey (one-shot commands that hold the pair's lease, tests of
    the replicator alone): every write goes through."""

    def check(self, region: str) -> None:
        return None

    async def wait_moved(self) -> None:
        await _forever()


async def _forever() -> None:
    await asyncio.Event().wait()


WriteCall = Callable[..., Awaitable[Any]]


class WriteCallWrapper:
    """A vault whose write calls (`WRITE_CALLS`) go through `_around`; reads go straight
    to it. The gate below and the audit trail's recorder (kvdr/audit_vault.py) are two."""

    def __init__(self, vault: VaultClient) -> None:
        self._vault = vault

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._vault, name)
        if name not in WRITE_CALLS:
            return attr
        return self._around(name, cast(WriteCall, attr))

    def _around(self, name: str, call: WriteCall) -> WriteCall:
        raise NotImplementedError


class GatedVault(WriteCallWrapper):
    """A target vault whose write calls pass the gate first; reads go straight through."""

    def __init__(self, vault: VaultClient, region: str, gate: WriteGate) -> None:
        super().__init__(vault)
        self._region = region
        self._gate = gate

    def _around(self, name: str, call: WriteCall) -> WriteCall:
        gate, region = self._gate, self._region

        async def gated(*args: Any, **kwargs: Any) -> Any:
            gate.check(region)
            return await call(*args, **kwargs)

        return gated

    @classmethod
    def wrap(cls, vault: VaultClient, region: str, gate: WriteGate) -> VaultClient:
        """`vault` behind `gate`, typed as the seam it stands for."""
        return cast(VaultClient, cls(vault, region, gate))
