"""One status document per pair (replicator/pair_status.py): a pair this process runs,
one another daemon runs, and `kvdr status` from the checkpoints all have the same keys,
so the dashboard and `kvdr status` read every pair the same way."""

from __future__ import annotations

from replicator.guard import shown_key
from replicator.pair_status import pair_shell
from tests.fixtures.regions import World


async def test_the_shell_has_the_live_documents_keys(world: World) -> None:
    pair = world.pair()
    replicator = world.replicator(pair)
    await replicator.load()
    live = replicator.status()
    shell = pair_shell(pair)
    assert sorted(shell) == sorted(live)
    assert [sorted(t) for t in shell["targets"]] == [sorted(t) for t in live["targets"]]
    assert [t["region"] for t in shell["targets"]] == ["westus"]
    # Nothing live in the shell: no figure a reader could take for a measurement.
    assert (shell["rpo_seconds"], shell["rpo_ok"], shell["targets"][0]["items"]) == (
        None,
        None,
        None,
    )


async def test_pending_items_are_named_oldest_first_and_hidden_when_the_pair_hides_names(
    world: World,
) -> None:
    """A promotion reports what the daemon knew was pending and never read; status
    names those items (hashed for a pair that hides names)."""
    for hide in (False, True):
        pair = world.pair(hide_names=hide)
        replicator = world.replicator(pair)
        await replicator.load()
        replicator.lag.mark_pending("westus", "secret/db-password", 1_000.0)
        replicator.lag.mark_pending("westus", "secret/api-token", 900.0)
        items = replicator.status()["targets"][0]["pending_items"]
        names = [i["item"] for i in items]
        if hide:
            assert names == [
                shown_key("secret/api-token", True),
                shown_key("secret/db-password", True),
            ]
            assert all("db-password" not in n and "api-token" not in n for n in names)
        else:
            assert names == ["secret/api-token", "secret/db-password"]
        assert items[0]["since"] == "1970-01-01T00:15:00+00:00"
