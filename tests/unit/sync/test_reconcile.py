"""sync --reconcile: uncertain writes settled by searching for the note (mocked server)."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
import responses

from rejection_fhir.ehr.writeback import DERIVED_SYSTEM, derived_id
from rejection_fhir.fhir.client import FhirClient, RetryPolicy
from rejection_fhir.sync.reconcile import reconcile_state
from rejection_fhir.sync.state import LedgerEntry, SyncState

BASE = "https://ehr.test/fhir"
OUTCOME = {
    "resourceType": "OperationOutcome",
    "issue": [{"severity": "error", "code": "not-supported"}],
}


def _bundle(*resources):
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": r} for r in resources],
    }


@pytest.fixture
def state(tmp_path: Path):
    with SyncState(tmp_path / "s.sqlite3") as held:
        held.record(
            [
                LedgerEntry(BASE, rid, "1", "uncertain", "q", [], [{"message": "lost"}])
                for rid in ("a", "b")
            ]
        )
        yield held


def _client() -> FhirClient:
    return FhirClient(
        BASE, sleep=lambda s: None, rng=random.Random(1), retry=RetryPolicy(retries=0)
    )


def _note(rid: str, nid: str, *, marker_only: bool = False) -> dict:
    key = derived_id(BASE, rid, "1", "note")
    note = {"resourceType": "DocumentReference", "id": nid}
    if marker_only:
        note["description"] = f"note {key}"
    else:
        note["identifier"] = [{"system": DERIVED_SYSTEM, "value": key}]
    return note


@responses.activate
def test_found_by_identifier_becomes_written_absent_becomes_absent(state) -> None:
    def search(request):
        if derived_id(BASE, "a", "1", "note").replace("/", "%2F") in request.url:
            return 200, {}, json.dumps(_bundle(_note("a", "n1")))
        return 200, {}, json.dumps(_bundle())

    responses.add_callback(
        responses.GET, re.compile(rf"{BASE}/DocumentReference\?.*"), callback=search
    )
    client = _client()
    report = reconcile_state(state, client, client, BASE)
    assert len(report.found) == 1 and len(report.absent) == 1
    assert state.seen(BASE, "a", "1").outcome == "written"
    assert state.seen(BASE, "a", "1").resources == ["DocumentReference/n1"]
    assert state.seen(BASE, "b", "1").outcome == "absent"


@responses.activate
def test_refused_identifier_search_falls_back_to_the_patients_notes(state) -> None:
    responses.add(
        responses.GET,
        re.compile(rf"{BASE}/DocumentReference\?identifier=.*"),
        json=OUTCOME,
        status=400,
    )
    for rid in ("a", "b"):
        responses.add(
            responses.GET,
            f"{BASE}/QuestionnaireResponse/{rid}",
            json={
                "resourceType": "QuestionnaireResponse",
                "id": rid,
                "subject": {"reference": f"Patient/p{rid}"},
            },
        )
    responses.add(
        responses.GET,
        re.compile(rf"{BASE}/DocumentReference\?patient=pa"),
        json=_bundle(_note("a", "n1", marker_only=True), _note("x", "n2")),
    )
    responses.add(
        responses.GET,
        re.compile(rf"{BASE}/DocumentReference\?patient=pb"),
        json=_bundle(_note("x", "n3")),
    )
    client = _client()
    report = reconcile_state(state, client, client, BASE)
    assert [w.split("/")[1] for w in report.found] == ["a"]
    assert [w.split("/")[1] for w in report.absent] == ["b"]


@responses.activate
def test_no_search_possible_stays_uncertain(state) -> None:
    responses.add(responses.GET, re.compile(rf"{BASE}/DocumentReference\?.*"), status=503)
    client = _client()
    report = reconcile_state(state, client, client, BASE)
    assert len(report.still_uncertain) == 2
    assert state.seen(BASE, "a", "1").outcome == "uncertain"
