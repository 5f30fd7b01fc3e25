"""The per-kind SDK calls behind the adapter: one class each for secrets, keys, certificates.

Each class speaks one azure-keyvault aio client and answers in kvdr's models, so the
adapter handles every kind with the same code (retry, error mapping, naming). What a
kind cannot do is stated where it applies (certificates: only enabled and tags change).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from azure.core.async_paging import AsyncItemPaged
from azure.keyvault.certificates import CertificateProperties
from azure.keyvault.certificates.aio import CertificateClient
from azure.keyvault.keys.aio import KeyClient
from azure.keyvault.secrets.aio import SecretClient

from vault import _sdk_models as sdk
from vault.errors import VaultError
from vault.models import Attributes, DeletedItem, ItemKind, ItemProperties

R = TypeVar("R")

# Key Vault's largest page; fewer pages means fewer requests against the budget.
PAGE_SIZE = 25


@dataclass(frozen=True)
class Listing(Generic[R]):
    """A paged SDK listing and how to turn each of its entries into ours."""

    pager: Callable[[], AsyncItemPaged[Any]]
    convert: Callable[[Any], R]


class KindCalls(ABC):
    """What the adapter needs of one kind, in kvdr's models."""

    kind: ItemKind

    @abstractmethod
    def items(self) -> Listing[ItemProperties]: ...

    @abstractmethod
    def versions(self, name: str) -> Listing[ItemProperties]: ...

    @abstractmethod
    def deleted(self) -> Listing[DeletedItem]: ...

    @abstractmethod
    async def current_version(self, name: str) -> str:
        """The version id the vault serves when asked for `name` without a version."""

    @abstractmethod
    async def update(self, name: str, version: str, a: Attributes) -> ItemProperties: ...

    @abstractmethod
    async def delete(self, name: str) -> None:
        """Delete and wait through the SDK's poller until the vault lists it as deleted."""

    @abstractmethod
    async def recover(self, name: str) -> None:
        """Recover and wait through the SDK's poller until it is live again."""

    @abstractmethod
    async def purge(self, name: str) -> None: ...

    @abstractmethod
    async def get_deleted(self, name: str) -> DeletedItem: ...

    @abstractmethod
    async def backup(self, name: str) -> bytes: ...

    @abstractmethod
    async def restore(self, blob: bytes) -> ItemProperties: ...


class SecretCalls(KindCalls):
    kind = ItemKind.SECRET

    def __init__(self, client: SecretClient) -> None:
        self._c = client

    def items(self) -> Listing[ItemProperties]:
        return Listing(
            lambda: self._c.list_properties_of_secrets(max_page_size=PAGE_SIZE),
            sdk.secret_properties,
        )

    def versions(self, name: str) -> Listing[ItemProperties]:
        return Listing(
            lambda: self._c.list_properties_of_secret_versions(name, max_page_size=PAGE_SIZE),
            sdk.secret_properties,
        )

    def deleted(self) -> Listing[DeletedItem]:
        return Listing(
            lambda: self._c.list_deleted_secrets(max_page_size=PAGE_SIZE), sdk.deleted_secret
        )

    async def current_version(self, name: str) -> str:
        # Key Vault has no value-free "get latest secret"; the value is dropped at once.
        return (await self._c.get_secret(name)).properties.version or ""

    async def update(self, name: str, version: str, a: Attributes) -> ItemProperties:
        props = await self._c.update_secret_properties(
            name,
            version,
            enabled=a.enabled,
            tags=dict(a.tags),
            content_type=a.content_type,
            not_before=a.not_before,
            expires_on=a.expires_on,
        )
        return sdk.secret_properties(props)

    async def delete(self, name: str) -> None:
        await self._c.delete_secret(name)

    async def recover(self, name: str) -> None:
        await self._c.recover_deleted_secret(name)

    async def purge(self, name: str) -> None:
        await self._c.purge_deleted_secret(name)

    async def get_deleted(self, name: str) -> DeletedItem:
        return sdk.deleted_secret(await self._c.get_deleted_secret(name))

    async def backup(self, name: str) -> bytes:
        return await self._c.backup_secret(name)

    async def restore(self, blob: bytes) -> ItemProperties:
        return sdk.secret_properties(await self._c.restore_secret_backup(blob))


