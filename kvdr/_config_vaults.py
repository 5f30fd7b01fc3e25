"""`[credential]` and `[regions.<name>]`: how kvdr authenticates, and the vaults.

The credential is a discriminated union on `kind`: each kind's model declares the keys
it takes, so a key another kind takes is a warning ("not used by credential kind"), a
key no kind takes an error. A literal `client_secret` is refused without being echoed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from failover.management import RESOURCE_ID_SHAPE, check_resource_id
from kvdr._config_fields import Invalid, Problems, choice, text, type_name
from kvdr._config_lines import KeyPath
from kvdr._config_model import (
    Check,
    EnvName,
    KindSection,
    Section,
    Text,
    build,
    kind_of,
    kind_union,
    read_kind,
    read_section,
    setting,
)
from replicator.plan_keys import SKUS
from vault.models import VaultRef
from vault.settings import CredentialSettings

LITERAL_SECRET_REFUSED = (
    "a literal client_secret is not accepted in the configuration file: put the secret "
    "in an environment variable and name that variable with client_secret_env"
)


_CLIENT_ID = "application (client) id; for managed identity, a user-assigned identity's client id"
_TENANT_ID = "Entra tenant"


class _Credential(KindSection):
    section = "credential"
    refused = {"client_secret": LITERAL_SECRET_REFUSED}

    ca_file: Text | None = setting(None, "CA bundle to trust for the token endpoint")


class DefaultCredential(_Credential):
    """DefaultAzureCredential; the default kind"""

    kind: Literal["default"] = "default"
    client_id: Text | None = setting(None, _CLIENT_ID)
    tenant_id: Text | None = setting(None, _TENANT_ID)


class ManagedIdentityCredential(_Credential):
    """the host's managed identity"""

    kind: Literal["managed-identity"] = "managed-identity"
    client_id: Text | None = setting(None, _CLIENT_ID)


class CliCredential(_Credential):
    """the Azure CLI's login"""

    kind: Literal["cli"] = "cli"
    tenant_id: Text | None = setting(None, _TENANT_ID)


class ClientSecretCredential(_Credential):
    """a service principal's secret"""

    hints = dict.fromkeys(
        ("client_id", "tenant_id", "client_secret_env"), " for kind 'client-secret'"
    )

    kind: Literal["client-secret"] = "client-secret"
    client_id: Text = setting(..., _CLIENT_ID)
    tenant_id: Text = setting(..., _TENANT_ID)
    client_secret_env: EnvName = setting(
        ..., "**name** of the environment variable holding the client secret"
    )


class ClientCertificateCredential(_Credential):
    """a service principal's certificate"""

    hints = dict.fromkeys(
        ("client_id", "tenant_id", "certificate_path"), " for kind 'client-certificate'"
    )

    kind: Literal["client-certificate"] = "client-certificate"
    client_id: Text = setting(..., _CLIENT_ID)
    tenant_id: Text = setting(..., _TENANT_ID)
    certificate_path: Text = setting(
        ..., "PEM or PFX file with the certificate and private key; must exist"
    )


class EmulatorCredential(_Credential):
    """the local emulator's managed-identity endpoint, which issues tokens for a chosen
    principal"""

    hints = {"emulator_state_dir": " for kind 'emulator'"}

    kind: Literal["emulator"] = "emulator"
    emulator_state_dir: Text = setting(
        ...,
        "state folder of a `kvdr emulator` (its `endpoint.json` says where to get tokens)",
    )
    client_id: Text | None = setting(None, _CLIENT_ID)


CREDENTIAL_KINDS = (
    DefaultCredential,
    ManagedIdentityCredential,
    CliCredential,
    ClientSecretCredential,
    ClientCertificateCredential,
    EmulatorCredential,
)
_BY_KIND = {kind_of(model): model for model in CREDENTIAL_KINDS}
Credential = kind_union(*CREDENTIAL_KINDS)


def read_credential(raw: object, env: Mapping[str, str], problems: Problems) -> CredentialSettings:
    path: KeyPath = ("credential",)
    chosen = read_kind(
        Credential,
        _BY_KIND,
        {} if raw is None else raw,
        path,
        problems,
        default="default",
        unused="credential kind",
    )
    if chosen is None:
        return CredentialSettings()
    secret: str | None = None
    if isinstance(chosen, ClientSecretCredential):
        secret = env.get(chosen.client_secret_env)
        if not secret:
            problems.error(
                (*path, "client_secret_env"),
                f"environment variable {chosen.client_secret_env} is not set or empty "
                "(it must hold the client secret)",
            )
    if (
        isinstance(chosen, ClientCertificateCredential)
        and not Path(chosen.certificate_path).is_file()
    ):
        problems.error((*path, "certificate_path"), f"file not found: {chosen.certificate_path}")
    return build(CredentialSettings, chosen, client_secret=secret)


