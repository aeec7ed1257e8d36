"""The PostgreSQL state store keeps the SQLite store's guarantees, plus a fenced lease."""

from __future__ import annotations

import psycopg
import pytest

from rejection_fhir.errors import ConfigError, ExitCode, LeaseLostError, StateBusyError
from rejection_fhir.sync.pgstate import SCHEMA_VERSION, PostgresState
from rejection_fhir.sync.state import LedgerEntry, window_shard
from rejection_fhir.sync.stores import open_state

pytestmark = pytest.mark.integration

SRC = "http://127.0.0.1:9/fhir"
WINDOW = window_shard("2025-01-01", "2026-01-01")


def _entry(rid: str, version: str = "1", outcome: str = "written") -> LedgerEntry:
    refs = [f"DocumentReference/{rid}-{version}"] if outcome == "written" else []
    return LedgerEntry(SRC, rid, version, outcome, "q|1", refs, [])


def test_cursor_and_ledger_move_together_and_survive_a_restart(pg_state):
    with open_state(pg_state, source=SRC) as state:
        assert state.cursor(SRC) is None
        state.record([_entry("a"), _entry("b", outcome="rejected")], cursor=(SRC, "2026-01-01"))
        assert state.seen(SRC, "a", "1").resources == ["DocumentReference/a-1"]
        assert state.seen(SRC, "a", "2") is None
        assert [e.response_id for e in state.entries(outcome="rejected")] == ["b"]
    with open_state(pg_state, source=SRC) as again:
        assert again.cursor(SRC) == "2026-01-01"
    with psycopg.connect(pg_state) as db:
        assert db.execute("SELECT version FROM sync_schema").fetchone()[0] == SCHEMA_VERSION


def test_a_failed_batch_moves_nothing(pg_state):
    with open_state(pg_state, source=SRC) as state:
        bad = LedgerEntry(SRC, "x", "1", "lost", None, [], [])  # violates the CHECK
        with pytest.raises(psycopg.errors.CheckViolation):
            state.record([_entry("ok"), bad], cursor=(SRC, "2026-01-01"))
        assert state.cursor(SRC) is None
        assert state.seen(SRC, "ok", "1") is None


def test_one_run_per_shard_cursor_per_shard_ledger_shared(pg_state):
    with open_state(pg_state, source=SRC) as incremental:
        with pytest.raises(StateBusyError) as busy, open_state(pg_state, source=SRC):
            pass
        assert busy.value.exit_code == ExitCode.BUSY
        with open_state(pg_state, shard=WINDOW, source=SRC) as window:  # another shard: fine
            window.record([_entry("w")], cursor=(SRC, "2025-06-01"))
        assert incremental.cursor(SRC) is None
        assert incremental.seen(SRC, "w", "1") is not None
        incremental.record([_entry("w", "2")], cursor=(SRC, "2026-02-01"))
        assert incremental.latest_written(SRC, "w", other_than="2").response_version == "1"


def test_a_run_that_lost_its_lease_can_never_move_the_cursor(pg_state):
    first = PostgresState(pg_state, source=SRC, lease_ttl=60)
    first.record([_entry("a")], cursor=(SRC, "2026-01-01"))
    with psycopg.connect(pg_state, autocommit=True) as db:  # the lease runs out...
        db.execute("UPDATE sync_lease SET expires_at = now() - interval '1 second'")
    with PostgresState(pg_state, source=SRC) as second:  # ... and another run takes it
        assert second.tokens[SRC] == first.tokens[SRC] + 1
        with pytest.raises(LeaseLostError, match="lost the incremental sync") as lost:
            first.record([_entry("late")], cursor=(SRC, "2026-12-31"))
        assert lost.value.exit_code == ExitCode.BUSY
        assert second.cursor(SRC) == "2026-01-01"
        assert second.seen(SRC, "late", "1") is None
        second.record([_entry("b")], cursor=(SRC, "2026-02-01"))
    first.close()
    with open_state(pg_state, source=SRC) as third:  # closing expired the second's lease
        assert third.cursor(SRC) == "2026-02-01"


def test_a_dead_runs_lease_expires_and_waiting_runs_take_it(pg_state):
    crashed = PostgresState(pg_state, source=SRC, lease_ttl=1)
    crashed._db.close()  # gone without releasing, like kill -9
    with open_state(pg_state, source=SRC, wait=10) as next_run:
        next_run.record([], cursor=(SRC, "2026-01-01"))


def test_a_newer_schema_is_refused(pg_state):
    PostgresState(pg_state).close()
    with psycopg.connect(pg_state, autocommit=True) as db:
        db.execute("UPDATE sync_schema SET version = %s", (SCHEMA_VERSION + 1,))
    with pytest.raises(ConfigError, match="newer rejection-fhir"):
        PostgresState(pg_state)


def test_an_unreachable_database_is_exit_6(postgres):
    from rejection_fhir.errors import ServerUnavailableError

    with pytest.raises(ServerUnavailableError, match="cannot reach the sync state database"):
        PostgresState("postgresql://nobody@127.0.0.1:1/none")
