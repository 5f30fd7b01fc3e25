"""Pure planning of secret mirroring (replicator/plan.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from replicator.plan import (
    PLACEHOLDER_TAG,
    SOURCE_VERSION_TAG,
    attributes_match,
    copies_of,
    fingerprint,
    listed_in_sync,
    placeholder_attributes,
    plan_secret,
    target_attributes,
    versions_digest,
)
from vault.models import ItemKind, ItemProperties

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def src(version: str, **kw: object) -> ItemProperties:
    return ItemProperties(kind=ItemKind.SECRET, name="db", version=version, **kw)  # type: ignore[arg-type]


def copy_of(source: ItemProperties, target_version: str) -> ItemProperties:
    attrs = target_attributes(source)
    return ItemProperties(
        kind=ItemKind.SECRET,
        name=source.name,
        version=target_version,
        enabled=attrs.enabled,
        not_before=attrs.not_before,
        expires_on=attrs.expires_on,
        content_type=attrs.content_type,
        tags=attrs.tags,
    )


class TestPlanSecret:
    def test_empty_target_gets_every_version_oldest_first(self) -> None:
        """A target without the secret receives all source versions in source order."""
        versions = [src("a"), src("b"), src("c")]
        plan = plan_secret("db", versions, [], adopt=False)
        assert [c.source.version for c in plan.copies] == ["a", "b", "c"]
        assert not plan.updates and plan.conflict is None

    def test_in_sync_target_needs_nothing(self) -> None:
        """Re-planning after a full copy is empty: mirroring is idempotent."""
        versions = [src("a"), src("b", content_type="text/plain", tags={"env": "prod"})]
        target = [copy_of(versions[0], "x"), copy_of(versions[1], "y")]
        assert plan_secret("db", versions, target, adopt=False).in_sync

    def test_only_newer_versions_are_copied(self) -> None:
        """Versions older than the newest copy are never written (they would become current)."""
        versions = [src("a"), src("b"), src("c")]
        target = [copy_of(versions[1], "y")]
        plan = plan_secret("db", versions, target, adopt=False)
        assert [c.source.version for c in plan.copies] == ["c"]
        assert [s.version for s in plan.skipped] == ["a"]

    def test_attribute_change_becomes_update(self) -> None:
        """Disabling or setting expiry on the source updates the copy, no new version."""
        old = src("a")
        changed = src("a", enabled=False, expires_on=T0 + timedelta(days=3))
        plan = plan_secret("db", [changed], [copy_of(old, "x")], adopt=False)
        assert not plan.copies
        assert [(u.source.version, u.target_version) for u in plan.updates] == [("a", "x")]

    def test_foreign_target_secret_is_a_conflict(self) -> None:
        """A target secret whose latest version kvdr did not write is left alone."""
        foreign = ItemProperties(kind=ItemKind.SECRET, name="db", version="z")
        plan = plan_secret("db", [src("a")], [foreign], adopt=False)
        assert plan.conflict is not None and "adopt" in plan.conflict
        assert not plan.copies

    def test_adopt_takes_over_foreign_secret(self) -> None:
        """With adopt = true the source versions are written on top."""
        foreign = ItemProperties(kind=ItemKind.SECRET, name="db", version="z")
        plan = plan_secret("db", [src("a")], [foreign], adopt=True)
        assert [c.source.version for c in plan.copies] == ["a"]

    def test_disabled_uncopied_version_is_skipped_with_reason(self) -> None:
        """A disabled source version cannot be read, so it is reported, not copied."""
        plan = plan_secret("db", [src("a", enabled=False), src("b")], [], adopt=False)
        assert [c.source.version for c in plan.copies] == ["b"]
        assert plan.skipped[0].version == "a" and "disabled" in plan.skipped[0].reason


def placeholder_of(source: ItemProperties, target_version: str) -> ItemProperties:
    attrs = placeholder_attributes(source)
    return ItemProperties(
        kind=ItemKind.SECRET,
        name=source.name,
        version=target_version,
        enabled=attrs.enabled,
        tags=attrs.tags,
    )


class TestPlaceholders:
    """A disabled latest source version: the target answers the same way (its latest
    version refuses to be read) instead of serving the older value."""

    def test_a_disabled_latest_version_gets_a_placeholder(self) -> None:
        a, b = src("a"), src("b", enabled=False)
        plan = plan_secret("db", [a, b], [copy_of(a, "x")], adopt=False)
        assert [p.source.version for p in plan.placeholders] == ["b"]
        assert (plan.copies, plan.skipped, plan.in_sync) == ((), (), False)
        attrs = placeholder_attributes(b)
        assert attrs.enabled is False and attrs.tags[SOURCE_VERSION_TAG] == "b"

    def test_enabled_again_its_value_is_copied_and_the_placeholder_left_alone(self) -> None:
        a, b = src("a"), src("b", enabled=False)
        target = [copy_of(a, "x"), placeholder_of(b, "y")]
        assert plan_secret("db", [a, b], target, adopt=False).in_sync
        enabled = src("b")
        plan = plan_secret("db", [a, enabled], target, adopt=False)
        assert [c.source.version for c in plan.copies] == ["b"]
        assert plan.updates == ()  # never enable the placeholder
        copied = [*target, copy_of(enabled, "z")]
        assert copies_of([a, enabled], copied)["b"].version == "z"
        assert plan_secret("db", [a, enabled], copied, adopt=False).in_sync

    def test_a_placeholder_keeps_its_kind_when_attributes_change(self) -> None:
        b = src("b", enabled=False)
        retagged = src("b", enabled=False, tags={"owner": "ops"})
        plan = plan_secret("db", [retagged], [placeholder_of(b, "y")], adopt=False)
        (update,) = plan.updates
        assert update.placeholder and update.target_version == "y"
        assert PLACEHOLDER_TAG in placeholder_attributes(update.source).tags

    def test_enabled_after_a_newer_copy_is_skipped(self) -> None:
        b, c = src("b", enabled=False), src("c")
        target = [placeholder_of(b, "y"), copy_of(c, "z")]
        plan = plan_secret("db", [src("b"), c], target, adopt=False)
        assert (plan.copies, plan.updates) == ((), ())
        assert "newer version" in plan.skipped[0].reason


versions_strategy = st.lists(
    st.builds(
        lambda v, enabled, tag: src(v, enabled=enabled, tags={"t": tag} if tag else {}),
        st.uuids().map(lambda u: u.hex),
        st.booleans(),
        st.sampled_from(["", "x", "y"]),
    ),
    max_size=8,
    unique_by=lambda p: p.version,
)


class TestPlanProperties:
    @given(versions_strategy, st.integers(min_value=0, max_value=8))
    def test_applying_a_plan_converges(self, versions: list[ItemProperties], copied: int) -> None:
        """Applying a plan, then planning again, yields nothing more to copy or update."""
        target = [copy_of(v, f"t{i}") for i, v in enumerate(versions[:copied]) if v.enabled]
        plan = plan_secret("db", versions, target, adopt=False)
        after = list(target)
        for update in plan.updates:
            written = placeholder_of if update.placeholder else copy_of
            after = [
                written(update.source, t.version) if t.version == update.target_version else t
                for t in after
            ]
        for n, c in enumerate(plan.copies):
            after.append(copy_of(c.source, f"n{n}"))
        for n, p in enumerate(plan.placeholders):
            after.append(placeholder_of(p.source, f"p{n}"))
        assert plan_secret("db", versions, after, adopt=False).in_sync

    @given(versions_strategy)
    def test_copies_keep_source_order(self, versions: list[ItemProperties]) -> None:
        """Copies are planned in the order the source created them."""
        plan = plan_secret("db", versions, [], adopt=False)
        order = [v.version for v in versions]
        planned = [c.source.version for c in plan.copies]
        assert planned == sorted(planned, key=order.index)

    @given(versions_strategy)
    def test_target_copy_carries_source_tag_and_matches(
        self, versions: list[ItemProperties]
    ) -> None:
        """Every planned write carries kvdr's tag naming its source version."""
        for c in plan_secret("db", versions, [], adopt=False).copies:
            attrs = target_attributes(c.source)
            assert attrs.tags[SOURCE_VERSION_TAG] == c.source.version
            assert attributes_match(c.source, copy_of(c.source, "t"))


