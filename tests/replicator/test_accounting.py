"""How one pair's outcomes are booked: counts, recent errors, the circuit breaker, lag
and checkpoints (replicator/accounting.py); the last class on real emulators."""

from __future__ import annotations

from datetime import UTC, datetime

from structlog.testing import capture_logs

from replicator.accounting import (
    MAX_SUSPENSION_SECONDS,
    Accounting,
    SyncReport,
    TargetState,
    changed_items,
)
from replicator.checkpoint import Checkpoint, ItemCheckpoint
from replicator.lag import LagTracker
from replicator.mirror import ItemOutcome, TargetOutcome
from replicator.plan import fingerprint
from tests.fixtures.clock import ManualClock
from tests.fixtures.regions import World
from vault.errors import Forbidden, NoAnswer, ServerError, VaultError
from vault.models import Attributes, ItemKind, ItemProperties, ItemRef

REGIONS = ("westus", "centralus")
UPDATED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def props(name: str = "db", version: str = "v2", enabled: bool = True) -> ItemProperties:
    return ItemProperties(ItemKind.SECRET, name, version, enabled=enabled, updated_on=UPDATED)


def booked(clock: ManualClock) -> Accounting:
    targets = {
        r: TargetState(region=r, checkpoint=Checkpoint(pair="app", target=r)) for r in REGIONS
    }
    return Accounting(targets, LagTracker(REGIONS, clock), clock, "app")


def outcome(
    latest: ItemProperties | None = None,
    history: str | None = None,
    sink_error: Exception | None = None,
    source_error: VaultError | None = None,
) -> ItemOutcome:
    ref = ItemRef(ItemKind.SECRET, latest.name if latest else "db")
    return ItemOutcome(
        ref=ref,
        source_latest=latest,
        history=history,
        sink_error=sink_error,
        source_error=source_error,
    )


def unreachable(region: str = "westus") -> NoAnswer:
    return NoAnswer(f"secret/db on vault {region}: no answer", vault=region, op="mirror")


class TestCounts:
    def test_copies_updates_and_unchanged_are_counted_per_target(self) -> None:
        """A target that copied counts copies, one with nothing to do counts unchanged."""
        accounts, report = booked(ManualClock(1000.0)), SyncReport()
        done = outcome(props())
        accounts.target_done(done, TargetOutcome("westus", copied=2, updated=1), report)
        accounts.target_done(done, TargetOutcome("centralus"), report)
        assert report.as_dict() == {
            "items": 0,
            "copied": 2,
            "updated": 1,
            "unchanged": 1,
            "skipped": 0,
            "conflicts": 0,
            "errors": 0,
            "blocked": 0,
        }

    def test_reports_add_up_field_by_field(self) -> None:
        """Adding a report sums every count, blocked included."""
        total = SyncReport(items=1, copied=1, errors=1)
        total.add(SyncReport(items=2, copied=3, unchanged=4, conflicts=1, blocked=2))
        assert total == SyncReport(items=3, copied=4, unchanged=4, conflicts=1, errors=1, blocked=2)

    def test_conflict_is_reported_until_the_item_syncs(self) -> None:
        """A conflict shows in the target's state and is gone after a clean result."""
        accounts, report = booked(ManualClock(1000.0)), SyncReport()
        done = outcome(props())
        accounts.target_done(done, TargetOutcome("westus", conflict="written by hand"), report)
        assert report.conflicts == 1 and report.unchanged == 0
        assert accounts.targets["westus"].conflicts == {"secret/db": "written by hand"}
        accounts.target_done(done, TargetOutcome("westus", copied=1), report)
        assert accounts.targets["westus"].conflicts == {}

    def test_blocked_is_its_own_count_and_keeps_no_history(self) -> None:
        """A blocked item is counted as blocked, not unchanged, with its reason in the
        state; its checkpoint holds no history, so the next full pass looks again."""
        accounts, report = booked(ManualClock(1000.0)), SyncReport()
        done = outcome(props(), history="digest-1")
        accounts.target_done(done, TargetOutcome("westus", blocked="Remedy: purge"), report)
        assert (report.blocked, report.unchanged) == (1, 0)
        assert accounts.targets["westus"].blocked == {"secret/db": "Remedy: purge"}
        assert accounts.targets["westus"].checkpoint.items["secret/db"].history is None


