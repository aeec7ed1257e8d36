"""Per-patient reading's patient list: a file, a Group, and the patients the ledger knows
(``--patients-from ledger``: the subjects of the responses synced before, found by _id)."""

from __future__ import annotations

import pytest

from rejection_fhir.errors import ConfigError
from rejection_fhir.fhir.client import FhirClient
from rejection_fhir.sync.reading import ID_CHUNK, ledger_patients, patient_list
from rejection_fhir.sync.state import LedgerEntry, SyncState
from tests.fakefhir import BASE, FakeFhir
from tests.unit.sync.test_run import _run
from tests.unit.sync.test_run_modes import _reading_statement

OTHER = "https://other.test/fhir"


def _entry(source: str, rid: str, outcome: str = "written") -> LedgerEntry:
    return LedgerEntry(source, rid, "1", outcome, "urn:q", [], [])


def _by_id(fake: FakeFhir, subjects: dict[str, str]) -> None:
    """Responses on the server with these subjects (found by QuestionnaireResponse?_id=a,b)."""
    fake.add(
        *(
            {"resourceType": "QuestionnaireResponse", "id": rid, "subject": {"reference": ref}}
            for rid, ref in subjects.items()
        )
    )


def test_the_ledgers_patients_are_the_subjects_of_its_responses(tmp_path, fake_fhir) -> None:
    _by_id(
        fake_fhir,
        {"a": "Patient/p1", "b": "Patient/p2", "c": "Patient/p1", "d": "Group/g1"},
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
    assert [q["_id"] for q in fake_fhir.searched("QuestionnaireResponse")] == [["a,b,c,d,gone"]]


def test_the_ledgers_responses_are_looked_up_in_chunks(tmp_path, fake_fhir) -> None:
    ids = [f"r{n:03d}" for n in range(ID_CHUNK * 2 + 1)]
    _by_id(fake_fhir, {rid: f"Patient/p{n % 3}" for n, rid in enumerate(ids)})
    with SyncState(tmp_path / "state.sqlite3") as state:
        state.record([_entry(BASE, rid) for rid in ids])
        got = ledger_patients(FhirClient(BASE), state, BASE)
    assert sorted(got) == ["p0", "p1", "p2"]
    seen = fake_fhir.searched("QuestionnaireResponse")
    assert [len(q["_id"][0].split(",")) for q in seen] == [ID_CHUNK, ID_CHUNK, 1]


def test_patient_lists_are_joined_and_an_empty_ledger_is_said(tmp_path, fake_fhir) -> None:
    _by_id(fake_fhir, {"a": "Patient/p2", "b": "Patient/p3"})
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


def test_a_later_run_polls_the_patients_the_first_run_synced(
    tmp_path, built, qr_at, fake_fhir
) -> None:
    """The first run is given the clinic's list; later runs find those patients in the
    ledger and see their new responses, without the list."""
    fake_fhir.add(
        qr_at("a", "2026-11-05T00:00:00Z", subject={"reference": "Patient/p1"}),
        qr_at("b", "2026-11-04T00:00:00Z", subject={"reference": "Patient/p2"}),
    )
    fake_fhir.statement = _reading_statement("patient", "_id")

    def polled() -> list[str]:
        return [
            q["patient"][0] for q in fake_fhir.searched("QuestionnaireResponse") if "patient" in q
        ]

    with pytest.raises(ConfigError, match="knows no patients"):
        _run(tmp_path, built, patients_from="ledger")
    listing = tmp_path / "patients.txt"
    listing.write_text("p1\n")
    first = _run(tmp_path, built, patients_file=listing)
    assert first.ok and first.tally.written == 1 and polled() == ["p1"]
    fake_fhir.add(qr_at("c", "2026-11-06T00:00:00Z", subject={"reference": "Patient/p1"}))
    fake_fhir.searches.clear()
    later = _run(tmp_path, built, patients_from="ledger")
    assert polled() == ["p1"]  # p2 was never synced: the ledger does not know p2
    assert later.ok and later.tally.written == 1 and later.tally.unchanged == 1
