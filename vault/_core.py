"""What every call of `KeyVaultAdapter` goes through: the SDK clients of one vault, its
rate control, and the plumbing that makes all calls behave alike.

`AdapterCore._call` runs one SDK call inside `RateController.run()` (retry with backoff,
rate control, metrics) and maps SDK errors to `vault.errors`; `_collect` pages a listing
with one retried call per page; `_item` checks a name before any request. The adapter's
parts (items in `adapter`, key crypto in `_key_crypto`, key and certificate
administration in `_key_certificate_calls`) are subclasses of this one class, so they
share these calls instead of reaching into each other.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from azure.core.exceptions import AzureError
from azure.keyvault.certificates.aio import CertificateClient
from azure.keyvault.keys.aio import KeyClient
from azure.keyvault.keys.crypto.aio import CryptographyClient
from azure.keyvault.secrets.aio import SecretClient

from vault._azure_errors import map_azure_error
from vault._kinds import CertificateCalls, KeyCalls, KindCalls, Listing, SecretCalls
from vault._rate_policy import CURRENT_OP
from vault.errors import BadRequest, VaultError
from vault.models import ItemKind, VaultRef
from vault.rate import RateController

T = TypeVar("T")
R = TypeVar("R")

# Key Vault object names: 1-127 letters, digits and hyphens.
_NAME = re.compile(r"[0-9A-Za-z-]{1,127}")


class AdapterCore:
    """One vault's SDK clients and rate control, and the calls every part makes."""

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

    def _crypto_client(self, op: str, key_id: str) -> CryptographyClient:
        if self._crypto is None:
            raise VaultError(
                f"{op} on vault {self._ref.label}: this adapter was not opened with "
                "KeyVaultAdapter.open (no credential for key operations)",
                vault=self._ref.label,
                op=op,
            )
        return self._crypto(key_id)
