"""Pure planning of key and certificate mirroring (replicator/plan_keys.py,
replicator/plan_certificates.py): examples, then properties over generated histories."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from replicator.plan import PLACEHOLDER_TAG
from replicator.plan_certificates import (
    CertificatePlan,
    certificate_attributes,
    plan_certificate,
    plan_contacts,
    plan_issuers,
)
from replicator.plan_keys import (
    SKU_KEY_TYPES,
    Action,
    KeyPlan,
    key_attributes,
    key_type_refusal,
    plan_key,
    purge_allowed,
)
from vault.models import ItemKind, ItemProperties
from vault.policies import CertificateContact, CertificateIssuer

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PURGEABLE = "Recoverable+Purgeable"
PROTECTED = "Recoverable"


def key(version: str, **kw: object) -> ItemProperties:
    return ItemProperties(kind=ItemKind.KEY, name="k", version=version, **kw)  # type: ignore[arg-type]


def cert(version: str, **kw: object) -> ItemProperties:
    return ItemProperties(kind=ItemKind.CERTIFICATE, name="c", version=version, **kw)  # type: ignore[arg-type]


def restored(source: ItemProperties, level: str = PURGEABLE) -> ItemProperties:
    """The target's copy of a version after restore: same id and attributes."""
    return replace(source, recovery_level=level)


def imported(
    source: ItemProperties, level: str = PURGEABLE, *, placeholder: bool = False
) -> ItemProperties:
    """The target's copy of a certificate version after import: new id, kvdr's tag (a
    placeholder for a disabled one: disabled, tagged as one)."""
    attrs = certificate_attributes(source, imported=True, placeholder=placeholder)
    return ItemProperties(
        kind=ItemKind.CERTIFICATE,
        name=source.name,
        version=f"{'p' if placeholder else 't'}-{source.version}",
        enabled=attrs.enabled,
        tags=attrs.tags,
        recovery_level=level,
    )


def placeholder(source: ItemProperties, level: str = PURGEABLE) -> ItemProperties:
    return imported(source, level, placeholder=True)


class TestPlanKey:
    def test_absent_key_is_restored_whole(self) -> None:
        """A target without the key restores every version."""
        plan = plan_key("k", [key("a"), key("b")], [])
        assert plan.action is Action.RESTORE and plan.missing == ("a", "b")

    def test_copy_with_all_versions_is_in_sync(self) -> None:
        """A restored copy holding every version needs nothing."""
        versions = [key("a"), key("b", tags={"x": "y"})]
        plan = plan_key("k", versions, [restored(v) for v in versions])
        assert plan.action is Action.IN_SYNC and not plan.updates

    def test_attribute_changes_are_updates(self) -> None:
        """Enabled, expiry and tags changed on the source update the same version."""
        old = key("a")
        new = key("a", enabled=False, expires_on=T0 + timedelta(days=5), tags={"t": "1"})
        plan = plan_key("k", [new], [restored(old)])
        assert plan.action is Action.IN_SYNC
        assert [(u.source.version, u.target_version) for u in plan.updates] == [("a", "a")]
        assert key_attributes(new).tags == {"t": "1"} and not key_attributes(new).enabled

    def test_new_version_replaces_where_purge_is_allowed(self) -> None:
        """A rotation replaces kvdr's copy on a purgeable target."""
        plan = plan_key("k", [key("a"), key("b")], [restored(key("a"))])
        assert plan.action is Action.REPLACE and plan.missing == ("b",)

    def test_new_version_is_blocked_under_purge_protection(self) -> None:
        """Under purge protection the rotation is blocked with the remedy; updates still go."""
        target = [restored(key("a"), PROTECTED)]
        plan = plan_key("k", [key("a", enabled=False), key("b")], target)
        assert plan.action is Action.BLOCKED and plan.missing == ("b",)
        assert plan.reason is not None and "Remedy" in plan.reason and PROTECTED in plan.reason
        assert len(plan.updates) == 1

    def test_foreign_version_is_a_conflict(self) -> None:
        """A version id the source lacks means kvdr did not restore the key: conflict."""
        plan = plan_key("k", [key("a"), key("b")], [restored(key("a")), key("zz")])
        assert plan.action is Action.CONFLICT and plan.reason and "zz" in plan.reason

    def test_purge_allowed_by_recovery_level(self) -> None:
        """Only the levels that say Purgeable allow a purge."""
        assert purge_allowed("Recoverable+Purgeable")
        assert purge_allowed("CustomizedRecoverable+Purgeable")
        assert purge_allowed("Purgeable")
        assert not purge_allowed("Recoverable")
        assert not purge_allowed("Recoverable+ProtectedSubscription")
        assert not purge_allowed("CustomizedRecoverable")
        assert not purge_allowed(None)

    def test_key_types_per_sku(self) -> None:
        """HSM keys need premium or a Managed HSM; oct-HSM a Managed HSM only."""
        assert key_type_refusal("RSA", "standard") is None
        assert key_type_refusal("EC-HSM", "premium") is None
        assert key_type_refusal(None, "standard") is None
        refused = key_type_refusal("RSA-HSM", "standard")
        assert refused is not None and "premium" in refused
        refused = key_type_refusal("oct-HSM", "premium")
        assert refused is not None and "Managed HSM" in refused
        assert key_type_refusal("RSA", "managed-hsm") is not None
        unknown = key_type_refusal("RSA", "gold")
        assert unknown is not None and "gold" in unknown


