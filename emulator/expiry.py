"""Time-driven vault behaviour: NearExpiry / Expired events and purging after retention.

Once a second the watcher looks at the latest version of every live object. Key Vault
sends NearExpiry 30 days before `exp` and Expired at `exp`, each once per version; the
store records what was sent so a restart does not send it again. Soft-deleted objects
whose scheduled purge date has passed are purged, as Key Vault does after the retention
period. All of it runs on the vault clock, so tests move the clock instead of waiting.
"""

from __future__ import annotations

import asyncio

import structlog

from emulator.state import VaultState

NEAR_EXPIRY_SECONDS = 30 * 86400
INTERVAL_SECONDS = 1.0

_log = structlog.get_logger("emulator.expiry")


def check_once(state: VaultState) -> int:
    """Send due expiry events and purge due deletions; returns how many events were sent."""
    now = state.now()
    sent = 0
    for version in state.store.expiring_latest(now + NEAR_EXPIRY_SECONDS):
        attributes = version.doc.get("attributes") or {}
        exp = attributes.get("exp")
        if not isinstance(exp, int):
            continue
        due = ["NearExpiry"] + (["Expired"] if exp <= now else [])
        for event in due:
            if state.store.mark_notice(version.kind, version.name, version.version, event):
                state.events.publish(
                    event,
                    version.kind,
                    version.name,
                    version.version,
                    nbf=attributes.get("nbf"),
                    exp=exp,
                )
                sent += 1
    for kind, name in state.store.due_for_purge(now):
        if state.store.purge(kind, name):
            _log.info("expiry.purged_after_retention", kind=kind, name=name)
    return sent


async def watch(state: VaultState) -> None:
    """Run `check_once` every second until cancelled."""
    while True:
        try:
            check_once(state)
        except Exception:
            # A failed pass must not end the watcher; the next pass retries.
            _log.exception("expiry.check_failed")
        await asyncio.sleep(INTERVAL_SECONDS)
