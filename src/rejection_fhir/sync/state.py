"""Sync state: the cursor per shard and source, and the ledger of every response handled.

The ledger is the memory that makes the sync exactly-once from the clinic's point of view:
each QuestionnaireResponse id/version maps to the resources written for it, or to the
findings that got it rejected.  The cursor only moves after the target server committed.
The server-side conditional creates make a replay harmless; the ledger makes it cheap and
lets us report what happened.

Two stores keep the same guarantees behind one interface (:class:`StateStore`), opened
with :func:`open_state` for one *shard* (``""`` for a source's incremental sync, a time
window's own name otherwise: cursors are per shard, the ledger is shared by every shard of
a source):

* SQLite (the default, no setup), in this module.  The file holds clients' identifiers, so
  it is created with mode 0600.  One sync at a time may use it: an exclusive ``flock`` on a
  sidecar lock file, held for the whole run.
* PostgreSQL (``postgresql://...``), for shards on several hosts:
  :mod:`rejection_fhir.sync.pgstate`, with a lease and a fencing token instead of the flock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from rejection_fhir.errors import ConfigError, StateBusyError

SCHEMA_VERSION = 3

#: The incremental sync's shard; a time window's shard is named by :func:`window_shard`.
INCREMENTAL = ""

#: Ledger outcomes: written, rejected (findings), uncertain (ledger-only mode: a create's
#: answer was lost), absent (``sync --reconcile`` found it never landed: write it again).
OUTCOMES = ("written", "rejected", "uncertain", "absent")
_OUTCOMES_SQL = ", ".join(f"'{o}'" for o in OUTCOMES)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cursor (
    shard TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL,
    last_updated TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (shard, source)
);
CREATE TABLE IF NOT EXISTS ledger (
    source TEXT NOT NULL,
    response_id TEXT NOT NULL,
    response_version TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ({outcomes})),
    questionnaire TEXT,
    resources TEXT NOT NULL DEFAULT '[]',
    findings TEXT NOT NULL DEFAULT '[]',
    recorded_at REAL NOT NULL,
    PRIMARY KEY (source, response_id, response_version)
);
CREATE INDEX IF NOT EXISTS ledger_amendments ON ledger (source, response_id, recorded_at);
""".replace("{outcomes}", _OUTCOMES_SQL)

#: Schema 1 → 2: the cursor is keyed by (shard, source); schema 1's cursors are the
#: incremental shard's.
_MIGRATE_1_TO_2 = """
CREATE TABLE cursor_v2 (
    shard TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL,
    last_updated TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (shard, source)
);
INSERT INTO cursor_v2 (shard, source, last_updated, updated_at)
    SELECT '', source, last_updated, updated_at FROM cursor;
DROP TABLE cursor;
ALTER TABLE cursor_v2 RENAME TO cursor;
"""

#: Schema 2 → 3: the ledger takes the outcomes uncertain and absent (a CHECK constraint
#: cannot be altered in SQLite: the table is copied).
_MIGRATE_2_TO_3 = f"""
CREATE TABLE ledger_v3 (
    source TEXT NOT NULL,
    response_id TEXT NOT NULL,
    response_version TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ({_OUTCOMES_SQL})),
    questionnaire TEXT,
    resources TEXT NOT NULL DEFAULT '[]',
    findings TEXT NOT NULL DEFAULT '[]',
    recorded_at REAL NOT NULL,
    PRIMARY KEY (source, response_id, response_version)
);
INSERT INTO ledger_v3 SELECT source, response_id, response_version, outcome, questionnaire,
    resources, findings, recorded_at FROM ledger;
DROP TABLE ledger;
ALTER TABLE ledger_v3 RENAME TO ledger;
"""


@dataclass(frozen=True)
class LedgerEntry:
    source: str
    response_id: str
    response_version: str
    outcome: str
    questionnaire: str | None
    resources: list[str]
    findings: list[dict[str, Any]]


def window_shard(since: str | None, until: str) -> str:
    """The shard name of the time window [since, until): its cursor is its own."""
    return f"window {since or '-'}..{until}"


def is_database_url(location: str | Path) -> bool:
    """A PostgreSQL state (``postgresql://`` or ``postgres://``) rather than a file."""
    return isinstance(location, str) and location.startswith(("postgresql://", "postgres://"))


class StateStore(Protocol):
    """What the sync needs from a state store, for one shard.

    ``record`` writes the ledger rows of a batch and moves the shard's cursor in one
    transaction; a store with a lease refuses it (:class:`~rejection_fhir.errors.LeaseLostError`)
    once another run has taken the shard over.
    """

    shard: str

    def cursor(self, source: str) -> str | None: ...

    def seen(self, source: str, response_id: str, response_version: str) -> LedgerEntry | None: ...

    def latest_written(
        self, source: str, response_id: str, *, other_than: str
    ) -> LedgerEntry | None: ...

    def record(
        self, entries: Sequence[LedgerEntry], *, cursor: tuple[str, str] | None = None
    ) -> None: ...

    def entries(
        self, source: str | None = None, outcome: str | None = None
    ) -> list[LedgerEntry]: ...


