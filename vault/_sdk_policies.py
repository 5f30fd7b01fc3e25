"""Conversions between the azure-keyvault SDK's policy, issuer and contact types and
kvdr's (`vault.policies`), both ways: a mirror reads them from one vault and writes them
onto another."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from azure.keyvault.certificates import AdministratorContact, LifetimeAction
from azure.keyvault.certificates import CertificateContact as SdkContact
from azure.keyvault.certificates import CertificateIssuer as SdkIssuer
from azure.keyvault.certificates import CertificatePolicy as SdkCertificatePolicy
from azure.keyvault.keys import KeyRotationLifetimeAction, KeyRotationPolicy

from vault._sdk_models import _text
from vault.policies import (
    CertificateContact,
    CertificateIssuer,
    CertificateLifetimeAction,
    CertificatePolicy,
    IssuerContact,
    RotationAction,
    RotationPolicy,
)


def _texts(values: Iterable[object] | None) -> tuple[str, ...]:
    return tuple(t for t in (_text(v) for v in values or ()) if t is not None)


def rotation_policy(p: KeyRotationPolicy) -> RotationPolicy:
    return RotationPolicy(
        actions=tuple(
            RotationAction(
                action=_text(a.action) or "",
                time_after_create=a.time_after_create,
                time_before_expiry=a.time_before_expiry,
            )
            for a in p.lifetime_actions or ()
        ),
        expires_in=p.expires_in,
    )


def sdk_rotation_policy(p: RotationPolicy) -> KeyRotationPolicy:
    policy = KeyRotationPolicy()
    policy.lifetime_actions = [
        KeyRotationLifetimeAction(
            a.action, time_after_create=a.time_after_create, time_before_expiry=a.time_before_expiry
        )
        for a in p.actions
    ]
    policy.expires_in = p.expires_in
    return policy


def certificate_policy(p: SdkCertificatePolicy) -> CertificatePolicy:
    return CertificatePolicy(
        issuer_name=p.issuer_name,
        subject=p.subject,
        exportable=p.exportable,
        key_type=_text(p.key_type),
        key_size=p.key_size,
        reuse_key=p.reuse_key,
        key_curve_name=_text(p.key_curve_name),
        enhanced_key_usage=_texts(p.enhanced_key_usage),
        key_usage=_texts(p.key_usage),
        content_type=_text(p.content_type),
        validity_in_months=p.validity_in_months,
        lifetime_actions=tuple(
            CertificateLifetimeAction(
                action=_text(a.action) or "",
                lifetime_percentage=a.lifetime_percentage,
                days_before_expiry=a.days_before_expiry,
            )
            for a in p.lifetime_actions or ()
        ),
        certificate_type=p.certificate_type,
        certificate_transparency=p.certificate_transparency,
        san_emails=_texts(p.san_emails),
        san_dns_names=_texts(p.san_dns_names),
        san_user_principal_names=_texts(p.san_user_principal_names),
        san_ip_addresses=_texts(p.san_ip_addresses),
        san_uris=_texts(p.san_uris),
    )


def sdk_certificate_policy(p: CertificatePolicy) -> SdkCertificatePolicy:
    def listed(values: tuple[str, ...]) -> list[str] | None:
        return list(values) or None

    options: dict[str, Any] = {
        "subject": p.subject,
        "exportable": p.exportable,
        "key_type": p.key_type,
        "key_size": p.key_size,
        "reuse_key": p.reuse_key,
        "key_curve_name": p.key_curve_name,
        "enhanced_key_usage": listed(p.enhanced_key_usage),
        "key_usage": listed(p.key_usage),
        "content_type": p.content_type,
        "validity_in_months": p.validity_in_months,
        "lifetime_actions": [
            LifetimeAction(
                a.action,
                lifetime_percentage=a.lifetime_percentage,
                days_before_expiry=a.days_before_expiry,
            )
            for a in p.lifetime_actions
        ]
        or None,
        "certificate_type": p.certificate_type,
        "certificate_transparency": p.certificate_transparency,
        "san_emails": listed(p.san_emails),
        "san_dns_names": listed(p.san_dns_names),
        "san_user_principal_names": listed(p.san_user_principal_names),
        "san_ip_addresses": listed(p.san_ip_addresses),
        "san_uris": listed(p.san_uris),
    }
    return SdkCertificatePolicy(p.issuer_name, **options)


def certificate_issuer(i: SdkIssuer) -> CertificateIssuer:
    return CertificateIssuer(
        name=i.name or "",
        provider=i.provider or "",
        account_id=i.account_id,
        organization_id=i.organization_id,
        admin_contacts=tuple(
            IssuerContact(
                email=c.email, first_name=c.first_name, last_name=c.last_name, phone=c.phone
            )
            for c in i.admin_contacts or ()
        ),
        enabled=bool(i.enabled) if i.enabled is not None else True,
    )


def sdk_admin_contacts(i: CertificateIssuer) -> list[AdministratorContact]:
    return [
        AdministratorContact(
            first_name=c.first_name, last_name=c.last_name, email=c.email, phone=c.phone
        )
        for c in i.admin_contacts
    ]


def certificate_contact(c: SdkContact) -> CertificateContact:
    return CertificateContact(email=c.email, name=c.name, phone=c.phone)


def sdk_contact(c: CertificateContact) -> SdkContact:
    return SdkContact(email=c.email, name=c.name, phone=c.phone)
