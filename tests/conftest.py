"""Shared test configuration.

Unit tests open no socket.  Integration tests (HAPI) and browser tests carry markers;
under CI=true a missing server or browser fails the run instead of skipping.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import responses

from tests.fakefhir import BASE, FakeFhir

REPO = Path(__file__).resolve().parent.parent
QUESTIONNAIRES = REPO / "questionnaires"
DATA = REPO / "tests" / "data"
LOINC = "http://loinc.org"
#: PHQ-9's answers by points (LOINC answer list LL358-3): "Not at all" .. "Nearly every day".
PHQ9_ANSWERS = ("LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9")
PHQ9_CANONICAL = "https://rejection-fhir.org/fhir/Questionnaire/phq-9|2.0.0"


def phq9_response(
    values: list[int], *, canonical: str = PHQ9_CANONICAL, rid: str | None = None
) -> dict[str, Any]:
    """A completed PHQ-9 to our form (``canonical``), item ``n`` answered ``values[n-1]``
    points, as a LOINC Coding."""
    qr: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": canonical,
        "status": "completed",
        "authored": "2026-11-20T10:00:00Z",
        "subject": {"reference": "Patient/p1"},
        "item": [
            {
                "linkId": f"phq9-{i}",
                "answer": [{"valueCoding": {"system": LOINC, "code": PHQ9_ANSWERS[v]}}],
            }
            for i, v in enumerate(values, start=1)
        ],
    }
    if rid is not None:
        qr["id"] = rid
    return qr


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def unavailable(reason: str) -> None:
    """Skip locally, fail in CI: CI must never pass by not running a test."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: a missing server or browser is a failure)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """validate's result cache goes to a folder of this test session, not the user's."""
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))


@pytest.fixture(autouse=True)
def _restore_logging():
    """``main(["-v", ...])`` configures the root logger for the run, bound to the stderr of
    that moment; every later test must find logging as it was (else a later log line goes
    to a closed capture stream and prints "--- Logging error ---")."""
    import logging

    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    urllib3 = logging.getLogger("urllib3").level
    yield
    root.setLevel(level)
    root.handlers[:] = handlers
    logging.getLogger("urllib3").setLevel(urllib3)


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def built():
    """The project's worksheets, built once per session (plain dicts)."""
    from rejection_fhir.commands.build import build_all

    result, findings = build_all(QUESTIONNAIRES)
    assert not [f for f in findings if f.severity == "error"]
    return result


@pytest.fixture
def qr() -> dict[str, Any]:
    """A completed QuestionnaireResponse to the rejection log (a fresh copy per test)."""
    loaded: dict[str, Any] = json.loads((DATA / "qr-rejection-log.json").read_text())
    return loaded


@pytest.fixture
def qr_at(qr: dict[str, Any]) -> Callable[..., dict[str, Any]]:
    """Copies of ``qr`` as a server holds them: ``qr_at("a", "2026-11-20T10:00:00Z")``, with
    ``version="2"`` and any other elements to change (``status="amended"``)."""

    def at(rid: str, updated: str, version: str = "1", **changes: Any) -> dict[str, Any]:
        out = copy.deepcopy(qr)
        out["id"] = rid
        out["meta"] = {"versionId": version, "lastUpdated": updated}
        out.update(changes)
        return out

    return at


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    """A ``responses`` mock for one test that does not insist every answer is asked for
    (tests/unit/fhir overrides it with one that does)."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def settings() -> Any:
    """Settings for the unit tests' server, ``tests.fakefhir.BASE``, ignoring the
    environment (tests/integration overrides it with the live server's)."""
    from rejection_fhir.settings import load_settings

    return load_settings({"server": BASE}, env={})


@pytest.fixture
def fake_fhir() -> Iterator[FakeFhir]:
    """The unit tests' one FHIR server, in memory (tests/fakefhir.py), at
    ``tests.fakefhir.BASE``; ``fake_fhir.rsps`` takes any other URL a test needs."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield FakeFhir(rsps)


@pytest.fixture(scope="session")
def catalog(built):
    """The catalog of the project's worksheets (summarizers, value sets, report measures)."""
    from rejection_fhir.worksheet.catalog import catalog_from_build

    return catalog_from_build(built)
