"""Certificate replication end to end against real emulators and Azurite
(replicator/certificate_mirror.py): restore, import of new versions, replace or blocked,
policies, issuers and contacts."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from azure.keyvault.certificates import CertificateContact as SdkContact
from azure.keyvault.certificates import CertificatePolicy as SdkPolicy
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from structlog.testing import capture_logs

from replicator.plan import PLACEHOLDER_TAG, SOURCE_VERSION_TAG
from tests.fixtures.emulator import EmulatorProcess, aio_certificate_client
from tests.fixtures.regions import World, WorldFactory
from tests.replicator.crypto_proof import prove_same_material
from vault.errors import Forbidden
from vault.models import Attributes, ItemKind, ItemProperties
from vault.policies import CertificateIssuer, IssuerContact

CERTS = frozenset({ItemKind.CERTIFICATE})
ALL_KINDS = frozenset({ItemKind.SECRET, ItemKind.KEY, ItemKind.CERTIFICATE})


def self_signed_policy(
    name: str, *, exportable: bool = True, key_type: str = "RSA", curve: str | None = None
) -> SdkPolicy:
    return SdkPolicy(
        "Self",
        subject=f"CN={name}.example.com",
        san_dns_names=[f"{name}.example.com"],
        # The SDK sends no key properties (so no `exportable: false`) without a key type.
        key_type=key_type,
        key_curve_name=curve,
        exportable=exportable,
        validity_in_months=12,
    )


async def create(emu: EmulatorProcess, name: str, policy: SdkPolicy, count: int = 1) -> list[str]:
    async with aio_certificate_client(emu) as certs:
        made = []
        for _ in range(count):
            cert = await certs.create_certificate(name, policy)
            assert cert.properties is not None
            made.append(cert.properties.version or "")
        return made


def external_pfx(common_name: str, *, use_ec: bool = False) -> bytes:
    """A certificate made outside Key Vault (as a CA would hand it over), as a PFX."""
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = (
        ec.generate_private_key(ec.SECP384R1())
        if use_ec
        else rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=90))
        .sign(key, hashes.SHA256())
    )
    return pkcs12.serialize_key_and_certificates(
        None, key, cert, None, serialization.NoEncryption()
    )


async def import_external(emu: EmulatorProcess, name: str, count: int, use_ec: bool) -> list[str]:
    async with aio_certificate_client(emu) as certs:
        made = []
        for index in range(count):
            cert = await certs.import_certificate(
                name, external_pfx(f"{name}-{index}.example.com", use_ec=use_ec)
            )
            assert cert.properties is not None
            made.append(cert.properties.version or "")
        return made


async def versions(world: World, region: str, name: str) -> list[ItemProperties]:
    return await world.vaults[region].list_versions(ItemKind.CERTIFICATE, name)


async def cer(emu: EmulatorProcess, name: str, version: str) -> bytes:
    async with aio_certificate_client(emu) as certs:
        cert = await certs.get_certificate_version(name, version)
        return bytes(cert.cer or b"")


class TestRestore:
    async def test_self_signed_and_imported_certificates_arrive_whole(self, world: World) -> None:
        """Self-signed (RSA, EC, non-exportable) and imported (RSA, EC) certificates with
        several versions arrive with the same ids, X.509, policy and private keys."""
        east, west = world.emulators["eastus"], world.emulators["westus"]
        made = {
            "web-rsa": await create(east, "web-rsa", self_signed_policy("web-rsa"), 2),
            "web-ec": await create(
                east, "web-ec", self_signed_policy("web-ec", key_type="EC", curve="P-256"), 2
            ),
            "sealed": await create(east, "sealed", self_signed_policy("sealed", exportable=False)),
            "ca-rsa": await import_external(east, "ca-rsa", 2, use_ec=False),
            "ca-ec": await import_external(east, "ca-ec", 2, use_ec=True),
        }
        curves = {"web-ec": "P-256", "ca-ec": "P-384"}
        replicator = world.replicator(world.pair(kinds=CERTS))
        await replicator.load()
        report = await replicator.reconcile()
        assert report.errors == 0 and report.conflicts == 0
        assert report.copied == sum(len(v) for v in made.values())
        for name, ids in made.items():
            assert [v.version for v in await versions(world, "westus", name)] == ids, name
            for version in ids:
                assert await cer(west, name, version) == await cer(east, name, version)
                await prove_same_material(east, west, name, version, curves.get(name))
            source_policy = await world.vaults["eastus"].get_certificate_policy(name)
            assert await world.vaults["westus"].get_certificate_policy(name) == source_policy
        # The private key of the non-exportable one travelled inside the backup only.
        sealed = await world.vaults["westus"].get_certificate_material("sealed", made["sealed"][0])
        assert pkcs12.load_key_and_certificates(sealed.data, None)[0] is None

    async def test_certificate_keys_and_secrets_are_not_copied_on_their_own(
        self, world: World
    ) -> None:
        """With secrets, keys and certificates in one pair, a certificate's key and secret
        arrive only with it: events naming them copy nothing and nothing conflicts."""
        await create(world.emulators["eastus"], "bundle", self_signed_policy("bundle"))
        replicator = world.replicator(world.pair(kinds=ALL_KINDS))
        await replicator.load()
        # The events a new certificate version sends for its key and secret.
        report = await replicator.sync_refs(
            {
                ref: 0.0
                for ref in (
                    ItemProperties(ItemKind.KEY, "bundle", "").ref,
                    ItemProperties(ItemKind.SECRET, "bundle", "").ref,
                )
            }
        )
        assert report.copied == 0 and report.errors == 0
        assert await world.vaults["westus"].list_items(ItemKind.KEY) == []
        report = await replicator.reconcile()
        assert report.errors == 0 and report.conflicts == 0 and report.copied == 1
        keys = await world.vaults["westus"].list_items(ItemKind.KEY)
        secrets = await world.vaults["westus"].list_items(ItemKind.SECRET)
        assert [(k.name, k.managed) for k in keys] == [("bundle", True)]
        assert [(s.name, s.managed) for s in secrets] == [("bundle", True)]


class TestNewVersions:
    async def test_exportable_new_version_is_imported_without_absence(
        self, make_world: WorldFactory
    ) -> None:
        """A renewed exportable certificate reaches even a purge-protected target as an
        imported version tagged with its source version: same X.509 and key, no delete."""
        world = await make_world(per_region={"westus": {"purge_protection": True}})
        east, west = world.emulators["eastus"], world.emulators["westus"]
        (first,) = await create(east, "renewed", self_signed_policy("renewed"))
        replicator = world.replicator(world.pair(kinds=CERTS))
        await replicator.load()
        await replicator.reconcile()
        world.advance_clock()  # whole-second timestamps: let the poll see the change
        (second,) = await create(east, "renewed", self_signed_policy("renewed"))
        with capture_logs() as logs:
            report = await replicator.poll()
        assert report.copied == 1 and report.errors == 0 and report.blocked == 0
        target = await versions(world, "westus", "renewed")
        assert len(target) == 2 and target[0].version == first
        imported = target[-1]
        assert imported.tags == {SOURCE_VERSION_TAG: second}
        assert await cer(west, "renewed", imported.version) == await cer(east, "renewed", second)
        await prove_same_material(east, west, "renewed", second, b_version=imported.version)
        assert not [e for e in logs if e["event"] == "certificate.replaced"]
        assert await world.vaults["westus"].list_deleted(ItemKind.CERTIFICATE) == []
        # The PFX (with its private key) passed through kvdr: none of it in logs or status.
        pfx = (await world.vaults["eastus"].get_certificate_material("renewed", second)).data
        shown = repr(logs) + repr(replicator.status())
        assert base64.b64encode(pfx)[100:140].decode() not in shown
        assert pfx[100:140].hex() not in shown
        # Idempotent: the tag ties the import to its source version.
        again = await replicator.reconcile()
        assert again.copied == 0 and again.updated == 0
        assert len(await versions(world, "westus", "renewed")) == 2

    async def test_non_exportable_new_version_replaces_the_copy(self, world: World) -> None:
        """A renewed non-exportable certificate replaces kvdr's copy where purge is allowed:
        both version ids, the new X.509, the absence logged."""
        east, west = world.emulators["eastus"], world.emulators["westus"]
        policy = self_signed_policy("locked", exportable=False)
        (first,) = await create(east, "locked", policy)
        replicator = world.replicator(world.pair(kinds=CERTS))
        await replicator.load()
        await replicator.reconcile()
        world.advance_clock()
        (second,) = await create(east, "locked", policy)
        with capture_logs() as logs:
            report = await replicator.poll()
        assert report.copied == 1 and report.errors == 0
        assert [v.version for v in await versions(world, "westus", "locked")] == [first, second]
        assert await cer(west, "locked", second) == await cer(east, "locked", second)
        await prove_same_material(east, west, "locked", second)
        (replaced,) = [e for e in logs if e["event"] == "certificate.replaced"]
        assert replaced["absence_ms"] > 0

    async def test_non_exportable_on_purge_protected_target_is_blocked(
        self, make_world: WorldFactory
    ) -> None:
        """The same renewal on a purge-protected target is blocked with the remedy; the
        copy is untouched and the pair reports no error."""
        world = await make_world(per_region={"westus": {"purge_protection": True}})
        east = world.emulators["eastus"]
        policy = self_signed_policy("locked", exportable=False)
        (first,) = await create(east, "locked", policy)
        replicator = world.replicator(world.pair(kinds=CERTS))
        await replicator.load()
        await replicator.reconcile()
        world.advance_clock()
        await create(east, "locked", policy)
        report = await replicator.poll()
        assert report.blocked == 1 and report.errors == 0
        (blocked,) = replicator.status()["targets"][0]["blocked"]
        assert blocked["item"] == "certificate/locked" and "Remedy" in blocked["reason"]
        assert [v.version for v in await versions(world, "westus", "locked")] == [first]

    async def test_a_disabled_latest_version_is_refused_on_the_target_too(
        self, world: World
    ) -> None:
        """A renewal disabled before kvdr read it: the target does not serve the older
        certificate's secret (a disabled placeholder refuses, as the primary does, and
        holds no source material); enabled again, the renewal is imported on top."""
        east, west = world.emulators["eastus"], world.emulators["westus"]
        primary, westus = world.vaults["eastus"], world.vaults["westus"]
        policy = self_signed_policy("renewed", key_type="EC", curve="P-384")
        await create(east, "renewed", policy)
        replicator = world.replicator(world.pair(kinds=CERTS))
        await replicator.load()
        await replicator.reconcile()
        world.advance_clock()
        (second,) = await create(east, "renewed", policy)
        await primary.update_properties(
            ItemKind.CERTIFICATE, "renewed", second, Attributes(enabled=False, tags={"t": "1"})
        )
        world.advance_clock()
        report = await replicator.poll()
        assert report.errors == 0 and report.copied == 1
        with pytest.raises(Forbidden) as primary_refused:
            await primary.get_certificate_material("renewed", "")
        with pytest.raises(Forbidden) as target_refused:
            await westus.get_certificate_material("renewed", "")
        assert type(target_refused.value) is type(primary_refused.value)
        target = await versions(world, "westus", "renewed")
        assert [v.enabled for v in target] == [True, False]
        assert target[-1].tags == {
            "t": "1",
            SOURCE_VERSION_TAG: second,
            PLACEHOLDER_TAG: "disabled-on-source",
        }
        # A throwaway certificate: not the source's X.509, yet its policy reads the same.
        assert await cer(west, "renewed", target[-1].version) != await cer(east, "renewed", second)
        assert await westus.get_certificate_policy(
            "renewed"
        ) == await primary.get_certificate_policy("renewed")
        again = await replicator.reconcile()
        assert again.copied == 0 and again.updated == 0 and again.errors == 0

        await primary.update_properties(
            ItemKind.CERTIFICATE, "renewed", second, Attributes(enabled=True, tags={"t": "1"})
        )
        world.advance_clock()
        report = await replicator.poll()
        assert report.errors == 0 and report.copied == 1
        target = await versions(world, "westus", "renewed")
        assert [v.enabled for v in target] == [True, False, True]
        assert target[-1].tags == {"t": "1", SOURCE_VERSION_TAG: second}
        assert await cer(west, "renewed", target[-1].version) == await cer(east, "renewed", second)
        await prove_same_material(
            east, west, "renewed", second, "P-384", b_version=target[-1].version
        )
        settled = await replicator.reconcile()
        assert settled.copied == 0 and settled.updated == 0 and settled.errors == 0


class TestAttributesAndPolicy:
    async def test_attributes_tags_and_policy_follow(self, world: World) -> None:
        """Disabling a version, new tags and a changed policy reach the copy."""
        east = world.vaults["eastus"]
        (version,) = await create(world.emulators["eastus"], "tuned", self_signed_policy("tuned"))
        replicator = world.replicator(world.pair(kinds=CERTS))
        await replicator.load()
        await replicator.reconcile()
        await east.update_properties(
            ItemKind.CERTIFICATE, "tuned", version, Attributes(enabled=False, tags={"a": "b"})
        )
        policy = await east.get_certificate_policy("tuned")
        changed = await east.set_certificate_policy(
            "tuned", type(policy)(**{**policy.__dict__, "validity_in_months": 6})
        )
        report = await replicator.reconcile()
        assert report.errors == 0 and report.updated == 2
        (target,) = await versions(world, "westus", "tuned")
        assert target.enabled is False and target.tags == {"a": "b"}
        assert await world.vaults["westus"].get_certificate_policy("tuned") == changed


class TestIssuersAndContacts:
    async def test_issuers_and_contacts_are_mirrored(self, world: World) -> None:
        """Issuers and contacts arrive on a full pass; an issuer only on the target stays."""
        async with aio_certificate_client(world.emulators["eastus"]) as certs:
            await certs.create_issuer(
                "corp-ca", "Test", account_id="acct-7", organization_id="org-1", password="pw"
            )
            await certs.set_contacts([SdkContact(email="pki@example.com", name="PKI team")])
        local = CertificateIssuer(name="local-only", provider="Test")
        await world.vaults["westus"].set_issuer(local)
        replicator = world.replicator(world.pair(kinds=CERTS))
        await replicator.load()
        await replicator.reconcile()
        issuers = {i.name: i for i in await world.vaults["westus"].list_issuers()}
        assert issuers["corp-ca"] == CertificateIssuer(
            name="corp-ca", provider="Test", account_id="acct-7", organization_id="org-1"
        )
        assert issuers["local-only"] == local
        contacts = await world.vaults["westus"].get_contacts()
        assert [(c.email, c.name) for c in contacts] == [("pki@example.com", "PKI team")]

        changed = CertificateIssuer(
            name="corp-ca",
            provider="Test",
            account_id="acct-7",
            organization_id="org-2",
            admin_contacts=(IssuerContact(email="ada@example.com", first_name="Ada"),),
        )
        await world.vaults["eastus"].set_issuer(changed, previous=issuers["corp-ca"])
        await replicator.reconcile()
        issuers = {i.name: i for i in await world.vaults["westus"].list_issuers()}
        assert issuers["corp-ca"] == changed
