"""What a drill finds in the vaults: each region's holdings of the load's secrets, and
the `verify` step that accounts for every acknowledged write on every region."""

from __future__ import annotations

import asyncio
import time

from chaos.measure import Holdings, Inventory, account, missing_from
from chaos.scenario import Verify
from chaos.state import DrillState
from replicator.plan import SOURCE_VERSION_TAG
from vault.errors import ItemNotFound
from vault.models import ItemKind


async def inventory(state: DrillState, region: str) -> Inventory:
    """The versions `region` holds of each name the load wrote, and their source tags."""
    reader = state.target.readers[region]
    out: dict[str, Holdings] = {}
    for name in state.load.all_names:
        try:
            versions = await reader.list_versions(ItemKind.SECRET, name)
        except ItemNotFound:
            versions = []
        out[name] = Holdings(
            frozenset(v.version for v in versions),
            tuple(v.tags[SOURCE_VERSION_TAG] for v in versions if SOURCE_VERSION_TAG in v.tags),
        )
    return out


async def verify(state: DrillState, step: Verify) -> None:
    """Account for every acknowledged write on every region, waiting up to the step's
    `settle_seconds` for replication to catch up."""
    result = state.result
    active = state.active_region
    lost = [e for loss in result.losses for e in loss.missing]
    others = [r for r in state.target.regions if r != active]
    deadline = time.monotonic() + step.settle_seconds
    entries = list(result.ledger.entries)
    while True:
        results = [account(active, await inventory(state, active), entries, lost)]
        # Replicas must hold what the active region acknowledged (no promotion: this
        # is the RPO the drill measures).
        mine = [e for e in entries if e.region == active]
        replica_losses = []
        for region in others:
            held = await inventory(state, region)
            results.append(account(region, held, mine, lost))
            replica_losses.append(missing_from(region, held, mine, time.time()))
        settled = all(not r.unaccounted for r in results)
        if settled or time.monotonic() >= deadline:
            break
        await asyncio.sleep(1.0)
    result.accounting = results
    if state.promoted_to is None:
        result.losses.extend(replica_losses)
    state.event(
        "verify",
        checked=len(entries),
        accounting=[r.to_dict() | {"unaccounted": len(r.unaccounted)} for r in results],
    )
