"""Sync state in PostgreSQL, for shards on several hosts sharing one ledger per source.

The same guarantees as the SQLite store (:mod:`rejection_fhir.sync.state`), in a database:

* the ledger rows of a batch and the shard's cursor are written in **one transaction**
  (:meth:`PostgresState.record`), called only after the EHR committed the batch, in page order;
* **one run per shard**: a lease row ``(shard, source)`` with an expiry and a *fencing
  token* that grows by one at every takeover.  Every ``record`` locks the lease row, checks
  that the token is still this run's and renews the expiry, in the same transaction as the
  ledger rows and the cursor: a run whose lease expired and was taken over can never move
  the cursor nor write the ledger again (:class:`~rejection_fhir.errors.LeaseLostError`,
  exit 8).  A run that dies leaves its lease to expire (``lease_ttl``, default 300 s), so
  the lease must outlast the slowest page's commit;
* ledger lookups by primary key ``(source, response_id, response_version)`` and an index
  on ``(source, response_id, recorded_at)`` for amendments;
* a cursor per ``(shard, source)``, over a ledger shared by every shard of a source;
* the schema is created and migrated by the tool (``sync_schema.version``), under an
  advisory lock so that workers starting together migrate once.

psycopg 3 (the ``postgres`` extra) is imported only here, and this module only when a
``postgresql://`` state is used.  Passwords never go in the URL (it shows up in ``ps`` and
shell history): libpq reads them from ``PGPASSFILE`` / ``~/.pgpass`` or ``PGPASSWORD``.
A host that is not loopback gets ``sslmode=verify-full`` unless the URL says otherwise.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from rejection_fhir.errors import (
    ConfigError,
    LeaseLostError,
    ServerUnavailableError,
    StateBusyError,
)
from rejection_fhir.sync.state import INCREMENTAL, LedgerEntry, entries_query, ledger_row

if TYPE_CHECKING:
    import psycopg

#: Seconds a run's lease lasts without a ``record``; every ``record`` renews it.
DEFAULT_LEASE_TTL = 300.0

#: Key of the advisory lock that serialises schema migrations.
_MIGRATION_LOCK = 0x52464849  # "RFHI"

#: Schema versions, in order; each entry brings the schema from the previous version.
_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE sync_cursor (
        shard TEXT NOT NULL,
        source TEXT NOT NULL,
        last_updated TEXT NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (shard, source)
    );
    CREATE TABLE sync_ledger (
        source TEXT NOT NULL,
        response_id TEXT NOT NULL,
        response_version TEXT NOT NULL,
        outcome TEXT NOT NULL CHECK (outcome IN ('written', 'rejected')),
        questionnaire TEXT,
        resources JSONB NOT NULL DEFAULT '[]',
        findings JSONB NOT NULL DEFAULT '[]',
        recorded_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
        PRIMARY KEY (source, response_id, response_version)
    );
    CREATE INDEX sync_ledger_amendments ON sync_ledger (source, response_id, recorded_at);
    CREATE TABLE sync_lease (
        shard TEXT NOT NULL,
        source TEXT NOT NULL,
        holder TEXT NOT NULL,
        token BIGINT NOT NULL,
        expires_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (shard, source)
    );
    """,
    # 2: the outcomes uncertain (ledger-only: a create's answer lost) and absent (reconciled:
    # never landed).  A column's CHECK is named <table>_<column>_check by PostgreSQL.
    """
    ALTER TABLE sync_ledger DROP CONSTRAINT sync_ledger_outcome_check;
    ALTER TABLE sync_ledger ADD CONSTRAINT sync_ledger_outcome_check
        CHECK (outcome IN ('written', 'rejected', 'uncertain', 'absent'));
    """,
)
SCHEMA_VERSION = len(_MIGRATIONS)

_COLUMNS = "source, response_id, response_version, outcome, questionnaire, resources, findings"


def _import_psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise ConfigError(
            "a postgresql:// sync state needs the psycopg driver, which is not installed",
            hint="pip install 'rejection-fhir[postgres]'",
        ) from None
    return psycopg


def connection_info(url: str) -> str:
    """The libpq connection string for ``url``: TLS verified for hosts off this machine."""
    psycopg = _import_psycopg()
    try:
        params = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise ConfigError(f"sync state URL is not a valid PostgreSQL URL: {exc}") from None
    if params.get("password"):
        raise ConfigError(
            "the sync state URL carries a password; it would show in the process list",
            hint="put it in PGPASSFILE (~/.pgpass) or PGPASSWORD instead",
        )
    host = str(params.get("host") or "")
    local = not host or host.startswith("/") or host in ("localhost", "127.0.0.1", "::1")
    if not local and "sslmode" not in params:
        params["sslmode"] = "verify-full"
    params.setdefault("connect_timeout", 10)
    params.setdefault("application_name", "rejection-fhir sync")
    return str(psycopg.conninfo.make_conninfo(**params))


