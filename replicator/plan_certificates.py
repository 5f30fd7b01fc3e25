"""Pure planning of certificate mirroring, and of the issuers and contacts that go with it.

A certificate absent on a target arrives by backup and restore (every version, its
policy, its key and secret, with the source's version ids). A new version of a
certificate the target already holds arrives one of two ways:

- exportable key: its PFX (from the certificate's secret) is imported as a new version,
  tagged `kvdr-source-version` with the source version it copies (an import gets a new
  version id, so the tag is what ties it to its source);
- key not exportable (the secret holds no private key): delete, purge and restore the
  newer backup where the target allows purge, else the certificate is blocked.

A latest source version that is disabled cannot be exported (its secret refuses to be
read). The target gets a placeholder instead, as secrets do (`replicator.plan`): a
throwaway self-signed certificate imported disabled and tagged `kvdr-placeholder`, so the
target's current version refuses to serve its secret as the primary's does, instead of
serving the older certificate. Enabled again, the source version is imported on top;
the placeholder stays disabled.

kvdr's own copy is the one whose every version either has a source version's id
(restored) or carries the tag naming one (imported); anything else is a conflict.
"""

from __future__ import annotations

from dataclasses import dataclass

from replicator.plan import (
    PLACEHOLDER_TAG,
    SOURCE_VERSION_TAG,
    SkippedVersion,
    UpdateVersion,
    copies_of,
    is_placeholder,
    user_tags,
)
from replicator.plan_keys import Action, blocked_reason, foreign_reason, purge_allowed
from vault.models import Attributes, ItemKind, ItemProperties
from vault.policies import CertificateContact, CertificateIssuer


@dataclass(frozen=True)
class CertificatePlan:
    """What one target needs for one certificate."""

    name: str
    action: Action
    # Source versions to import, oldest first (IMPORT).
    imports: tuple[ItemProperties, ...] = ()
    # Source versions the target lacks (RESTORE, REPLACE, BLOCKED).
    missing: tuple[str, ...] = ()
    updates: tuple[UpdateVersion, ...] = ()
    skipped: tuple[SkippedVersion, ...] = ()
    reason: str | None = None
    # Disabled latest source versions that get a placeholder (IMPORT).
    placeholders: tuple[ItemProperties, ...] = ()

    @property
    def restores(self) -> bool:
        return self.action in (Action.RESTORE, Action.REPLACE)


def certificate_attributes(
    source: ItemProperties, *, imported: bool, placeholder: bool = False
) -> Attributes:
    """What a certificate update (or import) writes: enabled and tags; an imported
    version also carries kvdr's tag naming the source version it copies, a placeholder
    stays disabled and tagged as one."""
    tags = user_tags(source)
    if imported or placeholder:
        tags[SOURCE_VERSION_TAG] = source.version
    if placeholder:
        tags[PLACEHOLDER_TAG] = "disabled-on-source"
        return Attributes(enabled=False, tags=tags)
    return Attributes(enabled=source.enabled, tags=tags)


def certificate_attributes_match(source: ItemProperties, target: ItemProperties) -> bool:
    """A certificate update changes only enabled and tags (dates belong to the X.509)."""
    return source.enabled == target.enabled and user_tags(source) == user_tags(target)


def kvdr_versions(
    source_versions: list[ItemProperties], target_versions: list[ItemProperties]
) -> set[str]:
    """The target versions that are kvdr's: copies (`copies_of`) and placeholders of a
    source version (left behind, disabled, once that version was imported)."""
    held = {t.version for t in copies_of(source_versions, target_versions).values()}
    source_ids = {v.version for v in source_versions}
    placeholders = {
        t.version
        for t in target_versions
        if is_placeholder(t) and t.tags.get(SOURCE_VERSION_TAG) in source_ids
    }
    return held | placeholders


def all_copies(
    source_versions: list[ItemProperties], target_versions: list[ItemProperties]
) -> bool:
    """True when every target version is kvdr's (restored, imported, a placeholder, or
    the origin of a source version: `copies_of`)."""
    ours = kvdr_versions(source_versions, target_versions)
    return all(t.version in ours for t in target_versions)


