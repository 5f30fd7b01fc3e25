"""What travels next to keys and certificates but not inside every backup: key rotation
policies, certificate policies, certificate issuers and certificate contacts.

Plain, comparable values (frozen dataclasses of tuples) without the vault's own ids and
timestamps, so a mirror can tell "the same policy" from the values alone and write one
vault's policy onto another. None of them carries material; an issuer's password is
never returned by Key Vault and is not modelled.
"""

from __future__ import annotations

from dataclasses import dataclass

# The two formats a certificate's secret comes in (the policy's `content_type`).
PFX_CONTENT_TYPE = "application/x-pkcs12"
PEM_CONTENT_TYPE = "application/x-pem-file"


@dataclass(frozen=True)
class RotationAction:
    """One lifetime action of a key rotation policy (`Rotate` or `Notify`) and its
    trigger, as ISO-8601 durations (`P90D`)."""

    action: str
    time_after_create: str | None = None
    time_before_expiry: str | None = None


@dataclass(frozen=True)
class RotationPolicy:
    """A key's rotation policy: what Key Vault does over a key's life, and the expiry
    (`expires_in`, ISO-8601 duration) it gives each new version."""

    actions: tuple[RotationAction, ...] = ()
    expires_in: str | None = None


@dataclass(frozen=True)
class CertificateLifetimeAction:
    """`AutoRenew` or `EmailContacts` at a share of the lifetime or days before expiry."""

    action: str
    lifetime_percentage: int | None = None
    days_before_expiry: int | None = None


@dataclass(frozen=True)
class CertificatePolicy:
    """How a certificate's versions are made: key, subject, issuer, secret format, renewal.

    Field names follow the SDK's `CertificatePolicy`; collections are tuples (empty when
    unset) so two policies compare equal exactly when a vault would treat them alike.
    """

    issuer_name: str | None = None
    subject: str | None = None
    exportable: bool | None = None
    key_type: str | None = None
    key_size: int | None = None
    reuse_key: bool | None = None
    key_curve_name: str | None = None
    enhanced_key_usage: tuple[str, ...] = ()
    key_usage: tuple[str, ...] = ()
    content_type: str | None = None
    validity_in_months: int | None = None
    lifetime_actions: tuple[CertificateLifetimeAction, ...] = ()
    certificate_type: str | None = None
    certificate_transparency: bool | None = None
    san_emails: tuple[str, ...] = ()
    san_dns_names: tuple[str, ...] = ()
    san_user_principal_names: tuple[str, ...] = ()
    san_ip_addresses: tuple[str, ...] = ()
    san_uris: tuple[str, ...] = ()

    @property
    def key_exportable(self) -> bool:
        """Whether the certificate's secret holds the private key. Key Vault treats an
        unset flag as exportable (its default)."""
        return self.exportable is not False


@dataclass(frozen=True)
class IssuerContact:
    """An administrator of a certificate issuer account."""

    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None


@dataclass(frozen=True)
class CertificateIssuer:
    """A certificate issuer (a CA account) as Key Vault returns it: without its password."""

    name: str
    provider: str
    account_id: str | None = None
    organization_id: str | None = None
    admin_contacts: tuple[IssuerContact, ...] = ()
    enabled: bool = True


@dataclass(frozen=True)
class CertificateContact:
    """Who Key Vault e-mails about certificate lifetime events."""

    email: str | None = None
    name: str | None = None
    phone: str | None = None
