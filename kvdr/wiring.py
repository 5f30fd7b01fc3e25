"""Wiring: builds the running parts (credential, vaults, blob store, replicators) from
the configuration, each entered in an `AsyncExitStack` so cleanup runs only for what
actually started. The daemon and the one-shot commands share it.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING

from replicator.checkpoint import CheckpointStore
from replicator.pair import PairReplicator
from replicator.settings import PairSettings
from storage.open import open_store
from storage.store import BlobStore
from vault.adapter import KeyVaultAdapter
from vault.client import VaultClient
from vault.credentials import build_credential

if TYPE_CHECKING:
    from kvdr.config import KvdrConfig


class UnknownPair(ValueError):
    """`--pair` named a pair the configuration does not have."""


@dataclass
class Parts:
    vaults: dict[str, VaultClient]
    blobs: BlobStore
    checkpoints: CheckpointStore
    replicators: list[PairReplicator]
    # A fresh replicator for a pair (the daemon makes one each time it takes a pair's
    # lease, so the checkpoints are loaded anew).
    make_replicator: Callable[[PairSettings], PairReplicator]


async def open_parts(
    config: KvdrConfig, stack: AsyncExitStack, only_pair: str | None = None
) -> Parts:
    """Open everything the configuration names; closed when `stack` closes."""
    pairs = config.replicator.pairs
    if only_pair is not None:
        pairs = tuple(p for p in pairs if p.name == only_pair)
        if not pairs:
            known = ", ".join(p.name for p in config.replicator.pairs) or "none"
            raise UnknownPair(f"no pair named {only_pair!r} in the configuration (pairs: {known})")
    credential = build_credential(config.credential)
    await stack.enter_async_context(credential)
    regions = {p.primary.region for p in pairs} | {t.region for p in pairs for t in p.secondaries}
    vaults: dict[str, VaultClient] = {}
    for region in sorted(regions):
        ref = config.regions[region]
        vaults[region] = await stack.enter_async_context(
            KeyVaultAdapter.open(ref, credential, config.vault)
        )
    blobs = await stack.enter_async_context(open_store(config.storage, credential))
    checkpoints = CheckpointStore(blobs)

    def make_replicator(pair: PairSettings) -> PairReplicator:
        return PairReplicator(
            pair,
            config.replicator,
            vaults[pair.primary.region],
            {t.region: vaults[t.region] for t in pair.secondaries},
            checkpoints,
        )

    return Parts(
        vaults=vaults,
        blobs=blobs,
        checkpoints=checkpoints,
        replicators=[make_replicator(pair) for pair in pairs],
        make_replicator=make_replicator,
    )