# -- [regions.<name>] ----------------------------------------------------------------

_REGION_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


def shown_url(url: str) -> str:
    """A URL fit for a message: scheme, host, port and path only. A pasted URL may carry
    a SAS token in its query or a password in its user part."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    hidden = " (query hidden)" if parts.query or parts.fragment else ""
    return f"'{parts.scheme}://{host}{port}{parts.path}'{hidden}"


def _vault_url(value: object) -> str:
    url = text(value)
    parts = urlsplit(url)
    shown = shown_url(url)
    if parts.scheme != "https":
        raise Invalid(f"{shown} must be an https:// URL (Key Vault is only served over TLS)")
    try:
        parts.port  # noqa: B018 - parsing the port is the validation
    except ValueError:
        raise Invalid(f"{shown} has an invalid port") from None
    if not parts.hostname or parts.username or parts.password:
        raise Invalid(f"{shown} must be https://HOST[:PORT] without a user name")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise Invalid(f"{shown} must be the vault's base URL, without a path or query")
    return url.rstrip("/")


def _resource_id(value: object) -> str:
    word = text(value)
    try:
        return check_resource_id(word)
    except ValueError:
        raise Invalid(f"must be a Key Vault resource id, {RESOURCE_ID_SHAPE}") from None


def https_base_url(value: object, *, shown: bool = True) -> str:
    """A management plane's base URL; `shown`: the message shows the URL (without query)."""
    url = text(value)
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname or parts.query or parts.username:
        if shown:
            raise Invalid(f"{shown_url(url)} must be an https://HOST[:PORT] URL")
        raise Invalid("must be an https://HOST[:PORT] URL without a query or user name")
    return url.rstrip("/")


class RegionSection(Section):
    section = "regions"
    hints = {"vault_url": " (the vault's https:// URL)"}

    vault_url: Annotated[str, Check(_vault_url, "string")] = setting(
        ...,
        "the vault's base URL; must be `https://` (`https://contoso.vault.azure.net`, a "
        "Managed HSM URL, or `https://127.0.0.1:8443` for the emulator); no path or query",
    )
    sku: Annotated[str, Check(choice(SKUS, fold_case=True), "string")] = setting(
        "standard",
        "the vault's tier: `standard`, `premium` or `managed-hsm` (case-insensitive). Key "
        "Vault does not tell a client its tier; kvdr uses it to know which key types a "
        "secondary can hold (`RSA-HSM`/`EC-HSM` need premium, `oct-HSM` a Managed HSM) "
        "and refuses at start a pair whose primary holds a key a secondary cannot take",
    )
    resource_id: Annotated[str | None, Check(_resource_id, "string")] = setting(
        None,
        "the vault's Azure Resource Manager id, `/subscriptions/<id>/resourceGroups/"
        "<group>/providers/Microsoft.KeyVault/vaults/<name>`: the network fence and "
        "`kvdr failover check` read and set its properties through it. Required on every "
        'region of every pair under `[failover] fence = "azure-network-deny"`',
    )
    management_url: Annotated[str | None, Check(https_base_url, "string")] = setting(
        None,
        "where this vault's management plane answers; locally the emulator's own URL (it "
        "serves the two calls kvdr makes), on Azure leave it out",
        shown="`[failover] management_url`",
    )


def read_regions(raw: object, problems: Problems) -> dict[str, VaultRef]:
    """The regions that are valid, by name. Names of invalid ones are `declared_regions`."""
    path: KeyPath = ("regions",)
    if raw is not None and not isinstance(raw, dict):
        problems.error(path, f"expected a table of regions, got {type_name(raw)}")
        return {}
    if not raw:
        problems.error(path, "no regions: add a [regions.<name>] table with a vault_url")
        return {}
    regions: dict[str, VaultRef] = {}
    seen_urls: dict[str, str] = {}
    for name, body in raw.items():
        where = (*path, name)
        if not _REGION_NAME.fullmatch(name):
            problems.error(
                where,
                f"region name {name!r} must be 1-63 lowercase letters, digits, '-' or '_'",
            )
        region = read_section(RegionSection, body, where, problems)
        if region is None:
            continue
        same = seen_urls.get(region.vault_url.lower())
        if same is not None:
            problems.error((*where, "vault_url"), f"the same vault as region {same!r}")
            continue
        seen_urls[region.vault_url.lower()] = name
        regions[name] = build(VaultRef, region, region=name, url=region.vault_url)
    return regions


def declared_regions(raw: object) -> set[str]:
    """Every region name the document declares, valid or not (so a pair that names a
    region with a broken vault_url is not told the region is unknown)."""
    return set(raw) if isinstance(raw, dict) else set()
