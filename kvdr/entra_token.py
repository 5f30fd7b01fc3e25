"""Event Grid's Entra ID authenticated delivery: the bearer token of each POST, checked.

Event Grid can deliver to a webhook with `Authorization: Bearer <JWT>`, a token Entra
ID issued to the subscription's identity for the webhook's application (audience). A
token is accepted only when it is an RS256 JWT signed by one of the configured keys
(a JWKS file: the tenant's signing keys from its `jwks_uri`), its audience is the
configured one, its issuer one of the configured issuers, and it is inside its
validity (`nbf`, `exp`, with a few minutes of clock skew). Nothing else is trusted:
no `alg: none`, no HMAC, no key carried inside the token.

The key file is read again when it changes on disk, so rotating Entra's signing keys
needs no restart. Errors name what failed, never the token.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

# Entra's tokens are RS256; accepting anything else opens algorithm confusion.
ALGORITHM = "RS256"
CLOCK_SKEW_SECONDS = 300.0
# A bearer token is a few KB; refuse to parse anything much larger.
MAX_TOKEN_BYTES = 16 * 1024


class TokenRejected(ValueError):
    """The bearer token is not one this daemon accepts; the message says why."""


@dataclass(frozen=True)
class EntraDelivery:
    """Which Entra ID tokens may deliver events."""

    audience: str
    issuers: tuple[str, ...]
    keys_file: Path


def _b64(part: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError):
        raise TokenRejected("the token is not base64url") from None


def _json_part(part: str) -> dict[str, Any]:
    try:
        doc = json.loads(_b64(part))
    except (UnicodeDecodeError, ValueError):
        raise TokenRejected("the token's header or claims are not JSON") from None
    if not isinstance(doc, dict):
        raise TokenRejected("the token's header or claims are not a JSON object")
    return doc


def load_keys(path: Path) -> dict[str, rsa.RSAPublicKey]:
    """The RSA signing keys of a JWKS file (`{"keys": [{"kid", "kty": "RSA", "n", "e"}]}`),
    by key id; ValueError naming the file when it holds none."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError:
        raise ValueError(f"{path} is not a JSON key set (JWKS)") from None
    entries = doc.get("keys") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise ValueError(f'{path} is not a JSON key set: no "keys" array')
    keys: dict[str, rsa.RSAPublicKey] = {}
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("kty") != "RSA":
            continue
        if entry.get("use", "sig") != "sig":
            continue
        kid, n, e = entry.get("kid"), entry.get("n"), entry.get("e")
        if not isinstance(kid, str) or not isinstance(n, str) or not isinstance(e, str):
            continue
        try:
            numbers = rsa.RSAPublicNumbers(
                int.from_bytes(_b64(e), "big"), int.from_bytes(_b64(n), "big")
            )
            keys[kid] = numbers.public_key()
        except (TokenRejected, ValueError):
            raise ValueError(f"{path}: key {kid!r} is not a valid RSA public key") from None
    if not keys:
        raise ValueError(f"{path} holds no RSA signing key")
    return keys


class EntraVerifier:
    """Checks Event Grid's bearer tokens against `EntraDelivery` settings."""

    def __init__(self, settings: EntraDelivery, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self._clock = clock
        self._keys = load_keys(settings.keys_file)
        self._mtime = self._file_mtime()

    def _file_mtime(self) -> float | None:
        try:
            return self.settings.keys_file.stat().st_mtime
        except OSError:
            return None

    def _current_keys(self) -> dict[str, rsa.RSAPublicKey]:
        mtime = self._file_mtime()
        if mtime is not None and mtime != self._mtime:
            try:
                self._keys = load_keys(self.settings.keys_file)
                self._mtime = mtime
            except ValueError:
                pass  # a half-written file: keep the keys that worked
        return self._keys

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims when it is acceptable; `TokenRejected` otherwise."""
        if len(token) > MAX_TOKEN_BYTES:
            raise TokenRejected("the token is too large")
        parts = token.split(".")
        if len(parts) != 3:
            raise TokenRejected("the token is not a signed JWT")
        header, claims = _json_part(parts[0]), _json_part(parts[1])
        if header.get("alg") != ALGORITHM:
            raise TokenRejected(f"the token is not signed with {ALGORITHM}")
        key = self._current_keys().get(str(header.get("kid", "")))
        if key is None:
            raise TokenRejected("the token is signed by a key that is not configured")
        try:
            key.verify(
                _b64(parts[2]),
                f"{parts[0]}.{parts[1]}".encode("ascii"),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except (InvalidSignature, UnicodeEncodeError):
            raise TokenRejected("the token's signature does not match") from None
        self._check_claims(claims)
        return claims

    def _check_claims(self, claims: dict[str, Any]) -> None:
        now = self._clock()
        audience = claims.get("aud")
        audiences: Sequence[object] = audience if isinstance(audience, list) else [audience]
        if self.settings.audience not in audiences:
            raise TokenRejected("the token is for another audience")
        if claims.get("iss") not in self.settings.issuers:
            raise TokenRejected("the token is from an issuer that is not configured")
        expires = claims.get("exp")
        if not isinstance(expires, int | float) or isinstance(expires, bool):
            raise TokenRejected("the token has no expiry")
        if now > expires + CLOCK_SKEW_SECONDS:
            raise TokenRejected("the token has expired")
        not_before = claims.get("nbf")
        if isinstance(not_before, int | float) and now < not_before - CLOCK_SKEW_SECONDS:
            raise TokenRejected("the token is not valid yet")
