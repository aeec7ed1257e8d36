"""Integration tests run against the real HAPI FHIR server the project builds and starts."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import unavailable


@pytest.fixture(scope="session")
def fhir_server() -> str:
    """Base URL of a live HAPI server (started by scripts/hapi when none answers)."""
    from tests.hapi_server import ensure_server

    try:
        return ensure_server()
    except RuntimeError as exc:
        unavailable(f"HAPI FHIR server unavailable: {exc}")
        raise  # unreachable: unavailable() skips or fails


@pytest.fixture(scope="session")
def medplum_server() -> str:
    """Base URL of the local Medplum test server (started by scripts/medplum when needed)."""
    from tests.medplum_server import ensure_server

    try:
        return ensure_server()
    except RuntimeError as exc:
        unavailable(f"Medplum test server unavailable: {exc}")
        raise  # unreachable: unavailable() skips or fails


@pytest.fixture(scope="session")
def postgres() -> str:
    """The admin DSN of a live local PostgreSQL (started by scripts/postgres when needed)."""
    from tests.postgres_server import ensure_postgres

    try:
        return ensure_postgres()
    except RuntimeError as exc:
        unavailable(f"PostgreSQL unavailable: {exc}")
        raise  # unreachable: unavailable() skips or fails


@pytest.fixture
def pg_state(postgres, request) -> str:
    """An empty PostgreSQL database of this test's own, as a ``--state`` URL."""
    import re

    from tests.postgres_server import fresh_database

    name = "t_" + re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:50]
    return fresh_database(postgres, name)


@pytest.fixture
def canonical_base() -> str:
    """A fresh canonical base per test, so tests never see each other's resources."""
    return f"https://test.rejection-fhir.org/{uuid.uuid4().hex[:10]}/fhir"


@pytest.fixture
def settings(fhir_server):
    from rejection_fhir.settings import load_settings

    return load_settings({"server": fhir_server}, env={})


@pytest.fixture
def client(settings):
    from rejection_fhir import settings as settings_module

    with settings_module.make_client(settings) as c:
        yield c
