"""What `kvdr verify` compares: what each target answers against what the primary
answers, item by item (pure; the command reads the vaults).

From the listings (one per kind and vault): presence, and the latest version's enabled
flag, activation and expiry dates, content type and tags (kvdr's own tags left out).
With `deep`, the values of the secrets enabled on both sides, by SHA-256 digest: the
digest is compared in memory and never shown. Names and attribute names only, never
values.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from replicator.plan import user_tags
from vault.models import ItemProperties


@dataclass(frozen=True)
class Difference:
    region: str
    kind: str
    name: str
    what: str

    def to_dict(self) -> dict[str, str]:
        return {"region": self.region, "kind": self.kind, "name": self.name, "what": self.what}


def _shown(value: object) -> str:
    return "none" if value is None else str(value)


def attribute_differences(primary: ItemProperties, target: ItemProperties) -> list[str]:
    """The latest version's attributes that differ, each as `name: primary vs target`;
    tags by key only (their values are not compared in the message)."""
    found: list[str] = []
    for field in ("enabled", "not_before", "expires_on"):
        mine, theirs = getattr(primary, field), getattr(target, field)
        if mine != theirs:
            found.append(f"{field}: {_shown(mine)} on the primary, {_shown(theirs)} here")
    if (primary.content_type or None) != (target.content_type or None):
        found.append("content_type differs")
    tags, others = user_tags(primary), user_tags(target)
    keys = sorted(k for k in set(tags) | set(others) if tags.get(k) != others.get(k))
    if keys:
        found.append(f"tags differ: {', '.join(keys)}")
    return found


def compare_listings(
    region: str,
    kind: str,
    primary: Iterable[ItemProperties],
    target: Iterable[ItemProperties],
    selects: Callable[[str], bool],
) -> tuple[list[Difference], list[str]]:
    """Differences of one kind on one target, and the names present on both."""
    mine = {p.name: p for p in primary if not p.managed and selects(p.name)}
    theirs = {p.name: p for p in target if not p.managed and selects(p.name)}
    found: list[Difference] = []
    for name in sorted(mine):
        if name not in theirs:
            found.append(Difference(region, kind, name, "missing"))
            continue
        for what in attribute_differences(mine[name], theirs[name]):
            found.append(Difference(region, kind, name, what))
    for name in sorted(set(theirs) - set(mine)):
        found.append(Difference(region, kind, name, "not on the primary"))
    both = sorted(n for n in mine if n in theirs and mine[n].enabled and theirs[n].enabled)
    return found, both


def digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()
