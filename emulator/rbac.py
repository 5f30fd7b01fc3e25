"""RBAC mode (`kvdr emulator --rbac FILE`): Azure's built-in Key Vault roles, enforced.

Each request's operation needs one data action (`Microsoft.KeyVault/vaults/secrets/
getSecret/action`, ...), or for the management plane one action; a principal may do it
when a role assigned to it in this vault's region carries a matching action (`*` in a
role's action matches any run of characters, as in Azure's role definitions). Otherwise
the vault answers 403 `Forbidden` with inner code `ForbiddenByRbac` and a message that
names the caller, the action and the vault, as Key Vault does.

In this mode tokens are signed: the managed-identity endpoint issues HS256 tokens with a
key shared by every emulator that reads the same RBAC file (so a token from one region's
endpoint is good in another, as an Entra ID token is), and the vault checks signature,
audience and expiry; anything else is a 401. The file is read again when it changes, so
a test can take a role away from a running vault (Azure takes minutes to propagate one).

The file (JSON)::

    {"token_key_file": "tenant.key",          # relative to the file; made when absent
     "assignments": [{"principal": "kvdr-daemon", "role": "Key Vault Secrets User",
                      "scope": "eastus"}]}    # scope: a region or "*"

The roles and the operation map follow Azure's published built-in role definitions and
its data actions; they are kvdr's model of them, not a copy of Azure's authorizer.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from emulator.errors import KeyVaultError

_VAULTS = "Microsoft.KeyVault/vaults"
_SECRETS = f"{_VAULTS}/secrets"
_KEYS = f"{_VAULTS}/keys"
_CERTS = f"{_VAULTS}/certificates"

# Built-in role -> (role definition id, actions, data actions).
ROLES: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "Key Vault Administrator": (
        "00482a5a-887f-4fb3-b363-3b7fe8e74483",
        (),
        (f"{_VAULTS}/*",),
    ),
    "Key Vault Secrets Officer": (
        "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
        (),
        (f"{_SECRETS}/*",),
    ),
    "Key Vault Secrets User": (
        "4633458b-17de-408a-b874-0445c86b69e6",
        (),
        (f"{_SECRETS}/getSecret/action", f"{_SECRETS}/readMetadata/action"),
    ),
    "Key Vault Crypto Officer": (
        "14b46e9e-c2b7-41b4-b07b-48a6ebf60603",
        (),
        (f"{_KEYS}/*", f"{_VAULTS}/keyrotationpolicies/*"),
    ),
    "Key Vault Crypto User": (
        "12338af0-0e69-4776-bea7-57ae8d297424",
        (),
        tuple(
            f"{_KEYS}/{op}"
            for op in (
                "read",
                "update/action",
                "backup/action",
                "encrypt/action",
                "decrypt/action",
                "wrap/action",
                "unwrap/action",
                "sign/action",
                "verify/action",
            )
        ),
    ),
    "Key Vault Crypto Service Encryption User": (
        "e147488a-f6f5-4113-8e2d-b22465e65bf6",
        (),
        (f"{_KEYS}/read", f"{_KEYS}/wrap/action", f"{_KEYS}/unwrap/action"),
    ),
    "Key Vault Certificates Officer": (
        "a4417e6f-fecd-4de8-b567-7b0420556985",
        (),
        (f"{_VAULTS}/certificatecas/*", f"{_CERTS}/*", f"{_VAULTS}/certificatecontacts/write"),
    ),
    "Key Vault Certificate User": (
        "db79e9a7-68ee-4b58-9aeb-b90e7c24fcba",
        (),
        (
            f"{_CERTS}/read",
            f"{_SECRETS}/getSecret/action",
            f"{_SECRETS}/readMetadata/action",
            f"{_KEYS}/read",
        ),
    ),
    "Key Vault Reader": (
        "21090545-7ca7-4776-b22c-e363652d74d2",
        (f"{_VAULTS}/read",),
        (f"{_VAULTS}/*/read", f"{_SECRETS}/readMetadata/action"),
    ),
    # Management plane only: Vaults_Get and Vaults_Update (the network fence).
    "Key Vault Contributor": (
        "f25e0fa2-a7c8-4377-a976-54943a77a395",
        ("Microsoft.KeyVault/*",),
        (),
    ),
}


def _ops(prefix: str, table: dict[str, tuple[str, ...]]) -> dict[str, str]:
    return {op: f"{prefix}/{action}" for action, ops in table.items() for op in ops}


# Operation (the emulator's route name) -> the data action it needs.
DATA_ACTIONS: dict[str, str] = {
    **_ops(
        _SECRETS,
        {
            "getSecret/action": ("GetSecret",),
            "readMetadata/action": (
                "GetSecrets",
                "GetSecretVersions",
                "GetDeletedSecret",
                "GetDeletedSecrets",
            ),
            "setSecret/action": ("SetSecret",),
            "update/action": ("UpdateSecret",),
            "delete": ("DeleteSecret",),
            "backup/action": ("BackupSecret",),
            "restore/action": ("RestoreSecret",),
            "recover/action": ("RecoverDeletedSecret",),
            "purge/action": ("PurgeDeletedSecret",),
        },
    ),
    **_ops(
        _KEYS,
        {
            "read": ("GetKey", "GetKeys", "GetKeyVersions", "GetDeletedKey", "GetDeletedKeys"),
            "create/action": ("CreateKey",),
            "import/action": ("ImportKey",),
            "update/action": ("UpdateKey",),
            "delete": ("DeleteKey",),
            "backup/action": ("BackupKey",),
            "restore/action": ("RestoreKey",),
            "recover/action": ("RecoverDeletedKey",),
            "purge/action": ("PurgeDeletedKey",),
            "encrypt/action": ("Encrypt",),
            "decrypt/action": ("Decrypt",),
            "wrap/action": ("WrapKey",),
            "unwrap/action": ("UnwrapKey",),
            "sign/action": ("Sign",),
            "verify/action": ("Verify",),
            "release/action": ("Release",),
            "rotate/action": ("RotateKey",),
            "attestation/read": ("GetKeyAttestation",),
        },
    ),
    "GetKeyRotationPolicy": f"{_VAULTS}/keyrotationpolicies/read",
    "UpdateKeyRotationPolicy": f"{_VAULTS}/keyrotationpolicies/write",
    "GetRandomBytes": f"{_VAULTS}/rng/action",
    **_ops(
        _CERTS,
        {
            "read": (
                "GetCertificate",
                "GetCertificates",
                "GetCertificateVersions",
                "GetCertificatePolicy",
                "GetCertificateOperation",
                "GetDeletedCertificate",
                "GetDeletedCertificates",
                "GetCertificateContacts",
            ),
            "create/action": ("CreateCertificate", "MergeCertificate"),
            "import/action": ("ImportCertificate",),
            "update/action": (
                "UpdateCertificate",
                "UpdateCertificatePolicy",
                "UpdateCertificateOperation",
            ),
            "delete": ("DeleteCertificate", "DeleteCertificateOperation"),
            "backup/action": ("BackupCertificate",),
            "restore/action": ("RestoreCertificate",),
            "recover/action": ("RecoverDeletedCertificate",),
            "purge/action": ("PurgeDeletedCertificate",),
        },
    ),
    **_ops(
        f"{_VAULTS}/certificatecas",
        {
            "read": ("GetCertificateIssuer", "GetCertificateIssuers"),
            "write": ("SetCertificateIssuer", "UpdateCertificateIssuer"),
            "delete": ("DeleteCertificateIssuer",),
        },
    ),
    "SetCertificateContacts": f"{_VAULTS}/certificatecontacts/write",
    "DeleteCertificateContacts": f"{_VAULTS}/certificatecontacts/write",
}
# Management plane operations -> the (control plane) action they need.
ACTIONS: dict[str, str] = {
    "ARM.GetVault": f"{_VAULTS}/read",
    "ARM.UpdateVault": f"{_VAULTS}/write",
}

_RELOAD_SECONDS = 1.0


class RbacFileError(ValueError):
    """The RBAC file cannot be used; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Assignment:
    principal: str
    role: str
    scope: str


