"""Per-patient reading's patient list: a file, a Group, and the patients the ledger knows
(``--patients-from ledger``: the subjects of the responses synced before, found by _id)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from rejection_fhir.errors import ConfigError
from rejection_fhir.fhir.client import FhirClient
from rejection_fhir.sync.reading import ID_CHUNK, ledger_patients, patient_list
from rejection_fhir.sync.state import LedgerEntry, SyncState
from tests.unit.sync.test_run import (
    BASE,
    FakeServer,
    _copy,
    _run,
    summaries,  # noqa: F401  (autouse fixture)
)
from tests.unit.sync.test_run_modes import _reading_statement, qr  # noqa: F401  (fixture)

OTHER = "https://other.test/fhir"


def _entry(source: str, rid: str, outcome: str = "written") -> LedgerEntry:
    return LedgerEntry(source, rid, "1", outcome, "urn:q", [], [])


def _by_id(subjects: dict[str, str], seen: list[dict[str, list[str]]]) -> None:
    """QuestionnaireResponse?_id=a,b,...: the listed responses with their subjects."""

    def search(request: Any) -> tuple[int, dict[str, str], str]:
        query = parse_qs(urlsplit(request.url).query)
        seen.append(query)
        ids = query["_id"][0].split(",")
        entries = [
            {
                "resource": {
                    "resourceType": "QuestionnaireResponse",
                    "id": rid,
                    "subject": {"reference": subjects[rid]},
                },
                "search": {"mode": "match"},
            }
            for rid in ids
            if rid in subjects
        ]
        return (
            200,
            {},
            json.dumps({"resourceType": "Bundle", "type": "searchset", "entry": entries}),
        )

    responses.add_callback(responses.GET, f"{BASE}/QuestionnaireResponse", callback=search)


@responses.activate
def test_the_ledgers_patients_are_the_subjects_of_its_responses(tmp_path) -> None:
    seen: list[dict[str, list[str]]] = []
    _by_id(
        {"a": "Patient/p1", "b": "Patient/p2", "c": "Patient/p1", "d": "Group/g1"},
        seen,
    )
    with SyncState(tmp_path / "state.sqlite3") as state:
        state.record(
            [
                _entry(BASE, "a"),
                _entry(BASE, "b", "rejected"),
                _entry(BASE, "c", "uncertain"),
                _entry(BASE, "d"),
                _entry(BASE, "gone"),  # deleted on the server since: nobody
                _entry(OTHER, "x"),  # another source's ledger
            ]
        )
        got = ledger_patients(FhirClient(BASE), state, BASE)
    assert got == ["p1", "p2"]
    assert [q["_id"] for q in seen] == [["a,b,c,d,gone"]]


@responses.activate
def test_the_ledgers_responses_are_looked_up_in_chunks(tmp_path) -> None:
    seen: list[dict[str, list[str]]] = []
    ids = [f"r{n:03d}" for n in range(ID_CHUNK * 2 + 1)]
    _by_id({rid: f"Patient/p{n % 3}" for n, rid in enumerate(ids)}, seen)
    with SyncState(tmp_path / "state.sqlite3") as state:
        state.record([_entry(BASE, rid) for rid in ids])
        got = ledger_patients(FhirClient(BASE), state, BASE)
    assert sorted(got) == ["p0", "p1", "p2"]
    assert [len(q["_id"][0].split(",")) for q in seen] == [ID_CHUNK, ID_CHUNK, 1]


@responses.activate
def test_patient_lists_are_joined_and_an_empty_ledger_is_said(tmp_path) -> None:
    _by_id({"a": "Patient/p2", "b": "Patient/p3"}, [])
    listing = tmp_path / "patients.txt"
    listing.write_text("p1\nPatient/p2\n")
    client = FhirClient(BASE)
    with SyncState(tmp_path / "state.sqlite3") as state:
        with pytest.raises(ConfigError, match="knows no patients") as raised:
            patient_list(client, state, BASE, patients_from="ledger")
        assert "--patients FILE" in (raised.value.hint or "")
        # the first run's list alone, though the ledger is still empty
        assert patient_list(client, state, BASE, patients_file=listing, patients_from="ledger") == [
            "p1",
            "p2",
        ]
        state.record([_entry(BASE, "a"), _entry(BASE, "b")])
        assert patient_list(client, state, BASE, patients_from="ledger") == ["p2", "p3"]
        assert patient_list(client, state, BASE, patients_file=listing, patients_from="ledger") == [
            "p1",
            "p2",
            "p3",
        ]
        with pytest.raises(ConfigError, match="list of patients"):
            patient_list(client, state, BASE)


@responses.activate
def test_a_later_run_polls_the_patients_the_first_run_synced(tmp_path, built, qr) -> None:  # noqa: F811
    """The first run is given the clinic's list; later runs find those patients in the
    ledger and see their new responses, without the list."""
    qrs = [
        _copy(qr, "a", "2026-11-05T00:00:00Z", subject={"reference": "Patient/p1"}),
        _copy(qr, "b", "2026-11-04T00:00:00Z", subject={"reference": "Patient/p2"}),
    ]
    FakeServer(responses.mock, qrs)
    responses.replace(responses.GET, f"{BASE}/metadata", json=_reading_statement("patient", "_id"))
    polled: list[str] = []

    def search(request: Any) -> tuple[int, dict[str, str], str]:
        query = parse_qs(urlsplit(request.url).query)
        if "_id" in query:
            wanted = set(query["_id"][0].split(","))
            found = [q for q in qrs if q["id"] in wanted]
        else:
            polled.append(query["patient"][0])
            found = [
                q for q in qrs if q["subject"]["reference"] == f"Patient/{query['patient'][0]}"
            ]
        bundle = {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [{"resource": q, "search": {"mode": "match"}} for q in found],
        }
        return 200, {}, json.dumps(bundle)

    responses.replace(responses.GET, f"{BASE}/QuestionnaireResponse", json={})
    responses.remove(responses.GET, f"{BASE}/QuestionnaireResponse")
    responses.add_callback(responses.GET, f"{BASE}/QuestionnaireResponse", callback=search)
    with pytest.raises(ConfigError, match="knows no patients"):
        _run(tmp_path, built, patients_from="ledger")
    listing = tmp_path / "patients.txt"
    listing.write_text("p1\n")
    first = _run(tmp_path, built, patients_file=listing)
    assert first.ok and first.tally.written == 1 and polled == ["p1"]
    qrs.append(_copy(qr, "c", "2026-11-06T00:00:00Z", subject={"reference": "Patient/p1"}))
    polled.clear()
    later = _run(tmp_path, built, patients_from="ledger")
    assert polled == ["p1"]  # p2 was never synced: the ledger does not know p2
    assert later.ok and later.tally.written == 1 and later.tally.unchanged == 1
