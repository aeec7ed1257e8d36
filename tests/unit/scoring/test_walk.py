"""Scoring reads a response once, and only for the linkIds its Questionnaire scores."""

from __future__ import annotations

from decimal import Decimal

import pytest

from rejection_fhir.response.questionnaire import compile_questionnaire
from rejection_fhir.scoring.clinical import clinical_summary
from rejection_fhir.scoring.score import (
    _prorated,
    answers_by_link,
    safety_alerts,
    score_and_alert,
    score_response,
)
from rejection_fhir.scoring.tables import questionnaire_table
from tests.unit.scoring.conftest import FREQUENCY, coding, response


class Untouchable(dict):
    """A response whose items must not be read."""

    def get(self, key, default=None):
        if key == "item":
            raise AssertionError("the response's items were walked")
        return super().get(key, default)


def test_answers_by_link_keeps_document_order_and_nesting():
    items = [
        {
            "linkId": "a",
            "answer": [
                {"valueString": "1", "item": [{"linkId": "b", "answer": [{"valueString": "2"}]}]}
            ],
        },
        {
            "linkId": "g",
            "item": [{"linkId": "a", "answer": [{"valueString": "3"}, {"valueString": "4"}]}],
        },
        {"linkId": "b", "answer": [{"valueString": "5"}]},
        "not an item",
        {"linkId": 7, "answer": [{"valueString": "no"}]},
    ]
    every = answers_by_link(items, None)
    assert {k: [a["valueString"] for a in v] for k, v in every.items()} == {
        "a": ["1", "3", "4"],
        "b": ["2", "5"],
    }
    only_b = answers_by_link(items, frozenset({"b"}))
    assert [a["valueString"] for a in only_b["b"]] == ["2", "5"] and list(only_b) == ["b"]
    assert answers_by_link(None, None) == {} and answers_by_link({"linkId": "a"}, None) == {}


def test_a_worksheet_without_weights_is_not_walked(built):
    worksheet = next(q for q in built.questionnaires if q["id"] == "core-beliefs")
    table = questionnaire_table(worksheet)
    assert not table.scored_link_ids
    qr = Untouchable(resourceType="QuestionnaireResponse", status="completed")
    assert score_and_alert(qr, table) == ([], [])
    assert score_response(qr, worksheet) == [] and safety_alerts(qr, worksheet) == []


def test_one_walk_gives_the_same_scores_and_alerts(phq9):
    qr = response("phq9", [1, 2, None, 3, 0, 1, 2, 1, 3], phq9)
    table = questionnaire_table(phq9)
    assert table.scored_link_ids == frozenset(f"phq9-{i}" for i in range(1, 10))
    scores, alerts = score_and_alert(qr, table)
    assert scores == score_response(qr, phq9) and alerts == safety_alerts(qr, phq9)
    assert scores[0].value == Decimal("15") and alerts[0].weight == 3  # 14.625 → 15
    clinical = clinical_summary(qr, compile_questionnaire(phq9))
    assert clinical.scores == tuple(scores) and clinical.alerts == tuple(alerts)
    assert clinical.summary.alerts[0].startswith("SAFETY") and clinical.summary.highlights


def test_item_9_without_a_questionnaire_is_found_by_linkid():
    qr = {
        "resourceType": "QuestionnaireResponse",
        "item": [
            {"linkId": "g", "item": [{"linkId": "/44260-8", "answer": [coding(FREQUENCY[2])]}]}
        ],
    }
    (alert,) = safety_alerts(qr, None)
    assert alert.link_id == "/44260-8" and alert.weight == 2


@pytest.mark.parametrize(
    ("total", "answered", "count", "places", "expected"),
    [
        ("13", 8, 9, 0, "15"),  # 14.625 → 15
        ("11", 8, 9, 0, "12"),  # 12.375 → 12
        ("13", 7, 9, 0, "17"),  # 16.714… → 17
        ("9", 8, 9, 0, "10"),  # 10.125 → 10
        ("4", 8, 9, 0, "5"),  # 4.5: a half, rounded up
        ("13", 8, 9, 2, "14.63"),  # 14.625: a half, rounded up
        ("1", 3, 7, 2, "2.33"),
        ("0", 5, 9, 0, "0"),
        ("2.5", 2, 3, 2, "3.75"),
        ("1.1", 3, 9, 2, "3.30"),
    ],
)
def test_prorating_is_exact(total, answered, count, places, expected):
    assert _prorated(Decimal(total), answered, count, places) == Decimal(expected)
