"""Errors of the replicator's own state in blob storage.

storage.WriteConflict          compare-and-swap lost: another writer changed the blob
├── CheckpointConflict         a target's checkpoint (replicator/checkpoint.py)
└── GuardConflict              a pair's deletion guard state (replicator/guard.py)

Catch the specific one where the document matters (a conflicting checkpoint write means
another process owns the pair: stop, restart from the stored one; a conflicting guard
write is re-read), or `WriteConflict` for any of them. Neither is a `StorageError`:
storage answered, so retrying the same write can never succeed.
"""

from __future__ import annotations

from storage import WriteConflict


class CheckpointConflict(WriteConflict):
    """Another writer changed the checkpoint since we read it."""

    what = "checkpoint"


class GuardConflict(WriteConflict):
    """Another writer changed the guard state since it was read."""

    what = "deletion guard"