def _create_private(path: Path) -> None:
    """Create ``path`` with mode 0600 if it is missing; tighten it if it is too open."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)


class SyncState:
    """The SQLite store (see the module docstring); ``shard`` names whose cursor it moves."""

    def __init__(self, path: Path, *, shard: str = INCREMENTAL) -> None:
        self.path = path
        self.shard = shard
        try:
            _create_private(path)
            self._db = sqlite3.connect(path, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise ConfigError(
                    f"{path}: state file written by a newer rejection-fhir (schema {version})",
                    hint="upgrade rejection-fhir, or point --state at another file",
                )
            if version == 1:
                self._db.executescript(f"BEGIN IMMEDIATE; {_MIGRATE_1_TO_2} COMMIT;")
                version = 2
            has_ledger = self._db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'ledger'"
            ).fetchone()
            if version == 2 and has_ledger:
                self._db.executescript(f"BEGIN IMMEDIATE; {_MIGRATE_2_TO_3} COMMIT;")
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            raise ConfigError(
                f"{path}: not a usable sync state file ({exc})",
                hint="point --state at another file",
            ) from None
        for suffix in ("-wal", "-shm"):
            side = path.with_name(path.name + suffix)
            if side.exists():
                os.chmod(side, 0o600)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> SyncState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- cursor ---------------------------------------------------------------------------

    def cursor(self, source: str) -> str | None:
        row = self._db.execute(
            "SELECT last_updated FROM cursor WHERE shard = ? AND source = ?", (self.shard, source)
        ).fetchone()
        return None if row is None else str(row[0])

    def set_cursor(self, source: str, last_updated: str) -> None:
        self._db.execute(
            "INSERT INTO cursor (shard, source, last_updated, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(shard, source) DO UPDATE SET last_updated = excluded.last_updated, "
            "updated_at = excluded.updated_at",
            (self.shard, source, last_updated, time.time()),
        )

    # --- ledger ---------------------------------------------------------------------------

    def seen(self, source: str, response_id: str, response_version: str) -> LedgerEntry | None:
        row = self._db.execute(
            "SELECT source, response_id, response_version, outcome, questionnaire, resources, findings "
            "FROM ledger WHERE source = ? AND response_id = ? AND response_version = ?",
            (source, response_id, response_version),
        ).fetchone()
        return None if row is None else _entry(row)

    def latest_written(
        self, source: str, response_id: str, *, other_than: str
    ) -> LedgerEntry | None:
        """The most recently written other version of a response: what an amendment replaces."""
        row = self._db.execute(
            "SELECT source, response_id, response_version, outcome, questionnaire, resources, findings "
            "FROM ledger WHERE source = ? AND response_id = ? AND response_version != ? "
            "AND outcome = 'written' ORDER BY recorded_at DESC LIMIT 1",
            (source, response_id, other_than),
        ).fetchone()
        return None if row is None else _entry(row)

    def record(
        self, entries: Sequence[LedgerEntry], *, cursor: tuple[str, str] | None = None
    ) -> None:
        """Record a committed batch and, in the same transaction, move the cursor."""
        now = time.time()
        with self._transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO ledger (source, response_id, response_version, outcome, questionnaire, "
                "resources, findings, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(*ledger_row(e), now) for e in entries],
            )
            if cursor is not None:
                self.set_cursor(*cursor)

    def entries(self, source: str | None = None, outcome: str | None = None) -> list[LedgerEntry]:
        query, params = entries_query(
            "SELECT source, response_id, response_version, outcome, questionnaire, resources, "
            "findings FROM ledger",
            "?",
            source=source,
            outcome=outcome,
        )
        return [_entry(row) for row in self._db.execute(query, params)]

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")


def _entry(row: Sequence[Any]) -> LedgerEntry:
    return LedgerEntry(
        row[0], row[1], row[2], row[3], row[4], json.loads(row[5]), json.loads(row[6])
    )


def ledger_row(e: LedgerEntry) -> tuple[Any, ...]:
    """The ledger columns of ``e`` as both stores write them (lists as JSON text)."""
    return (
        e.source,
        e.response_id,
        e.response_version,
        e.outcome,
        e.questionnaire,
        json.dumps(e.resources),
        json.dumps(e.findings),
    )


def entries_query(
    select: str, mark: str, *, source: str | None, outcome: str | None
) -> tuple[str, list[str]]:
    """``select`` (the ledger's rows) narrowed to ``source`` and ``outcome`` where given, in
    the order they were recorded; ``mark`` is the driver's parameter mark (``?``, ``%s``).
    Both stores answer :meth:`StateStore.entries` with it, so they list in the same order."""
    clauses, params = [], []
    if source is not None:
        clauses.append(f"source = {mark}")
        params.append(source)
    if outcome is not None:
        clauses.append(f"outcome = {mark}")
        params.append(outcome)
    query = select
    if clauses:
        query += " WHERE " + " AND ".join(clauses)
    return query + " ORDER BY recorded_at, response_id, response_version", params


@contextlib.contextmanager
def exclusive(path: Path, *, wait: float = 0.0) -> Iterator[None]:
    """Hold the sync lock for ``path``; another holder → StateBusyError (after ``wait`` s)."""
    lock_path = path.with_name(path.name + ".lock")
    _create_private(lock_path)
    fd = os.open(lock_path, os.O_RDWR)
    deadline = time.monotonic() + wait
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = (
                        os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
                    )
                    raise StateBusyError(
                        f"another sync is running on {path} (pid {holder})",
                        hint="wait for it to finish, or pass --wait SECONDS to queue behind it",
                    ) from None
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock, also when the process dies
