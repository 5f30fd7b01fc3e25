"""The vault's durable state: a versioned object store in SQLite, shared by all kinds.

One row per version of a secret, key or certificate holds a JSON document whose shape the
kind module decides (it always has Key Vault's `attributes` with Unix-second `exp`, which
the expiry watcher reads). Soft-deleting an object flags all its versions and records
when; purging removes the rows. Names are case-insensitive as in Key Vault, so rows are
keyed by the lower-cased name and keep the spelling they were created with.

The store is synchronous and called straight from the event loop. Calls are
sub-millisecond apart from the commit's fsync, SQLite allows one writer anyway, and
running writes in line keeps every request's reads and writes strictly ordered without
locks (a check-then-write such as "name not blocked, add version" cannot interleave).
WAL with synchronous=FULL makes every acknowledged write survive a SIGKILL.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emulator.statedir import ensure_private_file, tighten_file

KINDS = ("secret", "key", "certificate")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    name_key TEXT NOT NULL,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    doc TEXT NOT NULL,
    UNIQUE (kind, name_key, version)
);
CREATE INDEX IF NOT EXISTS versions_by_name ON versions (kind, name_key, deleted, seq);
CREATE TABLE IF NOT EXISTS deleted_objects (
    kind TEXT NOT NULL,
    name_key TEXT NOT NULL,
    name TEXT NOT NULL,
    deleted_date INTEGER NOT NULL,
    scheduled_purge_date INTEGER NOT NULL,
    PRIMARY KEY (kind, name_key)
);
CREATE TABLE IF NOT EXISTS notices (
    kind TEXT NOT NULL,
    name_key TEXT NOT NULL,
    version TEXT NOT NULL,
    event TEXT NOT NULL,
    PRIMARY KEY (kind, name_key, version, event)
);
CREATE TABLE IF NOT EXISTS singletons (
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (namespace, key)
);
"""


def new_version_id() -> str:
    """A version id as Key Vault makes them: 32 lowercase hex characters."""
    return secrets.token_hex(16)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown object kind {kind!r}; expected one of {KINDS}")


@dataclass(frozen=True)
class StoredVersion:
    """One version of one object. `doc` may hold a secret value: it is kept out of repr."""

    kind: str
    name: str
    version: str
    seq: int
    deleted: bool
    doc: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class DeletedObject:
    """A soft-deleted object: when it was deleted, when it purges, and its latest version."""

    kind: str
    name: str
    deleted_date: int
    scheduled_purge_date: int
    latest: StoredVersion

    @property
    def recovery_path(self) -> str:
        """Path of the deleted object (`/deletedsecrets/<name>` etc.), the recovery id's path."""
        return f"/deleted{self.kind}s/{self.name}"


