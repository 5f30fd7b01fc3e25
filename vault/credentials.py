"""Build the Azure credential kvdr uses for vaults from `CredentialSettings`.

Kinds: `default` (DefaultAzureCredential), `managed-identity`, `cli`, `client-secret`,
`client-certificate` and `emulator`. The `emulator` kind is the real
`azure.identity.aio.ManagedIdentityCredential` talking the App Service protocol
(IDENTITY_ENDPOINT + IDENTITY_HEADER) to the local emulator's token endpoint, which is
how kvdr authenticates on Azure too.

Why the environment is touched at all: `ManagedIdentityCredential` has no parameter for
the endpoint or the header. It picks its hosting flavour from `os.environ` and the App
Service flavour reads IDENTITY_ENDPOINT / IDENTITY_HEADER once, in its constructor
(`azure/identity/aio/_credentials/app_service.py`, `_get_client_args`), keeping them in
the request factory and headers it builds. So kvdr sets the two variables only for the
duration of that constructor call, under a lock, and restores the previous environment
before returning; nothing reads them later. The CA to trust goes in as
`connection_verify`, which reaches the credential's own aiohttp transport.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from azure.core.credentials_async import AsyncTokenCredential
from azure.identity.aio import (
    AzureCliCredential,
    CertificateCredential,
    ClientSecretCredential,
    DefaultAzureCredential,
    ManagedIdentityCredential,
)

from vault.settings import CREDENTIAL_KINDS, CredentialSettings

ENDPOINT_FILE = "endpoint.json"

# Variables ManagedIdentityCredential consults before it would choose App Service: a
# thumbprint would turn the App Service pair into Service Fabric.
_OVERRIDDEN = ("IDENTITY_SERVER_THUMBPRINT",)
_ENV_LOCK = threading.Lock()


class CredentialSettingsError(ValueError):
    """The credential settings cannot build a credential; the message names the field."""


def build_credential(settings: CredentialSettings) -> AsyncTokenCredential:
    """A new async credential for `settings`; the caller closes it (`async with`)."""
    kind = settings.kind
    if kind not in CREDENTIAL_KINDS:
        raise CredentialSettingsError(
            f"credential kind {kind!r} is not one of {', '.join(CREDENTIAL_KINDS)}"
        )
    # The CA to trust reaches the credential's own HTTP transport (its token requests).
    transport: dict[str, Any] = {"connection_verify": settings.ca_file} if settings.ca_file else {}
    if kind == "default":
        options = dict(transport)
        if settings.client_id:
            options["managed_identity_client_id"] = settings.client_id
        return DefaultAzureCredential(**options)
    if kind == "cli":
        return AzureCliCredential(tenant_id=settings.tenant_id or "")
    if kind == "client-secret":
        _require(settings, kind, "tenant_id", "client_id", "client_secret")
        return ClientSecretCredential(
            str(settings.tenant_id),
            str(settings.client_id),
            str(settings.client_secret),
            **transport,
        )
    if kind == "client-certificate":
        _require(settings, kind, "tenant_id", "client_id", "certificate_path")
        path = Path(str(settings.certificate_path))
        if not path.is_file():
            raise CredentialSettingsError(
                f"credential certificate_path {str(path)!r} is not a readable file"
            )
        return CertificateCredential(
            str(settings.tenant_id), str(settings.client_id), str(path), **transport
        )
    if kind == "managed-identity":
        if settings.identity_endpoint or settings.identity_header:
            _require(settings, kind, "identity_endpoint", "identity_header")
            return app_service_identity(
                str(settings.identity_endpoint),
                str(settings.identity_header),
                client_id=settings.client_id,
                ca_file=settings.ca_file,
            )
        return ManagedIdentityCredential(client_id=settings.client_id, **transport)
    return _emulator_credential(settings)


def _emulator_credential(settings: CredentialSettings) -> AsyncTokenCredential:
    endpoint, header, ca = settings.identity_endpoint, settings.identity_header, settings.ca_file
    if not (endpoint and header):
        if not settings.emulator_state_dir:
            raise CredentialSettingsError(
                "credential kind 'emulator' needs emulator_state_dir (the folder holding "
                "the emulator's endpoint.json) or identity_endpoint and identity_header"
            )
        info = read_endpoint_file(settings.emulator_state_dir)
        endpoint = endpoint or info["identity_endpoint"]
        header = header or info["identity_header"]
        ca = ca or info.get("ca")
    return app_service_identity(endpoint, header, client_id=settings.client_id, ca_file=ca)


def read_endpoint_file(state_dir: str | os.PathLike[str]) -> dict[str, str]:
    """The emulator's `<state_dir>/endpoint.json`, checked for what a credential needs."""
    path = Path(state_dir) / ENDPOINT_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CredentialSettingsError(
            f"emulator_state_dir: {str(path)!r} does not exist (is the emulator running?)"
        ) from None
    except (OSError, ValueError) as exc:
        raise CredentialSettingsError(
            f"emulator_state_dir: {str(path)!r} is not readable JSON ({type(exc).__name__})"
        ) from None
    if not isinstance(data, dict):
        raise CredentialSettingsError(f"emulator_state_dir: {str(path)!r} is not a JSON object")
    for key in ("identity_endpoint", "identity_header"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise CredentialSettingsError(f"emulator_state_dir: {str(path)!r} has no {key!r}")
    return {k: str(v) for k, v in data.items() if v is not None}


def app_service_identity(
    identity_endpoint: str,
    identity_header: str,
    *,
    client_id: str | None = None,
    ca_file: str | None = None,
) -> ManagedIdentityCredential:
    """`ManagedIdentityCredential` bound to one App Service-style token endpoint."""
    options: dict[str, Any] = {}
    if ca_file:
        options["connection_verify"] = ca_file
    with _scoped_environ(
        {"IDENTITY_ENDPOINT": identity_endpoint, "IDENTITY_HEADER": identity_header}
    ):
        return ManagedIdentityCredential(client_id=client_id, **options)


@contextmanager
def _scoped_environ(values: Mapping[str, str]) -> Iterator[None]:
    """Set `values` (and hide `_OVERRIDDEN`) in os.environ, restoring it afterwards.

    The lock keeps two threads from interleaving their scopes; within one event loop the
    constructor call is synchronous, so no coroutine can observe the temporary values.
    """
    keys = (*values, *_OVERRIDDEN)
    with _ENV_LOCK:
        saved = {k: os.environ.get(k) for k in keys}
        try:
            for k in _OVERRIDDEN:
                os.environ.pop(k, None)
            os.environ.update(values)
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def _require(settings: CredentialSettings, kind: str, *fields: str) -> None:
    missing = [f for f in fields if not getattr(settings, f)]
    if missing:
        raise CredentialSettingsError(
            f"credential kind {kind!r} needs {', '.join(missing)} (missing or empty)"
        )
