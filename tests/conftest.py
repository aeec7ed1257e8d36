"""Shared test configuration.

Unit tests open no socket.  Integration tests (HAPI) and browser tests carry markers;
under CI=true a missing server or browser fails the run instead of skipping.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
QUESTIONNAIRES = REPO / "questionnaires"


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


@pytest.fixture(scope="session")
def catalog(built):
    """The catalog of the project's worksheets (summarizers, value sets, report measures)."""
    from rejection_fhir.worksheet.catalog import catalog_from_build

    return catalog_from_build(built)
