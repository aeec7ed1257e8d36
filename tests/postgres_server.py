"""Find or start the local PostgreSQL for tests (plain Python, no pytest).

    from tests.postgres_server import ensure_postgres, fresh_database
    admin = ensure_postgres()              # e.g. "postgresql://rfhir@127.0.0.1:5432/rfhir"
    dsn = fresh_database(admin, "t_abc")   # an empty database of its own

Order: ``RFHIR_TEST_PG_DSN`` when set (used as is), else ``scripts/postgres start`` (on
``RFHIR_PG_PORT``, default 5432), which starts the cluster when it is not running and
prints its DSN.  Any failure raises ``RuntimeError`` saying what went wrong.
"""

from __future__ import annotations

import os

from tests.hapi_server import REPO, run_start

SCRIPT = REPO / "scripts" / "postgres"


def ensure_postgres() -> str:
    configured = os.environ.get("RFHIR_TEST_PG_DSN", "").strip()
    if configured:
        return configured
    return run_start(SCRIPT, timeout=180, tail_lines=15)[-1]


def fresh_database(admin_dsn: str, name: str) -> str:
    """Drop and create database ``name`` on the server of ``admin_dsn``; its DSN."""
    import psycopg

    with psycopg.connect(admin_dsn, autocommit=True) as db:
        db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        db.execute(f'CREATE DATABASE "{name}"')
    return admin_dsn.rsplit("/", 1)[0] + "/" + name


if __name__ == "__main__":
    print(ensure_postgres())
