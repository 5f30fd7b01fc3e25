"""`KeyVaultAdapter`: the `VaultClient` over the official azure-keyvault aio clients.

    async with KeyVaultAdapter.open(ref, credential, settings) as vault:
        await vault.set_secret("db-password", value, Attributes())

One adapter per vault holds a `SecretClient`, a `KeyClient` and a `CertificateClient`
and one `RateController`. Every SDK call runs inside `RateController.run()` (retry with
backoff for transient faults) and every HTTP request of it through `RateControlPolicy`
(concurrency, budget, 429 bookkeeping, metrics). The SDK's own retry policy is switched
off (`retry_total=0`) so that a 429 is counted and waited for in one place only; the
SDK's delete/recover pollers still work with it off, because they treat the 404 they
poll through as "not yet", not as an error to retry.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from datetime import UTC, datetime
from typing import Any, TypeVar

from azure.core.async_paging import AsyncItemPaged
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import AzureError
from azure.keyvault.certificates.aio import CertificateClient
from azure.keyvault.keys.aio import KeyClient
from azure.keyvault.secrets.aio import SecretClient

from vault import _sdk_models as sdk
from vault import metrics
from vault._azure_errors import map_azure_error
from vault._rate_policy import CURRENT_OP, RateControlPolicy
from vault.errors import BadRequest, ItemNotFound
from vault.models import (
    Attributes,
    DeletedItem,
    ItemKind,
    ItemProperties,
    SecretValue,
    VaultRef,
)
from vault.rate import RateController
from vault.settings import VaultSettings

T = TypeVar("T")
X = TypeVar("X")

# Key Vault object names: 1-127 letters, digits and hyphens.
_NAME = re.compile(r"[0-9A-Za-z-]{1,127}")
# Key Vault's largest page; fewer pages means fewer requests against the budget.
_PAGE_SIZE = 25
_EPOCH = datetime.min.replace(tzinfo=UTC)


def sdk_client_options(
    settings: VaultSettings, rate: RateController, vault_url: str
) -> dict[str, Any]:
    """Keyword arguments for one azure-keyvault aio client of this adapter."""
    options: dict[str, Any] = {
        # Retry lives in RateController.run(); an SDK retry would hide 429s from it and
        # spend budget nobody counted.
        "retry_total": 0,
        # A fresh policy per client: a pipeline chains its policies through `next`.
        "per_retry_policies": [RateControlPolicy(rate, vault_url)],
        "verify_challenge_resource": settings.verify_challenge_resource,
        "connection_timeout": settings.request_timeout_seconds,
        "read_timeout": settings.request_timeout_seconds,
    }
    if settings.ca_file:
        options["connection_verify"] = settings.ca_file
    return options


class KeyVaultAdapter:
    """One vault in one region, through the official SDK, rate-controlled."""

    def __init__(
        self,
        ref: VaultRef,
        *,
        secrets: SecretClient,
        keys: KeyClient,
        certificates: CertificateClient,
        rate: RateController,
    ) -> None:
        self._ref = ref
        self._secrets = secrets
        self._keys = keys
        self._certificates = certificates
        self._rate = rate

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        ref: VaultRef,
        credential: AsyncTokenCredential,
        settings: VaultSettings | None = None,
    ) -> AsyncIterator[KeyVaultAdapter]:
        """Open the SDK clients for `ref`; they are closed when the block ends."""
        settings = settings or VaultSettings()
        rate = RateController(settings, vault=ref.label)
        gauge = metrics.CONCURRENCY_LIMIT.labels(ref.label)
        gauge.set(rate.concurrency_limit)
        rate.on_change(lambda stats: gauge.set(stats.concurrency_limit))
        async with AsyncExitStack() as stack:
            secrets = await stack.enter_async_context(
                SecretClient(ref.url, credential, **sdk_client_options(settings, rate, ref.url))
            )
            keys = await stack.enter_async_context(
                KeyClient(ref.url, credential, **sdk_client_options(settings, rate, ref.url))
            )
            certificates = await stack.enter_async_context(
                CertificateClient(
                    ref.url, credential, **sdk_client_options(settings, rate, ref.url)
                )
            )
            yield cls(ref, secrets=secrets, keys=keys, certificates=certificates, rate=rate)

    @property
    def ref(self) -> VaultRef:
        return self._ref

    @property
    def rate(self) -> RateController:
        """This vault's rate control (limits, 429 counts) for status and tests."""
        return self._rate

    def __repr__(self) -> str:
        return f"KeyVaultAdapter(region={self._ref.region!r}, url={self._ref.url!r})"

    # -- plumbing ---------------------------------------------------------------------

    async def _call(
        self,
        op: str,
        item: str,
        fn: Callable[[], Awaitable[T]],
        *,
        redact: Iterable[str] = (),
        max_attempts: int | None = None,
    ) -> T:
        """Run one SDK call with retry; SDK errors leave as `VaultError`s."""
        secrets = tuple(redact)

        async def once() -> T:
            token = CURRENT_OP.set(op)
            try:
                return await fn()
            except AzureError as exc:
                raise map_azure_error(
                    exc, vault=self._ref.label, op=op, item=item, redact=secrets
                ) from exc
            finally:
                CURRENT_OP.reset(token)

        return await self._rate.run(op, once, item=item, max_attempts=max_attempts)

    async def _collect(self, op: str, item: str, pager: Callable[[], AsyncItemPaged[X]]) -> list[X]:
        """Every item of a paged listing; each page is one retried call."""
        pages = pager().by_page()

        async def next_page() -> list[X] | None:
            # A failed page leaves the iterator at the same continuation token, so
            # calling it again retries that page, not the listing from the start.
            try:
                page = await pages.__anext__()
            except StopAsyncIteration:
                return None
            return [x async for x in page]

        out: list[X] = []
        while (batch := await self._call(op, item, next_page)) is not None:
            out.extend(batch)
        return out

    def _check_name(self, kind: ItemKind, name: str, op: str) -> str:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            shown = repr(name) if len(repr(name)) <= 140 else repr(name)[:137] + "..."
            raise BadRequest(
                f"{op} on vault {self._ref.label}: invalid {kind.value} name {shown}: "
                "names are 1-127 letters, digits and hyphens",
                vault=self._ref.label,
                op=op,
                code="InvalidName",
            )
        return f"{kind.value}/{name}"

    # -- listing ----------------------------------------------------------------------

    async def list_items(self, kind: ItemKind) -> list[ItemProperties]:
        op, item = "list_items", f"{kind.value}s"
        match kind:
            case ItemKind.SECRET:
                secrets = await self._collect(
                    op,
                    item,
                    lambda: self._secrets.list_properties_of_secrets(max_page_size=_PAGE_SIZE),
                )
                return [sdk.secret_properties(p) for p in secrets]
            case ItemKind.KEY:
                keys = await self._collect(
                    op, item, lambda: self._keys.list_properties_of_keys(max_page_size=_PAGE_SIZE)
                )
                return [sdk.key_properties(p) for p in keys]
            case ItemKind.CERTIFICATE:
                certs = await self._collect(
                    op,
                    item,
                    lambda: self._certificates.list_properties_of_certificates(
                        max_page_size=_PAGE_SIZE
                    ),
                )
                return [sdk.certificate_properties(p) for p in certs]

    async def list_versions(self, kind: ItemKind, name: str) -> list[ItemProperties]:
        op = "list_versions"
        item = self._check_name(kind, name, op)
        match kind:
            case ItemKind.SECRET:
                secrets = await self._collect(
                    op,
                    item,
                    lambda: self._secrets.list_properties_of_secret_versions(
                        name, max_page_size=_PAGE_SIZE
                    ),
                )
                versions = [sdk.secret_properties(p) for p in secrets]
            case ItemKind.KEY:
                keys = await self._collect(
                    op,
                    item,
                    lambda: self._keys.list_properties_of_key_versions(
                        name, max_page_size=_PAGE_SIZE
                    ),
                )
                versions = [sdk.key_properties(p) for p in keys]
            case ItemKind.CERTIFICATE:
                certs = await self._collect(
                    op,
                    item,
                    lambda: self._certificates.list_properties_of_certificate_versions(
                        name, max_page_size=_PAGE_SIZE
                    ),
                )
                versions = [sdk.certificate_properties(p) for p in certs]
        # The service lists versions in no promised order; kvdr replays them oldest first.
        return sorted(versions, key=lambda p: (p.created_on or _EPOCH, p.version))

    # -- secrets ----------------------------------------------------------------------

    async def get_secret(self, name: str, version: str | None = None) -> SecretValue:
        op = "get_secret"
        item = self._check_name(ItemKind.SECRET, name, op)
        secret = await self._call(op, item, lambda: self._secrets.get_secret(name, version))
        return SecretValue(
            properties=sdk.secret_properties(secret.properties), value=secret.value or ""
        )

    async def set_secret(self, name: str, value: str, attributes: Attributes) -> ItemProperties:
        op = "set_secret"
        item = self._check_name(ItemKind.SECRET, name, op)
        secret = await self._call(
            op,
            item,
            lambda: self._secrets.set_secret(
                name,
                value,
                enabled=attributes.enabled,
                tags=dict(attributes.tags),
                content_type=attributes.content_type,
                not_before=attributes.not_before,
                expires_on=attributes.expires_on,
            ),
            redact=(value,),
        )
        return sdk.secret_properties(secret.properties)

    # -- every kind -------------------------------------------------------------------

    async def update_properties(
        self, kind: ItemKind, name: str, version: str, attributes: Attributes
    ) -> ItemProperties:
        """Write `attributes` onto one version.

        What each kind can change: secrets all five; keys enabled, not-before, expiry and
        tags (no content type); certificates enabled and tags (the rest is the X.509
        certificate's own). A `None` date or content type leaves the vault's value as is:
        the SDK sends no field for it.
        """
        op = "update_properties"
        item = self._check_name(kind, name, op)
        a = attributes
        match kind:
            case ItemKind.SECRET:
                props = await self._call(
                    op,
                    item,
                    lambda: self._secrets.update_secret_properties(
                        name,
                        version,
                        enabled=a.enabled,
                        tags=dict(a.tags),
                        content_type=a.content_type,
                        not_before=a.not_before,
                        expires_on=a.expires_on,
                    ),
                )
                return sdk.secret_properties(props)
            case ItemKind.KEY:
                key = await self._call(
                    op,
                    item,
                    lambda: self._keys.update_key_properties(
                        name,
                        version,
                        enabled=a.enabled,
                        tags=dict(a.tags),
                        not_before=a.not_before,
                        expires_on=a.expires_on,
                    ),
                )
                return sdk.key_properties(key.properties, key.key_type)
            case ItemKind.CERTIFICATE:
                cert = await self._call(
                    op,
                    item,
                    lambda: self._certificates.update_certificate_properties(
                        name, version, enabled=a.enabled, tags=dict(a.tags)
                    ),
                )
                return self._certificate_result(cert.properties, op, item)

    async def delete_item(self, kind: ItemKind, name: str) -> None:
        """Soft-delete through the SDK's poller (returns once listed as deleted).

        Idempotent: when the item is already soft-deleted, that is success. This also
        covers a retry after a transient fault hit the poller once the delete went through.
        """
        op = "delete_item"
        item = self._check_name(kind, name, op)
        try:
            match kind:
                case ItemKind.SECRET:
                    await self._call(op, item, lambda: self._secrets.delete_secret(name))
                case ItemKind.KEY:
                    await self._call(op, item, lambda: self._keys.delete_key(name))
                case ItemKind.CERTIFICATE:
                    await self._call(op, item, lambda: self._certificates.delete_certificate(name))
        except ItemNotFound:
            if await self.get_deleted(kind, name) is None:
                raise

    async def recover_item(self, kind: ItemKind, name: str) -> None:
        """Recover through the SDK's poller (returns once live again).

        Idempotent: when the item is live and not soft-deleted, that is success.
        """
        op = "recover_item"
        item = self._check_name(kind, name, op)
        try:
            match kind:
                case ItemKind.SECRET:
                    await self._call(op, item, lambda: self._secrets.recover_deleted_secret(name))
                case ItemKind.KEY:
                    await self._call(op, item, lambda: self._keys.recover_deleted_key(name))
                case ItemKind.CERTIFICATE:
                    await self._call(
                        op, item, lambda: self._certificates.recover_deleted_certificate(name)
                    )
        except ItemNotFound:
            if await self.get_deleted(kind, name) is not None or not await self._is_live(
                kind, name
            ):
                raise

    async def _is_live(self, kind: ItemKind, name: str) -> bool:
        try:
            return bool(await self.list_versions(kind, name))
        except ItemNotFound:
            return False

    async def purge_item(self, kind: ItemKind, name: str) -> None:
        op = "purge_item"
        item = self._check_name(kind, name, op)
        match kind:
            case ItemKind.SECRET:
                await self._call(op, item, lambda: self._secrets.purge_deleted_secret(name))
            case ItemKind.KEY:
                await self._call(op, item, lambda: self._keys.purge_deleted_key(name))
            case ItemKind.CERTIFICATE:
                await self._call(
                    op, item, lambda: self._certificates.purge_deleted_certificate(name)
                )

    async def list_deleted(self, kind: ItemKind) -> list[DeletedItem]:
        op, item = "list_deleted", f"{kind.value}s"
        match kind:
            case ItemKind.SECRET:
                secrets = await self._collect(
                    op, item, lambda: self._secrets.list_deleted_secrets(max_page_size=_PAGE_SIZE)
                )
                return [sdk.deleted_secret(d) for d in secrets]
            case ItemKind.KEY:
                keys = await self._collect(
                    op, item, lambda: self._keys.list_deleted_keys(max_page_size=_PAGE_SIZE)
                )
                return [sdk.deleted_key(d) for d in keys]
            case ItemKind.CERTIFICATE:
                certs = await self._collect(
                    op,
                    item,
                    lambda: self._certificates.list_deleted_certificates(max_page_size=_PAGE_SIZE),
                )
                return [sdk.deleted_certificate(d) for d in certs]

    async def get_deleted(self, kind: ItemKind, name: str) -> DeletedItem | None:
        op = "get_deleted"
        item = self._check_name(kind, name, op)
        try:
            match kind:
                case ItemKind.SECRET:
                    secret = await self._call(
                        op, item, lambda: self._secrets.get_deleted_secret(name)
                    )
                    return sdk.deleted_secret(secret)
                case ItemKind.KEY:
                    key = await self._call(op, item, lambda: self._keys.get_deleted_key(name))
                    return sdk.deleted_key(key)
                case ItemKind.CERTIFICATE:
                    cert = await self._call(
                        op, item, lambda: self._certificates.get_deleted_certificate(name)
                    )
                    return sdk.deleted_certificate(cert)
        except ItemNotFound:
            return None

    async def backup_item(self, kind: ItemKind, name: str) -> bytes:
        op = "backup_item"
        item = self._check_name(kind, name, op)
        match kind:
            case ItemKind.SECRET:
                return await self._call(op, item, lambda: self._secrets.backup_secret(name))
            case ItemKind.KEY:
                return await self._call(op, item, lambda: self._keys.backup_key(name))
            case ItemKind.CERTIFICATE:
                return await self._call(
                    op, item, lambda: self._certificates.backup_certificate(name)
                )

    async def restore_item(self, kind: ItemKind, backup: bytes) -> ItemProperties:
        op, item = "restore_item", f"{kind.value} backup"
        if not isinstance(backup, bytes | bytearray) or not backup:
            raise BadRequest(
                f"{op} on vault {self._ref.label}: the {kind.value} backup must be non-empty bytes",
                vault=self._ref.label,
                op=op,
                code="InvalidBackup",
            )
        blob = bytes(backup)
        match kind:
            case ItemKind.SECRET:
                props = await self._call(
                    op, item, lambda: self._secrets.restore_secret_backup(blob)
                )
                return sdk.secret_properties(props)
            case ItemKind.KEY:
                key = await self._call(op, item, lambda: self._keys.restore_key_backup(blob))
                return sdk.key_properties(key.properties, key.key_type)
            case ItemKind.CERTIFICATE:
                cert = await self._call(
                    op, item, lambda: self._certificates.restore_certificate_backup(blob)
                )
                return self._certificate_result(cert.properties, op, item)

    def _certificate_result(self, props: Any, op: str, item: str) -> ItemProperties:
        if props is None:
            # The SDK types `properties` as optional; a vault answer always carries it.
            raise BadRequest(
                f"{op} {item} on vault {self._ref.label}: answer without properties",
                vault=self._ref.label,
                op=op,
            )
        return sdk.certificate_properties(props)

    async def probe(self) -> None:
        """One page of one secret, no retry: health checks want the answer now."""

        async def one_page() -> None:
            pages = self._secrets.list_properties_of_secrets(max_page_size=1).by_page()
            with suppress(StopAsyncIteration):
                await pages.__anext__()

        await self._call("probe", "", one_page, max_attempts=1)
