"""The PostgreSQL state's connection rules (no server needed; the store itself is tested
against a live PostgreSQL in tests/integration/test_pgstate.py)."""

from __future__ import annotations

import pytest
from psycopg.conninfo import conninfo_to_dict

from rejection_fhir.errors import ConfigError
from rejection_fhir.sync.pgstate import connection_info, shown
from rejection_fhir.sync.state import is_database_url


def test_a_remote_host_gets_verified_tls_unless_the_url_says_otherwise():
    remote = conninfo_to_dict(connection_info("postgresql://sync@db.example.org/rfhir"))
    assert remote["sslmode"] == "verify-full"
    chosen = conninfo_to_dict(
        connection_info("postgresql://sync@db.example.org/rfhir?sslmode=require")
    )
    assert chosen["sslmode"] == "require"
    local = conninfo_to_dict(connection_info("postgresql://sync@127.0.0.1:5432/rfhir"))
    assert "sslmode" not in local


def test_a_password_in_the_url_is_refused_without_showing_it():
    with pytest.raises(ConfigError, match="PGPASSFILE") as caught:
        connection_info("postgresql://sync:hunter2@db.example.org/rfhir")
    assert "hunter2" not in str(caught.value)
    assert shown("postgresql://sync@db/rfhir?sslcert=x") == "postgresql://sync@db/rfhir"


def test_only_postgresql_urls_are_databases():
    assert is_database_url("postgresql://db/rfhir") and is_database_url("postgres://db/x")
    assert not is_database_url(".state/sync.sqlite3")
