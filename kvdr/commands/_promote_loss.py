"""What `kvdr failover promote` lost, item by item: the versions the journal recorded on
the old primary that the new one lacks, and the items the daemon's lag tracker held as
pending for the new primary that the journal never saw (failover/promote.py compares;
this module reads the journal, the vault and the daemon)."""

from __future__ import annotations

from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from kvdr.commands._daemon_lag import DaemonStatus, wait_journal_durable
from kvdr.commands._transition_steps import open_vaults

if TYPE_CHECKING:
    from failover.promote import LostItem
    from failover.switchover import LagReading
    from kvdr.config import KvdrConfig
    from replicator.settings import PairSettings


async def promote_loss(
    config: KvdrConfig,
    pair: PairSettings,
    old: str,
    to: str,
    lag: LagReading | None,
    why: str,
    url: str | None = None,
    daemon: DaemonStatus | None = None,
) -> dict[str, Any]:
    """The promotion's loss, item by item: the versions the journal recorded on the old
    primary that `to` lacks (where there is a journal), and the items the daemon's lag
    tracker held as pending for `to` that the journal never saw (the old primary went
    before the replicator read them), unless `to` received them after the reading.
    `daemon`: the reading `lag` came from, when it still tells whether the journal is
    durable (see `wait_journal_durable`)."""
    from failover.promote import pending_loss, pending_refs, vault_versions
    from vault.errors import VaultError

    pending = list(lag.pending_items) if lag is not None else []
    now = datetime.now(UTC)
    lost: list[LostItem] = []
    bases: list[str] = []
    problems: list[str] = []
    async with AsyncExitStack() as stack:
        vault = (await open_vaults(config, stack, [to]))[to]
        if config.backups is None:
            problems.append("no [backups] journal to compare with")
        else:
            try:
                await wait_journal_durable(config, pair.name, url, daemon)
                lost = await _journal_loss(config, stack, vault, pair, now)
            except Exception as exc:
                problems.append(f"the journal could not be read ({type(exc).__name__}: {exc})")
            else:
                bases.append(f"the journal's record of {old} compared with {to}'s versions")
        present: dict[tuple[str, str], Any] = {}
        try:
            present = await vault_versions(vault, pending_refs(pending))
        except VaultError as exc:
            # Every pending item counted as lost: an upper bound, and said so.
            problems.append(f"{to}'s versions of the pending items could not be read ({exc})")
    if lag is None:
        if not bases:
            return {
                "loss_items": None,
                "lost": [],
                "loss_basis": f"unknown: {'; '.join(problems)}; {why}",
            }
        return {
            "loss_items": len(lost),
            "lost": [i.to_dict() for i in lost],
            "loss_basis": bases[0],
        }
    lost += pending_loss(pending, present, [(i.kind, i.name) for i in lost], now)
    unnamed = max(0, lag.pending - len(pending))
    bases.append(
        f"the daemon's pending items for {to} ({lag.pending} pending, lag "
        f"{lag.lag_seconds} s at its last reading, {lag.source})"
        + (f"; {unnamed} more pending that its status does not name" if unnamed else "")
    )
    return {
        "loss_items": len(lost) + unnamed,
        "lost": [item.to_dict() for item in lost],
        "loss_basis": "; ".join(bases + problems),
    }


async def _journal_loss(
    config: KvdrConfig, stack: AsyncExitStack, vault: Any, pair: PairSettings, now: datetime
) -> list[LostItem]:
    from backups.point_in_time import state_at
    from failover.promote import missing_versions, vault_versions
    from kvdr.wiring import open_backup_session

    session = await open_backup_session(config, stack)
    point = await state_at(
        session.backups.stores.primary, session.backups.keks, pair.name, now, now=now
    )
    recorded = {
        (ref.kind.value, ref.name): [v.props for v in item.versions.values()]
        for ref, item in point.state.items.items()
        if not item.deleted
    }
    refs = [(ref.kind, ref.name) for ref, item in point.state.items.items() if not item.deleted]
    present = await vault_versions(vault, refs)
    return missing_versions(recorded, present, now)
