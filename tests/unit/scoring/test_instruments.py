"""PHQ-9 and GAD-7: hand-computed scores, bands at every boundary, unanswered items.

Every expected value here was worked out by hand from the instrument's rules, and each is
checked twice: by the Python scorer and by the FHIRPath the Questionnaire gives renderers.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from rejection_fhir.scoring import GAD7, PHQ9, score_response
from rejection_fhir.scoring.instruments import FREQUENCY_LL358_3
from rejection_fhir.worksheet.build import ORDINAL_VALUE
from tests.unit.scoring.conftest import LOINC, fhirpath_total, response


def only_score(qr, questionnaire):
    scores = score_response(qr, questionnaire)
    assert len(scores) == 1, scores
    return scores[0]


# weights per item (None = unanswered) → (value, band code); worked out by hand.
PHQ9_CASES = [
    ([1, 2, 0, 3, 1, 1, 2, 0, 0], "10", "moderate"),  # 1+2+0+3+1+1+2+0+0
    ([3, 3, 3, 3, 3, 3, 3, 3, 3], "27", "severe"),
    ([0, 0, 0, 0, 0, 0, 0, 0, 0], "0", "minimal"),
    ([0, 1, 0, 1, 0, 1, 0, 1, 0], "4", "minimal"),
    # one unanswered: 2+1+2+1+2+1+1+1 = 11 over 8 items; 11 × 9 / 8 = 12.375 → 12
    ([2, 1, 2, 1, 2, 1, 1, 1, None], "12", "moderate"),
    # two unanswered: 3+3+3+3+3+3+1 = 19 over 7 items; 19 × 9 / 7 = 24.428… → 24
    ([3, 3, 3, None, None, 3, 3, 3, 1], "24", "severe"),
    # two unanswered: 1+1+1+1+1+1+1 = 7 over 7; 7 × 9 / 7 = 9 exactly
    ([1, None, 1, 1, 1, None, 1, 1, 1], "9", "mild"),
    # one unanswered: 1+1+1+1+1+1+1+1 = 8 over 8; 9 exactly: mild, not a rounding artefact
    ([1, 1, 1, 1, None, 1, 1, 1, 1], "9", "mild"),
    # one unanswered: 5 over 8 → 45 / 8 = 5.625 → 6
    ([1, 1, 1, 1, 1, 0, 0, None, 0], "6", "mild"),
    # one unanswered: 4 over 8 → 36 / 8 = 4.5, a half, rounded up → 5: mild
    ([1, 1, 1, 1, 0, 0, 0, None, 0], "5", "mild"),
]


@pytest.mark.parametrize(("weights", "expected", "band"), PHQ9_CASES)
def test_phq9_hand_computed_scores_match_python_and_fhirpath(phq9, weights, expected, band):
    qr = response("phq9", weights, phq9)
    score = only_score(qr, phq9)
    assert score.instrument == "PHQ-9"
    assert score.code == PHQ9.total and score.code["code"] == "44261-6"
    assert score.scorable and score.value == Decimal(expected)
    assert score.interpretation is not None and score.interpretation.code == band
    assert score.items_answered == sum(w is not None for w in weights)
    assert score.items_missing == sum(w is None for w in weights)
    assert fhirpath_total(phq9, qr) == Decimal(expected)


GAD7_CASES = [
    ([1, 1, 1, 1, 1, 1, 1], 7, "mild"),
    ([3, 2, 3, 2, 3, 2, 3], 18, "severe"),
    ([0, 0, 1, 0, 2, 0, 1], 4, "minimal"),
    ([2, 2, 2, 2, 2, 1, 1], 12, "moderate"),
]


@pytest.mark.parametrize(("weights", "expected", "band"), GAD7_CASES)
def test_gad7_hand_computed_scores_match_python_and_fhirpath(gad7, weights, expected, band):
    qr = response("gad7", weights, gad7)
    score = only_score(qr, gad7)
    assert score.instrument == "GAD-7" and score.code["code"] == "70274-6"
    assert score.value == Decimal(expected) and score.interpretation.code == band
    assert fhirpath_total(gad7, qr) == Decimal(expected)


def _weights_summing_to(total: int, items: int) -> list[int]:
    out = []
    for _ in range(items):
        take = min(3, total)
        out.append(take)
        total -= take
    assert total == 0
    return out


#: Each band's first and last total, per instrument (Kroenke 2001, Spitzer 2006).
BOUNDARIES = {
    ("phq9", 9): [
        (0, "minimal"),
        (4, "minimal"),
        (5, "mild"),
        (9, "mild"),
        (10, "moderate"),
        (14, "moderate"),
        (15, "moderately-severe"),
        (19, "moderately-severe"),
        (20, "severe"),
        (27, "severe"),
    ],
    ("gad7", 7): [
        (0, "minimal"),
        (4, "minimal"),
        (5, "mild"),
        (9, "mild"),
        (10, "moderate"),
        (14, "moderate"),
        (15, "severe"),
        (21, "severe"),
    ],
}


@pytest.mark.parametrize(
    ("name", "items", "total", "band"),
    [
        (name, items, total, band)
        for (name, items), cases in BOUNDARIES.items()
        for total, band in cases
    ],
)
def test_bands_at_each_boundary(request, name, items, total, band):
    questionnaire = request.getfixturevalue(name)
    qr = response(name, _weights_summing_to(total, items), questionnaire)
    score = only_score(qr, questionnaire)
    assert score.value == total and score.interpretation.code == band
    assert fhirpath_total(questionnaire, qr) == total


@pytest.mark.parametrize(
    ("value", "band"),
    [("4.99", "minimal"), ("5", "mild"), ("9.99", "mild"), ("10", "moderate")],
)
def test_a_prorated_phq9_total_falls_in_the_band_whose_range_it_reaches(value, band):
    assert PHQ9.interpret(Decimal(value)).code == band


def test_phq9_with_three_unanswered_items_is_not_scorable(phq9):
    qr = response("phq9", [3, 3, None, 3, None, 3, None, 3, 3], phq9)
    score = only_score(qr, phq9)
    assert not score.scorable and score.value is None and score.interpretation is None
    assert score.items_answered == 6 and score.items_missing == 3
    assert score.missing_link_ids == ("phq9-3", "phq9-5", "phq9-7")
    assert "not scorable" in score.method and "at most 2" in score.method
    assert score.quantity() is None
    assert fhirpath_total(phq9, qr) is None


def test_prorated_phq9_says_so_and_flags_an_unanswered_item_9(phq9):
    score = only_score(response("phq9", [2, 1, 2, 1, 2, 1, 1, 1, None], phq9), phq9)
    assert "prorated" in score.method and "phq9-9" in score.method
    assert "item 9 (self-harm) was not answered" in score.method
    assert score.quantity() == {
        "value": 12,
        "unit": "{score}",
        "system": "http://unitsofmeasure.org",
        "code": "{score}",
    }


def test_gad7_needs_every_item(gad7):
    qr = response("gad7", [3, 3, 3, None, 3, 3, 3], gad7)
    score = only_score(qr, gad7)
    assert not score.scorable and score.missing_link_ids == ("gad7-4",)
    assert "all 7 must be answered" in score.method
    assert fhirpath_total(gad7, qr) is None


def test_an_empty_response_is_not_scorable(phq9, gad7):
    for q, prefix, count in ((phq9, "phq9", 9), (gad7, "gad7", 7)):
        score = only_score(response(prefix, [None] * count, q), q)
        assert not score.scorable and score.items_missing == count
        assert fhirpath_total(q, response(prefix, [None] * count, q)) is None


def test_an_answer_with_a_foreign_code_or_no_system_counts_as_unanswered(gad7):
    qr = response("gad7", [1, 1, 1, 1, 1, 1, 1], gad7)
    qr["item"][0]["answer"] = [{"valueCoding": {"system": LOINC, "code": "LA9999-9"}}]
    qr["item"][1]["answer"] = [{"valueCoding": {"code": "LA6569-3"}}]
    score = only_score(qr, gad7)
    assert score.missing_link_ids == ("gad7-1", "gad7-2")
    assert fhirpath_total(gad7, qr) is None


def test_the_stale_total_a_form_sends_back_is_ignored(phq9):
    qr = response("phq9", [1] * 9, phq9)
    qr["item"].append({"linkId": "phq9-total", "answer": [{"valueDecimal": 99}]})
    assert only_score(qr, phq9).value == 9
    assert fhirpath_total(phq9, qr) == 9


@pytest.mark.parametrize("instrument", [PHQ9, GAD7])
def test_questionnaire_codes_and_weights_are_the_instruments_own(built, instrument):
    """The third place the scoring lives: LOINC item codes and option weights in the
    Questionnaire must be exactly those the scorer uses."""
    q = next(q for q in built.questionnaires if q["id"] == instrument.key)
    assert q["code"][0]["code"] == instrument.panel["code"]
    items = {i["linkId"]: i for i in q["item"]}
    for link_id, loinc in zip(instrument.link_ids, instrument.items, strict=True):
        item = items[link_id]
        assert item["code"] == [{**item["code"][0], "system": LOINC, "code": loinc}]
        options = {}
        for option in item["answerOption"]:
            c = option["valueCoding"]
            weight = next(e["valueDecimal"] for e in c["extension"] if e["url"] == ORDINAL_VALUE)
            options[(c["system"], c["code"])] = (c["display"], weight)
        assert options == {(LOINC, code): dw for code, dw in FREQUENCY_LL358_3.items()}
    total = items[f"{instrument.link_ids[0].split('-')[0]}-total"]
    assert total["readOnly"] is True and total["code"][0]["code"] == instrument.total["code"]