# -- properties ----------------------------------------------------------------------------

VERSION_IDS = st.lists(st.text("abcdef0123456789", min_size=4, max_size=4), unique=True)
LEVELS = st.sampled_from([PURGEABLE, PROTECTED, "Recoverable+ProtectedSubscription", None])
ATTRS = st.fixed_dictionaries(
    {
        "enabled": st.booleans(),
        "tags": st.dictionaries(st.sampled_from(["a", "b"]), st.sampled_from(["1", "2"])),
    }
)


@st.composite
def key_histories(
    draw: st.DrawFn,
) -> tuple[list[ItemProperties], list[ItemProperties]]:
    """A source key and a target: a prefix-or-subset of restored versions (with drifted
    attributes), sometimes with foreign versions, or nothing."""
    ids = draw(VERSION_IDS.filter(bool))
    source = [key(v, **draw(ATTRS)) for v in ids]
    level = draw(LEVELS)
    held = draw(st.lists(st.sampled_from(ids), unique=True)) if draw(st.booleans()) else []
    target = [replace(key(v, **draw(ATTRS)), recovery_level=level) for v in ids if v in held]
    if target and draw(st.booleans()):
        target.append(replace(key("foreign-" + ids[0]), recovery_level=level))
    return source, target


def apply_key_plan(
    plan: KeyPlan, source: list[ItemProperties], target: list[ItemProperties]
) -> list[ItemProperties]:
    """What the target holds after the mirror carried out `plan` (a model of it)."""
    level = target[-1].recovery_level if target else PURGEABLE
    if plan.action in (Action.RESTORE, Action.REPLACE):
        return [restored(v, level or PURGEABLE) for v in source]
    by_id = {u.target_version: u.source for u in plan.updates}
    return [
        replace(by_id[t.version], recovery_level=t.recovery_level) if t.version in by_id else t
        for t in target
    ]


class TestPlanKeyProperties:
    @given(key_histories())
    def test_only_kvdrs_own_copy_is_ever_replaced(
        self, history: tuple[list[ItemProperties], list[ItemProperties]]
    ) -> None:
        """REPLACE (the one purge) is planned only for a copy whose every version the
        source still has, that lacks some, on a target that allows purge."""
        source, target = history
        plan = plan_key("k", source, target)
        if plan.action is Action.REPLACE:
            source_ids = {v.version for v in source}
            assert target and all(t.version in source_ids for t in target)
            assert set(plan.missing) == source_ids - {t.version for t in target}
            assert plan.missing and purge_allowed(target[-1].recovery_level)
        if any(t.version.startswith("foreign-") for t in target):
            assert plan.action is Action.CONFLICT

    @given(key_histories())
    def test_applying_the_plan_converges(
        self, history: tuple[list[ItemProperties], list[ItemProperties]]
    ) -> None:
        """After the plan is carried out, planning again finds nothing to do, or the same
        block or conflict (stable, so status does not flap)."""
        source, target = history
        plan = plan_key("k", source, target)
        after = apply_key_plan(plan, source, target)
        again = plan_key("k", source, after)
        if plan.action in (Action.BLOCKED, Action.CONFLICT):
            assert again.action is plan.action and again.missing == plan.missing
            assert not again.updates
        else:
            assert again.action is Action.IN_SYNC and not again.updates

    @given(st.sampled_from(list(SKU_KEY_TYPES)), st.sampled_from(["RSA", "EC", "oct"]))
    def test_hsm_types_need_an_hsm_sku(self, sku: str, base: str) -> None:
        """A software type is refused only by a Managed HSM; an -HSM type only by standard
        (or by premium for oct)."""
        software, hsm = key_type_refusal(base, sku), key_type_refusal(f"{base}-HSM", sku)
        if base != "oct":
            assert (software is None) == (sku != "managed-hsm")
            assert (hsm is None) == (sku != "standard")
        else:
            assert (hsm is None) == (sku == "managed-hsm")


# -- certificates ------------------------------------------------------------------------


