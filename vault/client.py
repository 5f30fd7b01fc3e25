"""The vault seam: what kvdr asks of one Key Vault.

Every other part of kvdr talks to vaults through these Protocols only: `VaultItems`,
`VaultCrypto` and `VaultAdministration`, and `VaultClient`, all three. The implementation
over the official `azure-keyvault-*` aio clients lives in `vault.adapter`; rate control,
retry and error mapping happen there, in one place.
"""

from __future__ import annotations

from typing import Protocol

from vault.models import (
    Attributes,
    CertificateMaterial,
    DeletedItem,
    ItemKind,
    ItemProperties,
    SecretValue,
    Signature,
    VaultRef,
    WrappedKey,
)
from vault.policies import CertificateContact, CertificateIssuer, CertificatePolicy, RotationPolicy


class VaultItems(Protocol):
    """The items of one vault: list, read, write, delete, recover, back up and restore
    secrets, keys and certificates (the replicator, the deletion sweep, restore, probes)."""

    @property
    def ref(self) -> VaultRef: ...

    async def list_items(self, kind: ItemKind) -> list[ItemProperties]:
        """Latest-version properties of every live item of `kind`."""
        ...

    async def list_versions(self, kind: ItemKind, name: str) -> list[ItemProperties]:
        """Every version of one item, oldest first (by `created_on`), the current one last.

        Versions created within the same second (Key Vault's resolution) keep the vault's
        listing order, except that the version the vault serves as current comes last.
        """
        ...

    async def get_secret(self, name: str, version: str | None = None) -> SecretValue: ...

    async def set_secret(self, name: str, value: str, attributes: Attributes) -> ItemProperties:
        """Write a new version with `value` and `attributes`; returns its properties."""
        ...

    async def update_properties(
        self, kind: ItemKind, name: str, version: str, attributes: Attributes
    ) -> ItemProperties: ...

    async def delete_item(self, kind: ItemKind, name: str) -> None:
        """Soft-delete; returns once the vault lists the item as deleted."""
        ...

    async def recover_item(self, kind: ItemKind, name: str) -> None:
        """Recover a soft-deleted item; returns once it is live again."""
        ...

    async def purge_item(self, kind: ItemKind, name: str) -> None: ...

    async def list_deleted(self, kind: ItemKind) -> list[DeletedItem]: ...

    async def get_deleted(self, kind: ItemKind, name: str) -> DeletedItem | None: ...

    async def backup_item(self, kind: ItemKind, name: str) -> bytes: ...

    async def restore_item(self, kind: ItemKind, backup: bytes) -> ItemProperties: ...

    async def probe(self) -> None:
        """One cheap authenticated request; raises a `VaultError` when unreachable."""
        ...


class VaultCrypto(Protocol):
    """Cryptography with one vault's keys, whose private halves never leave it: wrapping
    data keys (the backups' KEKs) and signing (the backups' signers)."""

    @property
    def ref(self) -> VaultRef: ...

    async def wrap_key(self, name: str, key: bytes, version: str | None = None) -> WrappedKey:
        """Wrap `key` (a data key) with RSA-OAEP-256 under vault key `name` (its current
        version unless `version`); the result names the key version that wrapped it."""
        ...

    async def unwrap_key(self, name: str, version: str, wrapped: bytes) -> bytes:
        """Unwrap (RSA-OAEP-256) with one version of vault key `name`."""
        ...

    async def sign(
        self, name: str, algorithm: str, digest: bytes, version: str | None = None
    ) -> Signature:
        """Sign a SHA-256 `digest` (ES256 or PS256) with vault key `name` (its current
        version unless `version`); the result names the key version that signed."""
        ...

    async def verify(
        self, name: str, version: str, algorithm: str, digest: bytes, signature: bytes
    ) -> bool:
        """True when `signature` over `digest` was made by that version of key `name`."""
        ...

    # -- keys and certificates beyond backup and restore ----------------------------


class VaultAdministration(Protocol):
    """What mirroring keys and certificates needs beyond the items: a key's type,
    rotation and certificate policies, certificate material and import, issuers, contacts."""

    @property
    def ref(self) -> VaultRef: ...

    async def get_key(self, name: str, version: str | None = None) -> ItemProperties:
        """One key version's properties, with its `key_type` (listings carry none)."""
        ...

    async def public_fingerprint(self, kind: ItemKind, name: str) -> str | None:
        """SHA-256 of the current key's public JWK or certificate's X.509; None for a
        key without a public half. Reads no private material."""
        ...

    async def get_rotation_policy(self, name: str) -> RotationPolicy: ...

    async def set_rotation_policy(self, name: str, policy: RotationPolicy) -> RotationPolicy: ...

    async def get_certificate_policy(self, name: str) -> CertificatePolicy: ...

    async def set_certificate_policy(
        self, name: str, policy: CertificatePolicy
    ) -> CertificatePolicy: ...

    async def get_certificate_material(self, name: str, version: str) -> CertificateMaterial:
        """One certificate version's PFX (or PEM) from its secret; the private key is in
        it only when the policy marks the key exportable."""
        ...

    async def import_certificate(
        self,
        name: str,
        material: CertificateMaterial,
        attributes: Attributes,
        policy: CertificatePolicy | None = None,
    ) -> ItemProperties:
        """Import `material` as a new version of certificate `name`."""
        ...

    async def list_issuers(self) -> list[CertificateIssuer]: ...

    async def set_issuer(
        self, issuer: CertificateIssuer, previous: CertificateIssuer | None = None
    ) -> CertificateIssuer:
        """Create `issuer`, or update `previous` (this vault's) to match it."""
        ...

    async def get_contacts(self) -> tuple[CertificateContact, ...]: ...

    async def set_contacts(
        self, contacts: tuple[CertificateContact, ...]
    ) -> tuple[CertificateContact, ...]: ...


class VaultClient(VaultItems, VaultCrypto, VaultAdministration, Protocol):
    """One vault in one region, as kvdr uses it: the three parts over one adapter. A
    consumer asks for the part it uses (`VaultItems`, `VaultCrypto`,
    `VaultAdministration`), so what it may do with a vault reads from its signature."""
