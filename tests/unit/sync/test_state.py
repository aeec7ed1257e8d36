from __future__ import annotations

import multiprocessing
import sqlite3
import stat

import pytest

from rejection_fhir.errors import ConfigError, ExitCode, StateBusyError
from rejection_fhir.sync.state import (
    SCHEMA_VERSION,
    LedgerEntry,
    SyncState,
    exclusive,
    window_shard,
)
from rejection_fhir.sync.stores import open_state


def _entry(rid: str, version: str = "1", outcome: str = "written") -> LedgerEntry:
    return LedgerEntry(
        "src",
        rid,
        version,
        outcome,
        "q|1",
        ["DocumentReference/1"] if outcome == "written" else [],
        [],
    )


def test_state_file_is_private(tmp_path):
    path = tmp_path / "state.sqlite3"
    SyncState(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_too_open_state_file_is_tightened(tmp_path):
    path = tmp_path / "state.sqlite3"
    path.touch(mode=0o644)
    path.chmod(0o644)
    SyncState(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_cursor_moves_with_the_batch_it_belongs_to(tmp_path):
    with SyncState(tmp_path / "s.sqlite3") as state:
        assert state.cursor("src") is None
        state.record(
            [_entry("a"), _entry("b", outcome="rejected")], cursor=("src", "2026-01-01T00:00:00Z")
        )
        assert state.cursor("src") == "2026-01-01T00:00:00Z"
        assert state.seen("src", "a", "1").resources == ["DocumentReference/1"]
        assert state.seen("src", "a", "2") is None
        assert [e.response_id for e in state.entries(outcome="rejected")] == ["b"]
    with SyncState(tmp_path / "s.sqlite3") as again:  # survives a restart
        assert again.cursor("src") == "2026-01-01T00:00:00Z"


def test_a_failed_batch_moves_nothing(tmp_path):
    with SyncState(tmp_path / "s.sqlite3") as state:
        bad = LedgerEntry("src", "a", "1", "lost", None, [], [])  # violates the CHECK constraint
        with pytest.raises(sqlite3.IntegrityError):
            state.record([_entry("ok"), bad], cursor=("src", "2026-01-01T00:00:00Z"))
        assert state.cursor("src") is None
        assert state.seen("src", "ok", "1") is None


def test_garbage_state_file_is_a_clear_config_error(tmp_path):
    path = tmp_path / "s.sqlite3"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ConfigError, match="not a usable sync state file"):
        SyncState(path)


def _hold(path, ready, release):
    with exclusive(path):
        ready.set()
        release.wait(10)


def test_second_sync_is_refused_while_first_holds_the_lock(tmp_path):
    path = tmp_path / "s.sqlite3"
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold, args=(path, ready, release))
    holder.start()
    try:
        assert ready.wait(10)
        with pytest.raises(StateBusyError) as caught, exclusive(path, wait=0.3):
            pass
        assert caught.value.exit_code == ExitCode.BUSY
        assert f"pid {holder.pid}" in str(caught.value)
    finally:
        release.set()
        holder.join(10)
    with exclusive(path):  # free again once the holder is gone
        pass


def test_a_schema_1_file_is_migrated_keeping_its_cursor(tmp_path):
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(
            "CREATE TABLE cursor (source TEXT PRIMARY KEY, last_updated TEXT NOT NULL, "
            "updated_at REAL NOT NULL);"
            "INSERT INTO cursor VALUES ('src', '2026-01-01T00:00:00Z', 0);"
            "PRAGMA user_version=1;"
        )
    with SyncState(path) as state:
        assert state.cursor("src") == "2026-01-01T00:00:00Z"
    with SyncState(path, shard=window_shard("2025-01-01", "2026-01-01")) as window:
        assert window.cursor("src") is None
        window.record([_entry("w")], cursor=("src", "2025-06-01T00:00:00Z"))
    with SyncState(path) as state:  # the window's cursor is its own, the ledger shared
        assert state.cursor("src") == "2026-01-01T00:00:00Z"
        assert state.seen("src", "w", "1") is not None
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_open_state_on_a_file_holds_the_lock(tmp_path):
    path = tmp_path / "s.sqlite3"
    with open_state(path, source="src") as state:
        state.record([_entry("a")], cursor=("src", "2026-01-01T00:00:00Z"))
        with pytest.raises(StateBusyError), open_state(path, source="src"):
            pass
    with open_state(path) as again:
        assert again.cursor("src") == "2026-01-01T00:00:00Z"


def test_a_schema_2_file_takes_uncertain_and_absent_keeping_its_ledger(tmp_path):
    path = tmp_path / "v2.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(
            "CREATE TABLE cursor (shard TEXT NOT NULL DEFAULT '', source TEXT NOT NULL, "
            "last_updated TEXT NOT NULL, updated_at REAL NOT NULL, PRIMARY KEY (shard, source));"
            "CREATE TABLE ledger (source TEXT NOT NULL, response_id TEXT NOT NULL, "
            "response_version TEXT NOT NULL, outcome TEXT NOT NULL CHECK (outcome IN "
            "('written', 'rejected')), questionnaire TEXT, resources TEXT NOT NULL DEFAULT '[]', "
            "findings TEXT NOT NULL DEFAULT '[]', recorded_at REAL NOT NULL, "
            "PRIMARY KEY (source, response_id, response_version));"
            "INSERT INTO ledger VALUES ('src', 'a', '1', 'written', 'q', '[\"N/1\"]', '[]', 1.0);"
            "PRAGMA user_version=2;"
        )
    with SyncState(path) as state:
        assert state.seen("src", "a", "1").resources == ["N/1"]
        state.record([_entry("b", outcome="uncertain"), _entry("c", outcome="absent")])
        assert state.seen("src", "b", "1").outcome == "uncertain"
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