class TestPlanCertificate:
    def test_absent_certificate_is_restored(self) -> None:
        """A target without the certificate restores it whole."""
        plan = plan_certificate("c", [cert("a")], [], exportable=True)
        assert plan.action is Action.RESTORE and plan.missing == ("a",)

    def test_exportable_new_version_is_imported(self) -> None:
        """A renewed exportable certificate imports the new version only."""
        source = [cert("a"), cert("b")]
        plan = plan_certificate("c", source, [restored(source[0])], exportable=True)
        assert plan.action is Action.IMPORT
        assert [v.version for v in plan.imports] == ["b"]

    def test_imported_versions_count_as_kvdrs(self) -> None:
        """A version imported by kvdr (tagged) is the copy of its source version."""
        source = [cert("a"), cert("b")]
        target = [restored(source[0]), imported(source[1])]
        plan = plan_certificate("c", source, target, exportable=True)
        assert plan.action is Action.IN_SYNC and not plan.updates

    def test_non_exportable_new_version_replaces_or_blocks(self) -> None:
        """Without an exportable key the new version replaces the copy, or is blocked."""
        source = [cert("a"), cert("b")]
        replace_plan = plan_certificate("c", source, [restored(source[0])], exportable=False)
        assert replace_plan.action is Action.REPLACE
        blocked = plan_certificate("c", source, [restored(source[0], PROTECTED)], exportable=False)
        assert blocked.action is Action.BLOCKED and blocked.reason

    def test_disabled_and_older_versions_are_skipped(self) -> None:
        """A disabled new version cannot be read (skipped); older gaps cannot be inserted."""
        source = [cert("a"), cert("b"), cert("c"), cert("d", enabled=False), cert("e")]
        target = [restored(source[0]), imported(source[2])]
        plan = plan_certificate("c", source, target, exportable=True)
        assert [v.version for v in plan.imports] == ["e"]
        assert [s.version for s in plan.skipped] == ["b", "d"]
        assert plan.placeholders == ()

    def test_a_disabled_latest_version_gets_a_placeholder(self) -> None:
        """The latest version disabled before kvdr read it: a placeholder, not a skip, so
        the target does not go on serving the older certificate."""
        source = [cert("a"), cert("b", enabled=False, tags={"team": "web"})]
        plan = plan_certificate("c", source, [restored(source[0])], exportable=True)
        assert plan.action is Action.IMPORT and plan.imports == () and plan.skipped == ()
        assert [v.version for v in plan.placeholders] == ["b"]
        attrs = certificate_attributes(source[1], imported=True, placeholder=True)
        assert attrs.enabled is False
        assert attrs.tags == {
            "team": "web",
            "kvdr-source-version": "b",
            PLACEHOLDER_TAG: "disabled-on-source",
        }

    def test_placeholder_is_kvdrs_and_in_sync_while_disabled(self) -> None:
        source = [cert("a"), cert("b", enabled=False)]
        plan = plan_certificate(
            "c", source, [restored(source[0]), placeholder(source[1])], exportable=True
        )
        assert plan.action is Action.IN_SYNC and not plan.updates and not plan.placeholders

    def test_enabled_again_it_is_imported_and_the_placeholder_stays_disabled(self) -> None:
        source = [cert("a"), cert("b")]
        target = [restored(source[0]), placeholder(replace(source[1], enabled=False))]
        plan = plan_certificate("c", source, target, exportable=True)
        assert plan.action is Action.IMPORT and [v.version for v in plan.imports] == ["b"]
        assert plan.updates == ()
        after = plan_certificate("c", source, [*target, imported(source[1])], exportable=True)
        assert after.action is Action.IN_SYNC and after.updates == ()

    def test_a_placeholders_tags_follow_and_it_stays_disabled(self) -> None:
        source = [cert("a"), cert("b", enabled=False, tags={"v": "2"})]
        target = [restored(source[0]), placeholder(replace(source[1], tags={"v": "1"}))]
        plan = plan_certificate("c", source, target, exportable=True)
        assert [(u.target_version, u.placeholder) for u in plan.updates] == [("p-b", True)]

    def test_foreign_certificate_conflicts_unless_adopted_and_exportable(self) -> None:
        """A certificate kvdr did not write is a conflict; adopt imports on top only when
        the key is exportable (it is never purged)."""
        source, foreign = [cert("a")], [cert("zz")]
        conflict = plan_certificate("c", source, foreign, exportable=True)
        assert conflict.action is Action.CONFLICT and conflict.reason
        assert "adopt" in conflict.reason
        adopted = plan_certificate("c", source, foreign, exportable=True, adopt=True)
        assert adopted.action is Action.IMPORT
        locked = plan_certificate("c", source, foreign, exportable=False, adopt=True)
        assert locked.action is Action.CONFLICT