def shown(url: str) -> str:
    """The URL without its query (no credentials ever reach a message)."""
    return url.split("?", 1)[0]


class PostgresState:
    """One run's view of the PostgreSQL state, for one shard, holding its lease."""

    def __init__(
        self,
        url: str,
        *,
        shard: str = INCREMENTAL,
        wait: float = 0.0,
        lease_ttl: float | None = None,
        source: str | None = None,
    ) -> None:
        self.url = url
        self.shard = shard
        self.wait = wait
        self.lease_ttl = float(lease_ttl or DEFAULT_LEASE_TTL)
        self.holder = f"{socket.gethostname()}:{os.getpid()}"
        #: The fencing token of this run's lease per source (leases are taken lazily,
        #: on the first use of a source, because the sync learns its source's base URL late).
        self.tokens: dict[str, int] = {}
        self._psycopg = _import_psycopg()
        try:
            self._db: psycopg.Connection[Any] = self._psycopg.connect(
                connection_info(url), autocommit=True
            )
        except self._psycopg.OperationalError as exc:
            raise ServerUnavailableError(
                f"cannot reach the sync state database {shown(url)}: "
                f"{str(exc).strip().splitlines()[0] if str(exc).strip() else exc}",
                hint="check that PostgreSQL runs and accepts this user (scripts/postgres status)",
            ) from None
        self._migrate()
        if source is not None:
            self.lease(source)

    # -- lifecycle -----------------------------------------------------------------------

    def __enter__(self) -> PostgresState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            for source, token in self.tokens.items():
                # Expire our lease (never delete it: the token must keep growing).
                self._db.execute(
                    "UPDATE sync_lease SET expires_at = now() "
                    "WHERE shard = %s AND source = %s AND token = %s",
                    (self.shard, source, token),
                )
        except self._psycopg.Error:
            pass  # it expires by itself
        finally:
            self._db.close()

    def _migrate(self) -> None:
        with self._guard(), self._db.transaction():
            self._db.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS sync_schema "
                "(id INT PRIMARY KEY CHECK (id = 1), version INT NOT NULL)"
            )
            row = self._db.execute("SELECT version FROM sync_schema WHERE id = 1").fetchone()
            version = 0 if row is None else int(row[0])
            if version > SCHEMA_VERSION:
                raise ConfigError(
                    f"{shown(self.url)}: sync state written by a newer rejection-fhir "
                    f"(schema {version})",
                    hint="upgrade rejection-fhir, or point --state at another database",
                )
            for step in _MIGRATIONS[version:]:
                self._db.execute(step)
            self._db.execute(
                "INSERT INTO sync_schema (id, version) VALUES (1, %s) "
                "ON CONFLICT (id) DO UPDATE SET version = excluded.version",
                (SCHEMA_VERSION,),
            )

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """Database errors as the tool's errors: unreachable → exit 6."""
        try:
            yield
        except self._psycopg.OperationalError as exc:
            text = str(exc).strip()
            raise ServerUnavailableError(
                f"lost the sync state database {shown(self.url)}: "
                f"{text.splitlines()[0] if text else type(exc).__name__}",
                hint="the cursor stays at the last recorded batch; run again later",
            ) from None

    # -- the lease -----------------------------------------------------------------------

    def lease(self, source: str) -> int:
        """Take the lease of (shard, source), waiting up to ``wait`` s; the fencing token."""
        if source in self.tokens:
            return self.tokens[source]
        deadline = time.monotonic() + self.wait
        while True:
            with self._guard():
                row = self._db.execute(
                    "INSERT INTO sync_lease (shard, source, holder, token, expires_at) "
                    "VALUES (%s, %s, %s, 1, now() + make_interval(secs => %s)) "
                    "ON CONFLICT (shard, source) DO UPDATE SET holder = excluded.holder, "
                    "token = sync_lease.token + 1, expires_at = excluded.expires_at "
                    "WHERE sync_lease.expires_at <= now() RETURNING token",
                    (self.shard, source, self.holder, self.lease_ttl),
                ).fetchone()
            if row is not None:
                self.tokens[source] = int(row[0])
                return self.tokens[source]
            if time.monotonic() >= deadline:
                held = self._db.execute(
                    "SELECT holder, expires_at FROM sync_lease WHERE shard = %s AND source = %s",
                    (self.shard, source),
                ).fetchone()
                holder, until = (held[0], held[1].isoformat()) if held else ("?", "?")
                raise StateBusyError(
                    f"another sync holds {_what(self.shard, source)} in {shown(self.url)} "
                    f"({holder}, lease until {until})",
                    hint="wait for it to finish, or pass --wait SECONDS to queue behind it",
                )
            time.sleep(min(0.5, max(0.05, deadline - time.monotonic())))

    def _fence(self, source: str) -> None:
        """Inside a transaction: lock the lease row, check our token, renew the expiry."""
        token = self.lease(source) if source not in self.tokens else self.tokens[source]
        row = self._db.execute(
            "SELECT token, holder FROM sync_lease WHERE shard = %s AND source = %s FOR UPDATE",
            (self.shard, source),
        ).fetchone()
        if row is None or int(row[0]) != token:
            raise LeaseLostError(
                f"this sync lost {_what(self.shard, source)} to another run "
                f"({row[1] if row else 'nobody'}, fencing token {row[0] if row else '?'}, ours "
                f"{token}); nothing more is recorded",
                hint="the other run carries on from the last recorded batch; the EHR's "
                "conditional writes make any overlap a no-op",
            )
        self._db.execute(
            "UPDATE sync_lease SET expires_at = now() + make_interval(secs => %s) "
            "WHERE shard = %s AND source = %s",
            (self.lease_ttl, self.shard, source),
        )

    # -- cursor and ledger ---------------------------------------------------------------

    def cursor(self, source: str) -> str | None:
        self.lease(source)
        with self._guard():
            row = self._db.execute(
                "SELECT last_updated FROM sync_cursor WHERE shard = %s AND source = %s",
                (self.shard, source),
            ).fetchone()
        return None if row is None else str(row[0])

    def seen(self, source: str, response_id: str, response_version: str) -> LedgerEntry | None:
        with self._guard():
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM sync_ledger "
                "WHERE source = %s AND response_id = %s AND response_version = %s",
                (source, response_id, response_version),
            ).fetchone()
        return None if row is None else _entry(row)

    def latest_written(
        self, source: str, response_id: str, *, other_than: str
    ) -> LedgerEntry | None:
        with self._guard():
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM sync_ledger WHERE source = %s AND response_id = %s "
                "AND response_version <> %s AND outcome = 'written' "
                "ORDER BY recorded_at DESC LIMIT 1",
                (source, response_id, other_than),
            ).fetchone()
        return None if row is None else _entry(row)

    def record(
        self, entries: Sequence[LedgerEntry], *, cursor: tuple[str, str] | None = None
    ) -> None:
        """Record a committed batch and move the cursor, in one transaction, if the lease
        is still ours (else LeaseLostError, and nothing is written)."""
        sources = {e.source for e in entries} | ({cursor[0]} if cursor else set())
        with self._guard(), self._db.transaction():
            for source in sorted(sources):
                self._fence(source)
            if entries:
                with self._db.cursor() as cur:
                    cur.executemany(
                        f"INSERT INTO sync_ledger ({_COLUMNS}) "
                        "VALUES (%s, %s, %s, %s, %s, %s, %s) "
                        "ON CONFLICT (source, response_id, response_version) DO UPDATE SET "
                        "outcome = excluded.outcome, questionnaire = excluded.questionnaire, "
                        "resources = excluded.resources, findings = excluded.findings, "
                        "recorded_at = excluded.recorded_at",
                        [ledger_row(e) for e in entries],
                    )
            if cursor is not None:
                self._db.execute(
                    "INSERT INTO sync_cursor (shard, source, last_updated) VALUES (%s, %s, %s) "
                    "ON CONFLICT (shard, source) DO UPDATE SET "
                    "last_updated = excluded.last_updated, updated_at = now()",
                    (self.shard, cursor[0], cursor[1]),
                )

    def entries(self, source: str | None = None, outcome: str | None = None) -> list[LedgerEntry]:
        query, params = entries_query(
            f"SELECT {_COLUMNS} FROM sync_ledger", "%s", source=source, outcome=outcome
        )
        with self._guard():
            return [_entry(row) for row in self._db.execute(query, params)]


def _what(shard: str, source: str) -> str:
    return f"shard '{shard}' of {source}" if shard else f"the incremental sync of {source}"


def _entry(row: Sequence[Any]) -> LedgerEntry:
    return LedgerEntry(row[0], row[1], row[2], row[3], row[4], list(row[5]), list(row[6]))