@functools.cache
def _pattern(action: str) -> re.Pattern[str]:
    """A role action as a regex (compiled once: the roles' actions are a fixed set)."""
    return re.compile(".*".join(re.escape(part) for part in action.split("*")), re.IGNORECASE)


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def parse_assignments(doc: object, path: Path) -> tuple[str, tuple[Assignment, ...]]:
    """(token key file, assignments) from the file's JSON document, or RbacFileError."""
    if not isinstance(doc, dict):
        raise RbacFileError(f"{path}: expected a JSON object")
    unknown = set(doc) - {"token_key_file", "assignments"}
    if unknown:
        raise RbacFileError(f"{path}: unknown key(s) {sorted(unknown)}")
    key_file = doc.get("token_key_file", "tenant.key")
    if not isinstance(key_file, str) or not key_file:
        raise RbacFileError(f"{path}: token_key_file must be a file name")
    raw = doc.get("assignments", [])
    if not isinstance(raw, list):
        raise RbacFileError(f"{path}: assignments must be an array")
    found: list[Assignment] = []
    for index, entry in enumerate(raw):
        where = f"{path}: assignments[{index}]"
        if not isinstance(entry, dict) or set(entry) - {"principal", "role", "scope"}:
            raise RbacFileError(f"{where}: expected principal, role and scope")
        principal, role, scope = entry.get("principal"), entry.get("role"), entry.get("scope", "*")
        if not isinstance(principal, str) or not principal:
            raise RbacFileError(f"{where}.principal must be a non-empty string")
        if role not in ROLES:
            raise RbacFileError(f"{where}.role {role!r} is not one of {sorted(ROLES)}")
        if not isinstance(scope, str) or not scope:
            raise RbacFileError(f"{where}.scope must be a region name or '*'")
        found.append(Assignment(principal, str(role), scope))
    return key_file, tuple(found)


