"""Errors of the vault seam. Only this package maps `azure.core.exceptions` into these.

    VaultError
    ├── RequestNotSent          the request never left (DNS, connect refused, TLS)
    ├── NoAnswer                sent, no answer in time (timeout, connection reset)
    └── VaultRefused            the vault answered no (HTTP status + Key Vault code)
        ├── ItemNotFound              404
        ├── ItemConflict              409 (name in use)
        │   └── DeletedButRecoverable 409 ObjectIsDeletedButRecoverable
        ├── Forbidden                 401/403 (access, purge protection, read-only fence)
        ├── BadRequest                400 (what we sent is invalid: never retried)
        ├── Throttled                 429 (retried inside the adapter first)
        └── ServerError               5xx (retried inside the adapter first)

`RequestNotSent`, `NoAnswer`, `Throttled` and `ServerError` are transient: the adapter
retries them with backoff and raises them only when its budget of attempts is spent.
Messages carry the vault, operation and item name, never a value.
"""

from __future__ import annotations


class VaultError(Exception):
    """Base of every error raised by the vault seam."""

    transient: bool = False

    def __init__(self, message: str, *, vault: str = "", op: str = "") -> None:
        super().__init__(message)
        self.vault = vault
        self.op = op

    @property
    def reason(self) -> str:
        """A short stable label for metrics (`kvdr_replication_errors_total{reason}`)."""
        return type(self).__name__


class RequestNotSent(VaultError):
    transient = True


class NoAnswer(VaultError):
    transient = True


class VaultRefused(VaultError):
    def __init__(
        self, message: str, *, vault: str = "", op: str = "", status: int = 0, code: str = ""
    ) -> None:
        super().__init__(message, vault=vault, op=op)
        self.status = status
        self.code = code


class ItemNotFound(VaultRefused):
    pass


class ItemConflict(VaultRefused):
    pass


class DeletedButRecoverable(ItemConflict):
    pass


class Forbidden(VaultRefused):
    pass


class BadRequest(VaultRefused):
    pass


class Throttled(VaultRefused):
    transient = True

    def __init__(
        self,
        message: str,
        *,
        vault: str = "",
        op: str = "",
        status: int = 429,
        code: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, vault=vault, op=op, status=status, code=code)
        # Seconds the vault asked us to wait (`Retry-After`), when it said.
        self.retry_after = retry_after


class ServerError(VaultRefused):
    transient = True
