"""Pure planning of key mirroring (and what certificates share with it), without I/O.

Keys travel by backup and restore, so a restored copy holds the source's version ids,
its key material and its attributes. That is how kvdr knows its own copy: every version
of a target key it restored has an id the source also has. A target key with any other
version was not restored by kvdr; it is a conflict and is never overwritten or purged.

Azure restores a backup only into a free name. A new version on the source therefore
reaches a target that already holds kvdr's copy only by delete, purge and restore of the
newer backup, which holds every version the purged copy held (DESIGN.md allows this one
purge); a target whose recovery level forbids purge reports the key as blocked instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from replicator.plan import UpdateVersion, user_tags
from vault.models import Attributes, ItemKind, ItemProperties

# Which key types a vault of each SKU holds (Key Vault: HSM-protected keys need Premium,
# symmetric oct-HSM keys a Managed HSM, and a Managed HSM holds HSM keys only).
SKU_KEY_TYPES: dict[str, tuple[str, ...]] = {
    "standard": ("RSA", "EC"),
    "premium": ("RSA", "EC", "RSA-HSM", "EC-HSM"),
    "managed-hsm": ("RSA-HSM", "EC-HSM", "oct-HSM"),
}
SKUS = tuple(SKU_KEY_TYPES)


class Action(StrEnum):
    """What one target needs for one key or certificate."""

    IN_SYNC = "in_sync"  # nothing, or attribute updates only
    RESTORE = "restore"  # absent on the target: restore the source's backup
    REPLACE = "replace"  # kvdr's copy lacks newer versions: delete, purge, restore
    IMPORT = "import"  # certificates with an exportable key: import the new versions
    BLOCKED = "blocked"  # newer versions cannot reach the target (the reason says why)
    CONFLICT = "conflict"  # the target's object is not kvdr's copy: left alone


@dataclass(frozen=True)
class KeyPlan:
    """What one target needs for one key."""

    name: str
    action: Action
    # Source versions the target lacks (oldest first).
    missing: tuple[str, ...] = ()
    # Attribute changes on versions both sides hold (done even when blocked).
    updates: tuple[UpdateVersion, ...] = ()
    # Why the key is blocked or in conflict, and what the operator can do about it.
    reason: str | None = None

    @property
    def restores(self) -> bool:
        return self.action in (Action.RESTORE, Action.REPLACE)


def purge_allowed(recovery_level: str | None) -> bool:
    """Whether Key Vault lets a deleted object of this recovery level be purged.

    The levels that allow it say so ("Purgeable", "Recoverable+Purgeable",
    "CustomizedRecoverable+Purgeable"); "Recoverable" (purge protection) and the
    "+ProtectedSubscription" levels do not. Unknown counts as not allowed.
    """
    return recovery_level is not None and "Purgeable" in recovery_level


def key_type_refusal(key_type: str | None, sku: str) -> str | None:
    """Why a vault of `sku` cannot hold a key of `key_type`; None when it can (or when
    the type is unknown, and the target itself will say)."""
    if not key_type:
        return None
    allowed = SKU_KEY_TYPES.get(sku)
    if allowed is None:
        return f"unknown vault sku {sku!r} (use one of {', '.join(SKUS)})"
    if key_type in allowed:
        return None
    if sku == "managed-hsm":
        why = "a Managed HSM holds HSM-protected keys only"
    elif key_type == "oct-HSM":
        why = "symmetric (oct-HSM) keys need a Managed HSM"
    else:
        why = "HSM-protected keys need a premium vault or a Managed HSM"
    return f"a {key_type} key cannot be held by a {sku} vault: {why}"


def key_attributes_match(source: ItemProperties, target: ItemProperties) -> bool:
    """What a key update can change: enabled, not-before, expiry and tags."""
    return (
        source.enabled == target.enabled
        and source.not_before == target.not_before
        and source.expires_on == target.expires_on
        and user_tags(source) == user_tags(target)
    )


def key_attributes(source: ItemProperties) -> Attributes:
    """The attributes a restored key version must carry: the source's, unchanged (no kvdr
    tag: a restored version's id already names its source)."""
    return Attributes(
        enabled=source.enabled,
        not_before=source.not_before,
        expires_on=source.expires_on,
        tags=dict(source.tags),
    )


def blocked_reason(kind: ItemKind, name: str, missing: int, recovery_level: str | None) -> str:
    """Why new versions cannot reach a purge-protected target, and the remedy."""
    return (
        f"{kind.value} {name!r} has {missing} version(s) on the primary that this target "
        f"lacks; Azure restores a backup only into a free name and this target does not "
        f"allow purge (recovery level {recovery_level or 'unknown'}), so kvdr cannot "
        f"replace its copy. Remedy: mirror into a vault without purge protection (Azure "
        f"cannot turn it off), or exclude the {kind.value} from the pair and rotate it on "
        f"the secondary yourself. The journal keeps the primary's backup meanwhile."
    )


def foreign_reason(kind: ItemKind, name: str, foreign: list[str]) -> str:
    shown = ", ".join(foreign[:3]) + (" ..." if len(foreign) > 3 else "")
    return (
        f"target {kind.value} {name!r} holds version(s) the primary does not have "
        f"({shown}): kvdr did not restore it, so it neither overwrites nor purges it. "
        f"Delete it on the target (or rename one side) to let kvdr restore the primary's copy"
    )


def plan_key(
    name: str,
    source_versions: list[ItemProperties],
    target_versions: list[ItemProperties],
) -> KeyPlan:
    """Plan how to bring one target key up to date with its source.

    Both lists are oldest first, as `VaultClient.list_versions` returns them.
    """
    if not target_versions:
        return KeyPlan(
            name=name,
            action=Action.RESTORE,
            missing=tuple(v.version for v in source_versions),
        )
    by_id = {v.version: v for v in source_versions}
    foreign = [t.version for t in target_versions if t.version not in by_id]
    if foreign:
        return KeyPlan(
            name=name, action=Action.CONFLICT, reason=foreign_reason(ItemKind.KEY, name, foreign)
        )
    updates = tuple(
        UpdateVersion(source=by_id[t.version], target_version=t.version)
        for t in target_versions
        if not key_attributes_match(by_id[t.version], t)
    )
    held = {t.version for t in target_versions}
    missing = tuple(v.version for v in source_versions if v.version not in held)
    if not missing:
        return KeyPlan(name=name, action=Action.IN_SYNC, updates=updates)
    level = target_versions[-1].recovery_level
    if purge_allowed(level):
        return KeyPlan(name=name, action=Action.REPLACE, missing=missing)
    return KeyPlan(
        name=name,
        action=Action.BLOCKED,
        missing=missing,
        updates=updates,
        reason=blocked_reason(ItemKind.KEY, name, len(missing), level),
    )
