"""Where an Azure storage account answers: primary URL, secondary (read) URL, credential.

Pure functions over `AzureBlobSettings`, so the endpoint rules (RA-GZRS secondary host
`<account>-secondary.blob...`, Azurite's path-style `/<account>-secondary`) are tested
without a network. Nothing here puts a key or SAS token into a message or a repr.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from azure.core.credentials import AzureNamedKeyCredential, AzureSasCredential

from storage.settings import AzureBlobSettings

# Azurite's well-known development account (published in Azurite's and Microsoft's
# documentation; not a secret). Used only for `UseDevelopmentStorage=true`.
DEV_ACCOUNT = "devstoreaccount1"
DEV_ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
DEV_BLOB_ENDPOINT = f"http://127.0.0.1:10000/{DEV_ACCOUNT}"
SECONDARY_SUFFIX = "-secondary"
# Host names Azurite (and the SDK) treat as "account in the path", like an IP address.
_PATH_STYLE_HOSTS = {"localhost", "host.docker.internal"}

Credential = AzureNamedKeyCredential | AzureSasCredential


@dataclass(frozen=True)
class Endpoints:
    """The resolved account: URLs may carry a SAS query; `safe_url` never does."""

    primary: str
    secondary: str | None
    credential: Credential | None = field(default=None, repr=False)


def safe_url(url: str) -> str:
    """`url` without query and fragment (a SAS token lives in the query)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def _is_path_style(host: str) -> bool:
    if host.lower() in _PATH_STYLE_HOSTS:
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def derive_secondary(primary_url: str) -> str | None:
    """The read-access secondary URL of an account URL, or None when it has no rule.

    Azure: `https://acct.blob.core.windows.net` -> `https://acct-secondary.blob...`.
    Azurite (account in the path): `http://127.0.0.1:10000/acct` -> `.../acct-secondary`.
    A custom domain has no derivable secondary; configure `secondary_account_url`.
    """
    parts = urlsplit(primary_url)
    host = parts.hostname or ""
    if _is_path_style(host):
        segments = parts.path.strip("/").split("/")
        account = segments[0]
        if not account or account.endswith(SECONDARY_SUFFIX):
            return None
        path = "/" + "/".join([account + SECONDARY_SUFFIX, *segments[1:]])
        return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))
    account, dot, rest = parts.netloc.partition(".")
    if not dot or not rest.startswith("blob.") or account.endswith(SECONDARY_SUFFIX):
        return None
    netloc = f"{account}{SECONDARY_SUFFIX}.{rest}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def parse_connection_string(text: str) -> dict[str, str]:
    """`Key=Value;...` into a dict with lower-cased keys (the SDK's keys are case-blind).

    Errors name the offending segment's position and key only, never a value.
    """
    found: dict[str, str] = {}
    for position, segment in enumerate(text.strip().split(";"), start=1):
        if not segment.strip():
            continue
        key, eq, value = segment.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"storage connection_string: segment {position} is not Key=Value")
        found[key.strip().lower()] = value.strip()
    return found


def resolve(settings: AzureBlobSettings) -> Endpoints:
    """Primary and secondary URLs and the credential a connection string carries."""
    if settings.connection_string is None:
        if settings.account_url is None:
            raise ValueError("storage needs connection_string or account_url; neither is set")
        primary = settings.account_url.rstrip("/")
        secondary = settings.secondary_account_url or derive_secondary(primary)
        return Endpoints(primary=primary, secondary=secondary)

    parts = parse_connection_string(settings.connection_string)
    if parts.get("usedevelopmentstorage", "").lower() == "true":
        primary = DEV_BLOB_ENDPOINT
        credential: Credential | None = AzureNamedKeyCredential(DEV_ACCOUNT, DEV_ACCOUNT_KEY)
    else:
        account = parts.get("accountname", "")
        if "blobendpoint" in parts:
            primary = parts["blobendpoint"].rstrip("/")
        elif account:
            protocol = parts.get("defaultendpointsprotocol", "https")
            suffix = parts.get("endpointsuffix", "core.windows.net")
            primary = f"{protocol}://{account}.blob.{suffix}"
        else:
            raise ValueError("storage connection_string has neither BlobEndpoint nor AccountName")
        if parts.get("accountkey"):
            if not account:
                raise ValueError("storage connection_string has AccountKey but no AccountName")
            credential = AzureNamedKeyCredential(account, parts["accountkey"])
        elif parts.get("sharedaccesssignature"):
            credential = AzureSasCredential(parts["sharedaccesssignature"].lstrip("?"))
        else:
            credential = None
    secondary = (
        settings.secondary_account_url
        or parts.get("blobsecondaryendpoint")
        or derive_secondary(primary)
    )
    return Endpoints(
        primary=primary,
        secondary=secondary.rstrip("/") if secondary else None,
        credential=credential,
    )
