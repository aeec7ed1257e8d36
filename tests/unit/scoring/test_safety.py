"""PHQ-9 item 9: any answer above "Not at all" gives exactly one unmistakable alert."""

from __future__ import annotations

from decimal import Decimal

import pytest

from rejection_fhir.scoring import safety_alerts
from tests.unit.scoring.conftest import FREQUENCY, LOINC, coding, response

DISPLAYS = ["Not at all", "Several days", "More than half the days", "Nearly every day"]


@pytest.mark.parametrize("weight", [1, 2, 3])
def test_item9_above_zero_fires_exactly_one_alert(phq9, weight):
    alerts = safety_alerts(response("phq9", [0] * 8 + [weight], phq9), phq9)
    assert len(alerts) == 1
    (alert,) = alerts
    assert alert.rule == "phq-9-item-9" and alert.instrument == "PHQ-9"
    assert alert.link_id == "phq9-9" and alert.weight == Decimal(weight)
    assert alert.answer == {"system": LOINC, "code": FREQUENCY[weight], "display": DISPLAYS[weight]}
    assert alert.severity == "high"
    for words in ("SAFETY", "PHQ-9 item 9", "self-harm", DISPLAYS[weight], "clinician"):
        assert words in alert.message


def test_item9_at_zero_fires_nothing(phq9):
    assert safety_alerts(response("phq9", [3] * 8 + [0], phq9), phq9) == []


def test_item9_unanswered_says_it_could_not_be_checked(phq9):
    (alert,) = safety_alerts(response("phq9", [3] * 8 + [None], phq9), phq9)
    assert alert.kind == "phq9-item9-unreadable" and alert.rule == "phq-9-item-9-unreadable"
    assert alert.link_id == "phq9-9" and alert.weight is None and alert.severity == "high"
    assert alert.message.startswith("SAFETY: could not check the self-harm item")
    assert "item 9 (phq9-9) was not answered" in alert.message


def test_other_items_high_do_not_fire(phq9, gad7):
    assert safety_alerts(response("phq9", [3] * 8 + [0], phq9), phq9) == []
    assert safety_alerts(response("gad7", [3] * 7, gad7), gad7) == []


def test_one_alert_per_response_even_when_item9_is_sent_twice(phq9):
    qr = response("phq9", [0] * 8 + [1], phq9)
    qr["item"].append({"linkId": "phq9-9", "answer": [coding(FREQUENCY[3])]})
    (alert,) = safety_alerts(qr, phq9)
    assert alert.weight == 3  # the more worrying answer is the one reported


def test_item9_is_known_by_its_loinc_code_in_another_ehrs_form():
    q = {
        "resourceType": "Questionnaire",
        "url": "https://ehr.example/Questionnaire/intake",
        "item": [
            {
                "linkId": "mood.q9",
                "type": "choice",
                "code": [{"system": LOINC, "code": "44260-8"}],
                "answerOption": [{"valueCoding": {"system": LOINC, "code": c}} for c in FREQUENCY],
            }
        ],
    }
    qr = {"item": [{"linkId": "mood.q9", "answer": [coding(FREQUENCY[2])]}]}
    (alert,) = safety_alerts(qr, q)
    assert alert.link_id == "mood.q9" and alert.weight == 2
    assert (
        safety_alerts({"item": [{"linkId": "mood.q9", "answer": [coding(FREQUENCY[0])]}]}, q) == []
    )


def test_without_a_questionnaire_item9_is_known_by_its_linkid():
    for link_id in ("phq9-9", "/44260-8"):
        qr = {"item": [{"linkId": link_id, "answer": [coding(FREQUENCY[1])]}]}
        (alert,) = safety_alerts(qr, None)
        assert alert.kind == "phq9-item9-positive" and alert.link_id == link_id
    # A PHQ answer code makes any form look like a PHQ-9: with no item 9 to read, it says so.
    other = {"item": [{"linkId": "q9", "answer": [coding(FREQUENCY[3])]}]}
    (alert,) = safety_alerts(other, None)
    assert alert.kind == "phq9-item9-unreadable" and alert.link_id is None
    assert "no item in it could be identified as item 9" in alert.message
    # Not a PHQ-9 on any sign: nothing.
    assert safety_alerts({"item": [{"linkId": "q9", "answer": [{"valueInteger": 3}]}]}, None) == []


def test_the_alert_carries_no_client_text(phq9):
    qr = response("phq9", [0] * 8 + [2], phq9)
    qr["item"][-1]["answer"][0]["valueCoding"]["display"] = "my own words"
    (alert,) = safety_alerts(qr, phq9)
    assert "my own words" not in repr(alert)
