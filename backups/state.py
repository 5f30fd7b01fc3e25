"""The state of a pair at one sequence number: what a snapshot holds and a restore plans
from, built by replaying changes in sequence order.

Rules (the same in `PairState` and the journal's index):
- NEW_VERSION appends a version. On an item recorded as deleted, a version the item
  already had means it was recovered; an unknown one means it was purged and created
  anew, so its history starts over.
- UPDATE replaces one version's properties (its value or backup stays).
- DELETE marks the item deleted (its versions are kept: a recovery brings them back).
- RECOVER clears the mark.

Keys and certificates are restored from a backup blob of the whole object, so only the
newest backup is kept; older versions keep their properties only.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from vault.models import Change, ChangeOp, ItemKind, ItemProperties, ItemRef


class ReplayTarget(Protocol):
    """What replaying a generation feeds: snapshot items, then changes."""

    def load_item(
        self,
        item: ItemRef,
        deleted: bool,
        changed_at: float,
        versions: list[tuple[ItemProperties, float, str | bytes | None]],
    ) -> None: ...

    def apply(self, change: Change) -> None: ...

    def reached(self, sequence: int, at: float) -> None:
        """The items loaded so far are the state at `sequence` (observed at `at`)."""
        ...


@dataclass
class VersionState:
    """One version of an item: properties, when it was recorded, and its material."""

    props: ItemProperties
    recorded_at: float
    payload: str | bytes | None = field(default=None, repr=False)


@dataclass
class ItemState:
    """One item: versions oldest first, and whether it is deleted."""

    ref: ItemRef
    versions: dict[str, VersionState] = field(default_factory=dict)
    deleted: bool = False
    changed_at: float = 0.0

    @property
    def current(self) -> VersionState | None:
        """The newest version (the one Key Vault serves), or None."""
        if not self.versions:
            return None
        return self.versions[next(reversed(self.versions))]

    @property
    def backup(self) -> bytes | None:
        """Keys and certificates: the newest backup blob of the whole object."""
        for version in reversed(self.versions.values()):
            if isinstance(version.payload, bytes):
                return version.payload
        return None

    def ordered(self) -> list[VersionState]:
        return list(self.versions.values())


class PairState:
    """Items of one pair as of `sequence` (observed at `at`, epoch seconds)."""

    def __init__(self, pair: str, generation: str) -> None:
        self.pair = pair
        self.generation = generation
        self.sequence = 0
        self.at = 0.0
        self.items: dict[ItemRef, ItemState] = {}

    def __repr__(self) -> str:
        return (
            f"PairState(pair={self.pair!r}, generation={self.generation!r}, "
            f"sequence={self.sequence}, items={len(self.items)})"
        )

    def live(self) -> Iterator[ItemState]:
        """Items that exist (not deleted) at this point, in name order."""
        for ref in sorted(self.items, key=lambda r: (r.kind.value, r.name)):
            state = self.items[ref]
            if not state.deleted and state.versions:
                yield state

    # -- ReplayTarget --------------------------------------------------------------

    def reached(self, sequence: int, at: float) -> None:
        self.sequence = max(self.sequence, sequence)
        self.at = max(self.at, at)

    def load_item(
        self,
        item: ItemRef,
        deleted: bool,
        changed_at: float,
        versions: list[tuple[ItemProperties, float, str | bytes | None]],
    ) -> None:
        state = ItemState(ref=item, deleted=deleted, changed_at=changed_at)
        for props, at, payload in versions:
            state.versions[props.version] = VersionState(props, at, payload)
        self.items[item] = state

    def apply(self, change: Change) -> None:
        at = change.observed_at.timestamp()
        state = self.items.get(change.item)
        if state is None:
            state = self.items[change.item] = ItemState(ref=change.item)
        props = change.properties
        if change.op is ChangeOp.NEW_VERSION and props is not None:
            if state.deleted:
                if props.version not in state.versions:
                    state.versions.clear()  # purged and created anew
                state.deleted = False
            if change.item.kind is not ItemKind.SECRET and isinstance(change.payload, bytes):
                # Only the newest backup restores; older ones would only cost memory.
                for older in state.versions.values():
                    older.payload = None
            previous = state.versions.get(props.version)
            if previous is None:
                state.versions[props.version] = VersionState(props, at, change.payload)
            else:
                # Recorded again (a repeated pass): same place in the history.
                previous.props = props
                if change.payload is not None:
                    previous.payload = change.payload
        elif change.op is ChangeOp.UPDATE and props is not None:
            existing = state.versions.get(props.version)
            if existing is None:
                state.versions[props.version] = VersionState(props, at, None)
            else:
                existing.props = props
        elif change.op is ChangeOp.DELETE:
            state.deleted = True
        elif change.op is ChangeOp.RECOVER:
            state.deleted = False
        state.changed_at = at
        self.sequence = max(self.sequence, change.sequence)
        self.at = max(self.at, at)
