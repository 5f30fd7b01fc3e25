"""The one place where `azure.core.exceptions` become `vault.errors`.

Callers write `raise map_azure_error(exc, ...) from exc`. Messages name the vault, the
operation and the item, plus the vault's own error code and message; any string passed
in `redact` (the secret value or certificate material being written) is scrubbed from
the vault's whole message, before it is shortened, in case a server ever echoes it; a
message that still holds a long stretch of it is withheld.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Iterable, Mapping

import aiohttp
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    DecodeError,
    HttpResponseError,
    IncompleteReadError,
    ServiceRequestError,
    ServiceResponseError,
)

from vault.errors import (
    BadRequest,
    DeletedButRecoverable,
    Forbidden,
    ItemConflict,
    ItemNotFound,
    NoAnswer,
    RequestNotSent,
    ServerError,
    Throttled,
    VaultError,
    VaultRefused,
)

DELETED_BUT_RECOVERABLE = "ObjectIsDeletedButRecoverable"
# The vault's own message is context, not payload: keep it short.
MAX_SERVICE_MESSAGE = 300
# How much of a vault's message is read at all (a hostile or broken server may answer
# megabytes); a value cut at this length is still caught by the stretch check below.
MAX_SCANNED_MESSAGE = 8192


def map_azure_error(
    exc: AzureError,
    *,
    vault: str,
    op: str,
    item: str = "",
    redact: Iterable[str] = (),
) -> VaultError:
    """Translate one SDK error into the vault seam's error tree."""
    where = f"{op} {item} on vault {vault}" if item else f"{op} on vault {vault}"
    if isinstance(exc, ServiceRequestError):
        if _sent_maybe(exc):
            return NoAnswer(f"{where}: connection lost ({_inner_name(exc)})", vault=vault, op=op)
        return RequestNotSent(
            f"{where}: vault unreachable, request not sent ({_inner_name(exc)})", vault=vault, op=op
        )
    if isinstance(exc, ServiceResponseError):
        return NoAnswer(f"{where}: no answer ({_inner_name(exc)})", vault=vault, op=op)
    if isinstance(exc, IncompleteReadError):
        return NoAnswer(f"{where}: answer cut off", vault=vault, op=op)
    if isinstance(exc, HttpResponseError):
        return _refused(exc, where=where, vault=vault, op=op, redact=redact)
    return VaultError(f"{where}: {type(exc).__name__}", vault=vault, op=op)


def region_unavailable(exc: BaseException) -> bool:
    """Whether an SDK error means the vault could not serve at all (request not sent,
    no answer, 5xx): a reader may ask another region. A 4xx is the vault's answer."""
    if not isinstance(exc, AzureError):
        return False
    mapped = map_azure_error(exc, vault="", op="")
    return isinstance(mapped, RequestNotSent | NoAnswer | ServerError)


