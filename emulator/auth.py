"""Key Vault's challenge authentication and a managed-identity token endpoint.

The SDK's challenge policy first sends each request without a token, expects a 401 whose
`WWW-Authenticate: Bearer authorization="<authority>/<tenant>", resource="<resource>"`
tells it which tenant and scope to ask its credential for, then retries with the token.
Any bearer token is accepted; the emulator only reads back the principal (`oid`) of
tokens shaped like JWTs, for the read-only fence's exemptions.

Tokens come from `GET /_emulator/identity/token` in the App Service managed-identity
protocol (IDENTITY_ENDPOINT + IDENTITY_HEADER, api-version 2019-08-01), so
`azure.identity.ManagedIdentityCredential` works against the emulator unmodified. They
are unsigned: this is a local emulator, not a security boundary. In RBAC mode
(emulator/rbac.py) they are signed, checked and their principal's roles enforced.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import time
from pathlib import Path

from aiohttp import web

from emulator.errors import Handler, KeyVaultError, bad_parameter, unauthorized
from emulator.statedir import tighten_file

TENANT_ID = "00000000-0000-0000-0000-00000000c0de"
AUTHORITY = f"https://login.microsoftonline.com/{TENANT_ID}"
VAULT_RESOURCE = "https://vault.azure.net"
DEFAULT_PRINCIPAL = "kvdr-local"
TOKEN_LIFETIME_SECONDS = 24 * 3600
SIGNED_TOKEN_LIFETIME_SECONDS = 3600
IDENTITY_API_VERSION = "2019-08-01"
CHALLENGE = f'Bearer authorization="{AUTHORITY}", resource="{VAULT_RESOURCE}"'
# Requests under this prefix are the emulator's own API: no vault token needed.
MANAGEMENT_PREFIX = "/_emulator/"
PRINCIPAL_KEY = "kvdr.principal"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def mint_token(
    principal: str, resource: str, now: float | None = None, key: bytes | None = None
) -> tuple[str, int]:
    """A JWT-shaped access token for `principal`, and its expiry (Unix seconds): unsigned,
    or with the RBAC tenant's `key` signed HS256 for one hour (emulator/rbac.py)."""
    issued = int(now if now is not None else time.time())
    expires = issued + (TOKEN_LIFETIME_SECONDS if key is None else SIGNED_TOKEN_LIFETIME_SECONDS)
    header = {"alg": "none" if key is None else "HS256", "typ": "JWT"}
    payload = {
        "aud": resource,
        "iss": f"https://sts.windows.net/{TENANT_ID}/",
        "tid": TENANT_ID,
        "oid": principal,
        "sub": principal,
        "iat": issued,
        "nbf": issued,
        "exp": expires,
        "jti": secrets.token_hex(8),
    }
    signed = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(payload).encode())}"
    if key is None:
        return f"{signed}.", expires
    signature = hmac.new(key, signed.encode(), hashlib.sha256).digest()
    return f"{signed}.{_b64url(signature)}", expires


def principal_of(token: str) -> str | None:
    """The `oid` a JWT-shaped token carries, or None for any other token."""
    parts = token.split(".")
    if len(parts) < 2:
        return None
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(payload, dict):
        return None
    oid = payload.get("oid")
    return oid if isinstance(oid, str) else None


def load_identity_header(state_dir: Path) -> str:
    """The IDENTITY_HEADER secret: made once per state folder, readable only by its owner."""
    path = state_dir / "identity-header"
    if path.exists():
        tighten_file(path)
        return path.read_text().strip()
    value = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    return value


def _challenge() -> KeyVaultError:
    error = unauthorized()
    error.headers["WWW-Authenticate"] = CHALLENGE
    return error


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer token-less vault requests with the Bearer challenge; note each caller's principal."""
    if request.path.startswith(MANAGEMENT_PREFIX):
        return await handler(request)
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _challenge()
    request[PRINCIPAL_KEY] = principal_of(token.strip())
    return await handler(request)


def request_principal(request: web.Request) -> str | None:
    """The principal (`oid`) of the request's token, if it carried one."""
    value = request.get(PRINCIPAL_KEY)
    return value if isinstance(value, str) else None


def identity_token_handler(identity_header: str, key: bytes | None = None) -> Handler:
    """The App Service managed-identity endpoint, guarded by the IDENTITY_HEADER secret;
    with the RBAC tenant's `key` its tokens are signed, else they are unsigned."""

    async def handle(request: web.Request) -> web.StreamResponse:
        given = request.headers.get("X-IDENTITY-HEADER")
        if given is None or not secrets.compare_digest(given, identity_header):
            raise KeyVaultError(
                401, "Unauthorized", "X-IDENTITY-HEADER is missing or does not match"
            )
        api_version = request.query.get("api-version")
        if api_version != IDENTITY_API_VERSION:
            raise bad_parameter(
                f"api-version {api_version!r} is not supported; use {IDENTITY_API_VERSION}"
            )
        resource = request.query.get("resource")
        if not resource:
            raise bad_parameter("resource is required")
        # App Service names a user-assigned identity by client_id, principal_id or
        # mi_res_id; the emulator uses whichever is given as the token's principal.
        principal = (
            request.query.get("principal_id")
            or request.query.get("object_id")
            or request.query.get("client_id")
            or request.query.get("mi_res_id")
            or DEFAULT_PRINCIPAL
        )
        token, expires_on = mint_token(principal, resource, key=key)
        return web.json_response(
            {
                "access_token": token,
                # The 2019-08-01 protocol sends expires_on as a string of Unix seconds.
                "expires_on": str(expires_on),
                "resource": resource,
                "token_type": "Bearer",
                "client_id": principal,
            }
        )

    return handle
