"""Audit retention: whole old segments go, and a signed start marker says where the trail
now legitimately begins, so `kvdr audit verify` still catches a segment removed from the
middle (or the front, past the marker).

Planned purely (`plan_audit_retention`: the oldest run of segments whose newest entry is
older than the retention, never the newest segment, which writers chain onto), then
applied: the marker first, then the deletions, then older markers. A crash in between
leaves either nothing done, or a marker with segments before it, which readers skip.
Backup retention (`backups.retention`) never looks under `audit/`; this is the only code
that deletes there.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from backups import audit_chain as chain
from backups.errors import SignatureRefused
from backups.signers import SignerRing
from storage.errors import BlobExists, BlobNotFound
from storage.store import BlobInfo, BlobStore

log = structlog.get_logger("kvdr.audit")


@dataclass(frozen=True)
class AuditRetentionPlan:
    delete: tuple[str, ...]
    # The first sequence of the first segment kept (the new start), or None: no change.
    start: int | None
    start_blob: str | None


def _last_at(info: BlobInfo) -> float | None:
    lowered = {k.lower(): v for k, v in info.metadata.items()}
    try:
        return float(lowered[chain.LAST_AT_KEY])
    except (KeyError, ValueError):
        return None


def plan_audit_retention(
    segments: Sequence[BlobInfo], now: float, keep_seconds: float
) -> AuditRetentionPlan:
    """Which segments to delete (pure). Only a leading run: a segment whose time is
    unknown, or recent, ends it, so the trail never gets a hole."""
    named = sorted(
        (first, info) for info in segments if (first := chain.parse_segment_blob(info.name))
    )
    horizon = now - keep_seconds
    delete: list[str] = []
    for index, (_first, info) in enumerate(named[:-1]):
        at = _last_at(info)
        if at is None or at >= horizon:
            break
        delete.append(info.name)
        kept = named[index + 1]
    if not delete:
        return AuditRetentionPlan((), None, None)
    return AuditRetentionPlan(tuple(delete), kept[0], kept[1].name)


async def enforce_audit_retention(
    store: BlobStore, ring: SignerRing, keep_seconds: float, now: float
) -> AuditRetentionPlan:
    """Apply the plan against a fresh listing; returns what was planned."""
    plan = plan_audit_retention(await store.list(chain.SEGMENTS), now, keep_seconds)
    if plan.start is None or plan.start_blob is None:
        return plan
    kept = chain.decode_segment(plan.start_blob, (await store.get(plan.start_blob)).data)
    if not kept.entries:
        log.error("audit.retention_refused", segment=plan.start_blob, why="holds no entries")
        return AuditRetentionPlan((), None, None)
    prev = str(kept.entries[0].get("prev", ""))
    try:
        # The marker repeats what the kept segment chains onto: only a signed one counts.
        ring.check(kept.block, chain.segment_digest(kept.blob, kept.body, prev), kept.blob)
    except SignatureRefused as exc:
        log.error("audit.retention_refused", segment=plan.start_blob, why=exc.detail)
        return AuditRetentionPlan((), None, None)
    marker = chain.start_blob(plan.start)
    with contextlib.suppress(BlobExists):  # another daemon wrote the same marker
        await store.put_if_absent(marker, await chain.encode_start(plan.start, prev, ring))
    for name in plan.delete:
        with contextlib.suppress(BlobNotFound):
            await store.delete(name)
    for info in await store.list(chain.STARTS):
        first = chain.parse_start_blob(info.name)
        if first is not None and first < plan.start:
            with contextlib.suppress(BlobNotFound):
                await store.delete(info.name)
    log.info("audit.retention_applied", deleted=len(plan.delete), starts_at=plan.start)
    return plan
