"""Verification of a pair's backups: names, contiguity and lineage from the listing;
decryption, digests and predecessor links from (a sample of) the objects themselves; and
optionally a restore into a scratch vault compared item by item (restic's `check
--read-data-subset` and Kopia's verify do the same kinds of checks).

Every object and the journal head must be signed by a pinned signer: one that is not
(unsigned, signed by an unpinned key, or a signature that does not match) is a finding
naming the blob, and its generation is listed as one a restore skips, with why. Objects
written before signing are findings too, unless the ring allows unsigned objects
(`--allow-unsigned`): then they are counted and their generation reported as unsigned.

Every finding names the blob (or, for the restore test, the item) it is about.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from backups import paths
from backups.catalog import GenerationCatalog, PairCatalog, SegmentEntry, load_catalog
from backups.errors import BackupError, ObjectUnreadable, SignatureRefused
from backups.head import load_head
from backups.keks import KekRing
from backups.objects import read_segment, read_snapshot
from backups.restore import (
    RestoreScope,
    apply_plan,
    read_target,
    scoped,
    state_at,
)
from backups.restore_plan import SOURCE_VERSION_TAG, plan_restore
from storage.errors import BlobNotFound, StorageError
from storage.store import BlobStore
from vault.client import VaultClient
from vault.errors import VaultError
from vault.models import ItemKind, ItemProperties, ItemRef


@dataclass(frozen=True)
class Finding:
    """One problem: the blob (or item) and what is wrong with it."""

    blob: str
    problem: str

    def as_dict(self) -> dict[str, str]:
        return {"blob": self.blob, "problem": self.problem}


@dataclass
class VerifyReport:
    pair: str
    objects: int = 0
    decrypted: int = 0
    generations: int = 0
    findings: list[Finding] = field(default_factory=list)
    not_tested: list[dict[str, str]] = field(default_factory=list)
    restore_test: dict[str, Any] | None = None
    signed: int = 0
    unsigned: int = 0
    # Per generation: "signed", "unsigned" (let through), "refused" or "not checked".
    signatures: dict[str, str] = field(default_factory=dict)
    # Generations a restore passes over, with why (generation, reason).
    skipped: list[dict[str, str]] = field(default_factory=list)
    head_signed: bool | None = None

    @property
    def ok(self) -> bool:
        return not self.findings

    def as_dict(self) -> dict[str, Any]:
        return {
            "pair": self.pair,
            "ok": self.ok,
            "generations": self.generations,
            "objects": self.objects,
            "decrypted": self.decrypted,
            "signed": self.signed,
            "unsigned": self.unsigned,
            "head_signed": self.head_signed,
            "generation_signatures": dict(self.signatures),
            "generations_skipped": self.skipped,
            "findings": [f.as_dict() for f in self.findings],
            "not_tested": self.not_tested,
            "restore_test": self.restore_test,
        }


class _Count:
    """A replay target that only counts (verification keeps no state in memory)."""

    def __init__(self) -> None:
        self.items = 0

    def load_item(self, *args: object) -> None:
        self.items += 1

    def apply(self, change: object) -> None:
        pass

    def reached(self, sequence: int, at: float) -> None:
        pass


async def verify_pair(
    store: BlobStore,
    keks: KekRing,
    pair: str,
    *,
    sample_percent: float = 100.0,
    rng: random.Random | None = None,
) -> VerifyReport:
    """Check `pair`'s backups; a sample below 100% decrypts that share of the objects
    (at least one per generation) and checks links between decrypted neighbours."""
    if not 0 <= sample_percent <= 100 or math.isnan(sample_percent):
        raise ValueError(f"sample percentage {sample_percent!r} must be between 0 and 100")
    rng = rng or random.Random()
    catalog = await load_catalog(store, pair)
    report = VerifyReport(pair=pair, generations=len(catalog.generations))
    for stray in catalog.strays:
        report.findings.append(Finding(stray, "not a backup object name (foreign or damaged)"))
    if not catalog.generations:
        report.findings.append(
            Finding(paths.pair_prefix(pair), f"pair {pair!r} has no backups in {store.description}")
        )
    await _check_head(store, keks, catalog, report)
    for gen in catalog.ordered():
        report.objects += len(gen.segments) + len(gen.snapshots)
        _check_listing(gen, report)
        await _check_objects(store, keks, gen, sample_percent, rng, report)
    return report


async def _check_head(
    store: BlobStore, keks: KekRing, catalog: PairCatalog, report: VerifyReport
) -> None:
    read = await load_head(store, keks.signers, catalog.pair)
    if not read.exists:
        if catalog.generations:
            report.findings.append(
                Finding(
                    read.blob,
                    "the journal head is missing: trailing segments could have been cut unnoticed",
                )
            )
        return
    if read.head is None:
        report.findings.append(Finding(read.blob, f"the journal head: {read.problem}"))
        return
    head = read.head
    report.head_signed = head.signed
    gen = catalog.generations.get(head.generation)
    if gen is None:
        if head.sequence > 0:
            report.findings.append(
                Finding(
                    read.blob,
                    f"journal gap: the head says generation {head.generation} holds sequences "
                    f"up to {head.sequence}; none of its objects are there",
                )
            )
        return
    if head.sequence > gen.last_sequence:
        tail = gen.last_sequence + 1
        report.findings.append(
            Finding(
                read.blob,
                f"journal gap: the head says sequences up to {head.sequence} of generation "
                f"{gen.generation} were written; no segment holds {tail}-{head.sequence}",
            )
        )
    if head.last_blob and head.last_sha256:
        try:
            data = (await store.get(head.last_blob)).data
        except BlobNotFound:
            if not any(snap.sequence >= head.sequence for snap in gen.snapshots):
                # (Retention deletes a segment a snapshot covers, on an idle pair too.)
                report.findings.append(
                    Finding(read.blob, f"names {head.last_blob} as its newest object; it is gone")
                )
            return
        if hashlib.sha256(data).hexdigest() != head.last_sha256:
            report.findings.append(
                Finding(
                    read.blob,
                    f"names {head.last_blob} as its newest object, with other bytes: replaced",
                )
            )


def _check_listing(gen: GenerationCatalog, report: VerifyReport) -> None:
    for a, b in gen.overlaps():
        report.findings.append(
            Finding(b.blob, f"overlaps {a.blob}: two writers, or a copied object")
        )
    for gap in gen.gaps(gen.chain_start()):
        blob = gap.before.blob if gap.before else gen.generation
        report.findings.append(Finding(blob, f"journal gap: {gap.describe()}"))
    if not gen.segments and not gen.snapshots:
        report.findings.append(Finding(gen.generation, "generation without objects"))


def _sample(items: Sequence[Any], percent: float, rng: random.Random) -> set[str]:
    if not items or percent <= 0:
        return set()
    count = max(1, math.ceil(len(items) * percent / 100))
    return {item.blob for item in rng.sample(list(items), min(count, len(items)))}


async def _check_objects(
    store: BlobStore,
    keks: KekRing,
    gen: GenerationCatalog,
    percent: float,
    rng: random.Random,
    report: VerifyReport,
) -> None:
    objects: list[Any] = [*gen.segments, *gen.snapshots]
    chosen = _sample(objects, percent, rng)
    digests: dict[str, str] = {}
    prevs: dict[str, str] = {}
    refused: str | None = None
    unsigned = signed = 0
    for entry in objects:
        if entry.blob not in chosen:
            continue
        try:
            if isinstance(entry, SegmentEntry):
                segment = await read_segment(store, keks, entry.name)
                digests[entry.blob], prevs[entry.blob] = segment.digest, segment.header.prev
                checked = segment.checked
            else:
                header, digest, checked = await read_snapshot(store, keks, entry.name, _Count())
                digests[entry.blob], prevs[entry.blob] = digest, header.prev
        except SignatureRefused as exc:
            report.findings.append(Finding(entry.blob, exc.detail))
            refused = refused or str(exc)
            continue
        except ObjectUnreadable as exc:
            report.findings.append(Finding(entry.blob, exc.detail))
            continue
        except BlobNotFound:
            report.findings.append(Finding(entry.blob, "listed but gone when read"))
            continue
        except (BackupError, StorageError) as exc:
            report.findings.append(Finding(entry.blob, f"could not be checked: {exc}"))
            continue
        report.decrypted += 1
        signed, unsigned = signed + checked.signed, unsigned + (not checked.signed)
    report.signed += signed
    report.unsigned += unsigned
    if refused is not None:
        report.signatures[gen.generation] = "refused"
        report.skipped.append({"generation": gen.generation, "reason": refused})
    elif unsigned:
        # Let through by --allow-unsigned: reported, not a finding.
        report.signatures[gen.generation] = "unsigned"
    else:
        report.signatures[gen.generation] = "signed" if signed else "not checked"
    _check_links(gen, digests, prevs, report)


def _check_links(
    gen: GenerationCatalog, digests: dict[str, str], prevs: dict[str, str], report: VerifyReport
) -> None:
    """Predecessor digests between decrypted neighbours."""
    ending_at = {s.name.last: s for s in gen.segments}
    snapshot_at = {s.sequence: s for s in gen.snapshots}
    for seg in gen.segments:
        if seg.blob not in prevs:
            continue
        if seg.name.first == 1:
            if prevs[seg.blob] != "":
                report.findings.append(
                    Finding(seg.blob, "first segment of its generation names a predecessor")
                )
            continue
        before = ending_at.get(seg.name.first - 1)
        base = snapshot_at.get(seg.name.first - 1)
        if before is None and base is not None and base.blob in prevs:
            # The segment it follows is gone (retention); the snapshot there names the
            # same predecessor digest.
            if prevs[seg.blob] != prevs[base.blob]:
                report.findings.append(
                    Finding(seg.blob, f"does not follow {base.blob}: predecessor digests differ")
                )
            continue
        if (
            before is not None
            and before.blob in digests
            and prevs[seg.blob] != digests[before.blob]
        ):
            report.findings.append(
                Finding(
                    seg.blob,
                    f"does not follow {before.blob}: its predecessor digest differs "
                    "(an object was altered, replaced or reordered)",
                )
            )
    for snap in gen.snapshots:
        if snap.blob not in prevs:
            continue
        before = ending_at.get(snap.sequence)
        if (
            before is not None
            and before.blob in digests
            and prevs[snap.blob] != digests[before.blob]
        ):
            report.findings.append(
                Finding(snap.blob, f"does not match {before.blob}, the segment it compacts up to")
            )


# -- restore test --------------------------------------------------------------------------


async def restore_test(
    store: BlobStore,
    keks: KekRing,
    pair: str,
    scratch: VaultClient,
    scope: RestoreScope,
    report: VerifyReport,
    *,
    now: datetime | None = None,
) -> None:
    """Restore the newest state into an empty scratch vault and compare item by item."""
    moment = now or datetime.now(UTC)
    catalog = await load_catalog(store, pair)
    latest = catalog.latest_restorable()
    if latest is None:
        return
    at = min(moment, datetime.fromtimestamp(latest, UTC))
    try:
        point = await state_at(store, keks, pair, at, now=moment)
    except BackupError as exc:
        report.findings.append(Finding(paths.pair_prefix(pair), f"restore test: {exc}"))
        return
    wanted = scoped(point.state, scope)
    plan = plan_restore(pair, wanted, await read_target(scratch, scope))
    applied = await apply_plan(plan, point.state, scratch)
    for failure in applied.failed:
        name = failure["item"]
        if "another geography" in failure["reason"] or not name.startswith("secret/"):
            # A backup blob opens only in its own geography (and an Azure blob never in
            # the emulator): such items cannot be tested in a local scratch vault.
            report.not_tested.append(failure)
        else:
            report.findings.append(Finding(name, f"restore test: {failure['reason']}"))
    untested = {f["item"] for f in report.not_tested}
    compared = 0
    for ref, state in wanted.items():
        current = state.current
        if state.deleted or current is None or str(ref) in untested:
            continue
        problem = await _compare(scratch, ref, current.props, current.payload)
        compared += 1
        if problem:
            report.findings.append(Finding(str(ref), f"restore test: {problem}"))
    report.restore_test = {
        "at": at.isoformat(),
        "items_compared": compared,
        "not_tested": len(report.not_tested),
        "seconds": round(applied.seconds, 3),
    }


async def _compare(
    vault: VaultClient, ref: ItemRef, wanted: ItemProperties, payload: str | bytes | None
) -> str | None:
    try:
        versions = await vault.list_versions(ref.kind, ref.name)
    except VaultError as exc:
        return f"not found after the restore ({exc.reason})"
    if not versions:
        return "not found after the restore"
    current = versions[-1]
    if ref.kind is ItemKind.SECRET:
        copied_from = current.tags.get(SOURCE_VERSION_TAG)
        if copied_from != wanted.version:
            return f"current version copies {copied_from!r}, expected {wanted.version!r}"
        if payload is not None and (await vault.get_secret(ref.name)).value != payload:
            return "value differs from the backup"
        return None
    if current.version != wanted.version:
        return f"current version is {current.version!r}, expected {wanted.version!r}"
    return None