def plan_certificate(
    name: str,
    source_versions: list[ItemProperties],
    target_versions: list[ItemProperties],
    *,
    exportable: bool,
    adopt: bool = False,
) -> CertificatePlan:
    """Plan how to bring one target certificate up to date with its source.

    Both lists are oldest first. `exportable` is the source policy's flag (the private
    key is in the certificate's secret). With `adopt`, a certificate kvdr did not write
    gets the source's new versions imported on top when the key is exportable; it is
    never purged.
    """
    if not target_versions:
        return CertificatePlan(
            name=name,
            action=Action.RESTORE,
            missing=tuple(v.version for v in source_versions),
        )
    copies = copies_of(source_versions, target_versions)
    ours = kvdr_versions(source_versions, target_versions)
    foreign = [t.version for t in target_versions if t.version not in ours]
    if foreign and not (adopt and exportable):
        return CertificatePlan(
            name=name,
            action=Action.CONFLICT,
            reason=foreign_reason(ItemKind.CERTIFICATE, name, foreign)
            + (
                "; adopt = true on the pair imports new versions on top when the key is exportable"
                if not adopt
                else "; adopt cannot help: the key is not exportable"
            ),
        )
    newest_copied = max(
        (index for index, v in enumerate(source_versions) if v.version in copies), default=-1
    )
    updates: list[UpdateVersion] = []
    # Placeholders of versions enabled again since: their certificate is imported.
    readable_again: list[ItemProperties] = []
    for index, v in enumerate(source_versions):
        held = copies.get(v.version)
        if held is None:
            continue
        if not is_placeholder(held):
            if not certificate_attributes_match(v, held):
                updates.append(UpdateVersion(source=v, target_version=held.version))
        elif v.enabled and index == newest_copied and exportable:
            readable_again.append(v)
        elif not v.enabled and user_tags(v) != user_tags(held):
            updates.append(UpdateVersion(source=v, target_version=held.version, placeholder=True))
    missing = [v for v in source_versions if v.version not in copies]
    if not missing and not readable_again:
        return CertificatePlan(name=name, action=Action.IN_SYNC, updates=tuple(updates))
    if not exportable:
        level = target_versions[-1].recovery_level
        if purge_allowed(level):
            return CertificatePlan(
                name=name, action=Action.REPLACE, missing=tuple(v.version for v in missing)
            )
        return CertificatePlan(
            name=name,
            action=Action.BLOCKED,
            missing=tuple(v.version for v in missing),
            updates=tuple(updates),
            reason=blocked_reason(ItemKind.CERTIFICATE, name, len(missing), level),
        )
    imports: list[ItemProperties] = list(readable_again)
    skipped: list[SkippedVersion] = []
    placeholders: list[ItemProperties] = []
    latest = len(source_versions) - 1
    for index, v in enumerate(source_versions):
        if v.version in copies:
            continue
        if index < newest_copied:
            # Key Vault cannot insert a version into the past: an import becomes current.
            skipped.append(
                SkippedVersion(v.version, "older than the newest version the target holds")
            )
        elif not v.enabled and index == latest:
            # Its PFX is unreadable; a placeholder refuses on the target as it does here.
            placeholders.append(v)
        elif not v.enabled:
            skipped.append(SkippedVersion(v.version, "disabled on the source; PFX unreadable"))
        else:
            imports.append(v)
    action = Action.IMPORT if imports or placeholders else Action.IN_SYNC
    return CertificatePlan(
        name=name,
        action=action,
        imports=tuple(imports),
        updates=tuple(updates),
        skipped=tuple(skipped),
        placeholders=tuple(placeholders),
    )


def plan_issuers(
    source: list[CertificateIssuer], target: list[CertificateIssuer]
) -> list[tuple[CertificateIssuer, CertificateIssuer | None]]:
    """Issuers to write on a target: (source issuer, the target's current one or None to
    create it). Issuers only on the target are left alone: kvdr deletes nothing there."""
    existing = {i.name.lower(): i for i in target}
    writes: list[tuple[CertificateIssuer, CertificateIssuer | None]] = []
    for issuer in source:
        current = existing.get(issuer.name.lower())
        if current != issuer:
            writes.append((issuer, current))
    return writes


def plan_contacts(
    source: tuple[CertificateContact, ...], target: tuple[CertificateContact, ...]
) -> tuple[CertificateContact, ...] | None:
    """The contacts to set on a target, or None when nothing is to be written (equal, or
    the source has none: kvdr does not delete a target's contacts)."""
    if not source or source == target:
        return None
    return source
