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
`delete_item` / `recover_item` retry idempotently. The key and certificate calls beyond
the per-kind basics (policies, import, issuers, contacts) come from the mixin in
`vault._key_certificate_calls`.
"""

from __future__ import annotations

import re
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from datetime import UTC, datetime
from typing import Any, TypeVar

import aiohttp
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import AzureError
from azure.core.pipeline.transport import AioHttpTransport
from azure.keyvault.certificates.aio import CertificateClient
from azure.keyvault.keys.aio import KeyClient
from azure.keyvault.keys.crypto import KeyWrapAlgorithm
from azure.keyvault.keys.crypto.aio import CryptographyClient
from azure.keyvault.secrets.aio import SecretClient

from vault import _sdk_models as sdk
from vault import metrics
from vault._azure_errors import map_azure_error
from vault._key_certificate_calls import KeyCertificateCalls
from vault._key_signing import KeySigningCalls
from vault._kinds import CertificateCalls, KeyCalls, KindCalls, Listing, SecretCalls
from vault._rate_policy import CURRENT_OP, RateControlPolicy
from vault.errors import BadRequest, Forbidden, ItemConflict, ItemNotFound, VaultError
from vault.models import (
    Attributes,
    DeletedItem,
    ItemKind,
    ItemProperties,
    SecretValue,
    VaultRef,
    WrappedKey,
)
from vault.rate import RateController
from vault.settings import VaultSettings

T = TypeVar("T")
R = TypeVar("R")

# Key Vault object names: 1-127 letters, digits and hyphens.
_NAME = re.compile(r"[0-9A-Za-z-]{1,127}")
_EPOCH = datetime.min.replace(tzinfo=UTC)
# Key Vault keeps answering 409 for a name for a few seconds after it was purged (1-5 s,
# DESIGN.md): within this long after our own purge, a 409 is retried with backoff.
PURGE_SETTLE_SECONDS = 30.0
# The one key-wrap algorithm kvdr uses with vault keys (RSA keys only).
WRAP_ALGORITHM = KeyWrapAlgorithm.rsa_oaep_256
# How long a wrapping client (holding the key's public half) is reused: wrapping is then
# local, no request per object; a rotated key is picked up within this time.
WRAPPER_SECONDS = 300.0


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


class KeyVaultAdapter(KeyCertificateCalls, KeySigningCalls):
    """One vault in one region, through the official SDK, rate-controlled."""

    def __init__(
        self,
        ref: VaultRef,
        *,
        secrets: SecretClient,
        keys: KeyClient,
        certificates: CertificateClient,
        rate: RateController,
        crypto: Callable[[str], CryptographyClient] | None = None,
    ) -> None:
        self._ref = ref
        # Builds a CryptographyClient for one key id with this adapter's transport and
        # rate control (wrap_key / unwrap_key); None when built without `open`.
        self._crypto = crypto
        # key id -> (monotonic time made, client) of clients that wrap with a current key.
        self._wrappers: dict[str, tuple[float, CryptographyClient]] = {}
        self._secrets = secrets
        # Rotation and certificate policies, import, issuers, contacts (KeyCertificateCalls).
        self._keys = keys
        self._certificates = certificates
        self._rate = rate
        self._kinds: dict[ItemKind, KindCalls] = {
            ItemKind.SECRET: SecretCalls(secrets),
            ItemKind.KEY: KeyCalls(keys),
            ItemKind.CERTIFICATE: CertificateCalls(certificates),
        }
        self._purged: dict[tuple[ItemKind, str], float] = {}

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

    @property
    def ref(self) -> VaultRef:
        return self._ref

    @property
    def rate(self) -> RateController:
        """This vault's rate control (limits, 429 counts) for status pages and tests."""
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
        also_retry: Callable[[VaultError], bool] | None = None,
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

        return await self._rate.run(
            op, once, item=item, max_attempts=max_attempts, also_retry=also_retry
        )

    async def _collect(self, op: str, item: str, listing: Listing[R]) -> list[R]:
        """Every entry of a paged listing; each page is one retried call."""
        pages = listing.pager().by_page()

        async def next_page() -> list[Any] | None:
            # A failed page leaves the iterator at the same continuation token, so
            # calling it again retries that page, not the listing from the start.
            try:
                page = await pages.__anext__()
            except StopAsyncIteration:
                return None
            return [x async for x in page]

        out: list[R] = []
        while (batch := await self._call(op, item, next_page)) is not None:
            out.extend(listing.convert(x) for x in batch)
        return out

    def _item(self, kind: ItemKind, name: str, op: str) -> str:
        """`kind/name` for messages, after checking the name (no request for a bad one)."""
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

    async def wrap_key(self, name: str, key: bytes, version: str | None = None) -> WrappedKey:
        """RSA-OAEP-256 wrap of `key` with vault key `name` (current version unless given).

        The SDK fetches the public key once per client and wraps locally when the key
        allows it (one GET), else asks the vault. A client is reused for
        `WRAPPER_SECONDS`, so a rotated key's new version is used from then on.
        """
        op = "wrap_key"
        item = self._item(ItemKind.KEY, name, op)
        key_id = f"{self._ref.url}/keys/{name}" + (f"/{version}" if version else "")

        async def wrap() -> WrappedKey:
            client = await self._wrapper(op, key_id)
            try:
                result = await client.wrap_key(WRAP_ALGORITHM, bytes(key))
            except BaseException:
                # A client that failed is not reused (the key may be gone or disabled).
                await self._drop_wrapper(key_id)
                raise
            return WrappedKey(
                key_id=str(result.key_id or client.key_id or key_id),
                algorithm=str(getattr(result.algorithm, "value", result.algorithm)),
                encrypted_key=bytes(result.encrypted_key),
            )

        return await self._call(op, item, wrap)

    async def unwrap_key(self, name: str, version: str, wrapped: bytes) -> bytes:
        """RSA-OAEP-256 unwrap with one version of vault key `name` (done by the vault:
        the private half never leaves it)."""
        op = "unwrap_key"
        item = self._item(ItemKind.KEY, name, op)
        if not version or "/" in version:
            raise BadRequest(
                f"{op} {item} on vault {self._ref.label}: a key version is required",
                vault=self._ref.label,
                op=op,
                code="InvalidVersion",
            )
        key_id = f"{self._ref.url}/keys/{name}/{version}"

        async def unwrap() -> bytes:
            async with self._crypto_client(op, key_id) as client:
                result = await client.unwrap_key(WRAP_ALGORITHM, bytes(wrapped))
            return bytes(result.key)

        return await self._call(op, item, unwrap)

    async def _wrapper(self, op: str, key_id: str) -> CryptographyClient:
        made = self._wrappers.get(key_id)
        if made is not None and time.monotonic() - made[0] < WRAPPER_SECONDS:
            return made[1]
        await self._drop_wrapper(key_id)
        client = self._crypto_client(op, key_id)
        self._wrappers[key_id] = (time.monotonic(), client)
        return client

    async def _drop_wrapper(self, key_id: str) -> None:
        made = self._wrappers.pop(key_id, None)
        if made is not None:
            await made[1].close()

    async def _close_wrappers(self) -> None:
        for key_id in list(self._wrappers):
            await self._drop_wrapper(key_id)

    def _crypto_client(self, op: str, key_id: str) -> CryptographyClient:
        if self._crypto is None:
            raise VaultError(
                f"{op} on vault {self._ref.label}: this adapter was not opened with "
                "KeyVaultAdapter.open (no credential for key operations)",
                vault=self._ref.label,
                op=op,
            )
        return self._crypto(key_id)

    async def probe(self) -> None:
        """One page of one secret, no retry: a health check wants the answer now."""

        async def one_page() -> None:
            pages = self._secrets.list_properties_of_secrets(max_page_size=1).by_page()
            with suppress(StopAsyncIteration):
                await pages.__anext__()

        await self._call("probe", "", one_page, max_attempts=1)
