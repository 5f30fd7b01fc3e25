"""KeyMirror: keys of one pair, from its primary onto its secondaries.

A key absent on a target is restored from the source's backup (ids, versions and key
material identical). Attribute and tag changes go through `update_properties`. New
versions replace kvdr's copy (delete, purge, restore) where the target allows purge and
are reported as blocked where it does not (`replicator.plan_keys`). Rotation policies
are copied on their own: Azure's backup does not carry them. HSM key types are checked
against each target's SKU, once at start for every key (`check_start`) and again before
each restore.
"""

from __future__ import annotations

import asyncio

from replicator import metrics
from replicator.backup_mirror import BackupMirror, Next, SourceReads
from replicator.mirror import TargetOutcome
from replicator.plan_keys import Action, key_attributes, key_type_refusal, plan_key
from vault.client import VaultClient
from vault.errors import ItemNotFound
from vault.models import ItemKind, ItemProperties
from vault.policies import RotationPolicy

# Key reads at once when checking key types at start (one GET per key: listings carry
# no type); well inside Key Vault's 4,000 operations per 10 s.
START_CHECK_CONCURRENCY = 16


class KeyMirror(BackupMirror):
    """Mirrors keys of one pair by backup and restore."""

    kind = ItemKind.KEY

    async def check_start(self) -> list[str]:
        """Every selected source key whose type a target's SKU cannot hold, named with
        the pair, the key and the target (the daemon refuses to start the pair)."""
        keys = [
            p.name
            for p in await self._source.list_items(ItemKind.KEY)
            if not p.managed and self._pair.selects(p.name)
        ]
        gate = asyncio.Semaphore(START_CHECK_CONCURRENCY)

        async def key_type(name: str) -> tuple[str, str | None]:
            async with gate:
                try:
                    return name, (await self._source.get_key(name)).key_type
                except ItemNotFound:
                    return name, None  # deleted since the listing

        problems = []
        for name, kty in sorted(await asyncio.gather(*(key_type(n) for n in keys))):
            for region, target in sorted(self._targets.items()):
                refusal = key_type_refusal(kty, target.ref.sku)
                if refusal is not None:
                    problems.append(
                        f"pair {self._pair.name!r}: key {name!r} cannot be mirrored into "
                        f"target {region!r} (sku {target.ref.sku}): {refusal}; set "
                        f"regions.{region}.sku if that vault's tier is another, or exclude "
                        f"the key from the pair"
                    )
        return problems

    async def _sync_target_once(
        self,
        name: str,
        source_versions: list[ItemProperties],
        target: VaultClient,
        reads: SourceReads,
        outcome: TargetOutcome,
        deadline: asyncio.Timeout,
    ) -> None:
        source_ids = {v.version for v in source_versions}

        async def key_type() -> str | None:
            return (await reads.once("key", lambda: self._source.get_key(name))).key_type

        # A second round only after a soft-deleted copy was recovered.
        for _ in range(2):
            target_versions = await self._target_versions(target, name)
            plan = plan_key(name, source_versions, target_versions)
            step = await self._carry_out(
                plan,
                target,
                name,
                reads,
                outcome,
                deadline,
                key_type,
                still_ours=lambda current: all(t.version in source_ids for t in current),
            )
            if step is Next.PLAN_AGAIN:
                continue
            if step is Next.STOP:
                return
            for update in plan.updates:
                await self._update(target, name, update, key_attributes(update.source), outcome)
            await self._mirror_rotation_policy(target, name, reads, outcome)
            held = target_versions[-1].version if target_versions else None
            outcome.target_version = (
                held if plan.action is Action.BLOCKED else source_versions[-1].version
            )
            return

    async def _mirror_rotation_policy(
        self, target: VaultClient, name: str, reads: SourceReads, outcome: TargetOutcome
    ) -> None:
        """Copy the source's rotation policy when the target's differs (Key Vault answers
        its default for a key without one, so two defaults compare equal)."""
        wanted: RotationPolicy = await reads.once(
            "rotation_policy", lambda: self._source.get_rotation_policy(name)
        )
        if await target.get_rotation_policy(name) == wanted:
            return
        await target.set_rotation_policy(name, wanted)
        outcome.updated += 1
        region = target.ref.region
        metrics.CHANGES_APPLIED.labels(self._pair.name, region, "key", "rotation_policy").inc()
        self._log.info("key.rotation_policy_mirrored", item=f"key/{name}", target=region)
