"""`KeyVaultAdapter`: the `VaultClient` over the official azure-keyvault aio clients.

    async with KeyVaultAdapter.open(ref, credential, settings) as vault:
        await vault.set_secret("db-password", value, Attributes())

One adapter per vault holds a `SecretClient`, a `KeyClient` and a `CertificateClient`
and one `RateController`. Every SDK call runs inside `RateController.run()` (retry with
backoff for transient faults) and every HTTP request of it through `RateControlPolicy`
(concurrency, budget, 429 bookkeeping, metrics). The SDK's own retry policy is switched
off (`retry_total=0`) so that a 429 is counted and waited for in one place only. The
SDK's delete/recover pollers still work with it off: they poll through 404s, which they
read as "not yet", and a transient fault while polling surfaces as a `VaultError` that
`delete_item` / `recover_item` retry idempotently. The adapter is one class in parts
over `vault._core.AdapterCore` (the clients and `_call`): the item calls here, key
wrapping and signing in `vault._key_crypto`, key and certificate administration
(policies, import, issuers, contacts) in `vault._key_certificate_calls`.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from datetime import UTC, datetime
from typing import Any, TypeVar

import aiohttp
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.pipeline.transport import AioHttpTransport
from azure.keyvault.certificates.aio import CertificateClient
from azure.keyvault.keys.aio import KeyClient
from azure.keyvault.keys.crypto.aio import CryptographyClient
from azure.keyvault.secrets.aio import SecretClient

from vault import _sdk_models as sdk
from vault import metrics
from vault._key_certificate_calls import KeyCertificateCalls
from vault._key_crypto import KeyCryptoCalls
from vault._rate_policy import RateControlPolicy
from vault.errors import BadRequest, Forbidden, ItemConflict, ItemNotFound, VaultError
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
R = TypeVar("R")

_EPOCH = datetime.min.replace(tzinfo=UTC)
# Key Vault keeps answering 409 for a name for a few seconds after it was purged (1-5 s,
# DESIGN.md): within this long after our own purge, a 409 is retried with backoff.
PURGE_SETTLE_SECONDS = 30.0


def sdk_client_options(
    settings: VaultSettings, rate: RateController, vault_url: str, session: aiohttp.ClientSession
) -> dict[str, Any]:
    """Keyword arguments for one azure-keyvault aio client of an adapter."""
    return {
        # Retry lives in RateController.run(); an SDK retry would hide 429s from it and
        # spend budget nobody counted.
        "retry_total": 0,
        # A fresh policy per client: a pipeline chains its policies through `next`.
        "per_retry_policies": [RateControlPolicy(rate, vault_url)],
        "verify_challenge_resource": settings.verify_challenge_resource,
        # The adapter's one HTTP session; the transport must not close it.
        "transport": AioHttpTransport(
            session=session,
            session_owner=False,
            connection_timeout=settings.request_timeout_seconds,
            read_timeout=settings.request_timeout_seconds,
        ),
    }


def http_session(settings: VaultSettings) -> aiohttp.ClientSession:
    """The adapter's HTTP session, trusting `settings.ca_file` when set.

    Why not `connection_verify=ca_file` on each SDK client: azure-core then builds a new
    SSLContext for every request, and aiohttp keys its connection pool by that context,
    so no TLS connection was ever reused (13 ms per request against the emulator). One
    context in the connector keeps connections alive and is shared by the three clients.
    The other options mirror what azure-core sets on the sessions it creates.
    """
    verify: ssl.SSLContext | bool = True
    if settings.ca_file:
        verify = ssl.create_default_context(cafile=settings.ca_file)
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=verify),
        cookie_jar=aiohttp.DummyCookieJar(),
        # azure-core's ContentDecodePolicy decodes bodies itself.
        auto_decompress=False,
        trust_env=True,
    )


class KeyVaultAdapter(KeyCertificateCalls, KeyCryptoCalls):
    """One vault in one region, through the official SDK, rate-controlled."""

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
            # Entered first, closed last: after the SDK clients that use it.
            session = await stack.enter_async_context(http_session(settings))

            def options() -> dict[str, Any]:
                return sdk_client_options(settings, rate, ref.url, session)

            secrets = await stack.enter_async_context(
                SecretClient(ref.url, credential, **options())
            )
            keys = await stack.enter_async_context(KeyClient(ref.url, credential, **options()))
            certificates = await stack.enter_async_context(
                CertificateClient(ref.url, credential, **options())
            )

            def crypto(key_id: str) -> CryptographyClient:
                return CryptographyClient(key_id, credential, **options())

            adapter = cls(
                ref,
                secrets=secrets,
                keys=keys,
                certificates=certificates,
                rate=rate,
                crypto=crypto,
            )
            stack.push_async_callback(adapter._close_wrappers)
            yield adapter

    def _after_purge(self, kind: ItemKind, name: str | None = None) -> Callable[[VaultError], bool]:
        """Retry predicate: a 409 soon after this adapter purged `name` (or any of `kind`)."""

        def conflict_from_purge(exc: VaultError) -> bool:
            if not isinstance(exc, ItemConflict):
                return False
            horizon = time.monotonic() - PURGE_SETTLE_SECONDS
            return any(
                k == kind and (name is None or n == name) and at > horizon
                for (k, n), at in self._purged.items()
            )

        return conflict_from_purge

    # -- VaultClient ------------------------------------------------------------------

    async def list_items(self, kind: ItemKind) -> list[ItemProperties]:
        """Latest-version properties of every live item of `kind`.

        Key Vault's listing carries no version id (Azure lists `.../secrets/name`), so
        `version` is "" here; `updated_on` tells a change. `list_versions` has them.
        """
        return await self._collect("list_items", f"{kind.value}s", self._kinds[kind].items())

    async def list_versions(self, kind: ItemKind, name: str) -> list[ItemProperties]:
        """Every version, oldest first, the vault's current version always last.

        Key Vault stamps `created` in whole seconds, so versions written within one
        second tie. The sort is stable (ties keep the vault's listing order), and when
        the newest second holds several versions the vault is asked which one it serves
        as current (one extra GET): a mirror replaying this list must end on that one.
        """
        op = "list_versions"
        item = self._item(kind, name, op)
        calls = self._kinds[kind]
        versions = await self._collect(op, item, calls.versions(name))
        versions.sort(key=lambda p: p.created_on or _EPOCH)
        newest = [p for p in versions if p.created_on == versions[-1].created_on]
        if len(newest) > 1:
            try:
                current = await self._call(op, item, lambda: calls.current_version(name))
            except Forbidden:
                # A disabled current version cannot be read (403): the listing's order
                # is the best there is, and no value will be copied from it anyway.
                return versions
            versions.sort(key=lambda p: (p.created_on or _EPOCH, p.version == current))
        return versions

    async def get_secret(self, name: str, version: str | None = None) -> SecretValue:
        op = "get_secret"
        item = self._item(ItemKind.SECRET, name, op)
        secret = await self._call(op, item, lambda: self._secrets.get_secret(name, version))
        return SecretValue(
            properties=sdk.secret_properties(secret.properties), value=secret.value or ""
        )

    async def set_secret(self, name: str, value: str, attributes: Attributes) -> ItemProperties:
        op = "set_secret"
        item = self._item(ItemKind.SECRET, name, op)
        a = attributes
        secret = await self._call(
            op,
            item,
            lambda: self._secrets.set_secret(
                name,
                value,
                enabled=a.enabled,
                tags=dict(a.tags),
                content_type=a.content_type,
                not_before=a.not_before,
                expires_on=a.expires_on,
            ),
            redact=(value,),
            also_retry=self._after_purge(ItemKind.SECRET, name),
        )
        return sdk.secret_properties(secret.properties)

    async def update_properties(
        self, kind: ItemKind, name: str, version: str, attributes: Attributes
    ) -> ItemProperties:
        """Write `attributes` onto one version.

        Secrets take all five attributes; keys enabled, not-before, expiry and tags;
        certificates enabled and tags. A `None` date or content type leaves the vault's
        value as it is: the SDK sends no field for it.
        """
        op = "update_properties"
        item = self._item(kind, name, op)
        calls = self._kinds[kind]
        return await self._call(op, item, lambda: calls.update(name, version, attributes))

    async def delete_item(self, kind: ItemKind, name: str) -> None:
        """Soft-delete through the SDK's poller; returns once the vault lists it as deleted.

        Idempotent: an item that is already soft-deleted counts as success. That also
        covers a retry after a transient fault hit the poller once the delete went through.
        """
        op = "delete_item"
        item = self._item(kind, name, op)
        calls = self._kinds[kind]
        try:
            await self._call(op, item, lambda: calls.delete(name))
        except ItemNotFound:
            if await self.get_deleted(kind, name) is None:
                raise

    async def recover_item(self, kind: ItemKind, name: str) -> None:
        """Recover through the SDK's poller; returns once the item is live again.

        Idempotent: an item that is live and not soft-deleted counts as success.
        """
        op = "recover_item"
        item = self._item(kind, name, op)
        calls = self._kinds[kind]
        try:
            await self._call(op, item, lambda: calls.recover(name))
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
        item = self._item(kind, name, op)
        calls = self._kinds[kind]
        await self._call(op, item, lambda: calls.purge(name))
        now = time.monotonic()
        self._purged = {k: at for k, at in self._purged.items() if at > now - PURGE_SETTLE_SECONDS}
        self._purged[(kind, name)] = now

    async def list_deleted(self, kind: ItemKind) -> list[DeletedItem]:
        return await self._collect("list_deleted", f"{kind.value}s", self._kinds[kind].deleted())

    async def get_deleted(self, kind: ItemKind, name: str) -> DeletedItem | None:
        """The soft-deleted item, or None when `name` is not in the deleted state."""
        op = "get_deleted"
        item = self._item(kind, name, op)
        calls = self._kinds[kind]
        try:
            return await self._call(op, item, lambda: calls.get_deleted(name))
        except ItemNotFound:
            return None

    async def backup_item(self, kind: ItemKind, name: str) -> bytes:
        op = "backup_item"
        item = self._item(kind, name, op)
        calls = self._kinds[kind]
        return await self._call(op, item, lambda: calls.backup(name))

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
        calls = self._kinds[kind]
        return await self._call(
            op, item, lambda: calls.restore(blob), also_retry=self._after_purge(kind)
        )

    async def probe(self) -> None:
        """One page of one secret, no retry: a health check wants the answer now."""

        async def one_page() -> None:
            pages = self._secrets.list_properties_of_secrets(max_page_size=1).by_page()
            with suppress(StopAsyncIteration):
                await pages.__anext__()

        await self._call("probe", "", one_page, max_attempts=1)
