"""Which state store a run uses: the SQLite file (the default) or PostgreSQL, by location.

Its own module so that the two stores, :mod:`rejection_fhir.sync.state` and
:mod:`rejection_fhir.sync.pgstate` (which builds on the first's ledger rows), import
downward only; psycopg is imported only when a ``postgresql://`` location asks for it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from rejection_fhir.sync.state import (
    INCREMENTAL,
    StateStore,
    SyncState,
    exclusive,
    is_database_url,
)


@contextlib.contextmanager
def open_state(
    location: str | Path,
    *,
    shard: str = INCREMENTAL,
    source: str | None = None,
    wait: float = 0.0,
    lease_ttl: float | None = None,
) -> Iterator[StateStore]:
    """The state at ``location`` (a file, or a ``postgresql://`` URL) for one run of
    ``shard`` of ``source``.

    Held for the whole run: the file's flock, or the database lease of (shard, source)
    (``lease_ttl`` seconds, renewed by every ``record``).  Another run of the shard →
    StateBusyError (after ``wait`` s).
    """
    if is_database_url(location):
        from rejection_fhir.sync.pgstate import PostgresState  # psycopg: only when asked for

        with PostgresState(
            str(location), shard=shard, source=source, wait=wait, lease_ttl=lease_ttl
        ) as pg:
            yield pg
        return
    path = Path(location)
    with exclusive(path, wait=wait), SyncState(path, shard=shard) as state:
        yield state
