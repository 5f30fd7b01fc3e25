"""Conversions from the azure-keyvault SDK models to kvdr's own (`vault.models`).

Only properties cross here; the one piece of material kvdr handles (a secret's value) is
wrapped by the adapter into `SecretValue`, whose repr hides it.
"""

from __future__ import annotations

from enum import Enum

from azure.keyvault.certificates import CertificateProperties, DeletedCertificate
from azure.keyvault.keys import DeletedKey, KeyProperties
from azure.keyvault.secrets import DeletedSecret, SecretProperties

from vault.models import DeletedItem, ItemKind, ItemProperties


def _text(value: object) -> str | None:
    """A str or str-enum as plain text (the SDK returns enums for some fields)."""
    if value is None:
        return None
    if isinstance(value, Enum):
        return str(value.value)
    return str(value)


def secret_properties(p: SecretProperties) -> ItemProperties:
    return ItemProperties(
        kind=ItemKind.SECRET,
        name=p.name or "",
        version=p.version or "",
        enabled=bool(p.enabled) if p.enabled is not None else True,
        not_before=p.not_before,
        expires_on=p.expires_on,
        created_on=p.created_on,
        updated_on=p.updated_on,
        content_type=p.content_type,
        tags=dict(p.tags or {}),
        managed=bool(p.managed),
        recovery_level=_text(p.recovery_level),
    )


def key_properties(p: KeyProperties, key_type: object = None) -> ItemProperties:
    """Key properties; `key_type` comes from the full key where the call returned one."""
    return ItemProperties(
        kind=ItemKind.KEY,
        name=p.name or "",
        version=p.version or "",
        enabled=bool(p.enabled) if p.enabled is not None else True,
        not_before=p.not_before,
        expires_on=p.expires_on,
        created_on=p.created_on,
        updated_on=p.updated_on,
        tags=dict(p.tags or {}),
        managed=bool(p.managed),
        key_type=_text(key_type),
        recovery_level=_text(p.recovery_level),
    )


def certificate_properties(p: CertificateProperties) -> ItemProperties:
    return ItemProperties(
        kind=ItemKind.CERTIFICATE,
        name=p.name or "",
        version=p.version or "",
        enabled=bool(p.enabled) if p.enabled is not None else True,
        not_before=p.not_before,
        expires_on=p.expires_on,
        created_on=p.created_on,
        updated_on=p.updated_on,
        tags=dict(p.tags or {}),
        recovery_level=_text(p.recovery_level),
    )


def deleted_secret(d: DeletedSecret) -> DeletedItem:
    return DeletedItem(
        kind=ItemKind.SECRET,
        name=d.name or "",
        deleted_on=d.deleted_date,
        scheduled_purge_date=d.scheduled_purge_date,
        recovery_id=d.recovery_id,
    )


def deleted_key(d: DeletedKey) -> DeletedItem:
    return DeletedItem(
        kind=ItemKind.KEY,
        name=d.name or "",
        deleted_on=d.deleted_date,
        scheduled_purge_date=d.scheduled_purge_date,
        recovery_id=d.recovery_id,
    )


def deleted_certificate(d: DeletedCertificate) -> DeletedItem:
    return DeletedItem(
        kind=ItemKind.CERTIFICATE,
        name=d.name or "",
        deleted_on=d.deleted_on,
        scheduled_purge_date=d.scheduled_purge_date,
        recovery_id=d.recovery_id,
    )