def _key(path: Path) -> bytes:
    """The shared token key: made once (0600), read by every emulator of the file. Made
    under another name and linked into place, so an emulator starting at the same time
    never reads a half-written key."""
    if not path.exists():
        staging = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_hex(32).encode())
        try:
            os.link(staging, path)
        except FileExistsError:
            pass  # another emulator made it first: use theirs
        finally:
            staging.unlink()
    data = path.read_bytes().strip()
    if len(data) < 32:
        raise RbacFileError(f"{path}: the token key is shorter than 32 bytes")
    return data


class Rbac:
    """The RBAC file of one vault (its region), re-read when it changes."""

    def __init__(self, path: Path, region: str) -> None:
        self.path = Path(path).resolve()
        self.region = region
        self._mtime = -1.0
        self._checked = 0.0
        self.assignments: tuple[Assignment, ...] = ()
        self._load()
        key_file, _ = parse_assignments(self._read(), self.path)
        self.token_key = _key(self.path.parent / key_file)

    def _read(self) -> object:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RbacFileError(f"{self.path}: no such file") from None
        except (OSError, ValueError, RecursionError) as exc:
            raise RbacFileError(f"{self.path}: not readable JSON ({type(exc).__name__})") from None

    def _load(self) -> None:
        _, self.assignments = parse_assignments(self._read(), self.path)
        self._mtime = self.path.stat().st_mtime

    def _fresh(self) -> None:
        now = time.monotonic()
        if now - self._checked < _RELOAD_SECONDS:
            return
        self._checked = now
        try:
            if self.path.stat().st_mtime != self._mtime:
                self._load()
        except (OSError, RbacFileError):
            # A file being rewritten, or a broken edit: keep the last good assignments.
            return

    def roles_of(self, principal: str) -> list[str]:
        self._fresh()
        return [
            a.role
            for a in self.assignments
            if a.principal == principal and a.scope in ("*", self.region)
        ]

    def allows(self, principal: str, operation: str) -> tuple[bool, str]:
        """(allowed, the action `operation` needs). Unknown operations need Administrator."""
        control = operation in ACTIONS
        if control:
            needed = ACTIONS[operation]
        else:
            needed = DATA_ACTIONS.get(operation, f"{_VAULTS}/{operation}")
        for role in self.roles_of(principal):
            _, actions, data_actions = ROLES[role]
            granted = actions if control else data_actions
            if any(_pattern(action).fullmatch(needed) for action in granted):
                return True, needed
        return False, needed

    # -- tokens ---------------------------------------------------------------------------

    def principal(self, token: str, audience: str, now: float | None = None) -> str:
        """The principal of a valid token; KeyVaultError 401 naming what is wrong."""
        parts = token.split(".")
        if len(parts) != 3:
            raise _invalid("the token is not a signed JWT")
        head, body, signature = parts
        expected = hmac.new(self.token_key, f"{head}.{body}".encode(), hashlib.sha256).digest()
        try:
            given = _unb64url(signature)
            header = json.loads(_unb64url(head))
            payload = json.loads(_unb64url(body))
        except (binascii.Error, ValueError, RecursionError):
            raise _invalid("the token is not a signed JWT") from None
        if not isinstance(header, dict) or header.get("alg") != "HS256":
            raise _invalid("the token's algorithm is not the tenant's")
        if not hmac.compare_digest(given, expected):
            raise _invalid("the token's signature does not verify")
        if not isinstance(payload, dict):
            raise _invalid("the token carries no claims")
        moment = time.time() if now is None else now
        expires = payload.get("exp")
        if not isinstance(expires, int | float) or expires <= moment:
            raise _invalid("the token has expired")
        if str(payload.get("aud", "")).rstrip("/") != audience.rstrip("/"):
            raise _invalid("the token's audience is not this vault's")
        oid = payload.get("oid")
        if not isinstance(oid, str) or not oid:
            raise _invalid("the token names no principal")
        return oid


def _invalid(reason: str) -> KeyVaultError:
    return KeyVaultError(401, "Unauthorized", f"AKV10022: Invalid audience or token: {reason}.")


def forbidden_by_rbac(principal: str, action: str, vault: str, region: str) -> KeyVaultError:
    """403 as Key Vault answers a caller without the data action."""
    return KeyVaultError(
        403,
        "Forbidden",
        "Caller is not authorized to perform action on resource.\r\n"
        "If role assignments, deny assignments or role definitions were changed recently, "
        "please observe propagation time.\r\n"
        f"Caller: oid={principal}\r\nAction: '{action}'\r\n"
        f"Resource: '{vault}'\r\nAssignment: (not found)\r\n"
        "DecisionReason: 'DeniedWithNoValidRBAC'\r\n"
        f"Vault: {vault};location={region}\r\n",
        "ForbiddenByRbac",
    )
