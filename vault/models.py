"""The item and change models shared by every part of kvdr.

`ItemProperties` is metadata and safe to log. `SecretValue` is the one type that carries
material; its repr never prints it (the Azure SDK keeps the same split).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class ItemKind(StrEnum):
    """What a vault object is."""

    SECRET = "secret"
    KEY = "key"
    CERTIFICATE = "certificate"


@dataclass(frozen=True)
class VaultRef:
    """One Key Vault endpoint in one region."""

    region: str
    url: str
    # The vault's pricing tier: "standard", "premium" or "managed-hsm". Key Vault does
    # not tell a client its own SKU, so it is configured; it decides which key types
    # (HSM or not) the vault can hold as a mirror target.
    sku: str = "standard"
    # The vault's Azure Resource Manager id (/subscriptions/.../vaults/NAME), for the
    # management plane (fencing by network rules, `kvdr failover check`); None: not given.
    resource_id: str | None = None
    # Where that management plane answers when not at [failover] management_url (the
    # local emulator serves it at the vault's own URL).
    management_url: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", self.url.rstrip("/"))

    @property
    def label(self) -> str:
        """A short name for metrics and logs: the region."""
        return self.region


@dataclass(frozen=True)
class ItemRef:
    """`(kind, name)`: one object in a vault, independent of version."""

    kind: ItemKind
    name: str

    def __str__(self) -> str:
        return f"{self.kind.value}/{self.name}"


@dataclass(frozen=True)
class ItemProperties:
    """Metadata of one version of one item (never material)."""

    kind: ItemKind
    name: str
    version: str
    enabled: bool = True
    not_before: datetime | None = None
    expires_on: datetime | None = None
    created_on: datetime | None = None
    updated_on: datetime | None = None
    content_type: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    # Backed by a certificate (its key and secret): never mirrored on its own.
    managed: bool = False
    # Keys: kty such as "RSA", "EC-HSM"; certificates: the key's kty.
    key_type: str | None = None
    recovery_level: str | None = None

    @property
    def ref(self) -> ItemRef:
        return ItemRef(self.kind, self.name)

    def same_attributes(self, other: ItemProperties) -> bool:
        """True when the mutable attributes (what an update can change) are equal."""
        return (
            self.enabled == other.enabled
            and self.not_before == other.not_before
            and self.expires_on == other.expires_on
            and self.content_type == other.content_type
            and self.tags == other.tags
        )


@dataclass(frozen=True)
class SecretValue:
    """One version of a secret with its value. The value never appears in repr."""

    properties: ItemProperties
    value: str = field(repr=False)

    def __repr__(self) -> str:
        p = self.properties
        return f"SecretValue(name={p.name!r}, version={p.version!r}, value=<redacted>)"


@dataclass(frozen=True)
class CertificateMaterial:
    """One certificate version as its secret holds it: a PFX (no password) or a PEM
    bundle with the private key when the policy marks the key exportable. The bytes never
    appear in repr."""

    name: str
    version: str
    # "application/x-pkcs12" (PFX) or "application/x-pem-file" (PEM).
    content_type: str
    data: bytes = field(repr=False)

    def __repr__(self) -> str:
        return (
            f"CertificateMaterial(name={self.name!r}, version={self.version!r}, "
            f"content_type={self.content_type!r}, data=<redacted>)"
        )


@dataclass(frozen=True)
class DeletedItem:
    """An item in the vault's soft-deleted state."""

    kind: ItemKind
    name: str
    deleted_on: datetime | None = None
    scheduled_purge_date: datetime | None = None
    recovery_id: str | None = None

    @property
    def ref(self) -> ItemRef:
        return ItemRef(self.kind, self.name)


@dataclass(frozen=True)
class Attributes:
    """The attributes kvdr writes onto a target version."""

    enabled: bool = True
    not_before: datetime | None = None
    expires_on: datetime | None = None
    content_type: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, props: ItemProperties) -> Attributes:
        return cls(
            enabled=props.enabled,
            not_before=props.not_before,
            expires_on=props.expires_on,
            content_type=props.content_type,
            tags=dict(props.tags),
        )


@dataclass(frozen=True)
class WrappedKey:
    """A data key wrapped by a vault key: safe to store and log (it opens nothing alone).

    `key_id` is the full id of the vault key version that wrapped it
    (`https://<vault>/keys/<name>/<version>`); unwrapping needs that exact version.
    """

    key_id: str
    algorithm: str
    encrypted_key: bytes = field(repr=False)


@dataclass(frozen=True)
class Signature:
    """A signature made by a vault key: `key_id` names the exact key version
    (`https://<vault>/keys/<name>/<version>`). Safe to store and log."""

    key_id: str
    algorithm: str
    value: bytes = field(repr=False)


class ChangeOp(StrEnum):
    """What happened to an item."""

    NEW_VERSION = "new_version"
    UPDATE = "update"
    DELETE = "delete"
    RECOVER = "recover"


@dataclass(frozen=True)
class Change:
    """One observed change of one item on a pair's primary.

    `sequence` is assigned by the replicator: monotonic per pair, never reused. `payload`
    is the material needed to apply or journal the change (a secret value as `str`, or a
    key / certificate backup blob as `bytes`); repr never shows it.
    """

    pair: str
    item: ItemRef
    op: ChangeOp
    observed_at: datetime
    properties: ItemProperties | None = None
    sequence: int = 0
    payload: str | bytes | None = field(default=None, repr=False, compare=False)
    extra: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        version = self.properties.version if self.properties else None
        return (
            f"Change(pair={self.pair!r}, item='{self.item}', op={self.op.value}, "
            f"version={version!r}, sequence={self.sequence})"
        )
