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
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "postgres"


def ensure_postgres() -> str:
    configured = os.environ.get("RFHIR_TEST_PG_DSN", "").strip()
    if configured:
        return configured
    try:
        result = subprocess.run(
            ["bash", str(SCRIPT), "start"],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"could not run `scripts/postgres start`: {exc}") from exc
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
        raise RuntimeError(f"`scripts/postgres start` failed (exit {result.returncode})\n{tail}")
    return result.stdout.strip().splitlines()[-1]


def fresh_database(admin_dsn: str, name: str) -> str:
    """Drop and create database ``name`` on the server of ``admin_dsn``; its DSN."""
    import psycopg

    with psycopg.connect(admin_dsn, autocommit=True) as db:
        db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        db.execute(f'CREATE DATABASE "{name}"')
    return admin_dsn.rsplit("/", 1)[0] + "/" + name


if __name__ == "__main__":
    print(ensure_postgres())
