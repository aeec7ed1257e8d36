"""Scoring reads a response once, and only for the linkIds its Questionnaire scores."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from rejection_fhir.response.answers import resolve_response
from rejection_fhir.response.questionnaire import compile_questionnaire
from rejection_fhir.response.summary import summarize_resolved
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
from tests.unit.scoring.safety_cases import make_case


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


def _recorded(qr, questionnaire):
    """What clinical_summary scores with: the summary walk's records of the scored items."""
    resolved = resolve_response(qr, questionnaire)
    summarize_resolved(resolved)
    table = questionnaire_table(questionnaire)
    return table, resolved.recorded_answers(table.scored_link_ids)


def test_the_summary_walk_records_the_answers_scoring_reads(phq9):
    # Item 9 nested under an answer that carries nothing else, and an item nested under
    # its own linkId: the summary's records must hold every answer, in document order.
    qr = response("phq9", [1, 2, 3, 0, 1, 2, 1, 3, None], phq9)
    qr["item"][0]["answer"][0]["item"] = [
        {"linkId": "phq9-1", "answer": [coding(FREQUENCY[3])]},
    ]
    qr["item"].append(
        {
            "linkId": "phq9-8",
            "answer": [{"item": [{"linkId": "phq9-9", "answer": [coding(FREQUENCY[2])]}]}],
        }
    )
    table, recorded = _recorded(qr, phq9)
    assert recorded == answers_by_link(qr.get("item"), table.scored_link_ids)
    assert [a["valueCoding"]["code"] for a in recorded["phq9-1"]] == [
        FREQUENCY[1],
        FREQUENCY[3],
    ]
    (alert,) = clinical_summary(qr, compile_questionnaire(phq9)).alerts
    assert alert.link_id == "phq9-9" and alert.weight == 2


def test_several_answers_to_one_item_are_read_from_the_response(phq9):
    qr = response("phq9", [1, 2, 3, 0, 1, 2, 1, 3, 0], phq9)
    qr["item"][-1]["answer"].append(coding(FREQUENCY[3]))
    _, recorded = _recorded(qr, phq9)
    assert recorded is None  # a record keeps an instance's first answer only
    clinical = clinical_summary(qr, compile_questionnaire(phq9))
    assert clinical.alerts[0].weight == 3


@pytest.mark.parametrize("seed", range(300))
def test_the_records_agree_with_a_walk_on_every_safety_case(built, seed):
    phq9 = next(q for q in built.questionnaires if q["id"] == "phq-9")
    case = make_case(random.Random(seed), phq9)
    if case.questionnaire is None:
        return
    table, recorded = _recorded(case.qr, case.questionnaire)
    if recorded is not None:
        assert recorded == answers_by_link(case.qr.get("item"), table.scored_link_ids)
    clinical = clinical_summary(case.qr, compile_questionnaire(case.questionnaire))
    assert (clinical.scores, clinical.alerts) == tuple(map(tuple, score_and_alert(case.qr, table)))
