"""sync --reconcile: uncertain writes settled by searching for the note (the in-memory
server, tests/fakefhir.py)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from rejection_fhir.ehr.entries import DERIVED_SYSTEM, derived_id
from rejection_fhir.fhir.client import FhirClient, RetryPolicy
from rejection_fhir.sync.reconcile import reconcile_state
from rejection_fhir.sync.state import LedgerEntry, SyncState
from tests.fakefhir import BASE, Seen


def _by_identifier(seen: Seen) -> bool:
    return seen.method == "GET" and seen.path == "DocumentReference" and "identifier" in seen.params


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


def _note(rid: str, nid: str, *, marker_only: bool = False, patient: str = "p") -> dict:
    key = derived_id(BASE, rid, "1", "note")
    note = {
        "resourceType": "DocumentReference",
        "id": nid,
        "subject": {"reference": f"Patient/{patient}"},
    }
    if marker_only:
        note["description"] = f"note {key}"
    else:
        note["identifier"] = [{"system": DERIVED_SYSTEM, "value": key}]
    return note


def test_found_by_identifier_becomes_written_absent_becomes_absent(state, fake_fhir) -> None:
    fake_fhir.add(_note("a", "n1"), _note("x", "n2"))
    client = _client()
    report = reconcile_state(state, client, client, BASE)
    assert len(report.found) == 1 and len(report.absent) == 1
    assert state.seen(BASE, "a", "1").outcome == "written"
    assert state.seen(BASE, "a", "1").resources == ["DocumentReference/n1"]
    assert state.seen(BASE, "b", "1").outcome == "absent"
    assert all("identifier" in p for p in fake_fhir.searched("DocumentReference"))


def test_refused_identifier_search_falls_back_to_the_patients_notes(state, fake_fhir) -> None:
    fake_fhir.fail(400, when=_by_identifier)
    for rid in ("a", "b"):
        fake_fhir.add(
            {
                "resourceType": "QuestionnaireResponse",
                "id": rid,
                "subject": {"reference": f"Patient/p{rid}"},
            }
        )
    fake_fhir.add(
        _note("a", "n1", marker_only=True, patient="pa"),
        _note("x", "n2", patient="pa"),
        _note("x", "n3", patient="pb"),
    )
    client = _client()
    report = reconcile_state(state, client, client, BASE)
    assert [w.split("/")[1] for w in report.found] == ["a"]
    assert [w.split("/")[1] for w in report.absent] == ["b"]
    assert [p.get("patient") for p in fake_fhir.searched("DocumentReference")][-2:] == [
        ["pa"],
        ["pb"],
    ]


def test_no_search_possible_stays_uncertain(state, fake_fhir) -> None:
    fake_fhir.fail(503, when=lambda seen: seen.path == "DocumentReference")
    client = _client()
    report = reconcile_state(state, client, client, BASE)
    assert len(report.still_uncertain) == 2
    assert state.seen(BASE, "a", "1").outcome == "uncertain"
