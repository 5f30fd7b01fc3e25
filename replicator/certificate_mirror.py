"""CertificateMirror: certificates of one pair (with their keys, secrets and policies),
and the vault's certificate issuers and contacts.

A certificate absent on a target is restored from the source's backup: every version,
its policy, private key and secret. New versions of a certificate the target holds are
imported from the certificate's PFX when the policy marks the key exportable (no window
of absence; works under purge protection), else they replace kvdr's copy like keys do
or are reported as blocked (`replicator.plan_certificates`). The policy is kept equal.

Issuers and contacts belong to the vault, not to one certificate: `sync_vault_level`
copies them on each full pass. Key Vault never returns an issuer's password, so an
issuer arrives without it (set it on the secondary once; kvdr does not overwrite it),
and kvdr deletes no issuer or contact on a target.
"""

from __future__ import annotations

import asyncio
import datetime as dt

from replicator import metrics
from replicator.backup_mirror import BackupMirror, Next, SourceReads
from replicator.certificate_placeholder import placeholder_material
from replicator.mirror import TargetOutcome
from replicator.plan import PLACEHOLDER_TAG
from replicator.plan_certificates import (
    all_copies,
    certificate_attributes,
    plan_certificate,
    plan_contacts,
    plan_issuers,
)
from vault.client import VaultClient
from vault.errors import NoAnswer, VaultError
from vault.models import Attributes, CertificateMaterial, ItemKind, ItemProperties
from vault.policies import CertificateContact, CertificateIssuer, CertificatePolicy