class TestFingerprint:
    def test_changes_with_attributes_and_update_time_not_with_kvdr_tag(self) -> None:
        """The fingerprint moves with the update time and user-visible attributes only."""
        a = src("a", tags={"env": "prod"}, updated_on=T0)
        assert fingerprint(a) != fingerprint(
            src("a", tags={"env": "prod"}, updated_on=T0 + timedelta(seconds=1))
        )
        assert fingerprint(a) == fingerprint(src("", tags={"env": "prod"}, updated_on=T0))
        assert fingerprint(a) != fingerprint(src("a", tags={"env": "dev"}, updated_on=T0))
        assert fingerprint(a) != fingerprint(
            src("a", tags={"env": "prod"}, enabled=False, updated_on=T0)
        )
        assert fingerprint(a) == fingerprint(
            src("a", tags={"env": "prod", SOURCE_VERSION_TAG: "zz"}, updated_on=T0)
        )


def listed_copy(source: ItemProperties) -> ItemProperties:
    """A target's latest version as its listing shows it: no version id."""
    return copy_of(source, "")


class TestListedInSync:
    def test_latest_copy_with_equal_attributes_proves_a_single_version(self) -> None:
        """kvdr's copy of the only source version, attributes equal: proven in sync."""
        assert listed_in_sync(
            [src("a", tags={"env": "prod"})], listed_copy(src("a", tags={"env": "prod"})), None
        )

    def test_what_the_listing_cannot_prove(self) -> None:
        """Absent, a copy of another version, a foreign version or other attributes: not proven."""
        a = src("a")
        foreign = ItemProperties(kind=ItemKind.SECRET, name="db", version="")
        assert not listed_in_sync([a], None, None)
        assert not listed_in_sync([a, src("b")], listed_copy(a), None)
        assert not listed_in_sync([a], foreign, None)
        assert not listed_in_sync([a], listed_copy(src("a", enabled=False)), None)

    def test_older_versions_need_the_history_of_a_full_apply(self) -> None:
        """With older versions, only an unchanged history proves them; a change of an
        older version's attributes changes the history."""
        versions = [src("a"), src("b")]
        listed = listed_copy(versions[1])
        assert not listed_in_sync(versions, listed, None)
        assert listed_in_sync(versions, listed, versions_digest(versions))
        disabled = [src("a", enabled=False), src("b")]
        assert not listed_in_sync(disabled, listed, versions_digest(versions))

    @given(versions_strategy, st.lists(st.integers(min_value=0, max_value=7), max_size=8))
    def test_proven_in_sync_means_nothing_to_plan(
        self, versions: list[ItemProperties], picks: list[int]
    ) -> None:
        """Whatever the target holds, when its latest version proves a single-version
        secret in sync, planning finds nothing to do."""
        target = [copy_of(versions[i], f"t{n}") for n, i in enumerate(picks) if i < len(versions)]
        single = versions[-1:]
        if target and listed_in_sync(single, listed_copy_of(target[-1]), None):
            assert plan_secret("db", single, target, adopt=False).in_sync


def listed_copy_of(target: ItemProperties) -> ItemProperties:
    return ItemProperties(
        kind=target.kind,
        name=target.name,
        version="",
        enabled=target.enabled,
        not_before=target.not_before,
        expires_on=target.expires_on,
        content_type=target.content_type,
        tags=target.tags,
    )