class VersionStore:
    """Versioned objects of all kinds plus a small table of singletons, in one SQLite file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Values and key material are kept unencrypted: the file and SQLite's WAL and
        # shared-memory files next to it are owner-only (SQLite gives new -wal and -shm
        # files the database file's mode; old ones are tightened here).
        ensure_private_file(path)
        for suffix in ("-wal", "-shm"):
            tighten_file(path.with_name(path.name + suffix))
        # isolation_level=None: we issue BEGIN/COMMIT ourselves so a multi-step change
        # (a certificate with its key and secret) can be one transaction.
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._depth = 0
        self.path = path

    def close(self) -> None:
        """Close the database (all writes were already committed)."""
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group several writes into one atomic, durable commit (nestable)."""
        if self._depth == 0:
            self._db.execute("BEGIN IMMEDIATE")
        self._depth += 1
        try:
            yield
        except BaseException:
            self._depth -= 1
            if self._depth == 0:
                self._db.execute("ROLLBACK")
            raise
        self._depth -= 1
        if self._depth == 0:
            self._db.execute("COMMIT")

    # -- versions ---------------------------------------------------------------------

    def _row_version(self, row: sqlite3.Row) -> StoredVersion:
        return StoredVersion(
            kind=row["kind"],
            name=row["name"],
            version=row["version"],
            seq=row["seq"],
            deleted=bool(row["deleted"]),
            doc=json.loads(row["doc"]),
        )

    def add_version(
        self, kind: str, name: str, doc: dict[str, Any], version: str | None = None
    ) -> StoredVersion:
        """Store a new (latest) version of a live object; the caller checked the name is free."""
        _check_kind(kind)
        version = (version or new_version_id()).lower()
        with self.transaction():
            cursor = self._db.execute(
                "INSERT INTO versions (kind, name_key, name, version, doc) VALUES (?, ?, ?, ?, ?)",
                (kind, name.lower(), name, version, json.dumps(doc)),
            )
        seq = cursor.lastrowid
        assert seq is not None
        return StoredVersion(kind, name, version, seq, False, doc)

    def get_version(self, kind: str, name: str, version: str) -> StoredVersion | None:
        """One live version, or None."""
        row = self._db.execute(
            "SELECT * FROM versions WHERE kind=? AND name_key=? AND version=? AND deleted=0",
            (kind, name.lower(), version.lower()),
        ).fetchone()
        return self._row_version(row) if row else None

    def get_latest(self, kind: str, name: str) -> StoredVersion | None:
        """The newest live version of an object, or None."""
        row = self._db.execute(
            "SELECT * FROM versions WHERE kind=? AND name_key=? AND deleted=0 "
            "ORDER BY seq DESC LIMIT 1",
            (kind, name.lower()),
        ).fetchone()
        return self._row_version(row) if row else None

    def list_latest(self, kind: str, after: str | None, limit: int) -> list[StoredVersion]:
        """Latest version of each live object, by name, starting after name `after`."""
        rows = self._db.execute(
            "SELECT v.* FROM versions v JOIN ("
            "  SELECT MAX(seq) AS m FROM versions WHERE kind=? AND deleted=0 AND name_key>? "
            "  GROUP BY name_key ORDER BY name_key LIMIT ?"
            ") t ON v.seq = t.m ORDER BY v.name_key",
            (kind, (after or "").lower(), limit),
        ).fetchall()
        return [self._row_version(r) for r in rows]

    def list_versions(
        self, kind: str, name: str, after_seq: int | None, limit: int
    ) -> list[StoredVersion]:
        """Live versions of one object, oldest first, starting after sequence `after_seq`."""
        rows = self._db.execute(
            "SELECT * FROM versions WHERE kind=? AND name_key=? AND deleted=0 AND seq>? "
            "ORDER BY seq LIMIT ?",
            (kind, name.lower(), after_seq or 0, limit),
        ).fetchall()
        return [self._row_version(r) for r in rows]

    def all_versions(self, kind: str, name: str) -> list[StoredVersion]:
        """Every live version of one object, oldest first (for backups)."""
        rows = self._db.execute(
            "SELECT * FROM versions WHERE kind=? AND name_key=? AND deleted=0 ORDER BY seq",
            (kind, name.lower()),
        ).fetchall()
        return [self._row_version(r) for r in rows]

    def count_versions(self, kind: str, name: str) -> int:
        """How many live versions an object has."""
        row = self._db.execute(
            "SELECT COUNT(*) FROM versions WHERE kind=? AND name_key=? AND deleted=0",
            (kind, name.lower()),
        ).fetchone()
        return int(row[0])

    def update_version(
        self, kind: str, name: str, version: str, doc: dict[str, Any]
    ) -> StoredVersion:
        """Replace one live version's document (attribute and tag updates)."""
        with self.transaction():
            cursor = self._db.execute(
                "UPDATE versions SET doc=? WHERE kind=? AND name_key=? AND version=? AND deleted=0",
                (json.dumps(doc), kind, name.lower(), version.lower()),
            )
        if cursor.rowcount != 1:
            raise LookupError(f"no live {kind} version {name}/{version}")
        updated = self.get_version(kind, name, version)
        assert updated is not None
        return updated

    def name_state(self, kind: str, name: str) -> str | None:
        """ "live", "deleted" (soft-deleted, still blocking the name) or None (free)."""
        if self._db.execute(
            "SELECT 1 FROM deleted_objects WHERE kind=? AND name_key=?", (kind, name.lower())
        ).fetchone():
            return "deleted"
        if self._db.execute(
            "SELECT 1 FROM versions WHERE kind=? AND name_key=? AND deleted=0 LIMIT 1",
            (kind, name.lower()),
        ).fetchone():
            return "live"
        return None

    def is_blocked(self, kind: str, name: str) -> bool:
        """True when the name is taken by a live or a soft-deleted object."""
        return self.name_state(kind, name) is not None

    def restore_versions(
        self, kind: str, name: str, versions: list[tuple[str, dict[str, Any]]]
    ) -> list[StoredVersion]:
        """Insert a whole object's versions (oldest first) in one transaction."""
        with self.transaction():
            for version, doc in versions:
                self.add_version(kind, name, doc, version)
        return self.all_versions(kind, name)

    # -- soft delete ----------------------------------------------------------------------

    def soft_delete(
        self, kind: str, name: str, deleted_date: int, retention_days: int
    ) -> DeletedObject:
        """Move all versions of a live object into the deleted state."""
        latest = self.get_latest(kind, name)
        if latest is None:
            raise LookupError(f"no live {kind} named {name}")
        purge_date = deleted_date + retention_days * 86400
        with self.transaction():
            self._db.execute(
                "UPDATE versions SET deleted=1 WHERE kind=? AND name_key=?", (kind, name.lower())
            )
            self._db.execute(
                "INSERT INTO deleted_objects VALUES (?, ?, ?, ?, ?)",
                (kind, name.lower(), latest.name, deleted_date, purge_date),
            )
        deleted = self.get_deleted(kind, name)
        assert deleted is not None
        return deleted

    def _deleted_from_row(self, row: sqlite3.Row) -> DeletedObject:
        latest_row = self._db.execute(
            "SELECT * FROM versions WHERE kind=? AND name_key=? ORDER BY seq DESC LIMIT 1",
            (row["kind"], row["name_key"]),
        ).fetchone()
        return DeletedObject(
            kind=row["kind"],
            name=row["name"],
            deleted_date=row["deleted_date"],
            scheduled_purge_date=row["scheduled_purge_date"],
            latest=self._row_version(latest_row),
        )

    def get_deleted(self, kind: str, name: str) -> DeletedObject | None:
        """A soft-deleted object, or None."""
        row = self._db.execute(
            "SELECT * FROM deleted_objects WHERE kind=? AND name_key=?", (kind, name.lower())
        ).fetchone()
        return self._deleted_from_row(row) if row else None

    def list_deleted(self, kind: str, after: str | None, limit: int) -> list[DeletedObject]:
        """Soft-deleted objects by name, starting after name `after`."""
        rows = self._db.execute(
            "SELECT * FROM deleted_objects WHERE kind=? AND name_key>? ORDER BY name_key LIMIT ?",
            (kind, (after or "").lower(), limit),
        ).fetchall()
        return [self._deleted_from_row(r) for r in rows]

    def recover(self, kind: str, name: str) -> StoredVersion:
        """Bring a soft-deleted object back with all its versions; returns the latest."""
        with self.transaction():
            cursor = self._db.execute(
                "DELETE FROM deleted_objects WHERE kind=? AND name_key=?", (kind, name.lower())
            )
            if cursor.rowcount != 1:
                raise LookupError(f"no deleted {kind} named {name}")
            self._db.execute(
                "UPDATE versions SET deleted=0 WHERE kind=? AND name_key=?", (kind, name.lower())
            )
        latest = self.get_latest(kind, name)
        assert latest is not None
        return latest

    def purge(self, kind: str, name: str) -> bool:
        """Erase a soft-deleted object for good; False when there was none."""
        with self.transaction():
            cursor = self._db.execute(
                "DELETE FROM deleted_objects WHERE kind=? AND name_key=?", (kind, name.lower())
            )
            if cursor.rowcount != 1:
                return False
            self._db.execute(
                "DELETE FROM versions WHERE kind=? AND name_key=?", (kind, name.lower())
            )
            self._db.execute(
                "DELETE FROM notices WHERE kind=? AND name_key=?", (kind, name.lower())
            )
        return True

    def due_for_purge(self, now: int) -> list[tuple[str, str]]:
        """(kind, name) of soft-deleted objects whose retention has run out."""
        rows = self._db.execute(
            "SELECT kind, name FROM deleted_objects WHERE scheduled_purge_date<=?", (now,)
        ).fetchall()
        return [(r["kind"], r["name"]) for r in rows]

    # -- expiry notices -------------------------------------------------------------------

    def expiring_latest(self, until: int) -> list[StoredVersion]:
        """Latest live versions whose `attributes.exp` is at or before `until`."""
        rows = self._db.execute(
            "SELECT v.* FROM versions v JOIN ("
            "  SELECT MAX(seq) AS m FROM versions WHERE deleted=0 GROUP BY kind, name_key"
            ") t ON v.seq = t.m "
            "WHERE json_extract(v.doc, '$.attributes.exp') IS NOT NULL "
            "AND json_extract(v.doc, '$.attributes.exp') <= ?",
            (until,),
        ).fetchall()
        return [self._row_version(r) for r in rows]

    def mark_notice(self, kind: str, name: str, version: str, event: str) -> bool:
        """Record that `event` was sent for a version; False if it had been already."""
        with self.transaction():
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO notices VALUES (?, ?, ?, ?)",
                (kind, name.lower(), version, event),
            )
        return cursor.rowcount == 1

    def has_notice(self, kind: str, name: str, version: str, event: str) -> bool:
        """Whether `event` was already sent for a version."""
        return (
            self._db.execute(
                "SELECT 1 FROM notices WHERE kind=? AND name_key=? AND version=? AND event=?",
                (kind, name.lower(), version, event),
            ).fetchone()
            is not None
        )

    # -- singletons (contacts, issuers, policies, the geo backup key, modes) ---------------

    def get_value(self, namespace: str, key: str) -> Any:
        """A stored JSON value, or None."""
        row = self._db.execute(
            "SELECT value FROM singletons WHERE namespace=? AND key=?", (namespace, key)
        ).fetchone()
        return json.loads(row["value"]) if row else None

    def put_value(self, namespace: str, key: str, value: Any) -> None:
        """Store (or replace) a JSON value."""
        with self.transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO singletons VALUES (?, ?, ?)",
                (namespace, key, json.dumps(value)),
            )

    def delete_value(self, namespace: str, key: str) -> bool:
        """Remove a value; False when there was none."""
        with self.transaction():
            cursor = self._db.execute(
                "DELETE FROM singletons WHERE namespace=? AND key=?", (namespace, key)
            )
        return cursor.rowcount == 1

    def list_values(self, namespace: str) -> dict[str, Any]:
        """All values of a namespace, by key."""
        rows = self._db.execute(
            "SELECT key, value FROM singletons WHERE namespace=? ORDER BY key", (namespace,)
        ).fetchall()
        return {r["key"]: json.loads(r["value"]) for r in rows}
