"""The one place where `azure.core.exceptions` become the blob seam's errors.

Split by where things failed: the request was never sent or got no answer
(`StorageUnavailable`), or the service answered no (everything else). Messages name the
blob and the service's error code, never credentials: the SDK's own message can quote a
request URL (with a SAS token) or a signature, so only its first line's code is kept.
"""

from __future__ import annotations

from typing import Literal

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)

from storage.errors import (
    BlobExists,
    BlobNotFound,
    LeaseHeld,
    LeaseLost,
    PreconditionFailed,
    StorageError,
    StorageUnavailable,
)

Operation = Literal[
    "put_if_absent",
    "put",
    "get",
    "list",
    "delete",
    "acquire_lease",
    "renew_lease",
    "release_lease",
    "create_container",
]

# Error codes of the Blob service (x-ms-error-code) that mean "another lease holder".
_LEASE_HELD = {
    "LeaseAlreadyPresent",
    "LeaseIdMissing",
    "LeaseIsBreakingAndCannotBeAcquired",
    "LeaseIsBrokenAndCannotBeRenewed",
}
# ... and that mean "the lease we name is not the one on the blob (any more)".
_LEASE_LOST = {
    "LeaseIdMismatchWithLeaseOperation",
    "LeaseIdMismatchWithBlobOperation",
    "LeaseIdMismatchWithContainerOperation",
    "LeaseNotPresentWithLeaseOperation",
    "LeaseNotPresentWithBlobOperation",
    "LeaseLost",
}
# Answers that mean "the service cannot serve now; try again or elsewhere".
_UNAVAILABLE_STATUS = {408, 429, 500, 502, 503, 504}
_LEASE_OPERATIONS = {"acquire_lease", "renew_lease", "release_lease"}


def _code(exc: HttpResponseError) -> str:
    code = getattr(exc, "error_code", None)
    if code is None:
        return ""
    # The SDK hands back either a plain string or its StorageErrorCode enum.
    return str(getattr(code, "value", code))


def storage_error(
    exc: AzureError, *, operation: Operation, blob: str, endpoint: str = ""
) -> StorageError:
    """Translate one SDK exception raised while doing `operation` on `blob`.

    `endpoint` is the account URL without query (never a SAS), for unreachable-endpoint
    messages. Callers write `raise storage_error(exc, ...) from exc` so the SDK's
    exception stays in the chain for debugging.
    """
    where = f"{operation} {blob!r}" if blob else operation
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        reason = type(exc).__name__
        at = f" {endpoint}" if endpoint else ""
        return StorageUnavailable(
            f"{where}: storage endpoint{at} unreachable ({reason})", blob=blob
        )
    if not isinstance(exc, HttpResponseError):
        return StorageError(f"{where}: {type(exc).__name__}", blob=blob)

    status = exc.status_code or 0
    code = _code(exc)
    said = f"HTTP {status} {code}".strip()
    if isinstance(exc, ClientAuthenticationError) or status in (401, 403):
        return StorageError(
            f"{where}: storage refused the credential or its role ({said}); kvdr needs "
            "'Storage Blob Data Contributor' on the container",
            blob=blob,
        )
    if code in _LEASE_HELD:
        return LeaseHeld(f"{where}: another holder has the lease ({said})", blob=blob)
    if code in _LEASE_LOST:
        return LeaseLost(f"{where}: the lease is no longer ours ({said})", blob=blob)
    if status == 409 and code == "ContainerAlreadyExists":
        return BlobExists(f"{where}: the container exists ({said})", blob=blob)
    if status == 404 and operation == "put" and code == "BlobNotFound":
        # A conditional put (If-Match) over a blob that is gone lost the race too.
        return PreconditionFailed(f"{where}: the blob is gone ({said})", blob=blob)
    if status == 404:
        if operation in _LEASE_OPERATIONS and operation != "acquire_lease":
            return LeaseLost(f"{where}: the leased blob no longer exists ({said})", blob=blob)
        if code == "ContainerNotFound":
            return BlobNotFound(f"{where}: the container does not exist ({said})", blob=blob)
        return BlobNotFound(f"{where}: no such blob ({said})", blob=blob)
    if status == 409 and code == "BlobAlreadyExists":
        return BlobExists(f"{where}: the name is taken ({said})", blob=blob)
    if status in (409, 412) and operation == "put_if_absent":
        # If-None-Match: * answers 409 on a plain PUT and 412 on some proxies and
        # service versions; both mean the name is taken.
        return BlobExists(f"{where}: the name is taken ({said})", blob=blob)
    if status == 412:
        return PreconditionFailed(f"{where}: the ETag no longer matches ({said})", blob=blob)
    if status in _UNAVAILABLE_STATUS:
        return StorageUnavailable(f"{where}: storage could not serve ({said})", blob=blob)
    return StorageError(f"{where}: storage said no ({said})", blob=blob)
