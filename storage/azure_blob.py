"""`BlobStore` over one Azure Blob Storage container (or Azurite), async.

Writes go to the account's primary endpoint. Reads (`get`, `list`) fall back to the
read-access secondary endpoint (RA-GZRS, or Azurite's `<account>-secondary`) when the
primary is unreachable; the fallback is logged once per outage, and for
`primary_retry_seconds` afterwards reads go straight to the secondary instead of paying
the primary's retries each time.

Every object is written with its Content-MD5 set from our own bytes, and every read
checks size and MD5 against what the service returns, so a bit flip anywhere between
our write and our read is `CorruptBlob`, not silently wrong data.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, Self, TypeVar

import structlog
from azure.core import MatchConditions
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import AzureError, HttpResponseError
from azure.storage.blob import ContentSettings
from azure.storage.blob.aio import BlobLeaseClient, ContainerClient, ExponentialRetry

from storage._azure_endpoints import Endpoints, resolve, safe_url
from storage._azure_errors import Operation, storage_error
from storage._names import check_blob_name, check_lease, check_metadata, check_prefix
from storage.errors import (
    BlobExists,
    BlobNotFound,
    CorruptBlob,
    LeaseHeld,
    StorageError,
    StorageUnavailable,
)
from storage.settings import AzureBlobSettings
from storage.store import Blob, BlobInfo, StoreLifecycle

T = TypeVar("T")
log = structlog.get_logger("kvdr.storage")


class AzureBlobStore(StoreLifecycle):
    """One container of an Azure storage account; use as `async with AzureBlobStore(...)`.

    `credential` is the async Azure credential used with `account_url` (or with a
    connection string that carries no key or SAS). The caller owns and closes it.
    `create_container` False: `open` does not try to create the container, so a reader
    holding only 'Storage Blob Data Reader' (an application following the control
    record) can open the store.
    """

    def __init__(
        self,
        settings: AzureBlobSettings,
        credential: AsyncTokenCredential | None = None,
        *,
        create_container: bool = True,
    ) -> None:
        self._settings = settings
        self._create_container = create_container
        self._endpoints: Endpoints = resolve(settings)
        self._credential: Any = self._endpoints.credential or credential
        if (
            settings.account_url is not None
            and credential is None
            and "?" not in (settings.account_url)
        ):
            raise ValueError("storage account_url needs an Azure credential (or a SAS in the URL)")
        self._primary: ContainerClient | None = None
        self._secondary: ContainerClient | None = None
        # monotonic deadline until which reads skip the primary; 0 = primary is healthy.
        self._primary_down_until = 0.0
        self._fallback_logged = False
        # Reads the secondary endpoint served (what was read may lag the primary: RA-GZRS
        # replicates asynchronously); commands say so.
        self.secondary_reads = 0

    # --- lifecycle ---------------------------------------------------------------

    @property
    def container_name(self) -> str:
        return self._settings.container

    @property
    def description(self) -> str:
        return f"azure-blob {safe_url(self._endpoints.primary)}/{self._settings.container}"

    @property
    def secondary_description(self) -> str | None:
        """The secondary read endpoint (no credentials), or None when there is none."""
        if self._endpoints.secondary is None:
            return None
        return f"{safe_url(self._endpoints.secondary)}/{self._settings.container}"

    def _client(self, account_url: str) -> ContainerClient:
        # The SDK's default retry (3 tries from 15 s, 20 s connect timeout) would hold a
        # read for about a minute before the secondary is tried.
        retry = ExponentialRetry(
            initial_backoff=1,
            increment_base=2,
            retry_total=self._settings.retries,
            random_jitter_range=1,
        )
        return ContainerClient(
            account_url,
            self._settings.container,
            credential=self._credential,
            retry_policy=retry,
            connection_timeout=self._settings.connect_timeout_seconds,
        )

    async def open(self) -> Self:
        """Create the SDK clients and the container when it is missing."""
        self._primary = self._client(self._endpoints.primary)
        if self._endpoints.secondary is not None:
            self._secondary = self._client(self._endpoints.secondary)
        if not self._create_container:
            return self
        try:
            await self._call("create_container", "", self._primary.create_container())
        except StorageUnavailable as exc:
            # Reads may still be served by the secondary (e.g. a restore during a
            # regional outage): opening must not require the primary, and the first
            # reads go straight to the secondary instead of paying the retries again.
            log.warning("storage.container_check_skipped", store=self.description, error=str(exc))
            if self._secondary is not None:
                self._fall_back("open", "", exc)
        except BlobExists:
            pass
        except BaseException:
            await self.close()
            raise
        return self

    async def close(self) -> None:
        for client in (self._primary, self._secondary):
            if client is not None:
                await client.close()
        self._primary = self._secondary = None

    def _require_primary(self) -> ContainerClient:
        if self._primary is None:
            raise RuntimeError(f"{self.description} is not open; use 'async with'")
        return self._primary

    async def _call(self, operation: Operation, blob: str, awaitable: Awaitable[T]) -> T:
        """Await a primary-endpoint request, mapping SDK errors (writes, leases)."""
        return await _call(operation, blob, awaitable, safe_url(self._endpoints.primary))

    # --- writes (primary only) -----------------------------------------------------

    async def put_if_absent(
        self, name: str, data: bytes, metadata: dict[str, str] | None = None
    ) -> BlobInfo:
        # overwrite=False makes the SDK send If-None-Match: *.
        return await self._upload("put_if_absent", name, data, metadata, overwrite=False)

    async def put(
        self,
        name: str,
        data: bytes,
        *,
        if_match: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> BlobInfo:
        return await self._upload("put", name, data, metadata, overwrite=True, if_match=if_match)

    async def _upload(
        self,
        operation: Operation,
        name: str,
        data: bytes,
        metadata: dict[str, str] | None,
        *,
        overwrite: bool,
        if_match: str | None = None,
    ) -> BlobInfo:
        check_blob_name(name)
        meta = check_metadata(metadata)
        result = await self._call(
            operation,
            name,
            self._require_primary()
            .get_blob_client(name)
            .upload_blob(
                data,
                overwrite=overwrite,
                metadata=meta,
                content_settings=_content_settings(data),
                validate_content=True,
                **_if_match(if_match),
            ),
        )
        return _info_from_upload(name, data, meta, result)

    async def delete(self, name: str, *, if_match: str | None = None) -> None:
        """Delete `name`; `BlobNotFound` when absent, `PreconditionFailed` on a stale ETag."""
        check_blob_name(name)
        await self._call(
            "delete",
            name,
            self._require_primary().delete_blob(
                name, delete_snapshots="include", **_if_match(if_match)
            ),
        )

    # --- reads (primary, then secondary) ---------------------------------------------

    async def get(self, name: str) -> Blob:
        check_blob_name(name)
        return await self._read("get", name, lambda client, at: _download(client, name, at))

    async def get_if_changed(self, name: str, etag: str) -> Blob | None:
        """`name` unless its ETag is still `etag`: then None, and the service answered
        304 without a body (If-None-Match), so polling an unchanged blob is cheap."""
        check_blob_name(name)
        return await self._read(
            "get", name, lambda client, at: _download_changed(client, name, at, etag)
        )

    async def list(self, prefix: str = "") -> list[BlobInfo]:
        check_prefix(prefix)
        return await self._read("list", prefix, lambda client, at: _list(client, prefix, at))

    def _fall_back(self, operation: str, blob: str, exc: StorageError) -> None:
        """Reads go to the secondary for `primary_retry_seconds`; logged once an outage."""
        self._primary_down_until = time.monotonic() + self._settings.primary_retry_seconds
        if not self._fallback_logged:
            self._fallback_logged = True
            log.warning(
                "storage.read_fallback",
                store=self.description,
                secondary=self.secondary_description,
                operation=operation,
                blob=blob,
                error=str(exc),
            )

    async def _read(
        self,
        operation: Operation,
        blob: str,
        attempt: Callable[[ContainerClient, str], Awaitable[T]],
    ) -> T:
        primary = self._require_primary()
        primary_at = safe_url(self._endpoints.primary)
        secondary = self._secondary
        secondary_at = safe_url(self._endpoints.secondary or "")
        if secondary is not None and time.monotonic() < self._primary_down_until:
            try:
                result = await attempt(secondary, secondary_at)
            except StorageUnavailable:
                secondary = None  # down too: see whether the primary is back
            else:
                self.secondary_reads += 1
                return result
        try:
            result = await attempt(primary, primary_at)
        except StorageUnavailable as primary_exc:
            if secondary is None:
                if self._secondary is not None:
                    raise _both_down(operation, blob) from primary_exc
                raise
            self._fall_back(operation, blob, primary_exc)
            try:
                result = await attempt(secondary, secondary_at)
            except StorageUnavailable as secondary_exc:
                raise _both_down(operation, blob) from secondary_exc
            self.secondary_reads += 1
            return result
        if self._fallback_logged:
            self._fallback_logged = False
            self._primary_down_until = 0.0
            log.info("storage.primary_back", store=self.description)
        return result

    # --- leases -------------------------------------------------------------------------

    async def acquire_lease(self, name: str, lease_id: str, seconds: int) -> None:
        check_blob_name(name)
        check_lease(lease_id, seconds)
        client = self._require_primary()
        for _ in range(3):
            # Already there (and perhaps leased) is fine: the acquire below decides.
            with contextlib.suppress(BlobExists, LeaseHeld):
                await self.put_if_absent(name, b"")
            try:
                await self._call(
                    "acquire_lease",
                    name,
                    BlobLeaseClient(client.get_blob_client(name), lease_id).acquire(
                        lease_duration=seconds
                    ),
                )
                return
            except BlobNotFound:
                continue  # deleted between create and acquire: create it again
        raise StorageError(f"acquire_lease {name!r}: the blob keeps disappearing", blob=name)

    async def renew_lease(self, name: str, lease_id: str) -> None:
        check_blob_name(name)
        check_lease(lease_id)
        client = self._require_primary().get_blob_client(name)
        await self._call("renew_lease", name, BlobLeaseClient(client, lease_id).renew())

    async def release_lease(self, name: str, lease_id: str) -> None:
        """Give the lease up; `LeaseLost` when another holder has it by now."""
        check_blob_name(name)
        check_lease(lease_id)
        client = self._require_primary().get_blob_client(name)
        await self._call("release_lease", name, BlobLeaseClient(client, lease_id).release())


async def _call(operation: Operation, blob: str, awaitable: Awaitable[T], endpoint: str) -> T:
    try:
        return await awaitable
    except AzureError as exc:
        raise storage_error(exc, operation=operation, blob=blob, endpoint=endpoint) from exc


def _both_down(operation: Operation, blob: str) -> StorageUnavailable:
    where = f"{operation} {blob!r}" if blob else operation
    return StorageUnavailable(
        f"{where}: primary and secondary storage endpoints are both unreachable", blob=blob
    )


def _if_match(etag: str | None) -> dict[str, Any]:
    """The SDK's keyword arguments for If-Match on `etag`; none without one."""
    if etag is None:
        return {}
    return {"etag": etag, "match_condition": MatchConditions.IfNotModified}


