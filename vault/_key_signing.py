"""The adapter's signing calls: `sign` a digest with a vault key and `verify` a signature
(ES256 on EC P-256 keys, PS256 on RSA keys).

`KeySigningCalls` is a mixin of `KeyVaultAdapter`, like `KeyCertificateCalls`: it uses
the adapter's `_call` (retry, rate control, error mapping), `_item` (name check) and
`_crypto_client` (a CryptographyClient on the adapter's transport). The private half of
the key never leaves the vault; the signature names the exact key version that made it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, TypeVar

from azure.keyvault.keys.crypto import SignatureAlgorithm
from azure.keyvault.keys.crypto.aio import CryptographyClient

from vault.errors import BadRequest, VaultError
from vault.models import ItemKind, Signature, VaultRef

T = TypeVar("T")
# The algorithms kvdr signs with: both take a SHA-256 digest.
SIGNING_ALGORITHMS = {"ES256": SignatureAlgorithm.es256, "PS256": SignatureAlgorithm.ps256}
SHA256_BYTES = 32


class KeySigningCalls:
    """Sign and verify with vault keys (see the module docstring)."""

    _ref: VaultRef

    if TYPE_CHECKING:  # provided by KeyVaultAdapter

        async def _call(
            self,
            op: str,
            item: str,
            fn: Callable[[], Awaitable[T]],
            *,
            redact: Iterable[str] = (),
            max_attempts: int | None = None,
            also_retry: Callable[[VaultError], bool] | None = None,
        ) -> T: ...

        def _item(self, kind: ItemKind, name: str, op: str) -> str: ...

        def _crypto_client(self, op: str, key_id: str) -> CryptographyClient: ...

    def _signing_input(self, op: str, algorithm: str, digest: bytes) -> SignatureAlgorithm:
        chosen = SIGNING_ALGORITHMS.get(algorithm)
        if chosen is None:
            raise BadRequest(
                f"{op} on vault {self._ref.label}: algorithm {algorithm!r} is not one of "
                f"{', '.join(SIGNING_ALGORITHMS)}",
                vault=self._ref.label,
                op=op,
                code="BadParameter",
            )
        if not isinstance(digest, bytes | bytearray) or len(digest) != SHA256_BYTES:
            raise BadRequest(
                f"{op} on vault {self._ref.label}: the digest must be a SHA-256 digest "
                f"({SHA256_BYTES} bytes)",
                vault=self._ref.label,
                op=op,
                code="BadParameter",
            )
        return chosen

    async def sign(
        self, name: str, algorithm: str, digest: bytes, version: str | None = None
    ) -> Signature:
        """Sign a SHA-256 `digest` with vault key `name` (its current version unless
        `version`); one request, the vault holds the private half."""
        op = "sign"
        item = self._item(ItemKind.KEY, name, op)
        chosen = self._signing_input(op, algorithm, digest)
        key_id = f"{self._ref.url}/keys/{name}" + (f"/{version}" if version else "")

        async def sign() -> Signature:
            async with self._crypto_client(op, key_id) as client:
                result = await client.sign(chosen, bytes(digest))
            return Signature(
                key_id=str(result.key_id or key_id),
                algorithm=algorithm,
                value=bytes(result.signature),
            )

        return await self._call(op, item, sign)

    async def verify(
        self, name: str, version: str, algorithm: str, digest: bytes, signature: bytes
    ) -> bool:
        """True when `signature` over `digest` was made by that version of key `name`."""
        op = "verify"
        item = self._item(ItemKind.KEY, name, op)
        chosen = self._signing_input(op, algorithm, digest)
        if not version or "/" in version:
            raise BadRequest(
                f"{op} {item} on vault {self._ref.label}: a key version is required",
                vault=self._ref.label,
                op=op,
                code="InvalidVersion",
            )
        key_id = f"{self._ref.url}/keys/{name}/{version}"

        async def verify() -> bool:
            async with self._crypto_client(op, key_id) as client:
                result = await client.verify(chosen, bytes(digest), bytes(signature))
            return bool(result.is_valid)

        return await self._call(op, item, verify)
