"""Conversions from the azure-keyvault SDK models to kvdr's own (`vault.models`).

Only properties cross here; the one piece of material kvdr handles (a secret's value) is
wrapped by the adapter into `SecretValue`, whose repr hides it.
"""

from __future__ import annotations

from datetime import datetime
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


# The three SDK property types share these attribute names (not a common base class).
_SdkProperties = SecretProperties | KeyProperties | CertificateProperties


def _properties(
    kind: ItemKind,
    p: _SdkProperties,
    *,
    content_type: str | None = None,
    managed: bool = False,
    key_type: str | None = None,
) -> ItemProperties:
    """The attributes every kind has, plus the few only some kinds carry."""
    return ItemProperties(
        kind=kind,
        name=p.name or "",
        version=p.version or "",
        enabled=bool(p.enabled) if p.enabled is not None else True,
        not_before=p.not_before,
        expires_on=p.expires_on,
        created_on=p.created_on,
        updated_on=p.updated_on,
        content_type=content_type,
        tags=dict(p.tags or {}),
        managed=managed,
        key_type=key_type,
        recovery_level=_text(p.recovery_level),
    )


def secret_properties(p: SecretProperties) -> ItemProperties:
    return _properties(ItemKind.SECRET, p, content_type=p.content_type, managed=bool(p.managed))


def key_properties(p: KeyProperties, key_type: object = None) -> ItemProperties:
    """Key properties; `key_type` comes from the full key where the call returned one."""
    return _properties(ItemKind.KEY, p, managed=bool(p.managed), key_type=_text(key_type))


def certificate_properties(p: CertificateProperties) -> ItemProperties:
    return _properties(ItemKind.CERTIFICATE, p)


def _deleted(
    kind: ItemKind,
    d: DeletedSecret | DeletedKey | DeletedCertificate,
    deleted_on: datetime | None,
) -> DeletedItem:
    """`deleted_on` is passed in: certificates name it differently from the others."""
    return DeletedItem(
        kind=kind,
        name=d.name or "",
        deleted_on=deleted_on,
        scheduled_purge_date=d.scheduled_purge_date,
        recovery_id=d.recovery_id,
    )


def deleted_secret(d: DeletedSecret) -> DeletedItem:
    return _deleted(ItemKind.SECRET, d, d.deleted_date)


def deleted_key(d: DeletedKey) -> DeletedItem:
    return _deleted(ItemKind.KEY, d, d.deleted_date)


def deleted_certificate(d: DeletedCertificate) -> DeletedItem:
    return _deleted(ItemKind.CERTIFICATE, d, d.deleted_on)
