"""Vault-level faults a drill injects through `/_emulator/faults`.

A TCP fault proxy cannot see inside TLS, so the faults that need HTTP live here: answer
a share of requests 429 `Throttled` (with Retry-After) or 503, and deny access to every
principal or to a list of them (403 Forbidden in Key Vault's shape, as Azure Chaos
Studio's Key Vault "Deny Access" fault does). Faults are held in memory only: a restarted
emulator comes back healthy, so a drill that died cannot leave one behind on disk.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from emulator.errors import KeyVaultError

# Statuses the error fault may answer with: Key Vault's throttle and its outage answer.
ERROR_STATUSES = (429, 503)


@dataclass
class VaultFaults:
    """The faults now on one emulated vault; the default is none."""

    error_status: int | None = None
    error_share: float = 0.0
    retry_after_seconds: int = 1
    deny_all: bool = False
    deny_principals: frozenset[str] = frozenset()
    # Spreads the share evenly (every 1/share-th request), so a test sees exactly it.
    _carry: float = field(default=0.0, repr=False)

    @property
    def active(self) -> bool:
        return (self.error_status is not None and self.error_share > 0) or bool(
            self.deny_all or self.deny_principals
        )

    def to_json(self) -> dict[str, object]:
        """The management API's representation."""
        return {
            "active": self.active,
            "errors": None
            if self.error_status is None
            else {
                "status": self.error_status,
                "share": self.error_share,
                "retry_after_seconds": self.retry_after_seconds,
            },
            "deny": "*" if self.deny_all else sorted(self.deny_principals),
        }

    def check(self, principal: str | None, operation: str) -> None:
        """Raise the fault's answer for this request, if it gets one."""
        if self.deny_all or (principal is not None and principal in self.deny_principals):
            raise KeyVaultError(
                403,
                "Forbidden",
                f"Operation {operation} is not permitted: the caller does not have access "
                "to this vault (access denied by an injected fault).",
                "AccessDenied",
            )
        if self.error_status is None or self.error_share <= 0:
            return
        self._carry += self.error_share
        if self._carry < 1.0:
            return
        self._carry -= 1.0
        if self.error_status == 429:
            raise KeyVaultError(
                429,
                "Throttled",
                "Request was not processed because too many requests were received "
                f"(injected fault). Retry after {self.retry_after_seconds} s.",
                headers={"Retry-After": str(self.retry_after_seconds)},
            )
        raise KeyVaultError(
            503,
            "ServiceUnavailable",
            "The service is temporarily unavailable (injected fault).",
            headers={"Retry-After": str(self.retry_after_seconds)},
        )


def parse_faults(body: dict[str, object]) -> VaultFaults:
    """The faults a PUT asks for; ValueError names the field that is wrong."""
    unknown = sorted(set(body) - {"errors", "deny"})
    if unknown:
        raise ValueError(f"unknown field {unknown[0]!r}: expected errors, deny")
    faults = VaultFaults()
    errors = body.get("errors")
    if errors is not None:
        if not isinstance(errors, dict):
            raise ValueError("errors must be an object {status, share, retry_after_seconds}")
        status = errors.get("status")
        if status not in ERROR_STATUSES:
            raise ValueError("errors.status must be 429 or 503")
        share = errors.get("share")
        if isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share <= 1:
            raise ValueError("errors.share must be a number above 0 and at most 1")
        retry = errors.get("retry_after_seconds", 1)
        if isinstance(retry, bool) or not isinstance(retry, int) or not 0 <= retry <= 3600:
            raise ValueError("errors.retry_after_seconds must be a whole number 0..3600")
        faults.error_status = int(str(status))
        faults.error_share = float(share)
        faults.retry_after_seconds = retry
    deny = body.get("deny")
    if deny is not None:
        if deny == "*":
            faults.deny_all = True
        elif isinstance(deny, list) and all(isinstance(p, str) and p for p in deny):
            faults.deny_principals = frozenset(str(p) for p in deny)
        else:
            raise ValueError('deny must be "*" or a list of principal ids')
    return faults
