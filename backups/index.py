"""The journal's in-memory index: for every item of a pair, the versions recorded (with
their attribute fingerprints) and whether it is deleted. It answers the replicator's
`recorded()` and is rebuilt on start by replaying the current generation.

It follows the same rules as `backups.state.PairState` but keeps no material.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from vault.models import Change, ChangeOp, ItemProperties, ItemRef

Fingerprint = Callable[[ItemProperties], str]


@dataclass
class _Entry:
    versions: dict[str, str] = field(default_factory=dict)
    deleted: bool = False


class JournalIndex:
    """Item -> version -> fingerprint, and deleted flags."""

    def __init__(self, fingerprint: Fingerprint) -> None:
        self._fingerprint = fingerprint
        self._items: dict[ItemRef, _Entry] = {}

    def __len__(self) -> int:
        return len(self._items)

    def recorded(self, item: ItemRef) -> dict[str, str]:
        """Version -> fingerprint; {} when unknown or deleted."""
        entry = self._items.get(item)
        if entry is None or entry.deleted:
            return {}
        return dict(entry.versions)

    def is_deleted(self, item: ItemRef) -> bool:
        entry = self._items.get(item)
        return entry is not None and entry.deleted

    def load_item(
        self,
        item: ItemRef,
        deleted: bool,
        changed_at: float,
        versions: list[tuple[ItemProperties, float, str | bytes | None]],
    ) -> None:
        self._items[item] = _Entry(
            versions={p.version: self._fingerprint(p) for p, _, _ in versions}, deleted=deleted
        )

    def reached(self, sequence: int, at: float) -> None:
        pass  # the journal keeps its position itself

    def apply(self, change: Change) -> None:
        entry = self._items.setdefault(change.item, _Entry())
        props = change.properties
        if change.op is ChangeOp.NEW_VERSION and props is not None:
            if entry.deleted:
                if props.version not in entry.versions:
                    entry.versions.clear()  # purged and created anew
                entry.deleted = False
            entry.versions[props.version] = self._fingerprint(props)
        elif change.op is ChangeOp.UPDATE and props is not None:
            entry.versions[props.version] = self._fingerprint(props)
        elif change.op is ChangeOp.DELETE:
            entry.deleted = True
        elif change.op is ChangeOp.RECOVER:
            entry.deleted = False
