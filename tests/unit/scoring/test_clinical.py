"""Scores and safety answers reach every summary and the EHR writes exactly once."""

from __future__ import annotations

import pytest

from rejection_fhir.commands.summarize import RENDERERS
from rejection_fhir.ehr.entries import ResponseVersion
from rejection_fhir.ehr.flag import safety_entries
from rejection_fhir.ehr.observations import score_entries
from rejection_fhir.scoring.clinical import clinical_summary
from tests.conftest import LOINC, phq9_response


@pytest.fixture
def questionnaire(built):
    return next(q for q in built.questionnaires if q["id"] == "phq-9")


def test_positive_item_9_comes_first_in_every_format(questionnaire):
    clinical = clinical_summary(
        phq9_response([1, 1, 2, 1, 0, 1, 0, 1, 1], rid="phq-1"), questionnaire
    )
    assert len(clinical.alerts) == 1
    for fmt, render in RENDERERS.items():
        text = render(clinical.summary)
        assert "SAFETY" in text, fmt
        first_other = min(i for i in (text.find("score"), text.find("Little interest")) if i >= 0)
        assert text.index("SAFETY") < first_other, fmt


def test_score_and_band_are_highlighted(questionnaire):
    clinical = clinical_summary(
        phq9_response([2, 2, 1, 1, 1, 1, 1, 1, 0], rid="phq-1"), questionnaire
    )
    assert clinical.alerts == ()
    assert clinical.summary.highlights[0].label == "PHQ-9 score"
    assert clinical.summary.highlights[0].values == ("10 (Moderate depression (10-14))",)


def test_flag_is_keyed_on_the_response_not_the_version(questionnaire):
    qr = phq9_response([0, 0, 0, 0, 0, 0, 0, 0, 2], rid="phq-1")
    clinical = clinical_summary(qr, questionnaire)
    v1 = safety_entries(qr, ResponseVersion("http://s", "phq-1", "1"), clinical.alerts, task=True)
    v2 = safety_entries(qr, ResponseVersion("http://s", "phq-1", "2"), clinical.alerts, task=True)
    assert [e["resource"]["resourceType"] for e in v1] == ["Flag", "Task"]
    assert [e["request"]["ifNoneExist"] for e in v1] == [e["request"]["ifNoneExist"] for e in v2]
    assert v1[0]["resource"]["code"]["text"].startswith("SAFETY")


def test_no_flag_for_not_at_all(questionnaire):
    qr = phq9_response([3, 3, 3, 3, 3, 3, 3, 3, 0], rid="phq-1")
    assert clinical_summary(qr, questionnaire).alerts == ()


def test_score_observation_is_loinc_coded_with_interpretation(questionnaire):
    qr = phq9_response([3, 3, 3, 3, 3, 3, 3, 3, 0], rid="phq-1")
    clinical = clinical_summary(qr, questionnaire)
    (entry,) = score_entries(qr, ResponseVersion("http://s", "phq-1", "1"), clinical.scores)
    obs = entry["resource"]
    assert obs["code"]["coding"][0]["code"] == "44261-6"
    assert obs["valueQuantity"]["value"] == 24
    assert obs["interpretation"][0]["text"] == "Severe depression (20-27)"
    assert obs["derivedFrom"] == [{"reference": "QuestionnaireResponse/phq-1"}]
    assert entry["request"]["method"] == "PUT"


def test_the_flag_codes_the_risk_and_keeps_the_answer_beside_it(questionnaire):
    qr = phq9_response([0, 0, 0, 0, 0, 0, 0, 0, 2], rid="phq-1")
    clinical = clinical_summary(qr, questionnaire)
    (entry,) = safety_entries(qr, ResponseVersion("http://s", "phq-1", "1"), clinical.alerts)
    flag = entry["resource"]
    # SNOMED CT 6471006 |Suicidal thoughts (finding)|: the risk, not the answer code.
    assert flag["code"]["coding"] == [
        {"system": "http://snomed.info/sct", "code": "6471006", "display": "Suicidal thoughts"}
    ]
    assert flag["code"]["text"].startswith("SAFETY: PHQ-9 item 9")
    extensions = {e["url"]: e for e in flag["extension"]}
    detail = extensions["http://hl7.org/fhir/StructureDefinition/flag-detail"]
    assert detail["valueReference"] == {"reference": "QuestionnaireResponse/phq-1"}
    answer = extensions["https://rejection-fhir.org/fhir/StructureDefinition/safety-answer"]
    assert answer["valueCoding"] == {
        "system": LOINC,
        "code": "LA6570-1",
        "display": "More than half the days",
    }


def test_an_unreadable_item_9_gets_a_flag_of_its_own(questionnaire):
    qr = phq9_response([1, 1, 1, 1, 1, 1, 1, 1, 0], rid="phq-1")
    qr["item"][-1]["answer"] = [{"valueString": "rather not say"}]
    clinical = clinical_summary(qr, questionnaire)
    (alert,) = clinical.alerts
    assert alert.kind == "phq9-item9-unreadable"
    assert "rather not say" not in alert.message  # never the client's words
    (entry,) = safety_entries(qr, ResponseVersion("http://s", "phq-1", "1"), clinical.alerts)
    flag = entry["resource"]
    assert flag["code"]["coding"][0]["code"] == "phq9-item9-unreadable"
    assert flag["code"]["text"].startswith("SAFETY: could not check the self-harm item")
    assert "phq-9-item-9-unreadable" in flag["identifier"][0]["value"]
    assert clinical.summary.alerts[0] == alert.message  # first in the note


def test_score_bands_are_coded_in_a_system():
    from rejection_fhir.scoring import GAD7, PHQ9

    for instrument in (PHQ9, GAD7):
        systems = {band.interpretation.system for band in instrument.bands}
        assert systems == {f"https://rejection-fhir.org/fhir/CodeSystem/{instrument.key}-severity"}


def test_score_observation_interpretation_has_a_system(questionnaire):
    qr = phq9_response([2, 2, 2, 2, 2, 0, 0, 0, 0], rid="phq-1")
    clinical = clinical_summary(qr, questionnaire)
    (entry,) = score_entries(qr, ResponseVersion("http://s", "phq-1", "1"), clinical.scores)
    (coding,) = entry["resource"]["interpretation"][0]["coding"]
    assert coding == {
        "system": "https://rejection-fhir.org/fhir/CodeSystem/phq-9-severity",
        "code": "moderate",
        "display": "Moderate depression (10-14)",
    }


def test_a_prorated_score_is_marked_estimated_and_names_item_9_in_every_format(questionnaire):
    qr = phq9_response([2, 1, 2, 1, 2, 1, 1, 1, 0], rid="phq-1")
    del qr["item"][-1]
    clinical = clinical_summary(qr, questionnaire)
    (score,) = clinical.scores
    assert score.prorated and score.value == 12 and score.item9_missing == "phq9-9"
    for fmt, render in RENDERERS.items():
        text = render(clinical.summary).replace("\\", "")
        assert "estimated" in text, fmt
        assert "item 9 (self-harm) was not answered" in text, fmt
        assert "could not check the self-harm item" in text, fmt


def test_not_scorable_is_said_once():
    from rejection_fhir.scoring.clinical import score_line
    from rejection_fhir.scoring.model import Score

    score = Score("PHQ-9", None, None, None, 5, 4, False, "not scorable: 4 of 9 items unanswered")
    assert score_line(score).values == ("not scorable: 4 of 9 items unanswered",)
