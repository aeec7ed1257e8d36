"""Summary → EHR resources: deterministic keys, conditional writes, supersession."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from rejection_fhir.ehr.entries import DERIVED_SYSTEM, ResponseVersion
from rejection_fhir.ehr.extract import observation_values
from rejection_fhir.ehr.note import Note
from rejection_fhir.ehr.writeback import plan_writes, rebased, version_checked
from rejection_fhir.fhir.client import is_retry_safe
from rejection_fhir.response.answers import resolve_response

DATA = Path(__file__).parents[2] / "data"
RECORDED = "2026-11-26T12:00:00Z"


@pytest.fixture
def questionnaire(built):
    return next(q for q in built.questionnaires if q["id"] == "rejection-log")


NOTE = Note(
    "Rejection log",
    "**Kind:** Social",
    '<div xmlns="http://www.w3.org/1999/xhtml"><p>Kind: Social</p></div>',
)


def _plan(qr, questionnaire, **kw):
    values = observation_values(resolve_response(qr, questionnaire))
    ref = ResponseVersion("http://ehr.example/fhir", qr["id"], qr["meta"]["versionId"])
    return plan_writes(qr, ref, NOTE, values, recorded=RECORDED, **kw)


def _by_type(plan, resource_type):
    return [e for e in plan.entries if e["resource"]["resourceType"] == resource_type]


def test_extracts_the_numbers_worth_trending_with_their_instance(qr, questionnaire):
    values = observation_values(resolve_response(qr, questionnaire))
    assert [(v.path, v.value_key, v.value, v.label) for v in values] == [
        (
            "emotion[0]/emotion.intensity",
            "valueInteger",
            8,
            "Intensity of an emotion after rejection (0-10): Hurt",
        ),
        (
            "emotion[1]/emotion.intensity",
            "valueInteger",
            6,
            "Intensity of an emotion after rejection (0-10): Left out",
        ),
        (
            "worth-impact",
            "valueInteger",
            7,
            "How much the rejection feels like it says about my worth (0-10)",
        ),
    ]


def test_note_observations_and_provenance(qr, questionnaire):
    plan = _plan(qr, questionnaire)
    (note,) = _by_type(plan, "DocumentReference")
    doc = note["resource"]
    assert doc["subject"] == {"reference": "Patient/p1"}
    assert doc["author"] == [{"reference": "Patient/p1"}]
    assert doc["date"] == "2026-11-20T10:14:03+00:00"
    assert doc["context"]["related"][0]["reference"] == "QuestionnaireResponse/rl-1"
    assert doc["text"]["div"] == NOTE.xhtml
    md = base64.b64decode(doc["content"][0]["attachment"]["data"]).decode()
    assert md == NOTE.markdown and doc["content"][0]["attachment"]["contentType"].startswith(
        "text/markdown"
    )
    observations = [e["resource"] for e in _by_type(plan, "Observation")]
    assert [o["valueInteger"] for o in observations] == [8, 6, 7]
    for o in observations:
        assert o["effectiveDateTime"] == qr["authored"]
        assert o["derivedFrom"] == [{"reference": "QuestionnaireResponse/rl-1"}]
        assert o["code"]["coding"][0]["system"].endswith("/CodeSystem/coping-with-rejection")
    (prov,) = _by_type(plan, "Provenance")
    assert [t["reference"] for t in prov["resource"]["target"]] == plan.written[:-1]
    assert (
        prov["resource"]["entity"][0]["what"]["reference"]
        == "QuestionnaireResponse/rl-1/_history/1"
    )
    assert prov["resource"]["recorded"] == RECORDED


def test_every_write_is_conditional_so_the_transaction_is_retry_safe(qr, questionnaire):
    plan = _plan(qr, questionnaire)
    assert is_retry_safe(plan.bundle())
    for entry in plan.entries:
        request = entry["request"]
        assert request.get("ifNoneExist") or request["method"] == "PUT"


def test_keys_are_deterministic_and_versioned(qr, questionnaire):
    first = _plan(qr, questionnaire)
    again = _plan(json.loads(json.dumps(qr)), questionnaire)
    assert first.entries == again.entries
    qr["meta"]["versionId"] = "2"
    amended = _plan(qr, questionnaire)
    note_key = lambda p: _by_type(p, "DocumentReference")[0]["request"]["ifNoneExist"]  # noqa: E731
    assert note_key(first) != note_key(amended)
    obs_key = lambda p: [e["request"]["url"] for e in _by_type(p, "Observation")]  # noqa: E731
    assert obs_key(first) == obs_key(amended), "Observations are updated in place, one per answer"
    ident = parse_qs(note_key(first).split("?")[-1])["identifier"][0]
    assert ident.startswith(DERIVED_SYSTEM + "|")


def test_amended_response_supersedes_the_earlier_note(qr, questionnaire):
    previous = {
        "resourceType": "DocumentReference",
        "id": "doc-9",
        "meta": {"versionId": "3"},
        "status": "current",
        "docStatus": "final",
    }
    qr["meta"]["versionId"] = "2"
    qr["status"] = "amended"
    plan = _plan(qr, questionnaire, previous_note=previous)
    notes = _by_type(plan, "DocumentReference")
    new, old = notes[0], notes[1]
    assert new["resource"]["relatesTo"] == [
        {"code": "replaces", "target": {"reference": "DocumentReference/doc-9"}}
    ]
    assert new["resource"]["docStatus"] == "amended"
    assert old["request"] == {"method": "PUT", "url": "DocumentReference/doc-9", "ifMatch": 'W/"3"'}
    assert old["resource"]["status"] == "superseded"
    assert previous["status"] == "current", "the caller's dict is not modified"


def test_rebased_plan_drops_the_update_of_a_note_already_superseded(qr, questionnaire):
    """A transaction whose answer was lost after the commit: the client's retry must not
    fail on the stale If-Match, so the plan is rebased on the note as it now is."""
    previous = {
        "resourceType": "DocumentReference",
        "id": "doc-9",
        "meta": {"versionId": "3"},
        "status": "current",
    }
    qr["meta"]["versionId"] = "2"
    plan = _plan(qr, questionnaire, previous_note=previous)
    assert version_checked(plan) == ["DocumentReference/doc-9"]
    now = {**previous, "meta": {"versionId": "4"}, "status": "superseded"}
    again = rebased(plan, {"DocumentReference/doc-9": now})
    assert version_checked(again) == []
    assert len(again.entries) == len(plan.entries) - 1
    assert again.written == plan.written
    assert again.entries[1]["resource"]["relatesTo"] == [
        {"code": "replaces", "target": {"reference": "DocumentReference/doc-9"}}
    ], "the new note still replaces the earlier one"
    assert version_checked(plan) == ["DocumentReference/doc-9"], "the original plan is kept"


def test_rebased_plan_supersedes_a_note_edited_meanwhile_on_its_new_version(qr, questionnaire):
    previous = {"resourceType": "DocumentReference", "id": "doc-9", "meta": {"versionId": "3"}}
    previous["status"] = "current"
    qr["meta"]["versionId"] = "2"
    plan = _plan(qr, questionnaire, previous_note=previous)
    edited = {**previous, "meta": {"versionId": "5"}, "description": "edited by the clinician"}
    again = rebased(plan, {"DocumentReference/doc-9": edited})
    (update,) = [
        e for e in again.entries if e["request"]["method"] == "PUT" and "ifMatch" in e["request"]
    ]
    assert update["request"]["ifMatch"] == 'W/"5"'
    assert update["resource"]["description"] == "edited by the clinician"
    assert update["resource"]["status"] == "superseded"


def test_other_server_gets_absolute_references(qr, questionnaire):
    values = observation_values(resolve_response(qr, questionnaire))
    ref = ResponseVersion("http://pms.example/fhir/", "rl-1", "1", same_server=False)
    plan = plan_writes(qr, ref, NOTE, values, recorded=RECORDED)
    doc = _by_type(plan, "DocumentReference")[0]["resource"]
    assert (
        doc["context"]["related"][0]["reference"]
        == "http://pms.example/fhir/QuestionnaireResponse/rl-1"
    )


def test_the_note_is_filed_against_the_responses_visit(qr, questionnaire):
    """EHRs that file notes against a visit (Epic) refuse a note without one."""
    (note,) = _by_type(
        _plan({**qr, "encounter": {"reference": "Encounter/v1"}}, questionnaire),
        "DocumentReference",
    )
    assert note["resource"]["context"]["encounter"] == [{"reference": "Encounter/v1"}]
    (note,) = _by_type(_plan(qr, questionnaire), "DocumentReference")
    assert "encounter" not in note["resource"]["context"]
