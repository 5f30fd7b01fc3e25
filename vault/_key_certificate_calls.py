"""The adapter's key and certificate calls beyond the per-kind basics of `_kinds`: a key's
properties with its type, rotation policies, certificate policies, a certificate
version's PFX/PEM, certificate import, issuers and contacts.

`KeyCertificateCalls` is one part of `KeyVaultAdapter` over `AdapterCore` (retry, rate
control, error mapping, name check), so these calls behave like every other one.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
from typing import Any, TypeVar

from vault import _sdk_models as sdk
from vault import _sdk_policies as policies
from vault._core import AdapterCore
from vault._kinds import PAGE_SIZE
from vault.errors import BadRequest, ItemNotFound, VaultError
from vault.models import Attributes, CertificateMaterial, ItemKind, ItemProperties
from vault.policies import (
    PEM_CONTENT_TYPE,
    PFX_CONTENT_TYPE,
    CertificateContact,
    CertificateIssuer,
    CertificatePolicy,
    RotationPolicy,
)

T = TypeVar("T")


class KeyCertificateCalls(AdapterCore):
    """Key and certificate calls of `KeyVaultAdapter` (see the module docstring)."""

    # -- keys ---------------------------------------------------------------------------

    async def get_key(self, name: str, version: str | None = None) -> ItemProperties:
        """One key version's properties with its `key_type` (`RSA`, `EC-HSM`, ...): the
        listings carry no type."""
        op = "get_key"
        item = self._item(ItemKind.KEY, name, op)
        key = await self._call(op, item, lambda: self._keys.get_key(name, version))
        return sdk.key_properties(key.properties, key.key_type)

    async def public_fingerprint(self, kind: ItemKind, name: str) -> str | None:
        """SHA-256 of the current version's public material: a key's public JWK members
        (kty without `-HSM`, n and e or crv, x and y), a certificate's X.509 (DER). None
        for a key without a public half (oct). Nothing private is read, so the digest is
        safe to compare anywhere; it is still never shown."""
        if kind is ItemKind.CERTIFICATE:
            op = "get_certificate"
            item = self._item(kind, name, op)
            cert = await self._call(op, item, lambda: self._certificates.get_certificate(name))
            return hashlib.sha256(bytes(cert.cer or b"")).hexdigest()
        op = "get_key"
        item = self._item(ItemKind.KEY, name, op)
        key = await self._call(op, item, lambda: self._keys.get_key(name))
        jwk = key.key
        members: dict[str, str] = {"kty": str(getattr(jwk, "kty", "") or "").removesuffix("-HSM")}
        for member in ("n", "e", "crv", "x", "y"):
            value = getattr(jwk, member, None)
            if value:
                members[member] = value.hex() if isinstance(value, bytes) else str(value)
        if not any(m in members for m in ("n", "x")):
            return None
        return hashlib.sha256(repr(sorted(members.items())).encode()).hexdigest()

    async def get_rotation_policy(self, name: str) -> RotationPolicy:
        """The key's rotation policy (Key Vault answers its default when none was set)."""
        op = "get_rotation_policy"
        item = self._item(ItemKind.KEY, name, op)
        policy = await self._call(op, item, lambda: self._keys.get_key_rotation_policy(name))
        return policies.rotation_policy(policy)

    async def set_rotation_policy(self, name: str, policy: RotationPolicy) -> RotationPolicy:
        op = "set_rotation_policy"
        item = self._item(ItemKind.KEY, name, op)
        written = await self._call(
            op,
            item,
            lambda: self._keys.update_key_rotation_policy(
                name, policies.sdk_rotation_policy(policy)
            ),
        )
        return policies.rotation_policy(written)

    # -- certificates -------------------------------------------------------------------

    async def get_certificate_policy(self, name: str) -> CertificatePolicy:
        op = "get_certificate_policy"
        item = self._item(ItemKind.CERTIFICATE, name, op)
        policy = await self._call(op, item, lambda: self._certificates.get_certificate_policy(name))
        return policies.certificate_policy(policy)

    async def set_certificate_policy(
        self, name: str, policy: CertificatePolicy
    ) -> CertificatePolicy:
        """Write `policy` onto the certificate; it shapes the certificate's next version."""
        op = "set_certificate_policy"
        item = self._item(ItemKind.CERTIFICATE, name, op)
        written = await self._call(
            op,
            item,
            lambda: self._certificates.update_certificate_policy(
                name, policies.sdk_certificate_policy(policy)
            ),
        )
        return policies.certificate_policy(written)

    async def get_certificate_material(self, name: str, version: str) -> CertificateMaterial:
        """One certificate version as its secret holds it (PFX bytes or PEM text).

        The private key is in it only when the policy marks the key exportable. Key Vault
        refuses to read a disabled version (403 `Forbidden`).
        """
        op = "get_certificate_material"
        item = self._item(ItemKind.CERTIFICATE, name, op)
        secret = await self._call(op, item, lambda: self._secrets.get_secret(name, version))
        value = secret.value or ""
        content_type = secret.properties.content_type or PFX_CONTENT_TYPE
        if content_type == PEM_CONTENT_TYPE:
            data = value.encode()
        elif content_type == PFX_CONTENT_TYPE:
            try:
                data = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise VaultError(
                    f"{op} {item} on vault {self._ref.label}: the certificate's secret is not "
                    "base64 (expected a PFX)",
                    vault=self._ref.label,
                    op=op,
                ) from None
        else:
            raise VaultError(
                f"{op} {item} on vault {self._ref.label}: the certificate's secret has content "
                f"type {content_type!r}, neither {PFX_CONTENT_TYPE} nor {PEM_CONTENT_TYPE}",
                vault=self._ref.label,
                op=op,
            )
        return CertificateMaterial(
            name=name,
            version=secret.properties.version or version,
            content_type=content_type,
            data=data,
        )

    async def import_certificate(
        self,
        name: str,
        material: CertificateMaterial,
        attributes: Attributes,
        policy: CertificatePolicy | None = None,
    ) -> ItemProperties:
        """Import `material` as a new version of certificate `name` (enabled and tags
        from `attributes`; dates come from the X.509 itself).

        `policy` is written with the version; a PEM import needs one whose content type
        is PEM, so without a policy the material's content type is set on an empty one.
        """
        op = "import_certificate"
        item = self._item(ItemKind.CERTIFICATE, name, op)
        if not isinstance(material, CertificateMaterial) or not material.data:
            raise BadRequest(
                f"{op} {item} on vault {self._ref.label}: the certificate material is empty",
                vault=self._ref.label,
                op=op,
                code="InvalidCertificate",
            )
        if policy is None and material.content_type == PEM_CONTENT_TYPE:
            policy = CertificatePolicy(content_type=PEM_CONTENT_TYPE)
        sdk_policy = policies.sdk_certificate_policy(policy) if policy is not None else None
        options: dict[str, Any] = {"enabled": attributes.enabled, "tags": dict(attributes.tags)}
        if sdk_policy is not None:
            options["policy"] = sdk_policy
        cert = await self._call(
            op,
            item,
            lambda: self._certificates.import_certificate(name, material.data, **options),
            redact=_wire_forms(material.data),
        )
        if cert.properties is None:
            raise VaultError(
                f"{op} {item} on vault {self._ref.label}: the vault answered without properties",
                vault=self._ref.label,
                op=op,
            )
        return sdk.certificate_properties(cert.properties)

    async def list_issuers(self) -> list[CertificateIssuer]:
        """Every certificate issuer of the vault, each read in full (without password)."""
        op = "list_issuers"

        async def names() -> list[str]:
            pager = self._certificates.list_properties_of_issuers(max_page_size=PAGE_SIZE)
            return [p.name async for p in pager if p.name]

        issuers = []
        for issuer_name in await self._call(op, "issuers", names):
            try:
                issuers.append(await self.get_issuer(issuer_name))
            except ItemNotFound:
                continue  # deleted between the listing and the read
        return issuers

    async def get_issuer(self, name: str) -> CertificateIssuer:
        op = "get_issuer"
        self._item(ItemKind.CERTIFICATE, name, op)  # issuer names follow the same rule
        item = f"issuer/{name}"
        issuer = await self._call(op, item, lambda: self._certificates.get_issuer(name))
        return policies.certificate_issuer(issuer)

    async def set_issuer(
        self, issuer: CertificateIssuer, previous: CertificateIssuer | None = None
    ) -> CertificateIssuer:
        """Create `issuer`, or bring the existing `previous` in line with it.

        Key Vault never returns an issuer's password, so kvdr cannot copy it. An update
        sends only the fields that differ: the account's credentials are sent only when
        the account id changes, so a password set on this vault by hand survives.
        """
        op = "set_issuer"
        self._item(ItemKind.CERTIFICATE, issuer.name, op)
        item = f"issuer/{issuer.name}"
        contacts = policies.sdk_admin_contacts(issuer)
        c = self._certificates
        if previous is None:
            written = await self._call(
                op,
                item,
                lambda: c.create_issuer(
                    issuer.name,
                    issuer.provider,
                    enabled=issuer.enabled,
                    account_id=issuer.account_id,
                    organization_id=issuer.organization_id,
                    admin_contacts=contacts or None,
                ),
            )
            return policies.certificate_issuer(written)
        changes: dict[str, Any] = {}
        if issuer.provider != previous.provider:
            changes["provider"] = issuer.provider
        if issuer.enabled != previous.enabled:
            changes["enabled"] = issuer.enabled
        if issuer.account_id != previous.account_id:
            changes["account_id"] = issuer.account_id
        if (
            issuer.organization_id != previous.organization_id
            or issuer.admin_contacts != previous.admin_contacts
        ):
            changes["organization_id"] = issuer.organization_id
            changes["admin_contacts"] = contacts or None
        if not changes:
            return previous
        written = await self._call(op, item, lambda: c.update_issuer(issuer.name, **changes))
        return policies.certificate_issuer(written)

    async def get_contacts(self) -> tuple[CertificateContact, ...]:
        """The vault's certificate contacts; () when none are set (Key Vault answers 404)."""
        op = "get_contacts"
        try:
            contacts = await self._call(op, "contacts", self._certificates.get_contacts)
        except ItemNotFound:
            return ()
        return tuple(policies.certificate_contact(c) for c in contacts)

    async def set_contacts(
        self, contacts: tuple[CertificateContact, ...]
    ) -> tuple[CertificateContact, ...]:
        """Replace the vault's certificate contacts with `contacts` (at least one)."""
        op = "set_contacts"
        if not contacts:
            raise BadRequest(
                f"{op} on vault {self._ref.label}: at least one contact is required",
                vault=self._ref.label,
                op=op,
                code="InvalidContacts",
            )
        sdk_contacts = [policies.sdk_contact(c) for c in contacts]
        written = await self._call(
            op, "contacts", lambda: self._certificates.set_contacts(sdk_contacts)
        )
        return tuple(policies.certificate_contact(c) for c in written)


def _wire_forms(data: bytes) -> tuple[str, ...]:
    """The forms certificate material may come back in within a vault's error message,
    for scrubbing: base64 (how the SDK sends it) and, for a PEM, the text itself."""
    forms = [base64.b64encode(data).decode("ascii")]
    with contextlib.suppress(UnicodeDecodeError):
        forms.append(data.decode("utf-8"))
    return tuple(forms)
