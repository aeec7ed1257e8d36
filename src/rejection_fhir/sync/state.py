"""Sync state in SQLite: the cursor per source and the ledger of every response handled.

The ledger is the memory that makes the sync exactly-once from the clinic's point of view:
each QuestionnaireResponse id/version maps to the resources written for it, or to the
findings that got it rejected.  The cursor only moves after the target server committed.
The server-side conditional creates make a replay harmless; the ledger makes it cheap and
lets us report what happened.

The file holds clients' identifiers, so it is created with mode 0600.  One sync at a time
may use it: an exclusive ``flock`` on a sidecar lock file, held for the whole run.
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
from typing import Any

from rejection_fhir.errors import ConfigError, StateBusyError

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cursor (
    source TEXT PRIMARY KEY,
    last_updated TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS ledger (
    source TEXT NOT NULL,
    response_id TEXT NOT NULL,
    response_version TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('written', 'rejected')),
    questionnaire TEXT,
    resources TEXT NOT NULL DEFAULT '[]',
    findings TEXT NOT NULL DEFAULT '[]',
    recorded_at REAL NOT NULL,
    PRIMARY KEY (source, response_id, response_version)
);
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


def _create_private(path: Path) -> None:
    """Create ``path`` with mode 0600 if it is missing; tighten it if it is too open."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)


class SyncState:
    def __init__(self, path: Path) -> None:
        self.path = path
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
            "SELECT last_updated FROM cursor WHERE source = ?", (source,)
        ).fetchone()
        return None if row is None else str(row[0])

    def set_cursor(self, source: str, last_updated: str) -> None:
        self._db.execute(
            "INSERT INTO cursor (source, last_updated, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT(source) DO UPDATE SET last_updated = excluded.last_updated, updated_at = excluded.updated_at",
            (source, last_updated, time.time()),
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
                [
                    (
                        e.source,
                        e.response_id,
                        e.response_version,
                        e.outcome,
                        e.questionnaire,
                        json.dumps(e.resources),
                        json.dumps(e.findings),
                        now,
                    )
                    for e in entries
                ],
            )
            if cursor is not None:
                self.set_cursor(*cursor)

    def entries(self, source: str | None = None, outcome: str | None = None) -> list[LedgerEntry]:
        query = "SELECT source, response_id, response_version, outcome, questionnaire, resources, findings FROM ledger"
        clauses, params = [], []
        if source is not None:
            clauses.append("source = ?")
            params.append(source)
        if outcome is not None:
            clauses.append("outcome = ?")
            params.append(outcome)
        if clauses:
            query += " WHERE " + " AND ".join(clauses)
        query += " ORDER BY recorded_at, response_id, response_version"
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
