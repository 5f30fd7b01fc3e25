"""The adapter's cryptographic calls with vault keys: `wrap_key` / `unwrap_key` (RSA-OAEP-256,
for the backups' envelope encryption) and `sign` / `verify` (ES256 on EC P-256 keys,
PS256 on RSA keys, for signed backups).

`KeyCryptoCalls` is one part of `KeyVaultAdapter` over `AdapterCore` (retry, rate
control, error mapping, name check, CryptographyClients on the adapter's transport). The
private half of a key never leaves the vault; a signature or a wrapped key names the
exact key version that made it.
"""

from __future__ import annotations

import time

from azure.keyvault.keys.crypto import KeyWrapAlgorithm, SignatureAlgorithm
from azure.keyvault.keys.crypto.aio import CryptographyClient

from vault._core import AdapterCore
from vault.errors import BadRequest
from vault.models import ItemKind, Signature, WrappedKey

# The one key-wrap algorithm kvdr uses with vault keys (RSA keys only).
WRAP_ALGORITHM = KeyWrapAlgorithm.rsa_oaep_256
# How long a wrapping client (holding the key's public half) is reused: wrapping is then
# local, no request per object; a rotated key is picked up within this time.
WRAPPER_SECONDS = 300.0
# The algorithms kvdr signs with: both take a SHA-256 digest.
SIGNING_ALGORITHMS = {"ES256": SignatureAlgorithm.es256, "PS256": SignatureAlgorithm.ps256}
SHA256_BYTES = 32


class KeyCryptoCalls(AdapterCore):
    """Wrap, unwrap, sign and verify with vault keys (see the module docstring)."""

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
        key_id = self._versioned_key_id(op, item, name, version)

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
        key_id = self._versioned_key_id(op, item, name, version)

        async def verify() -> bool:
            async with self._crypto_client(op, key_id) as client:
                result = await client.verify(chosen, bytes(digest), bytes(signature))
            return bool(result.is_valid)

        return await self._call(op, item, verify)

    def _versioned_key_id(self, op: str, item: str, name: str, version: str) -> str:
        """The id of one exact version of key `name`: unwrap and verify must name the
        version that wrapped or signed (no request without one)."""
        if not version or "/" in version:
            raise BadRequest(
                f"{op} {item} on vault {self._ref.label}: a key version is required",
                vault=self._ref.label,
                op=op,
                code="InvalidVersion",
            )
        return f"{self._ref.url}/keys/{name}/{version}"