class CertificateMirror(BackupMirror):
    """Mirrors certificates of one pair, and the vault's issuers and contacts."""

    kind = ItemKind.CERTIFICATE

    async def _sync_target_once(
        self,
        name: str,
        source_versions: list[ItemProperties],
        target: VaultClient,
        reads: SourceReads,
        outcome: TargetOutcome,
        deadline: asyncio.Timeout,
    ) -> None:
        policy: CertificatePolicy = await reads.once(
            "policy", lambda: self._source.get_certificate_policy(name)
        )

        async def key_type() -> str | None:
            return policy.key_type

        # A second round only after a soft-deleted copy was recovered.
        for _ in range(2):
            target_versions = await self._target_versions(target, name)
            plan = plan_certificate(
                name,
                source_versions,
                target_versions,
                exportable=policy.key_exportable,
                adopt=self._pair.adopts(target.ref.region),
            )
            outcome.skipped = plan.skipped
            step = await self._carry_out(
                plan,
                target,
                name,
                reads,
                outcome,
                deadline,
                key_type,
                still_ours=lambda current: all_copies(source_versions, current),
            )
            if step is Next.PLAN_AGAIN:
                continue
            if step is Next.STOP:
                return
            for source_version in plan.imports:
                await self._import(target, name, source_version, policy, reads, outcome)
            for source_version in plan.placeholders:
                await self._import_placeholder(target, name, source_version, policy, outcome)
            for update in plan.updates:
                imported = update.target_version != update.source.version
                attributes = certificate_attributes(
                    update.source, imported=imported, placeholder=update.placeholder
                )
                await self._update(target, name, update, attributes, outcome)
            if not plan.restores:
                await self._mirror_policy(target, name, policy, outcome)
            if outcome.target_version is None:
                if plan.restores:
                    outcome.target_version = source_versions[-1].version
                elif target_versions:
                    outcome.target_version = target_versions[-1].version
            return

    async def _import(
        self,
        target: VaultClient,
        name: str,
        source: ItemProperties,
        policy: CertificatePolicy,
        reads: SourceReads,
        outcome: TargetOutcome,
    ) -> None:
        """Import one source version's PFX as a new target version, tagged with it."""
        version = source.version

        async def read() -> CertificateMaterial:
            return await self._source.get_certificate_material(name, version)

        material: CertificateMaterial = await reads.once(("material", version), read)
        attributes = certificate_attributes(source, imported=True)
        await self._write_import(target, name, source, material, attributes, policy, outcome)

    async def _import_placeholder(
        self,
        target: VaultClient,
        name: str,
        source: ItemProperties,
        policy: CertificatePolicy,
        outcome: TargetOutcome,
    ) -> None:
        """Import a disabled placeholder for the disabled latest `source` version, so the
        target refuses its current certificate's secret as the source does."""
        material = await asyncio.to_thread(
            placeholder_material, name, source, policy, dt.datetime.now(dt.UTC)
        )
        attributes = certificate_attributes(source, imported=True, placeholder=True)
        await self._write_import(target, name, source, material, attributes, policy, outcome)

    async def _write_import(
        self,
        target: VaultClient,
        name: str,
        source: ItemProperties,
        material: CertificateMaterial,
        attributes: Attributes,
        policy: CertificatePolicy,
        outcome: TargetOutcome,
    ) -> None:
        """Import `material` as the target's copy of `source` (a placeholder when the
        attributes say so), and count and log it."""
        written = await target.import_certificate(name, material, attributes, policy)
        outcome.copied += 1
        outcome.target_version = written.version
        region = target.ref.region
        placeholder = PLACEHOLDER_TAG in attributes.tags
        op = "placeholder" if placeholder else "import"
        metrics.CHANGES_APPLIED.labels(self._pair.name, region, "certificate", op).inc()
        self._log.info(
            "certificate.placeholder_mirrored" if placeholder else "certificate.imported",
            item=self._item(name),
            target=region,
            source_version=source.version,
            target_version=written.version,
        )

    async def _mirror_policy(
        self, target: VaultClient, name: str, wanted: CertificatePolicy, outcome: TargetOutcome
    ) -> None:
        """Keep the target's policy (which shapes its next version) equal to the source's."""
        if await target.get_certificate_policy(name) == wanted:
            return
        await target.set_certificate_policy(name, wanted)
        outcome.updated += 1
        region = target.ref.region
        metrics.CHANGES_APPLIED.labels(self._pair.name, region, "certificate", "policy").inc()
        self._log.info("certificate.policy_mirrored", item=self._item(name), target=region)

    # -- issuers and contacts -----------------------------------------------------------

    async def sync_vault_level(self, targets: list[str]) -> dict[str, VaultError | None]:
        """Copy the source's certificate issuers and contacts onto each target.

        A source that cannot be read raises (it is the source's error, not the targets').
        """
        issuers = await self._source.list_issuers()
        contacts = await self._source.get_contacts()

        async def one(region: str) -> tuple[str, VaultError | None]:
            try:
                async with asyncio.timeout(self._target_timeout):
                    await self._sync_vault_level(self._targets[region], issuers, contacts)
            except TimeoutError:
                return region, NoAnswer(
                    f"certificate issuers and contacts on vault {region}: no result in time",
                    vault=region,
                    op="mirror",
                )
            except VaultError as exc:
                self._log.warning(
                    "issuers.failed", target=region, reason=exc.reason, error=str(exc)
                )
                return region, exc
            return region, None

        return dict(await asyncio.gather(*(one(t) for t in targets)))

    async def _sync_vault_level(
        self,
        target: VaultClient,
        issuers: list[CertificateIssuer],
        contacts: tuple[CertificateContact, ...],
    ) -> None:
        region = target.ref.region
        for issuer, previous in plan_issuers(issuers, await target.list_issuers()):
            await target.set_issuer(issuer, previous)
            metrics.CHANGES_APPLIED.labels(self._pair.name, region, "certificate", "issuer").inc()
            self._log.info(
                "issuer.mirrored",
                issuer=issuer.name,
                target=region,
                created=previous is None,
            )
        wanted = plan_contacts(contacts, await target.get_contacts())
        if wanted is not None:
            await target.set_contacts(wanted)
            metrics.CHANGES_APPLIED.labels(self._pair.name, region, "certificate", "contacts").inc()
            self._log.info("contacts.mirrored", target=region, contacts=len(wanted))