def _content_settings(data: bytes) -> ContentSettings:
    return ContentSettings(
        content_type="application/octet-stream",
        content_md5=bytearray(hashlib.md5(data, usedforsecurity=False).digest()),
    )


def _info_from_upload(
    name: str, data: bytes, metadata: dict[str, str], result: dict[str, Any]
) -> BlobInfo:
    return BlobInfo(
        name=name,
        size=len(data),
        etag=_quoted_etag(str(result["etag"])),
        last_modified=result.get("last_modified"),
        metadata=metadata,
    )


async def _download(client: ContainerClient, name: str, endpoint: str) -> Blob:
    blob = await _download_changed(client, name, endpoint, None)
    assert blob is not None  # only a conditional read answers "not modified"
    return blob


async def _download_changed(
    client: ContainerClient, name: str, endpoint: str, if_none_match: str | None
) -> Blob | None:
    """The blob, or None when `if_none_match` is given and still its ETag (304)."""
    condition: dict[str, Any] = {}
    if if_none_match is not None:
        condition = {"etag": if_none_match, "match_condition": MatchConditions.IfModified}

    async def fetch() -> tuple[Any, bytes] | None:
        try:
            downloader = await client.download_blob(name, max_concurrency=1, **condition)
        except HttpResponseError as exc:
            # The storage SDK answers a 304 as a plain HttpResponseError
            # (ConditionNotMet), not always as ResourceNotModifiedError.
            if if_none_match is not None and exc.status_code == 304:
                return None
            raise
        return downloader.properties, await downloader.readall()

    fetched = await _call("get", name, fetch(), endpoint)
    if fetched is None:
        return None
    props, data = fetched
    if props.size != len(data):
        raise CorruptBlob(
            f"get {name!r}: read {len(data)} bytes, the service says {props.size}", blob=name
        )
    stored_md5 = props.content_settings.content_md5
    if stored_md5 and bytes(stored_md5) != hashlib.md5(data, usedforsecurity=False).digest():
        raise CorruptBlob(f"get {name!r}: content MD5 does not match the bytes read", blob=name)
    info = BlobInfo(
        name=name,
        size=len(data),
        etag=_quoted_etag(str(props.etag)),
        last_modified=props.last_modified,
        metadata=dict(props.metadata or {}),
    )
    return Blob(info=info, data=data)


def _quoted_etag(etag: str) -> str:
    # Listings carry the ETag bare, headers carry it quoted: one form for comparisons.
    return etag if etag.startswith('"') else f'"{etag}"'


async def _list(client: ContainerClient, prefix: str, endpoint: str) -> list[BlobInfo]:
    async def collect() -> list[BlobInfo]:
        found = []
        async for item in client.list_blobs(name_starts_with=prefix or None, include=["metadata"]):
            found.append(
                BlobInfo(
                    name=item.name,
                    size=int(item.size or 0),
                    etag=_quoted_etag(str(item.etag)),
                    last_modified=item.last_modified,
                    metadata=dict(item.metadata or {}),
                )
            )
        return found

    found = await _call("list", prefix, collect(), endpoint)
    return sorted(found, key=lambda info: info.name)
