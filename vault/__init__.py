"""The vault seam: every request kvdr makes to Azure Key Vault goes through here.

`KeyVaultAdapter` implements `VaultClient` over the official azure-keyvault aio clients,
with rate control and retry (`RateController`) and error mapping in one place.
"""

from vault.adapter import KeyVaultAdapter
from vault.client import VaultAdministration, VaultClient, VaultCrypto, VaultItems
from vault.credentials import CredentialSettingsError, build_credential
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
from vault.models import (
    Attributes,
    CertificateMaterial,
    Change,
    ChangeOp,
    DeletedItem,
    ItemKind,
    ItemProperties,
    ItemRef,
    SecretValue,
    VaultRef,
)
from vault.rate import RateController, RateStats
from vault.settings import CredentialSettings, VaultSettings

__all__ = [
    "Attributes",
    "BadRequest",
    "CertificateMaterial",
    "Change",
    "ChangeOp",
    "CredentialSettings",
    "CredentialSettingsError",
    "DeletedButRecoverable",
    "DeletedItem",
    "Forbidden",
    "ItemConflict",
    "ItemKind",
    "ItemNotFound",
    "ItemProperties",
    "ItemRef",
    "KeyVaultAdapter",
    "NoAnswer",
    "RateController",
    "RateStats",
    "RequestNotSent",
    "SecretValue",
    "ServerError",
    "Throttled",
    "VaultAdministration",
    "VaultClient",
    "VaultCrypto",
    "VaultError",
    "VaultItems",
    "VaultRef",
    "VaultRefused",
    "VaultSettings",
    "build_credential",
]
