"""Integration tests run against the real HAPI FHIR server the project builds and starts."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

import pytest

from tests.conftest import unavailable

if TYPE_CHECKING:
    import requests

    from rejection_fhir.fhir.client import FhirClient
    from rejection_fhir.settings import Settings
    from tests.faults.scenario import Outcome
    from tests.faults.world import World


def notes_by_response(
    http: requests.Session, base: str, subjects: Iterable[str], count: int = 200
) -> Counter[str]:
    """Our notes on the server for these subjects, by the response they summarise (the
    response id in the note's derived identifier); a count above 1 is a duplicate."""
    from rejection_fhir.ehr.entries import DERIVED_SYSTEM

    found: Counter[str] = Counter()
    for subject in subjects:
        answer = http.get(
            f"{base}/DocumentReference",
            params={"subject": subject, "_count": str(count)},
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        for entry in answer.json().get("entry") or []:
            for identifier in entry["resource"].get("identifier") or []:
                if identifier.get("system") == DERIVED_SYSTEM:
                    found[identifier["value"].split("/")[1]] += 1
    return found


def _found_or_started(what: str, ensure: Callable[[], str]) -> str:
    """What ``ensure()`` finds or starts; when it cannot, the test is skipped (failed in CI)."""
    try:
        return ensure()
    except RuntimeError as exc:
        unavailable(f"{what} unavailable: {exc}")
        raise  # unreachable: unavailable() skips or fails


@pytest.fixture(scope="session")
def fhir_server() -> str:
    """Base URL of a live HAPI server (started by scripts/hapi when none answers)."""
    from tests.hapi_server import ensure_server

    return _found_or_started("HAPI FHIR server", ensure_server)


@pytest.fixture(scope="session")
def medplum_server() -> str:
    """Base URL of the local Medplum test server (started by scripts/medplum when needed)."""
    from tests.medplum_server import ensure_server

    return _found_or_started("Medplum test server", ensure_server)


@pytest.fixture(scope="session")
def postgres() -> str:
    """The admin DSN of a live local PostgreSQL (started by scripts/postgres when needed)."""
    from tests.postgres_server import ensure_postgres

    return _found_or_started("PostgreSQL", ensure_postgres)


@pytest.fixture
def pg_state(postgres, request) -> str:
    """An empty PostgreSQL database of this test's own, as a ``--state`` URL."""
    import re

    from tests.postgres_server import fresh_database

    name = "t_" + re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:50]
    return fresh_database(postgres, name)


@pytest.fixture(scope="module")
def direct_settings(fhir_server: str) -> Settings:
    """Settings for the HAPI server itself (no fault proxy in between), per test module."""
    from rejection_fhir.settings import load_settings

    return load_settings({"server": fhir_server}, env={})


@pytest.fixture(scope="module")
def direct(direct_settings: Settings) -> Iterator[FhirClient]:
    """A client of the HAPI server itself (no fault proxy in between), per test module."""
    from rejection_fhir import settings as settings_module

    with settings_module.make_client(direct_settings) as client:
        yield client


@pytest.fixture(scope="module")
def baseline(request, repo, fhir_server, direct_settings, direct, tmp_path_factory) -> Outcome:
    """The fault-free end state of the sync scenario on a twin world, in batches of the test
    module's ``BATCH`` (what its faulty runs are compared with)."""
    from tests.faults.scenario import fault_free

    state_path = tmp_path_factory.mktemp("baseline") / "state.sqlite3"
    batch = request.module.BATCH
    return fault_free(repo, fhir_server, direct_settings, direct, state_path, batch=batch)


@pytest.fixture
def fresh_world(repo, direct_settings, direct) -> Iterator[World]:
    """A new world of the sync scenario (its own canonical base), closed after the test."""
    from tests.faults.scenario import RESPONSES, WORLD_SEED, new_base
    from tests.faults.world import make_world

    world = make_world(
        repo, direct_settings, direct, new_base(), responses=RESPONSES, seed=WORLD_SEED
    )
    yield world
    world.close()


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