class KeyCalls(KindCalls):
    """Keys: an update changes enabled, not-before, expiry and tags (no content type)."""

    kind = ItemKind.KEY

    def __init__(self, client: KeyClient) -> None:
        self._c = client

    def items(self) -> Listing[ItemProperties]:
        return Listing(
            lambda: self._c.list_properties_of_keys(max_page_size=PAGE_SIZE), sdk.key_properties
        )

    def versions(self, name: str) -> Listing[ItemProperties]:
        return Listing(
            lambda: self._c.list_properties_of_key_versions(name, max_page_size=PAGE_SIZE),
            sdk.key_properties,
        )

    def deleted(self) -> Listing[DeletedItem]:
        return Listing(lambda: self._c.list_deleted_keys(max_page_size=PAGE_SIZE), sdk.deleted_key)

    async def current_version(self, name: str) -> str:
        return (await self._c.get_key(name)).properties.version or ""

    async def update(self, name: str, version: str, a: Attributes) -> ItemProperties:
        key = await self._c.update_key_properties(
            name,
            version,
            enabled=a.enabled,
            tags=dict(a.tags),
            not_before=a.not_before,
            expires_on=a.expires_on,
        )
        return sdk.key_properties(key.properties, key.key_type)

    async def delete(self, name: str) -> None:
        await self._c.delete_key(name)

    async def recover(self, name: str) -> None:
        await self._c.recover_deleted_key(name)

    async def purge(self, name: str) -> None:
        await self._c.purge_deleted_key(name)

    async def get_deleted(self, name: str) -> DeletedItem:
        return sdk.deleted_key(await self._c.get_deleted_key(name))

    async def backup(self, name: str) -> bytes:
        return await self._c.backup_key(name)

    async def restore(self, blob: bytes) -> ItemProperties:
        key = await self._c.restore_key_backup(blob)
        return sdk.key_properties(key.properties, key.key_type)


class CertificateCalls(KindCalls):
    """Certificates: an update changes enabled and tags; dates belong to the X.509 itself."""

    kind = ItemKind.CERTIFICATE

    def __init__(self, client: CertificateClient) -> None:
        self._c = client

    def items(self) -> Listing[ItemProperties]:
        return Listing(
            lambda: self._c.list_properties_of_certificates(max_page_size=PAGE_SIZE),
            sdk.certificate_properties,
        )

    def versions(self, name: str) -> Listing[ItemProperties]:
        return Listing(
            lambda: self._c.list_properties_of_certificate_versions(name, max_page_size=PAGE_SIZE),
            sdk.certificate_properties,
        )

    def deleted(self) -> Listing[DeletedItem]:
        return Listing(
            lambda: self._c.list_deleted_certificates(max_page_size=PAGE_SIZE),
            sdk.deleted_certificate,
        )

    async def current_version(self, name: str) -> str:
        props = (await self._c.get_certificate(name)).properties
        return (props.version if props else None) or ""

    async def update(self, name: str, version: str, a: Attributes) -> ItemProperties:
        cert = await self._c.update_certificate_properties(
            name, version, enabled=a.enabled, tags=dict(a.tags)
        )
        return _certificate(cert.properties)

    async def delete(self, name: str) -> None:
        await self._c.delete_certificate(name)

    async def recover(self, name: str) -> None:
        await self._c.recover_deleted_certificate(name)

    async def purge(self, name: str) -> None:
        await self._c.purge_deleted_certificate(name)

    async def get_deleted(self, name: str) -> DeletedItem:
        return sdk.deleted_certificate(await self._c.get_deleted_certificate(name))

    async def backup(self, name: str) -> bytes:
        return await self._c.backup_certificate(name)

    async def restore(self, blob: bytes) -> ItemProperties:
        cert = await self._c.restore_certificate_backup(blob)
        return _certificate(cert.properties)


def _certificate(props: CertificateProperties | None) -> ItemProperties:
    if props is None:
        # The SDK types `properties` as optional; every vault answer carries them.
        raise VaultError("the vault answered a certificate call without its properties")
    return sdk.certificate_properties(props)
