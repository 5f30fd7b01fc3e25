"""Change sinks: where the replicator hands every change it observes on a primary.

The daemon gives each pair's replicator the journal (`backups/`) as a sink, so every new
version (with its value or backup), attribute update, deletion and recovery seen on the
primary is recorded, independent of whether any target has applied it yet.

The replicator asks a sink what it already holds for an item (`recorded`), computes the
difference against the primary (pure: `changes_for_sink`), fetches the material those
changes need once, shared with the targets, and hands them over (`record`). A sink
assigns sequence numbers (monotonic per pair, never reused) and makes the changes
durable before `record` returns; if it raises, the item is retried on the next pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol

from replicator.plan import fingerprint
from vault.models import Change, ChangeOp, ItemProperties, ItemRef


class ChangeSink(Protocol):
    """A durable recipient of a pair's changes."""

    async def recorded(self, pair: str, item: ItemRef) -> Mapping[str, str]:
        """Source version id -> attribute fingerprint last recorded for it; {} when the
        item is unknown or recorded as deleted."""
        ...

    async def record(self, changes: Sequence[Change]) -> None:
        """Durably accept `changes` (in order); assigns their sequence numbers."""
        ...


def version_fingerprint(props: ItemProperties) -> str:
    """Fingerprint of one version's mutable attributes, for sinks (version id included
    in the key, so the update time need not stand for it)."""
    return fingerprint(props)


def changes_for_sink(
    pair: str,
    item: ItemRef,
    source_versions: Sequence[ItemProperties],
    recorded: Mapping[str, str],
    observed_at: datetime,
) -> list[Change]:
    """What a sink lacks for one item (pure): new versions oldest first, then attribute
    updates of versions it already holds. Payloads are filled in by the caller."""
    changes: list[Change] = []
    for props in source_versions:
        seen = recorded.get(props.version)
        if seen is None:
            changes.append(
                Change(
                    pair=pair,
                    item=item,
                    op=ChangeOp.NEW_VERSION,
                    observed_at=observed_at,
                    properties=props,
                )
            )
        elif seen != version_fingerprint(props):
            changes.append(
                Change(
                    pair=pair,
                    item=item,
                    op=ChangeOp.UPDATE,
                    observed_at=observed_at,
                    properties=props,
                )
            )
    return changes
