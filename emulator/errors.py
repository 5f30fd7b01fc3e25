"""Key Vault's error answers.

    KeyVaultError (status, code, message, inner_code)
      not_found           404 SecretNotFound / KeyNotFound / CertificateNotFound
      conflict            409 Conflict (inner ObjectIsDeletedButRecoverable when soft-deleted)
      bad_parameter       400 BadParameter
      forbidden_by_policy 403 Forbidden (inner ForbiddenByPolicy)
      read_only           403 Forbidden (the vault is fenced read-only)
      throttled           429 Throttled + Retry-After
      not_implemented     501 NotImplemented

`error_middleware` turns any KeyVaultError (and aiohttp's own 404/405) into the JSON body
the SDKs parse, `{"error": {"code", "message", "innererror": {"code"}}}`, so the SDK
raises the same exception types it raises against Azure.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

_log = structlog.get_logger("emulator")

KIND_NOT_FOUND = {
    "secret": "SecretNotFound",
    "key": "KeyNotFound",
    "certificate": "CertificateNotFound",
}
KIND_TITLE = {"secret": "Secret", "key": "Key", "certificate": "Certificate"}


class KeyVaultError(Exception):
    """An answer the vault gives instead of a result. Messages never carry secret values."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        inner_code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.inner_code = inner_code
        self.headers = dict(headers or {})

    def body(self) -> dict[str, object]:
        """The JSON body Key Vault sends with this error."""
        error: dict[str, object] = {"code": self.code, "message": self.message}
        if self.inner_code:
            error["innererror"] = {"code": self.inner_code}
        return {"error": error}

    def response(self) -> web.Response:
        """This error as an HTTP response."""
        return web.Response(
            status=self.status,
            text=json.dumps(self.body()),
            content_type="application/json",
            headers=self.headers,
        )

    def __repr__(self) -> str:
        return f"KeyVaultError({self.status}, {self.code!r}, {self.message!r})"


def not_found(kind: str, name: str, version: str | None = None) -> KeyVaultError:
    """404 for a missing object or version, worded as Key Vault words it."""
    title = KIND_TITLE.get(kind, kind.title())
    ident = f"{name}/{version}" if version else name
    return KeyVaultError(
        404,
        KIND_NOT_FOUND.get(kind, "NotFound"),
        f"A {kind} with (name/id) {ident} was not found in this key vault. If you recently "
        f"deleted this {kind} you may be able to recover it using the correct recovery "
        f"command. For help resolving this issue, please see https://go.microsoft.com/"
        f"fwlink/?linkid=2125182 ({title} {ident})",
    )


def deleted_not_found(kind: str, name: str) -> KeyVaultError:
    """404 for a name that has no soft-deleted object."""
    title = KIND_TITLE.get(kind, kind.title())
    return KeyVaultError(
        404, KIND_NOT_FOUND.get(kind, "NotFound"), f"Deleted {title} not found: {name}"
    )


def conflict(
    kind: str, name: str, *, deleted: bool = False, message: str | None = None
) -> KeyVaultError:
    """409 for a name in use; Azure adds ObjectIsDeletedButRecoverable for a soft-deleted one."""
    title = KIND_TITLE.get(kind, kind.title())
    if deleted:
        return KeyVaultError(
            409,
            "Conflict",
            message
            or f"{title} {name} is currently in a deleted but recoverable state, and its name "
            f"cannot be reused; in this state, the {kind} can only be recovered or purged.",
            "ObjectIsDeletedButRecoverable",
        )
    return KeyVaultError(409, "Conflict", message or f"{title} {name} already exists.")


def bad_parameter(message: str) -> KeyVaultError:
    """400 BadParameter; the message names the input that was refused."""
    return KeyVaultError(400, "BadParameter", message)


def forbidden_by_policy(message: str) -> KeyVaultError:
    """403 Forbidden for an operation the vault's policy refuses (e.g. purge protection)."""
    return KeyVaultError(403, "Forbidden", message, "ForbiddenByPolicy")


def read_only(operation: str) -> KeyVaultError:
    """403 for a write while the vault is fenced read-only (as during a regional failover)."""
    return KeyVaultError(
        403,
        "Forbidden",
        f"Operation {operation} is not allowed: the vault is in read-only mode "
        "(regional failover or fence in progress). Reads are still served.",
        "VaultReadOnly",
    )


def throttled(retry_after_seconds: int, limit: int, bucket: str) -> KeyVaultError:
    """429 Throttled with Retry-After, as Key Vault answers above its per-10-s limits."""
    return KeyVaultError(
        429,
        "Throttled",
        f"Request was not processed because too many requests were received. Reason: "
        f"more than {limit} '{bucket}' requests in 10 seconds. Retry after "
        f"{retry_after_seconds} s.",
        headers={"Retry-After": str(retry_after_seconds)},
    )


def not_implemented(operation: str) -> KeyVaultError:
    """501 for an operation the emulator does not serve (listed in docs/emulator.md)."""
    return KeyVaultError(
        501, "NotImplemented", f"The kvdr emulator does not implement operation {operation}."
    )


def unauthorized() -> KeyVaultError:
    """401 without a token; the middleware adds the Bearer challenge header."""
    return KeyVaultError(401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every failure in Key Vault's error shape and keep the server running."""
    try:
        return await handler(request)
    except KeyVaultError as exc:
        return exc.response()
    except web.HTTPNotFound:
        return KeyVaultError(
            404, "NotFound", f"The requested path {request.path} was not found."
        ).response()
    except web.HTTPMethodNotAllowed:
        return KeyVaultError(
            405,
            "MethodNotAllowed",
            f"Method {request.method} is not allowed on {request.path}.",
        ).response()
    except web.HTTPRequestEntityTooLarge:
        return KeyVaultError(
            413, "RequestEntityTooLarge", "The request body is larger than the vault accepts."
        ).response()
    except web.HTTPException:
        raise
    except Exception:
        # The request path is logged, never its body: it may carry a secret value.
        _log.exception("emulator.unhandled_error", method=request.method, path=request.path)
        return KeyVaultError(
            500, "InternalServerError", "The emulator failed to process the request."
        ).response()
