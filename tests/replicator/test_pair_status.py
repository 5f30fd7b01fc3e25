"""One status document per pair (replicator/pair_status.py): a pair this process runs,
one another daemon runs, and `kvdr status` from the checkpoints all have the same keys,
so the dashboard and `kvdr status` read every pair the same way."""

from __future__ import annotations

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
