"""A plan cut down to what the server takes: the note always stays, references follow."""

from __future__ import annotations

from rejection_fhir.ehr.entries import ResponseVersion
from rejection_fhir.ehr.extract import ExtractedValue
from rejection_fhir.ehr.flag import safety_entries
from rejection_fhir.ehr.note import Note
from rejection_fhir.ehr.restrict import restrict_plan
from rejection_fhir.ehr.writeback import plan_writes
from rejection_fhir.scoring.model import SafetyAlert

BASE = "https://ehr.test/fhir"
QR = {"resourceType": "QuestionnaireResponse", "id": "q", "subject": {"reference": "Patient/p"}}
NOTE = Note("T", "m", '<div xmlns="http://www.w3.org/1999/xhtml">x</div>')


def _plan():
    ref = ResponseVersion(BASE, "q", "1")
    values = [ExtractedValue("a", {"system": "urn:t", "code": "a"}, "a", "valueInteger", 1)]
    alert = SafetyAlert("phq-9-item-9", "PHQ-9", "9", {"system": "urn:t", "code": "x"}, 1, "alert")
    extra = safety_entries(QR, ref, [alert])
    return plan_writes(QR, ref, NOTE, values, recorded="2026-01-01T00:00:00Z", extra=extra)


def _kinds(plan):
    return [e["resource"]["resourceType"] for e in plan.entries]


def test_everything_writable_keeps_the_plan() -> None:
    plan = _plan()
    kept, left_out = restrict_plan(plan, ("Observation", "Flag", "Provenance", "Device"))
    assert kept is plan and not left_out


def test_unwritable_types_are_left_out_and_counted() -> None:
    plan = _plan()
    kept, left_out = restrict_plan(plan, ("Provenance",))
    assert _kinds(kept) == ["DocumentReference", "Provenance"]
    assert left_out == {"Device": 1, "Observation": 1, "Flag": 1}
    provenance = kept.entries[-1]["resource"]
    note_url = kept.entries[0]["fullUrl"]
    assert [t["reference"] for t in provenance["target"]] == [note_url]
    assert "reference" not in provenance["agent"][0]["who"]
    assert provenance["agent"][0]["who"]["display"].startswith("rejection-fhir")
    assert kept.written == [note_url, kept.entries[-1]["fullUrl"]]
    # the original plan is untouched
    assert len(plan.entries[-1]["resource"]["target"]) == 3


def test_the_note_is_kept_even_if_not_listed() -> None:
    kept, left_out = restrict_plan(_plan(), ())
    assert _kinds(kept) == ["DocumentReference"]
    assert left_out["Provenance"] == 1