class TestErrors:
    def test_error_is_kept_with_time_item_reason_and_message(self) -> None:
        """A failed target keeps the error for status; the checkpoint is not touched."""
        clock = ManualClock(1_767_225_600.0)
        accounts, report = booked(clock), SyncReport()
        error = Forbidden("vault westus is read-only", vault="westus", op="set_secret")
        accounts.target_done(outcome(props()), TargetOutcome("westus", error=error), report)
        state = accounts.targets["westus"]
        assert report.errors == 1
        assert list(state.errors) == [
            {
                "at": "2026-01-01T00:00:00+00:00",
                "item": "secret/db",
                "reason": "Forbidden",
                "message": "vault westus is read-only",
            }
        ]
        assert state.checkpoint.items == {} and not state.dirty
        assert state.suspended_until == 0.0, "a refusal is not a reason to stop trying"

    def test_unreachable_target_is_suspended_doubling_up_to_a_minute(self) -> None:
        """Transient failures suspend the target 2, 4, 8 ... s, never beyond 60 s."""
        clock = ManualClock(1000.0)
        accounts = booked(clock)
        state = accounts.targets["westus"]
        pauses = []
        for _ in range(8):
            accounts.target_done(
                outcome(props()), TargetOutcome("westus", error=unreachable()), SyncReport()
            )
            pauses.append(state.suspended_until - clock.now)
            clock.now = state.suspended_until
        assert pauses == [2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]
        assert MAX_SUSPENSION_SECONDS == 60.0

    def test_suspended_target_is_not_live_until_its_pause_ends(self) -> None:
        """Other items of the same pass do not extend the pause; the target is left out
        of `live_targets` until the pause is over."""
        clock = ManualClock(1000.0)
        accounts = booked(clock)
        for _ in range(3):
            accounts.target_done(
                outcome(props()), TargetOutcome("westus", error=unreachable()), SyncReport()
            )
        assert accounts.targets["westus"].suspended_until == 1002.0
        assert accounts.live_targets(REGIONS) == ["centralus"]
        clock.advance(2.0)
        assert accounts.live_targets(REGIONS) == ["westus", "centralus"]

    def test_success_closes_the_breaker(self) -> None:
        """After a success the next failure starts again at 2 s."""
        clock = ManualClock(1000.0)
        accounts = booked(clock)
        state = accounts.targets["westus"]
        accounts.target_done(
            outcome(props()), TargetOutcome("westus", error=unreachable()), SyncReport()
        )
        clock.advance(2.0)
        accounts.target_done(
            outcome(props()),
            TargetOutcome(
                "westus",
                error=ServerError(
                    "500", status=500, code="InternalError", vault="westus", op="set_secret"
                ),
            ),
            SyncReport(),
        )
        assert state.failures == 2
        clock.advance(4.0)
        accounts.target_done(outcome(props()), TargetOutcome("westus", copied=1), SyncReport())
        assert (state.failures, state.last_success) == (0, 1006.0)
        accounts.target_done(
            outcome(props()), TargetOutcome("westus", error=unreachable()), SyncReport()
        )
        assert state.suspended_until == 1008.0