def _refused(
    exc: HttpResponseError, *, where: str, vault: str, op: str, redact: Iterable[str]
) -> VaultError:
    status = exc.status_code or 0
    code, inner, message = _service_error(exc)
    # Scrub the whole message first: shortening first would cut an echoed value and
    # leave a prefix the scrubber no longer recognises.
    text = _scrub(message, redact)[:MAX_SERVICE_MESSAGE]
    detail = f"{status} {code}" if status else code or type(exc).__name__
    if inner:
        detail += f" ({inner})"
    msg = f"{where} refused: {detail}" + (f": {text}" if text else "")
    if status == 0:
        # No HTTP answer to speak of: the credential could not get a token.
        if isinstance(exc, ClientAuthenticationError):
            return Forbidden(msg, vault=vault, op=op, status=401, code=code or "Unauthenticated")
        return VaultError(msg, vault=vault, op=op)
    if isinstance(exc, DecodeError) and status < 400:
        return ServerError(
            f"{where}: unreadable answer ({status})",
            vault=vault,
            op=op,
            status=status,
            code="DecodeError",
        )
    if status == 404:
        return ItemNotFound(msg, vault=vault, op=op, status=status, code=code)
    if status == 409:
        if DELETED_BUT_RECOVERABLE in (code, inner):
            return DeletedButRecoverable(msg, vault=vault, op=op, status=status, code=code)
        return ItemConflict(msg, vault=vault, op=op, status=status, code=code)
    if status in (401, 403):
        return Forbidden(msg, vault=vault, op=op, status=status, code=code)
    if status == 429:
        # Every azure-core response type has `headers`; the shared protocol omits it.
        headers: Mapping[str, str] = getattr(exc.response, "headers", None) or {}
        return Throttled(
            msg,
            vault=vault,
            op=op,
            status=status,
            code=code,
            retry_after=parse_retry_after(headers),
        )
    if status == 408:
        # The server gave up waiting for our request: it was not processed.
        return NoAnswer(msg, vault=vault, op=op)
    if status in (501, 505):
        # "Not implemented" will not change by retrying.
        return VaultRefused(msg, vault=vault, op=op, status=status, code=code)
    if status >= 500:
        return ServerError(msg, vault=vault, op=op, status=status, code=code)
    if 400 <= status < 500:
        # What we sent is wrong (400, 405, 413, ...): retrying cannot help.
        return BadRequest(msg, vault=vault, op=op, status=status, code=code)
    return VaultRefused(msg, vault=vault, op=op, status=status, code=code)


def _service_error(exc: HttpResponseError) -> tuple[str, str, str]:
    """(code, inner code, message) from Key Vault's `{"error": {...}}` body."""
    err = exc.error
    if err is None:
        return "", "", ""
    inner = err.innererror.get("code", "") if isinstance(err.innererror, Mapping) else ""
    return err.code or "", str(inner or ""), (err.message or "")[:MAX_SCANNED_MESSAGE]


# Below this length a value also occurs inside ordinary words ("v" in "vault"), so
# replacing it would mangle the message and still hint at the value: withhold it.
MIN_REPLACEABLE = 8


# A stretch this long of a value, found in a message, is the value leaking (a server
# that echoes only the start or the end of what it was sent): withhold the message.
LEAK_WINDOW = 16
WITHHELD = "<message withheld: it contains the value written>"


def _scrub(text: str, redact: Iterable[str]) -> str:
    for secret in redact:
        if not secret:
            continue
        if secret in text:
            if len(secret) < MIN_REPLACEABLE:
                return WITHHELD
            text = text.replace(secret, "<redacted>")
        if len(secret) >= LEAK_WINDOW and _shares_a_stretch(text, secret):
            return WITHHELD
    return text


def _shares_a_stretch(text: str, secret: str) -> bool:
    """True if some LEAK_WINDOW characters of `text` occur in `secret` (linear in both:
    the secret's windows go into a set once)."""
    if len(text) < LEAK_WINDOW:
        return False
    windows = {secret[i : i + LEAK_WINDOW] for i in range(len(secret) - LEAK_WINDOW + 1)}
    return any(text[i : i + LEAK_WINDOW] in windows for i in range(len(text) - LEAK_WINDOW + 1))


def _inner_name(exc: AzureError) -> str:
    inner = exc.inner_exception
    return type(inner).__name__ if inner is not None else type(exc).__name__


def _sent_maybe(exc: ServiceRequestError) -> bool:
    """True when aiohttp lost a connection that may already have carried the request.

    azure-core reports every aiohttp client error as `ServiceRequestError`, but only a
    failure to connect (refused, DNS, TLS handshake) proves nothing was sent; a server
    that hung up mid-exchange may have applied a write.
    """
    inner = exc.inner_exception
    if isinstance(inner, aiohttp.ClientConnectorError):
        return False
    return isinstance(inner, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError)


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from a `Retry-After` (or `x-ms-retry-after-ms`) header; None when absent."""
    lowered = {k.lower(): v for k, v in headers.items()}
    ms = lowered.get("retry-after-ms") or lowered.get("x-ms-retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
