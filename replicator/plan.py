"""Pure planning of secret mirroring: what a target lacks, computed without I/O.

Target versions written by kvdr carry the tag `kvdr-source-version` naming the source
version they copy. That tag makes mirroring idempotent (a copied version is never copied
again) and tells kvdr's writes apart from anyone else's (kvdr never overwrites a target
secret whose latest version it did not write, unless the pair adopts it).

The tag works in both directions. After a failover the pair mirrors the other way: the
new source's versions that are kvdr's copies name, in their tag, the version of the new
target they were copied from. Such a pair of versions is one value, so a reversed pair
copies nothing back (`copies_of`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace

from vault.models import Attributes, ItemProperties

SOURCE_VERSION_TAG = "kvdr-source-version"
# A source version that is disabled cannot be read, so its value cannot be copied; the
# target gets a placeholder version instead: disabled, tagged, holding this text, so
# that it answers as the primary does (the latest version refuses to be read) instead of
# serving the older value. When the source version is enabled again its value is
# copied as a new version; the placeholder stays disabled.
PLACEHOLDER_TAG = "kvdr-placeholder"
PLACEHOLDER_VALUE = "kvdr placeholder: disabled on the source, its value was not copied"


def is_placeholder(props: ItemProperties) -> bool:
    return PLACEHOLDER_TAG in props.tags


def placeholder_attributes(source: ItemProperties) -> Attributes:
    """The attributes of a placeholder for the disabled `source` version."""
    attrs = target_attributes(source)
    attrs.tags[PLACEHOLDER_TAG] = "disabled-on-source"
    return replace(attrs, enabled=False)


def target_attributes(source: ItemProperties) -> Attributes:
    """The attributes a target copy of `source` must have: the source's plus kvdr's tag."""
    attrs = Attributes.of(source)
    attrs.tags[SOURCE_VERSION_TAG] = source.version
    return attrs


def user_tags(props: ItemProperties) -> dict[str, str]:
    """Tags without kvdr's own."""
    return {k: v for k, v in props.tags.items() if k not in (SOURCE_VERSION_TAG, PLACEHOLDER_TAG)}


def attributes_match(source: ItemProperties, target: ItemProperties) -> bool:
    """True when `target` already carries `source`'s mutable attributes."""
    return (
        source.enabled == target.enabled
        and source.not_before == target.not_before
        and source.expires_on == target.expires_on
        and (source.content_type or None) == (target.content_type or None)
        and user_tags(source) == user_tags(target)
    )