@st.composite
def certificate_histories(
    draw: st.DrawFn,
) -> tuple[list[ItemProperties], list[ItemProperties], bool, bool]:
    ids = draw(VERSION_IDS.filter(bool))
    source = [cert(v, **draw(ATTRS)) for v in ids]
    level = draw(LEVELS) or PURGEABLE
    target: list[ItemProperties] = []
    if draw(st.booleans()):
        upto = draw(st.integers(0, len(source)))
        for v in source[:upto]:
            made = draw(st.sampled_from([restored, imported, placeholder]))
            copy = made(v, level)
            if made is not placeholder:
                copy = replace(copy, enabled=draw(st.booleans()))
            target.append(copy)
        if draw(st.booleans()):
            target.append(cert("foreign", recovery_level=level))
    return source, target, draw(st.booleans()), draw(st.booleans())


def apply_certificate_plan(
    plan: CertificatePlan, source: list[ItemProperties], target: list[ItemProperties]
) -> list[ItemProperties]:
    level = target[-1].recovery_level if target else PURGEABLE
    if plan.restores:
        return [restored(v, level or PURGEABLE) for v in source]
    updates = {u.target_version: u.source for u in plan.updates}
    after = []
    for t in target:
        source_version = updates.get(t.version)
        if source_version is None:
            after.append(t)
        else:
            attrs = certificate_attributes(
                source_version,
                imported=t.version != source_version.version,
                placeholder=PLACEHOLDER_TAG in t.tags,
            )
            after.append(replace(t, enabled=attrs.enabled, tags=attrs.tags))
    after += [imported(v, level or PURGEABLE) for v in plan.imports]
    return after + [placeholder(v, level or PURGEABLE) for v in plan.placeholders]


class TestPlanCertificateProperties:
    @given(certificate_histories())
    def test_never_replaces_what_kvdr_did_not_write(
        self, history: tuple[list[ItemProperties], list[ItemProperties], bool, bool]
    ) -> None:
        """REPLACE only for a non-exportable copy of kvdr's own on a purgeable target."""
        source, target, exportable, adopt = history
        plan = plan_certificate("c", source, target, exportable=exportable, adopt=adopt)
        if plan.action is Action.REPLACE:
            assert not exportable and purge_allowed(target[-1].recovery_level)
            assert all(t.version != "foreign" for t in target)
        if any(t.version == "foreign" for t in target) and not (adopt and exportable):
            assert plan.action is Action.CONFLICT

    @given(certificate_histories())
    def test_applying_the_plan_converges(
        self, history: tuple[list[ItemProperties], list[ItemProperties], bool, bool]
    ) -> None:
        """After the plan is carried out there is nothing left to import or update."""
        source, target, exportable, adopt = history
        plan = plan_certificate("c", source, target, exportable=exportable, adopt=adopt)
        after = apply_certificate_plan(plan, source, target)
        again = plan_certificate("c", source, after, exportable=exportable, adopt=adopt)
        assert not again.imports and not again.updates and not again.placeholders
        # The target's current version answers like the source's: readable only if the
        # source's latest is (a placeholder never serves an older certificate).
        if again.action is Action.IN_SYNC and after and exportable:
            assert after[-1].enabled == source[-1].enabled or after[-1].version == "foreign"
        if plan.action in (Action.RESTORE, Action.REPLACE):
            assert again.action is Action.IN_SYNC
        if plan.action in (Action.BLOCKED, Action.CONFLICT):
            assert again.action is plan.action


class TestIssuersAndContacts:
    @given(
        st.lists(st.sampled_from(["ca-1", "ca-2", "ca-3"]), unique=True),
        st.lists(st.sampled_from(["ca-1", "ca-2", "ca-4"]), unique=True),
        st.sampled_from(["acct-a", "acct-b"]),
    )
    def test_issuers_converge_and_nothing_is_deleted(
        self, source_names: list[str], target_names: list[str], account: str
    ) -> None:
        """Writing the planned issuers makes the target hold every source issuer, and its
        own issuers stay."""
        source = [CertificateIssuer(n, "Test", account_id=account) for n in source_names]
        target = [CertificateIssuer(n, "Test", account_id="acct-a") for n in target_names]
        writes = plan_issuers(source, target)
        after = {i.name: i for i in target} | {issuer.name: issuer for issuer, _ in writes}
        assert set(target_names) <= set(after)
        assert all(after[i.name] == i for i in source)
        assert plan_issuers(source, list(after.values())) == []

    def test_contacts(self) -> None:
        """Contacts are set when they differ; a source without contacts deletes none."""
        ops = (CertificateContact(email="ops@example.com"),)
        assert plan_contacts(ops, ()) == ops
        assert plan_contacts(ops, ops) is None
        assert plan_contacts((), ops) is None
