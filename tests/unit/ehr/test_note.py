"""The note: renderings chosen by what the server takes, the alert first, scores kept, and
the title marked when no Flag can be written."""

from __future__ import annotations

import base64

import pytest

from rejection_fhir.ehr.entries import ResponseVersion
from rejection_fhir.ehr.extract import observation_values
from rejection_fhir.ehr.flag import safety_entries
from rejection_fhir.ehr.note import (
    MARKDOWN,
    NOT_SUMMARISED,
    PLAIN,
    SAFETY_TITLE_PREFIX,
    XHTML,
    note_formats,
    render_note,
)
from rejection_fhir.ehr.observations import score_entries
from rejection_fhir.ehr.restrict import restrict_plan
from rejection_fhir.ehr.writeback import plan_safety_only, plan_writes
from rejection_fhir.response.answers import resolve_response
from rejection_fhir.scoring.clinical import clinical_summary
from tests.conftest import LOINC, phq9_response

RECORDED = "2026-12-02T12:00:00Z"
EVERYTHING = ("Observation", "Flag", "Provenance", "Device", "Task")


def _canonical(questionnaire):
    return f"{questionnaire['url']}|{questionnaire['version']}"


@pytest.fixture
def questionnaire(built):
    return next(q for q in built.questionnaires if q["id"] == "phq-9")


def _plan(questionnaire, values, accepted=None):
    """The sync's plan for one response, as sync.run builds it."""
    qr = phq9_response(values, canonical=_canonical(questionnaire), rid="r1")
    clinical = clinical_summary(qr, questionnaire)
    ref = ResponseVersion("https://ehr.test/fhir", "r1", "1")
    extra = [*score_entries(qr, ref, clinical.scores), *safety_entries(qr, ref, clinical.alerts)]
    values_ = observation_values(resolve_response(qr, questionnaire))
    note = render_note(clinical.summary, accepted)
    return plan_writes(qr, ref, note, values_, recorded=RECORDED, extra=extra)


def _note(plan):
    (note,) = [
        e["resource"]
        for e in plan.entries
        if e["resource"]["resourceType"] == "DocumentReference" and e["request"]["method"] == "POST"
    ]
    return note


def _texts(note):
    return {
        c["attachment"]["contentType"]: base64.b64decode(c["attachment"]["data"]).decode()
        for c in note["content"]
    }


@pytest.mark.parametrize(
    ("accepted", "formats"),
    [
        (None, (MARKDOWN, XHTML)),  # not stated: both of ours, as always
        (("text/plain",), (PLAIN,)),  # Epic
        (("TEXT/PLAIN; charset=utf-8",), (PLAIN,)),
        (("application/pdf", "application/xhtml+xml", "text/plain"), (XHTML,)),  # Oracle
        (("text/markdown", "text/plain"), (MARKDOWN,)),
        (("application/pdf",), (MARKDOWN, XHTML)),  # nothing of ours: refused, and said
    ],
)
def test_renderings_follow_what_the_server_takes(accepted, formats) -> None:
    assert note_formats(accepted) == formats


def test_a_plain_text_note_has_the_same_content_alert_first(questionnaire) -> None:
    plan = _plan(questionnaire, [1, 1, 2, 1, 0, 1, 0, 1, 1], accepted=("text/plain",))
    note = _note(plan)
    texts = _texts(note)
    assert list(texts) == [PLAIN]
    text = texts[PLAIN]
    first, *_ = text.splitlines()
    assert first.startswith("!! ALERT:") and "SAFETY" in first
    assert text.index("PHQ-9 score") > text.index("ALERT")
    assert "8 (Mild depression (5-9))" in text
    assert "Little interest or pleasure" in text  # the summary itself
    assert note["description"] == "Patient Health Questionnaire (PHQ-9) (2026-11-20)"
    # The narrative (XHTML) is kept: servers store it whatever the attachments.
    assert note["text"]["div"].startswith("<div")


def test_the_default_note_is_markdown_and_xhtml(questionnaire) -> None:
    texts = _texts(_note(_plan(questionnaire, [0] * 9)))
    assert list(texts) == [MARKDOWN, XHTML]


def test_without_a_flag_the_note_title_carries_the_alert(questionnaire) -> None:
    plan = _plan(questionnaire, [1, 1, 2, 1, 0, 1, 0, 1, 1], accepted=("text/plain",))
    kept, left_out = restrict_plan(plan, ("Provenance", "Observation"))
    assert left_out["Flag"] == 1
    note = _note(kept)
    assert note["description"].startswith(SAFETY_TITLE_PREFIX)
    assert note["description"] == SAFETY_TITLE_PREFIX + _note(plan)["description"]
    assert all(c["attachment"]["title"] == note["description"] for c in note["content"])
    # docStatus, category and type stay what EHRs file and validate.
    original = _note(plan)
    for key in ("docStatus", "category", "type", "identifier"):
        assert note[key] == original[key]
    assert _texts(note) == _texts(original)
    assert not _note(plan)["description"].startswith(SAFETY_TITLE_PREFIX)  # a copy


