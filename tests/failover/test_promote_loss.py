"""The loss and divergence arithmetic of promote and failback (failover/promote.py):
versions held by id, by kvdr's tag, or as the origin of a copy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from failover.promote import (
    divergent_versions,
    missing_versions,
    pending_loss,
    pending_refs,
    promote_refusals,
)
from vault.models import ItemKind, ItemProperties

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
TAG = "kvdr-source-version"


def version(vid: str, age: float = 10.0, tag: str | None = None) -> ItemProperties:
    return ItemProperties(
        kind=ItemKind.SECRET,
        name="db",
        version=vid,
        created_on=NOW - timedelta(seconds=age),
        updated_on=NOW - timedelta(seconds=age),
        tags={TAG: tag} if tag else {},
    )


class TestMissingVersions:
    def test_a_version_the_target_has_by_its_tag_is_not_lost(self) -> None:
        recorded = {("secret", "db"): [version("a1", 30), version("a2", 5)]}
        present = {("secret", "db"): [version("b1", 29, tag="a1")]}
        (lost,) = missing_versions(recorded, present, NOW)
        assert (lost.name, lost.versions, lost.oldest_age_seconds) == ("db", ("a2",), 5.0)

    def test_absent_item_loses_every_version_and_reversed_copies_count(self) -> None:
        recorded = {
            ("secret", "db"): [version("a1", 30)],
            # Recorded while the pair ran the other way: a copy of the target's b7.
            ("secret", "api"): [version("a9", 3, tag="b7")],
        }
        present = {("secret", "api"): [version("b7", 4)]}
        (lost,) = missing_versions(recorded, present, NOW)
        assert (lost.kind, lost.name, lost.versions) == ("secret", "db", ("a1",))
        assert lost.to_dict()["oldest_age_seconds"] == 30.0

    def test_nothing_lost(self) -> None:
        recorded = {("secret", "db"): [version("a1")]}
        assert missing_versions(recorded, {("secret", "db"): [version("a1")]}, NOW) == []


class TestPendingLoss:
    """Items the daemon knew had changed (a listing or an event) and never read: the
    journal has no version of them, the lag tracker names them."""

    def test_pending_items_the_new_primary_did_not_receive_are_lost(self) -> None:
        changed = (NOW - timedelta(seconds=12)).timestamp()
        pending = [("secret/db", changed), ("secret/arrived", changed), ("secret/new", changed)]
        present = {
            # A copy older than the change: the change did not arrive.
            ("secret", "db"): [version("b1", 60)],
            # A copy made after the change: it arrived after the daemon's reading.
            ("secret", "arrived"): [version("b2", 3)],
        }
        lost = pending_loss(pending, present, [], NOW)
        assert [(i.name, i.versions, i.seen_by) for i in lost] == [
            ("db", (), "lag tracker"),
            ("new", (), "lag tracker"),
        ]
        assert lost[0].oldest_age_seconds == 12.0

    def test_what_the_journal_listed_is_not_listed_twice(self) -> None:
        pending = [("secret/db", NOW.timestamp() - 5), ("secret/db", NOW.timestamp() - 9)]
        assert pending_loss(pending, {}, [("secret", "db")], NOW) == []
        assert len(pending_loss(pending, {}, [], NOW)) == 1

    def test_hashed_names_are_reported_as_they_are_and_not_looked_up(self) -> None:
        pending = [("secret/sha256:0123456789ab", NOW.timestamp()), ("key/signing", 0.0)]
        assert pending_refs(pending) == [(ItemKind.KEY, "signing")]
        (hidden, _) = pending_loss(pending, {}, [], NOW)
        assert hidden.name == "sha256:0123456789ab"


class TestDivergence:
    def test_only_foreign_versions_after_the_promotion(self) -> None:
        since = NOW - timedelta(seconds=20)
        old = [
            version("a1", 60),  # before the promotion
            version("a2", 10, tag="b2"),  # kvdr's copy from the active region
            version("a3", 5),  # an application wrote it after the promotion
        ]
        active = [version("b1", 59, tag="a1"), version("b2", 11)]
        assert [v.version for v in divergent_versions(old, active, since)] == ["a3"]


class TestPromoteRefusals:
    def test_refusals(self) -> None:
        both = {"eastus": True, "westus": True}
        assert any(
            "use `kvdr failover switchover`" in r
            for r in promote_refusals("eastus", "westus", both, {})
        )
        gone = {"eastus": False, "westus": False}
        (why,) = promote_refusals("eastus", "westus", gone, {"westus": "timeout"})
        assert why == "westus does not answer (timeout): it cannot take writes"
        assert promote_refusals("eastus", "westus", {"eastus": False, "westus": True}, {}) == []