def fingerprint(props: ItemProperties) -> str:
    """A short digest of an item's current version: its `updated` time and mutable
    attributes (no values).

    Checkpoints store it so a poll can tell "unchanged" from the listing alone. Key
    Vault's listing carries no version id, so the `updated` time (which a new version or
    an attribute change moves) stands for it. Two writes within the same second can tie;
    reconciliation compares versions and finds what such a tie hides.
    """
    doc = {
        "u": props.updated_on.timestamp() if props.updated_on else None,
        "e": props.enabled,
        "n": props.not_before.timestamp() if props.not_before else None,
        "x": props.expires_on.timestamp() if props.expires_on else None,
        "c": props.content_type or None,
        "t": sorted(user_tags(props).items()),
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def versions_digest(versions: list[ItemProperties]) -> str:
    """A short digest of every version's id and mutable attributes, in order (no values).

    A checkpoint keeps it for the source versions kvdr last brought a target fully up to
    date with: while it is unchanged, the source's older versions are as they were then.
    """
    doc = [
        [
            v.version,
            v.enabled,
            v.not_before.timestamp() if v.not_before else None,
            v.expires_on.timestamp() if v.expires_on else None,
            v.content_type or None,
            sorted(user_tags(v).items()),
        ]
        for v in versions
    ]
    return hashlib.sha256(json.dumps(doc).encode()).hexdigest()[:16]


def listed_in_sync(
    source_versions: list[ItemProperties],
    listed: ItemProperties | None,
    applied_history: str | None,
) -> bool:
    """True when a target's listing entry proves `plan_secret` would find nothing to do.

    `listed` is the target's latest version as its listing shows it (tags included, no
    version id); `applied_history` the `versions_digest` of the source versions kvdr last
    applied in full on that target. Proven: the latest target version is kvdr's copy of
    the source's latest version with equal attributes, and the source has no older
    version, or its older versions are unchanged since that full apply. Anything else
    (absent, another version, a foreign latest version, changed attributes) is not.
    """
    if listed is None or not source_versions:
        return False
    latest = source_versions[-1]
    if listed.tags.get(SOURCE_VERSION_TAG) != latest.version:
        return False
    if not attributes_match(latest, listed):
        return False
    return len(source_versions) == 1 or applied_history == versions_digest(source_versions)


def copies_of(
    source_versions: list[ItemProperties], target_versions: list[ItemProperties]
) -> dict[str, ItemProperties]:
    """Which target version holds each source version's value, by source version id.

    A target version holds a source version when it is kvdr's copy of it (its tag names
    it), a restored copy (the same id: keys and certificates travel by backup), or the
    origin the source version was itself copied from (the source version's tag names the
    target's: the pair's direction was reversed by a failover)."""
    source_ids = {v.version for v in source_versions}
    origin = {
        v.tags[SOURCE_VERSION_TAG]: v.version
        for v in source_versions
        if v.tags.get(SOURCE_VERSION_TAG)
    }
    held: dict[str, ItemProperties] = {}
    for tv in target_versions:
        tagged = tv.tags.get(SOURCE_VERSION_TAG)
        if tv.version in source_ids:
            held[tv.version] = tv
        if (
            tagged
            and tagged in source_ids
            and not (is_placeholder(tv) and tagged in held and not is_placeholder(held[tagged]))
        ):
            # A placeholder never stands in for a copy that holds the value.
            held[tagged] = tv
        # One target version can be both: kvdr's copy of an old source version, and the
        # origin of a newer one (a failback resynchronised from it).
        if tv.version in origin:
            held[origin[tv.version]] = tv
    return held


def written_by_kvdr(target: ItemProperties, source_versions: list[ItemProperties]) -> bool:
    """True when a target version is kvdr's copy, or the origin of a source version
    that kvdr copied from it (a reversed pair's former source)."""
    if SOURCE_VERSION_TAG in target.tags:
        return True
    return any(v.tags.get(SOURCE_VERSION_TAG) == target.version for v in source_versions)


@dataclass(frozen=True)
class CopyVersion:
    """Write the value of `source` as a new version on the target."""

    source: ItemProperties


@dataclass(frozen=True)
class UpdateVersion:
    """Bring the attributes of an existing target copy in line with `source`."""

    source: ItemProperties
    target_version: str
    # The target version is a placeholder: it stays disabled and tagged as one.
    placeholder: bool = False


@dataclass(frozen=True)
class PlaceholderVersion:
    """Write a placeholder for the disabled latest `source` version (no value read)."""

    source: ItemProperties


@dataclass(frozen=True)
class SkippedVersion:
    """A source version kvdr cannot copy, and why (reported, never silent)."""

    version: str
    reason: str


@dataclass(frozen=True)
class SecretPlan:
    """What one target needs for one secret. Empty when in sync."""

    name: str
    copies: tuple[CopyVersion, ...] = ()
    updates: tuple[UpdateVersion, ...] = ()
    skipped: tuple[SkippedVersion, ...] = ()
    conflict: str | None = None
    placeholders: tuple[PlaceholderVersion, ...] = ()

    @property
    def in_sync(self) -> bool:
        return (
            not self.copies and not self.updates and not self.placeholders and self.conflict is None
        )


def plan_secret(
    name: str,
    source_versions: list[ItemProperties],
    target_versions: list[ItemProperties],
    *,
    adopt: bool,
) -> SecretPlan:
    """Plan how to bring one target secret up to date with its source.

    Both version lists are oldest first. Only source versions newer than the newest one
    the target already holds are copied: Key Vault cannot insert a version into the
    past, and writing an older value last would make it the current one.
    """
    if target_versions and not adopt and not written_by_kvdr(target_versions[-1], source_versions):
        return SecretPlan(
            name=name,
            conflict=(
                f"target secret {name!r} has a latest version that kvdr did not write "
                f"({target_versions[-1].version}); set adopt = true on the pair to take it over"
            ),
        )
    copied = copies_of(source_versions, target_versions)
    newest_copied = -1
    for index, sv in enumerate(source_versions):
        if sv.version in copied:
            newest_copied = index

    copies: list[CopyVersion] = []
    updates: list[UpdateVersion] = []
    skipped: list[SkippedVersion] = []
    placeholders: list[PlaceholderVersion] = []
    latest = len(source_versions) - 1
    for index, sv in enumerate(source_versions):
        existing = copied.get(sv.version)
        if existing is not None and is_placeholder(existing):
            if sv.enabled and index == newest_copied:
                # Readable again: its value becomes the target's current version.
                copies.append(CopyVersion(source=sv))
            elif sv.enabled:
                skipped.append(
                    SkippedVersion(sv.version, "enabled again after a newer version was copied")
                )
            elif not attributes_match(sv, existing):
                updates.append(
                    UpdateVersion(source=sv, target_version=existing.version, placeholder=True)
                )
        elif existing is not None:
            if not attributes_match(sv, existing):
                updates.append(UpdateVersion(source=sv, target_version=existing.version))
        elif index < newest_copied:
            skipped.append(
                SkippedVersion(sv.version, "older than the newest version the target holds")
            )
        elif not sv.enabled and index == latest:
            # Key Vault refuses to read a disabled version's value; the target answers
            # the same way with a placeholder instead of serving an older value.
            placeholders.append(PlaceholderVersion(source=sv))
        elif not sv.enabled:
            skipped.append(SkippedVersion(sv.version, "disabled on the source; value unreadable"))
        else:
            copies.append(CopyVersion(source=sv))
    return SecretPlan(
        name=name,
        copies=tuple(copies),
        updates=tuple(updates),
        skipped=tuple(skipped),
        placeholders=tuple(placeholders),
    )
