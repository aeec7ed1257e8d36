"""The sync when answers get lost or the server keeps failing: exactly once, and it says so.

The fake server (tests/fakefhir.py) commits a transaction before it loses the answer, as a
real server behind a failing network does, and checks If-Match like HAPI (409 on a stale
version).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

from rejection_fhir.errors import AuthError, ExitCode, ServerUnavailableError
from rejection_fhir.fhir.client import FhirClient, RetryPolicy
from rejection_fhir.settings import load_settings
from rejection_fhir.sync.run import SyncOptions, sync
from rejection_fhir.sync.state import SyncState
from rejection_fhir.worksheet.catalog import catalog_from_build
from tests.fakefhir import BASE, FakeFhir, request_to

RETRIES = 2
TRANSACTION = request_to("POST")


@pytest.fixture(autouse=True)
def quick_clients(monkeypatch):
    """Clients as make_client builds them, with few retries and no real waiting."""

    def make(settings: Any, *, server: str | None = None) -> FhirClient:
        return FhirClient(
            server or settings.server, retry=RetryPolicy(retries=RETRIES), sleep=lambda _: None
        )

    monkeypatch.setattr("rejection_fhir.settings.make_client", make)


def _run(tmp_path: Path, built: Any) -> Any:
    settings = load_settings({"server": BASE}, env={})
    options = SyncOptions(source=BASE, state_path=tmp_path / "state.sqlite3")
    return sync(settings, options, catalog_from_build(built))


def _notes(fake: FakeFhir) -> list[str]:
    return sorted(n["status"] for n in fake.all("DocumentReference"))


def test_answer_lost_after_an_amendment_commit_is_not_reported_as_a_refusal(
    tmp_path, built, qr_at, fake_fhir
):
    """The retry of a committed amendment meets its earlier note already superseded (409 on
    the stale If-Match); the sync rebases the plan and finishes, writing nothing twice."""
    fake_fhir.add(qr_at("a", "2026-11-20T10:00:00Z"))
    assert _run(tmp_path, built).ok
    amended = qr_at("a", "2026-11-21T10:00:00Z", version="2")
    amended["status"] = "amended"
    fake_fhir.add(amended)
    fake_fhir.lose_answers(1, when=TRANSACTION)
    report = _run(tmp_path, built)
    assert report.ok, report.failed
    assert (report.tally.written, report.tally.failed) == (1, 0)
    assert len(fake_fhir.committed) == 3, "the first run, the lost commit, the rebased retry"
    assert len(fake_fhir.posted) == 4, "the plain retry was refused: its If-Match was stale"
    assert _notes(fake_fhir) == ["current", "superseded"], "one new note, the old superseded"
    with SyncState(tmp_path / "state.sqlite3") as state:
        assert state.seen(BASE, "a", "2") is not None
        assert state.cursor(BASE) == "2026-11-21T10:00:00Z"


@pytest.mark.parametrize(
    ("fault", "error", "posts"),
    [
        pytest.param(
            {"error": requests.ConnectionError("refused")},
            ServerUnavailableError,
            RETRIES + 1,
            id="connection-dropped",
        ),
        pytest.param({"status": 429}, ServerUnavailableError, RETRIES + 1, id="429"),
        pytest.param({"status": 503}, ServerUnavailableError, RETRIES + 1, id="503"),
        pytest.param({"status": 401}, AuthError, 1, id="401-not-retried"),
    ],
)
def test_a_server_that_keeps_failing_stops_the_run(
    tmp_path, built, qr_at, fake_fhir, fault, error, posts
):
    """Not one refusal per response: the run stops at the batch, says why, keeps the cursor."""
    fake_fhir.add(*(qr_at(rid, f"2026-11-20T10:00:0{i}Z") for i, rid in enumerate("abc")))
    fake_fhir.fail(**fault, when=TRANSACTION)
    with pytest.raises(error) as caught:
        _run(tmp_path, built)
    assert caught.value.exit_code == error.exit_code
    if error is ServerUnavailableError:
        assert caught.value.exit_code == ExitCode.SERVER_UNAVAILABLE
        assert f"gave up after {RETRIES + 1} attempts" in str(caught.value)
    assert len(fake_fhir.posted) == posts, "the batch is not retried response by response"
    assert fake_fhir.committed == []
    with SyncState(tmp_path / "state.sqlite3") as state:
        assert state.entries() == [] and state.cursor(BASE) is None
