"""`FailoverSecretClient`: secret reads for applications that follow the active region.

An application reads secrets through this client instead of one region's
`azure.keyvault.secrets.aio.SecretClient`; the read methods have the SDK's names and
signatures and return the SDK's own types. What it adds:

- It follows the pair's control record (`failover.record_follower`): refreshed every
  `refresh_seconds` with an ETag-conditional read, so an unchanged record costs a 304.
  A record it cannot read keeps the last one it had.
- Reads go to the active region's vault; on a connection failure, no answer or a 5xx
  they go to the other regions in the configured order, each region behind a circuit
  breaker (`failover._breaker`) so a dead region is not asked on every read.
- When every region fails, `get_secret` serves the last value it read from a bounded
  in-memory cache (LRU, `cache_max_entries`, `cache_ttl_seconds`), logs `client.stale`
  with the item's name (never its value) and counts it in `stats.stale_served`; past
  the TTL it raises `SecretUnavailable` naming the item and what each region said.

A 4xx (404 not found, 403 forbidden) is the vault's answer and is raised as the SDK
raised it, without trying another region: the regions mirror each other, so another
region would answer the same, and a 404 must not be hidden by a stale value.
`FailoverSecretClientSync` is the same client for code without an event loop.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from concurrent.futures import Future
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self, TypeVar

import structlog
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.pipeline.transport import AioHttpTransport
from azure.keyvault.secrets import KeyVaultSecret, SecretProperties
from azure.keyvault.secrets.aio import SecretClient

from failover._breaker import CircuitBreaker
from failover._secret_cache import SecretCache
from failover.record_follower import RecordFollower
from storage.azure_blob import AzureBlobStore
from storage.open import open_store
from storage.settings import AzureBlobSettings, StorageSettings
from storage.store import BlobStore
from vault._azure_errors import region_unavailable
from vault.adapter import http_session
from vault.settings import VaultSettings

log = structlog.get_logger("kvdr.failover.client")
T = TypeVar("T")


@dataclass(frozen=True)
class FailoverClientSettings:
    """What an application's `FailoverSecretClient` needs.

    `vaults`: region -> vault URL, in the order regions are tried after the active one.
    `primary`: the region read before any transition was ever recorded (the pair's
    configured primary); default the first of `vaults`. `control_stores`: the same
    stores kvdr keeps the pair's control record in (one or three; read access is
    enough). `ca_file`: a CA bundle to trust (the local emulator's); None = system trust.
    """

    pair: str
    vaults: Mapping[str, str]
    control_stores: tuple[StorageSettings, ...]
    primary: str | None = None
    refresh_seconds: float = 10.0
    cache_ttl_seconds: float = 300.0
    cache_max_entries: int = 1000
    breaker_failures: int = 3
    breaker_cooldown_seconds: float = 30.0
    request_timeout_seconds: float = 5.0
    store_timeout_seconds: float = 5.0
    ca_file: str | None = None
    verify_challenge_resource: bool = True

    def __post_init__(self) -> None:
        if not self.vaults:
            raise ValueError("failover client vaults: at least one region -> vault URL")
        for region, url in self.vaults.items():
            if not url.startswith("https://"):
                raise ValueError(f"failover client vaults.{region}: must be an https:// URL")
        if self.primary is not None and self.primary not in self.vaults:
            raise ValueError(f"failover client primary {self.primary!r} is not one of vaults")
        if len(self.control_stores) not in (1, 3):
            raise ValueError(
                f"failover client control_stores: one or three, got {len(self.control_stores)}"
            )
        for name in (
            "refresh_seconds",
            "cache_ttl_seconds",
            "breaker_cooldown_seconds",
            "request_timeout_seconds",
            "store_timeout_seconds",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"failover client {name} must be a number > 0")
        for name in ("cache_max_entries", "breaker_failures"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"failover client {name} must be an integer >= 1")

    @property
    def first_region(self) -> str:
        return self.primary or next(iter(self.vaults))


@dataclass
class ClientStats:
    """What the client did, for an application's own metrics (`kvdr_client_*`)."""

    reads: dict[str, int] = field(default_factory=dict)
    region_failures: dict[str, int] = field(default_factory=dict)
    fallbacks: int = 0
    stale_served: int = 0
    unavailable: int = 0


class SecretUnavailable(Exception):
    """No region could serve the item and the cache holds no value young enough.

    `problems`: region -> why (no values, ever)."""

    def __init__(self, name: str, problems: Mapping[str, str]) -> None:
        detail = "; ".join(f"{region}: {why}" for region, why in problems.items())
        super().__init__(
            f"secret {name!r}: no region could serve it and no cached value ({detail})"
        )
        self.name = name
        self.problems = dict(problems)


class FailoverSecretClient:
    """`async with FailoverSecretClient(settings, credential) as client:`

    `credential` authenticates to the vaults and, for stores given by `account_url`, to
    the control stores (`storage_credential` when that is another identity). `clock`:
    monotonic seconds, injectable for tests.
    """

    def __init__(
        self,
        settings: FailoverClientSettings,
        credential: AsyncTokenCredential,
        *,
        storage_credential: AsyncTokenCredential | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._credential = credential
        self._storage_credential = storage_credential or credential
        self._clock = clock
        self._stack = AsyncExitStack()
        self._clients: dict[str, SecretClient] = {}
        self._breakers = {
            region: CircuitBreaker(
                settings.breaker_failures, settings.breaker_cooldown_seconds, clock
            )
            for region in settings.vaults
        }
        self._cache: SecretCache[tuple[str, str | None], KeyVaultSecret] = SecretCache(
            settings.cache_max_entries, settings.cache_ttl_seconds, clock
        )
        self._follower: RecordFollower | None = None
        self._refreshed_at: float | None = None
        self._refresh_lock = asyncio.Lock()
        self.stats = ClientStats()

    # -- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        async with AsyncExitStack() as stack:
            stores: list[BlobStore] = []
            for store_settings in self.settings.control_stores:
                stores.append(await stack.enter_async_context(self._open_store(store_settings)))
            self._follower = RecordFollower(
                stores, self.settings.pair, self.settings.store_timeout_seconds
            )
            vault_settings = VaultSettings(
                ca_file=self.settings.ca_file,
                request_timeout_seconds=self.settings.request_timeout_seconds,
            )
            session = await stack.enter_async_context(http_session(vault_settings))
            timeout = self.settings.request_timeout_seconds
            for region, url in self.settings.vaults.items():
                self._clients[region] = await stack.enter_async_context(
                    SecretClient(
                        url,
                        self._credential,
                        # Fallback is this client's job: SDK retries would hold a read
                        # on a dead region for its whole backoff before another is tried.
                        retry_total=0,
                        verify_challenge_resource=self.settings.verify_challenge_resource,
                        transport=AioHttpTransport(
                            session=session,
                            session_owner=False,
                            connection_timeout=timeout,
                            read_timeout=timeout,
                        ),
                    )
                )
            await self.refresh()
            self._stack = stack.pop_all()
        return self

    def _open_store(self, settings: StorageSettings) -> AbstractAsyncContextManager[BlobStore]:
        if isinstance(settings, AzureBlobSettings):
            # An application holds read access only: no container creation on open.
            return AzureBlobStore(settings, self._storage_credential, create_container=False)
        return open_store(settings)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._stack.aclose()
        self._clients.clear()

    # -- the active region ---------------------------------------------------------------

    @property
    def active_region(self) -> str:
        """The region the control record names active (the configured primary before
        any transition, or while no record was ever readable)."""
        record = self._follower.record if self._follower is not None else None
        if record is not None and record.active_region in self.settings.vaults:
            return record.active_region
        return self.settings.first_region

    @property
    def epoch(self) -> int:
        record = self._follower.record if self._follower is not None else None
        return record.epoch if record is not None else 0

    async def refresh(self) -> None:
        """Read the control record now (reads do this every `refresh_seconds`)."""
        if self._follower is None:
            raise RuntimeError("FailoverSecretClient is not open; use 'async with'")
        async with self._refresh_lock:
            before = self.active_region
            followed = await self._follower.refresh()
            self._refreshed_at = self._clock()
            if (
                followed.record is not None
                and followed.record.active_region not in self.settings.vaults
            ):
                log.error(
                    "client.unknown_region",
                    pair=self.settings.pair,
                    region=followed.record.active_region,
                    epoch=followed.record.epoch,
                )
            if self.active_region != before:
                log.info(
                    "client.active_region",
                    pair=self.settings.pair,
                    region=self.active_region,
                    previous=before,
                    epoch=self.epoch,
                )

    async def _refresh_if_due(self) -> None:
        at = self._refreshed_at
        if at is None or self._clock() - at >= self.settings.refresh_seconds:
            await self.refresh()

    def _order(self) -> list[str]:
        active = self.active_region
        return [active, *(r for r in self.settings.vaults if r != active)]

    @property
    def follower(self) -> RecordFollower:
        if self._follower is None:
            raise RuntimeError("FailoverSecretClient is not open; use 'async with'")
        return self._follower

    def breaker_state(self, region: str) -> str:
        return self._breakers[region].state

    # -- reads ---------------------------------------------------------------------------

    async def _each_region(
        self, what: str, call: Callable[[SecretClient], Awaitable[T]]
    ) -> tuple[T | None, dict[str, str]]:
        """The first region's answer (active first); None and each region's problem
        when none could serve. A 4xx is raised as the SDK raised it."""
        await self._refresh_if_due()
        problems: dict[str, str] = {}
        for index, region in enumerate(self._order()):
            breaker = self._breakers[region]
            if not breaker.allow():
                problems[region] = "circuit open after repeated failures"
                continue
            try:
                result = await call(self._clients[region])
            except Exception as exc:
                if not region_unavailable(exc):
                    breaker.succeeded()  # it answered: the region is up
                    raise
                breaker.failed()
                self.stats.region_failures[region] = self.stats.region_failures.get(region, 0) + 1
                problems[region] = type(exc).__name__
                log.warning(
                    "client.region_failed",
                    region=region,
                    read=what,
                    error=type(exc).__name__,
                    breaker=breaker.state,
                )
                continue
            breaker.succeeded()
            self.stats.reads[region] = self.stats.reads.get(region, 0) + 1
            if index:
                self.stats.fallbacks += 1
            return result, problems
        return None, problems

    async def get_secret(
        self, name: str, version: str | None = None, **kwargs: Any
    ) -> KeyVaultSecret:
        """The secret from the first region that answers; the cached value (within its
        TTL) when none does; `SecretUnavailable` otherwise."""
        secret, problems = await self._each_region(
            f"get {name}", lambda client: client.get_secret(name, version, **kwargs)
        )
        key = (name, version)
        if secret is not None:
            self._cache.put(key, secret)
            return secret
        cached = self._cache.get(key)
        if cached is None:
            self.stats.unavailable += 1
            raise SecretUnavailable(name, problems)
        value, age = cached
        self.stats.stale_served += 1
        log.warning("client.stale", name=name, version=version, age_seconds=round(age, 3))
        return value

    async def list_properties_of_secrets(self, **kwargs: Any) -> AsyncIterator[SecretProperties]:
        """Every secret's properties (no values), listed whole from one region."""

        async def listed(client: SecretClient) -> list[SecretProperties]:
            return [p async for p in client.list_properties_of_secrets(**kwargs)]

        found, problems = await self._each_region("list secrets", listed)
        if found is None:
            raise SecretUnavailable("(list of secrets)", problems)
        for properties in found:
            yield properties

    async def list_properties_of_secret_versions(
        self, name: str, **kwargs: Any
    ) -> AsyncIterator[SecretProperties]:
        """Every version's properties of secret `name`, listed whole from one region."""

        async def listed(client: SecretClient) -> list[SecretProperties]:
            return [p async for p in client.list_properties_of_secret_versions(name, **kwargs)]

        found, problems = await self._each_region(f"list versions of {name}", listed)
        if found is None:
            raise SecretUnavailable(name, problems)
        for properties in found:
            yield properties


class FailoverSecretClientSync:
    """`FailoverSecretClient` for code without an event loop: the async client runs on
    a loop in a thread of its own, and every method may be called from any thread.

    `with FailoverSecretClientSync(settings, credential) as client: client.get_secret(n)`
    """

    def __init__(
        self,
        settings: FailoverClientSettings,
        credential: AsyncTokenCredential,
        *,
        storage_credential: AsyncTokenCredential | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="kvdr-failover-client", daemon=True
        )
        self._thread.start()
        self._client = FailoverSecretClient(
            settings, credential, storage_credential=storage_credential, clock=clock
        )
        self._opened = False
        # Longest a call can take: every region once, plus a refresh of the record.
        self._timeout = (
            settings.request_timeout_seconds * (len(settings.vaults) + 1)
            + settings.store_timeout_seconds * 2
        )

    def _run(self, work: Awaitable[T]) -> T:
        async def wrapped() -> T:
            return await work

        future: Future[T] = asyncio.run_coroutine_threadsafe(wrapped(), self._loop)
        return future.result(self._timeout)

    def open(self) -> Self:
        self._run(self._client.__aenter__())
        self._opened = True
        return self

    def close(self) -> None:
        try:
            if self._opened:
                self._run(self._client.close())
        finally:
            self._opened = False
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def async_client(self) -> FailoverSecretClient:
        return self._client

    @property
    def active_region(self) -> str:
        return self._client.active_region

    def refresh(self) -> None:
        self._run(self._client.refresh())

    def get_secret(self, name: str, version: str | None = None, **kwargs: Any) -> KeyVaultSecret:
        return self._run(self._client.get_secret(name, version, **kwargs))

    def list_properties_of_secrets(self, **kwargs: Any) -> list[SecretProperties]:
        async def collect() -> list[SecretProperties]:
            return [p async for p in self._client.list_properties_of_secrets(**kwargs)]

        return self._run(collect())

    def list_properties_of_secret_versions(
        self, name: str, **kwargs: Any
    ) -> list[SecretProperties]:
        async def collect() -> list[SecretProperties]:
            return [
                p async for p in self._client.list_properties_of_secret_versions(name, **kwargs)
            ]

        return self._run(collect())