class TestCheckpointsAndLag:
    def test_applied_item_is_checkpointed_and_leaves_the_lag(self) -> None:
        """The checkpoint holds the source's fingerprint and version, the target version
        and when; the item no longer counts as lag on that target."""
        clock = ManualClock(1000.0)
        accounts = booked(clock)
        latest = props()
        accounts.lag.mark_pending("westus", "secret/db", 990.0)
        accounts.lag.mark_pending("centralus", "secret/db", 990.0)
        done = outcome(latest, history="digest-1")
        accounts.target_done(
            done, TargetOutcome("westus", copied=1, target_version="t1"), SyncReport()
        )
        assert accounts.targets["westus"].checkpoint.items["secret/db"] == ItemCheckpoint(
            fingerprint=fingerprint(latest),
            source_version="v2",
            target_version="t1",
            applied_at=1000.0,
            history="digest-1",
        )
        assert accounts.targets["westus"].dirty
        assert (accounts.lag.lag("westus"), accounts.lag.lag("centralus")) == (0.0, 10.0)

    def test_attribute_update_keeps_the_known_target_version(self) -> None:
        """A result that names no target version keeps the one the checkpoint had."""
        accounts = booked(ManualClock(1000.0))
        done = outcome(props())
        accounts.target_done(
            done, TargetOutcome("westus", copied=1, target_version="t1"), SyncReport()
        )
        accounts.target_done(done, TargetOutcome("westus", updated=1), SyncReport())
        assert accounts.targets["westus"].checkpoint.items["secret/db"].target_version == "t1"

    def test_sink_failure_leaves_the_checkpoint_behind(self) -> None:
        """When the journal could not record the item, the target's checkpoint is not
        advanced (the next poll syncs it again) and the pair shows the sink's error."""
        accounts, report = booked(ManualClock(1000.0)), SyncReport()
        done = outcome(props(), sink_error=OSError("journal storage unavailable"))
        accounts.item_done(done, report)
        accounts.target_done(done, TargetOutcome("westus", copied=1), report)
        assert report.errors == 1
        assert accounts.sink_errors == {"secret/db": "journal storage unavailable"}
        assert accounts.targets["westus"].checkpoint.items == {}
        accounts.item_done(outcome(props()), SyncReport())
        assert accounts.sink_errors == {}

    def test_source_error_and_vanished_item(self) -> None:
        """A source error is the pair's; an item gone from the source leaves every
        target's lag (its deletion is the sweep's)."""
        accounts, report = booked(ManualClock(1000.0)), SyncReport()
        failed = VaultError("vault eastus: no answer", vault="eastus", op="list_versions")
        accounts.item_done(outcome(source_error=failed), report)
        assert (report.errors, accounts.source_error) == (1, "vault eastus: no answer")
        for region in REGIONS:
            accounts.lag.mark_pending(region, "secret/db", 990.0)
        accounts.item_done(outcome(None), report)
        assert [accounts.lag.pending(r) for r in REGIONS] == [0, 0]

    def test_changed_items_compares_fingerprints(self) -> None:
        """Only items whose fingerprint differs from the checkpoint's are changed."""
        same, moved, new = props("same"), props("moved"), props("new")
        checkpoint = Checkpoint(pair="app", target="westus")
        for p in (same, moved):
            checkpoint.items[f"secret/{p.name}"] = ItemCheckpoint(fingerprint(p), "v2", "t", 1.0)
        moved_now = props("moved", enabled=False)
        assert changed_items([same, moved_now, new], checkpoint) == [moved_now, new]


class TestOnVaults:
    async def test_unreachable_target_is_skipped_until_its_pause_ends(self, world: World) -> None:
        """A stopped target fails once and is then left alone (the other work goes on);
        once the pause is over and it is back, the change arrives."""
        clock = ManualClock()
        replicator = world.replicator(world.pair(), clock=clock, target_timeout_seconds=2.0)
        await replicator.load()
        await world.vaults["eastus"].set_secret("waiting", "value", Attributes())
        world.emulators["westus"].stop()
        first = await replicator.poll()
        assert (first.errors, replicator.targets["westus"].suspended_until) == (1, clock.now + 2.0)
        second = await replicator.poll()
        assert (second.errors, second.copied) == (0, 0), "a suspended target is not tried"
        world.emulators["westus"].restart()
        clock.advance(2.0)
        third = await replicator.poll()
        assert (third.errors, third.copied) == (0, 1)
        assert (await world.vaults["westus"].get_secret("waiting")).value == "value"

    async def test_a_target_dead_for_the_issuers_is_suspended_and_the_sweep_skips_it(
        self, world: World
    ) -> None:
        """An empty vault's first pass meets a dead target only in the certificate
        issuers step: the target is suspended there, so the sweep's expiry listing does
        not wait out its timeout again and the next poll is not held up by it."""
        clock = ManualClock()
        pair = world.pair(kinds=frozenset({ItemKind.SECRET, ItemKind.CERTIFICATE}))
        replicator = world.replicator(pair, clock=clock, target_timeout_seconds=1.0)
        await replicator.load()
        world.emulators["westus"].stop()
        await replicator.reconcile()
        state = replicator.targets["westus"]
        assert state.suspended_until == clock.now + 2.0
        assert [e["item"] for e in state.errors] == ["certificate issuers and contacts"]
        with capture_logs() as logs:
            await replicator.sweep()
        assert not [e for e in logs if e["event"] == "expiry.listing_failed"]
        world.emulators["westus"].restart()