def test_with_a_flag_or_without_an_alert_the_title_is_unmarked(questionnaire) -> None:
    alerting = _plan(questionnaire, [1, 1, 2, 1, 0, 1, 0, 1, 1])
    kept, _ = restrict_plan(alerting, EVERYTHING)
    assert not _note(kept)["description"].startswith(SAFETY_TITLE_PREFIX)
    quiet = _plan(questionnaire, [0] * 9)
    kept, left_out = restrict_plan(quiet, ("Provenance",))
    assert not left_out["Flag"]
    assert not _note(kept)["description"].startswith(SAFETY_TITLE_PREFIX)


def test_the_superseded_note_is_not_marked(questionnaire) -> None:
    qr = phq9_response([1, 1, 2, 1, 0, 1, 0, 1, 1], canonical=_canonical(questionnaire), rid="r1")
    clinical = clinical_summary(qr, questionnaire)
    ref = ResponseVersion("https://ehr.test/fhir", "r1", "2")
    previous = {
        "resourceType": "DocumentReference",
        "id": "d1",
        "status": "current",
        "description": "PHQ-9",
        "meta": {"versionId": "1"},
    }
    plan = plan_writes(
        qr,
        ref,
        render_note(clinical.summary),
        (),
        recorded=RECORDED,
        previous_note=previous,
        extra=safety_entries(qr, ref, clinical.alerts),
    )
    kept, _ = restrict_plan(plan, ("Provenance",))
    (update,) = [e for e in kept.entries if e["request"]["method"] == "PUT"]
    assert update["resource"]["description"] == "PHQ-9"
    assert _note(kept)["description"].startswith(SAFETY_TITLE_PREFIX)


def test_refused_score_observations_leave_the_score_in_the_note(questionnaire) -> None:
    plan = _plan(questionnaire, [2, 2, 1, 1, 1, 1, 1, 1, 0])
    kept, left_out = restrict_plan(plan, ("Provenance", "Flag"))
    assert left_out["Observation"] >= 1
    assert not [e for e in kept.entries if e["resource"]["resourceType"] == "Observation"]
    for rendering in _texts(_note(kept)).values():
        assert "PHQ-9 score" in rendering and "10 (Moderate depression (10-14))" in rendering


def _rejected(questionnaire):
    """A PHQ-9 response with item 9 positive whose item 1 is not an answer option."""
    qr = phq9_response([1, 1, 2, 1, 0, 1, 0, 1, 1], canonical=_canonical(questionnaire), rid="r1")
    qr["item"][0]["answer"] = [{"valueCoding": {"system": LOINC, "code": "LA0000-0"}}]
    return qr, clinical_summary(qr, questionnaire)


def test_a_rejected_response_keeps_its_flag_where_flags_are_taken(questionnaire) -> None:
    qr, clinical = _rejected(questionnaire)
    ref = ResponseVersion("https://ehr.test/fhir", "r1", "1")
    unrestricted, left_out = plan_safety_only(qr, ref, clinical, recorded=RECORDED, writable=None)
    assert not left_out
    assert [e["resource"]["resourceType"] for e in unrestricted.entries] == [
        "Device",
        "Flag",
        "Provenance",
    ]
    kept, left_out = plan_safety_only(
        qr, ref, clinical, recorded=RECORDED, writable=("Flag", "Provenance")
    )
    assert [e["resource"]["resourceType"] for e in kept.entries] == ["Flag", "Provenance"]
    assert left_out == {"Device": 1}


def test_without_a_flag_a_rejected_response_gets_an_alert_only_note(questionnaire) -> None:
    qr, clinical = _rejected(questionnaire)
    ref = ResponseVersion("https://ehr.test/fhir", "r1", "1")
    plan, left_out = plan_safety_only(
        qr, ref, clinical, recorded=RECORDED, writable=("Provenance",), note_types=("text/plain",)
    )
    assert left_out == {"Device": 1, "Flag": 1}
    assert [e["resource"]["resourceType"] for e in plan.entries] == [
        "DocumentReference",
        "Provenance",
    ]
    note = _note(plan)
    assert note["description"].startswith(SAFETY_TITLE_PREFIX)
    assert note["identifier"][0]["value"].endswith("/r1/1/note")  # the version's note key
    (text,) = _texts(note).values()
    assert text.startswith("!! ALERT: SAFETY")
    assert NOT_SUMMARISED.split(",")[0] in " ".join(text.split())
    # Answers and scores that did not pass validation stay out of the record.
    assert "Little interest" not in text and "PHQ-9 score" not in text
    assert plan.written == [e["fullUrl"] for e in plan.entries]
