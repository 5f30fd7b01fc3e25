"""The audit trail as the application uses it: who the actor is, how an item is named in
it (hashed when the pair hides names), and `AuditRecorder`, which the commands and the
daemon call with what they did.

The trail itself (format, writer, reader) is `backups.audit_chain` / `backups.audit_log`;
it is signed by the `[backups]` signers and lives in `[storage]` under `audit/`.
"""

from __future__ import annotations

import getpass
import socket
from collections.abc import AsyncIterator, Awaitable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog

from backups.audit_chain import Actor, AuditEvent
from backups.audit_log import AuditLog
from backups.signers import SignerRing
from replicator.guard import hidden_name
from storage.store import BlobStore

if TYPE_CHECKING:
    from kvdr.config import KvdrConfig
    from vault.client import VaultClient

log = structlog.get_logger("kvdr.audit")


def actor(config: KvdrConfig, *, command: bool) -> Actor:
    """The credential's principal as the configuration names it (its client id, else its
    kind), on this host; a command also names the operating-system user who ran it."""
    credential = config.credential
    principal = credential.client_id or f"{credential.kind} credential"
    if command:
        with suppress(KeyError, OSError):
            principal = f"{principal} (user {getpass.getuser()})"
    return Actor(principal, socket.gethostname())


def item_of(config: KvdrConfig, pair: str, kind: str, name: str) -> tuple[str, str]:
    """An item as the trail names it: hashed as /status shows it when the pair hides
    names (the trail is read by more people than the vault is)."""
    for settings in config.replicator.pairs:
        if settings.name == pair and settings.hide_names:
            return kind, hidden_name(name)
    return kind, name


class AuditRecorder:
    """What the commands and the daemon call: `record(...)` one action. Without an audit
    trail (`[audit]` off) it only logs at debug level."""

    def __init__(self, config: KvdrConfig, log_: AuditLog | None, *, command: bool) -> None:
        self._config = config
        self.log = log_
        self._actor = actor(config, command=command)

    @property
    def enabled(self) -> bool:
        return self.log is not None

    def record(
        self,
        operation: str,
        outcome: str,
        *,
        pair: str | None = None,
        item: tuple[str, str] | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        if self.log is None:
            log.debug("audit.off", operation=operation)
            return
        if item is not None and pair is not None:
            item = item_of(self._config, pair, *item)
        self.log.append(
            AuditEvent(
                operation,
                outcome,
                self._actor,
                datetime.now(UTC),
                pair=pair,
                item=item,
                detail=dict(detail or {}),
            )
        )


async def open_audit_log(
    config: KvdrConfig,
    stack: AsyncExitStack,
    blobs: BlobStore,
    vaults: dict[str, VaultClient],
    credential: Any,
    *,
    retention: bool = False,
) -> AuditLog | None:
    """The configured audit log over `blobs`, flushed when `stack` closes; None when the
    trail is off. With `retention` (the daemon) it also applies audit retention."""
    if config.audit is None or config.backups is None:
        return None
    ring = await audit_ring(config, stack, vaults, credential)
    settings = config.audit
    return await stack.enter_async_context(
        AuditLog(
            blobs,
            ring,
            flush_max_entries=settings.flush_max_entries,
            flush_interval_seconds=settings.flush_interval_seconds,
            max_buffered=settings.max_buffered,
            retention_seconds=settings.retention_seconds if retention else None,
            retention_interval_seconds=settings.retention_interval_seconds,
        )
    )


async def audit_ring(
    config: KvdrConfig, stack: AsyncExitStack, vaults: dict[str, VaultClient], credential: Any
) -> SignerRing:
    """The `[backups]` signers (vault signers through the region's adapter)."""
    from kvdr.wiring import open_signers
    from vault.adapter import KeyVaultAdapter

    assert config.backups is not None

    async def vault(region: str) -> VaultClient:
        if region not in vaults:
            vaults[region] = await stack.enter_async_context(
                KeyVaultAdapter.open(config.regions[region], credential, config.vault)
            )
        return vaults[region]

    return await open_signers(config.backups, vault)


@asynccontextmanager
async def command_audit(config: KvdrConfig) -> AsyncIterator[AuditRecorder]:
    """For a one-shot command: a recorder whose entries are written when the block ends
    (also when it raises). A failure to write is logged as an error and counted
    (`kvdr_audit_append_failures_total`); the action has happened, so it does not change
    the command's own outcome."""
    if config.audit is None or config.backups is None:
        yield AuditRecorder(config, None, command=True)
        return
    from backups.audit_log import APPEND_FAILURES
    from backups.errors import BackupError
    from storage.errors import StorageError
    from storage.open import open_store
    from vault.credentials import build_credential
    from vault.errors import VaultError

    async with AsyncExitStack() as stack:
        audit: AuditLog | None = None
        try:
            credential = build_credential(config.credential)
            await stack.enter_async_context(credential)
            blobs = await stack.enter_async_context(open_store(config.storage, credential))
            audit = await open_audit_log(config, stack, blobs, {}, credential)
        except (StorageError, BackupError, VaultError, ValueError) as exc:
            # The trail cannot be opened: the command still runs, loudly unaudited.
            APPEND_FAILURES.inc()
            log.error("audit.unavailable", error=str(exc))
        yield AuditRecorder(config, audit, command=True)


# A command's JSON document, as detail: its scalar fields (short) and the size of its
# lists and tables. The documents are what `--json` prints, which already holds no value;
# the trail keeps only their outline so an entry stays small.
DETAIL_TEXT = 200


DETAIL_LIST = 5


def outline(doc: Mapping[str, Any], depth: int = 1) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if isinstance(value, bool | int | float) or value is None:
            out[key] = value
        elif isinstance(value, str):
            out[key] = value[:DETAIL_TEXT]
        elif isinstance(value, dict) and depth > 0:
            out[key] = outline(value, depth - 1)
        elif isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            out[key] = [v[:DETAIL_TEXT] for v in value[:DETAIL_LIST]]
        elif isinstance(value, list | tuple | dict):
            out[f"{key}_count"] = len(value)
    return out


async def audited(
    config: KvdrConfig,
    operation: str,
    work: Awaitable[tuple[dict[str, Any], int]],
    *,
    pair: str | None,
    detail: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], int]:
    """Run one command's `work` (its document and exit code) and record it: outcome "ok"
    on exit 0, "refused" when the document says it refused, else "failed"; an exception
    is recorded as "failed" with its type and raised on."""
    async with command_audit(config) as audit:
        try:
            doc, code = await work
        except Exception as exc:
            audit.record(
                operation,
                "failed",
                pair=pair,
                detail={**(detail or {}), "error": type(exc).__name__},
            )
            raise
        outcome = "ok" if code == 0 else "refused" if doc.get("refused") else "failed"
        audit.record(
            operation, outcome, pair=pair, detail={**outline(doc), **(detail or {}), "exit": code}
        )
    return doc, code
