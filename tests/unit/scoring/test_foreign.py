"""Questionnaires that are not ours: a PHQ-9 from another EHR, generic weighted forms."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

from rejection_fhir.scoring import PHQ9, questionnaire_table, safety_alerts, score_response
from tests.unit.scoring.conftest import FREQUENCY, LOINC, coding, response

ORDINAL = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
ITEM_WEIGHT = "http://hl7.org/fhir/StructureDefinition/itemWeight"


def _ehr_phq9() -> dict[str, Any]:
    """A PHQ-9 as an EHR might ship it: its own linkIds, LOINC item codes, items inside a
    group, weights on answerOption (not the Coding), an unweighted difficulty question and
    a total item of its own."""
    options = [
        {
            "valueCoding": {"system": LOINC, "code": code, "display": display},
            "extension": [{"url": ITEM_WEIGHT, "valueDecimal": weight}],
        }
        for weight, (code, display) in enumerate(
            zip(
                FREQUENCY,
                ["Not at all", "Several days", "More than half the days", "Nearly every day"],
                strict=True,
            )
        )
    ]
    return {
        "resourceType": "Questionnaire",
        "url": "https://ehr.example/Questionnaire/depression-screen",
        "version": "7",
        "status": "active",
        "title": "Depression screen",
        "item": [
            {
                "linkId": "grp",
                "type": "group",
                "text": "Over the last 2 weeks…",
                "item": [
                    {
                        "linkId": f"Q{i}",
                        "type": "choice",
                        "text": f"question {i}",
                        "code": [{"system": LOINC, "code": loinc}],
                        "answerOption": options,
                    }
                    for i, loinc in enumerate(PHQ9.items, start=1)
                ]
                + [
                    {
                        "linkId": "difficulty",
                        "type": "choice",
                        "text": "How difficult…",
                        "code": [{"system": LOINC, "code": "69722-7"}],
                        "answerOption": [
                            {"valueCoding": {"system": LOINC, "code": "LA6572-7"}},
                            {"valueCoding": {"system": LOINC, "code": "LA6573-5"}},
                        ],
                    },
                    {
                        "linkId": "score",
                        "type": "integer",
                        "text": "Total",
                        "code": [{"system": LOINC, "code": "44261-6"}],
                    },
                ],
            }
        ],
    }


def _ehr_response(weights: list[int | None]) -> dict[str, Any]:
    inner = [
        {"linkId": f"Q{i}", "answer": [coding(FREQUENCY[w])]}
        for i, w in enumerate(weights, start=1)
        if w is not None
    ]
    inner.append({"linkId": "difficulty", "answer": [coding("LA6573-5")]})
    return {"resourceType": "QuestionnaireResponse", "item": [{"linkId": "grp", "item": inner}]}


def test_a_phq9_from_another_ehr_is_recognised_by_its_loinc_codes():
    scores = score_response(_ehr_response([2, 2, 1, 1, 3, 0, 0, 1, 0]), _ehr_phq9())
    assert len(scores) == 1  # the difficulty item has no weights: no generic score
    (score,) = scores
    assert score.instrument == "PHQ-9" and score.code["code"] == "44261-6"
    assert score.value == 10 and score.interpretation.code == "moderate"
    prorated = score_response(_ehr_response([2, 2, 1, None, 3, 0, 0, 1, 0]), _ehr_phq9())[0]
    assert prorated.value == Decimal("10")  # 9 × 9 / 8 = 10.125 → 10 (whole numbers)
    assert prorated.missing_link_ids == ("Q4",)


def test_a_phq9_with_loinc_linkids_and_no_item_codes_is_recognised():
    """LHC-Forms and LOINC-derived forms name items after their LOINC code."""
    q = _ehr_phq9()
    for item in q["item"][0]["item"]:
        if "code" in item:
            item["linkId"] = "/" + item.pop("code")[0]["code"]
    qr = {
        "resourceType": "QuestionnaireResponse",
        "item": [{"linkId": f"/{loinc}", "answer": [coding(FREQUENCY[3])]} for loinc in PHQ9.items],
    }
    (score,) = score_response(qr, q)
    assert score.instrument == "PHQ-9" and score.value == 27


def test_ehr_answer_codes_of_its_own_are_scored_by_the_questionnaires_weights():
    q = _ehr_phq9()
    own = [
        {
            "valueCoding": {"system": "urn:ehr:phq", "code": f"f{w}", "display": f"level {w}"},
            "extension": [{"url": ORDINAL, "valueDecimal": w}],
        }
        for w in range(4)
    ]
    for item in q["item"][0]["item"][:9]:
        item["answerOption"] = own
    qr = _ehr_response([None] * 9)
    qr["item"][0]["item"] = [
        {"linkId": f"Q{i}", "answer": [{"valueCoding": {"system": "urn:ehr:phq", "code": "f2"}}]}
        for i in range(1, 10)
    ]
    (score,) = score_response(qr, q)
    assert score.instrument == "PHQ-9" and score.value == 18


def test_an_incomplete_phq9_panel_is_not_taken_for_a_phq9():
    q = _ehr_phq9()
    del q["item"][0]["item"][8]  # no item 9: perhaps a PHQ-8, which scores differently
    scores = score_response(_ehr_response([1] * 8), q)
    assert [s.instrument for s in scores] == ["Depression screen"]  # generic only


def _agree_scale(questionnaire_weights_on: str) -> dict[str, Any]:
    concepts = [
        {
            "code": code,
            "display": code.title(),
            "extension": [{"url": ITEM_WEIGHT, "valueDecimal": w}],
        }
        for code, w in (("disagree", 0), ("neutral", 1), ("agree", 2.5))
    ]
    vs: dict[str, Any] = {"resourceType": "ValueSet", "id": "agree", "status": "active"}
    if questionnaire_weights_on == "compose":
        vs["compose"] = {"include": [{"system": "urn:example:agree", "concept": concepts}]}
    else:
        vs["expansion"] = {
            "timestamp": "2026-01-01T00:00:00Z",
            "contains": [
                {
                    "system": "urn:example:agree",
                    "code": c["code"],
                    "display": c["display"],
                    "extension": [
                        {"url": ORDINAL, "valueDecimal": c["extension"][0]["valueDecimal"]}
                    ],
                }
                for c in concepts
            ],
        }
    return vs


def _generic_questionnaire(where: str) -> dict[str, Any]:
    return {
        "resourceType": "Questionnaire",
        "url": f"https://example.org/Questionnaire/wellbeing-{where}",
        "version": "1.0.0",
        "title": "Wellbeing check",
        "code": [{"system": "urn:example:forms", "code": "wb", "display": "Wellbeing"}],
        "status": "active",
        "contained": [_agree_scale(where)],
        "item": [
            {"linkId": "a", "type": "choice", "text": "A", "answerValueSet": "#agree"},
            {"linkId": "b", "type": "choice", "text": "B", "answerValueSet": "#agree"},
            {
                "linkId": "c",
                "type": "choice",
                "text": "C",
                "answerOption": [
                    {
                        "valueCoding": {"system": "urn:example:yn", "code": "y"},
                        "extension": [{"url": ORDINAL, "valueInteger": 4}],
                    },
                    {"valueCoding": {"system": "urn:example:yn", "code": "n"}},
                ],
            },
            {
                "linkId": "d",
                "type": "choice",
                "text": "Only if c is yes",
                "answerValueSet": "#agree",
                "enableWhen": [
                    {
                        "question": "c",
                        "operator": "=",
                        "answerCoding": {"system": "urn:example:yn", "code": "y"},
                    }
                ],
            },
            {"linkId": "note", "type": "text", "text": "Anything else?"},
        ],
    }


def _answer(system: str, code: str) -> list[dict[str, Any]]:
    return [{"valueCoding": {"system": system, "code": code}}]


def test_a_generic_questionnaire_with_weights_in_a_contained_value_set_scores():
    for where in ("compose", "expansion"):
        q = _generic_questionnaire(where)
        qr = {
            "resourceType": "QuestionnaireResponse",
            "item": [
                {"linkId": "a", "answer": _answer("urn:example:agree", "agree")},
                {"linkId": "b", "answer": _answer("urn:example:agree", "neutral")},
                {"linkId": "c", "answer": _answer("urn:example:yn", "y")},
                {"linkId": "d", "answer": _answer("urn:example:agree", "agree")},
                {"linkId": "note", "answer": [{"valueString": "private words"}]},
            ],
        }
        (score,) = score_response(qr, q)
        assert score.instrument == "Wellbeing check" and score.code["code"] == "wb"
        assert score.value == Decimal("10.0")  # 2.5 + 1 + 4 + 2.5
        assert score.scorable and score.items_answered == 4 and score.interpretation is None
        assert "private" not in repr(score)


def test_generic_scoring_counts_an_unasked_conditional_item_as_not_missing():
    q = _generic_questionnaire("compose")
    qr = {
        "resourceType": "QuestionnaireResponse",
        "item": [
            {"linkId": "a", "answer": _answer("urn:example:agree", "disagree")},
            {"linkId": "b", "answer": _answer("urn:example:agree", "agree")},
            {"linkId": "c", "answer": _answer("urn:example:yn", "y")},
        ],
    }
    (score,) = score_response(qr, q)
    assert score.scorable and score.value == Decimal("6.5") and score.items_missing == 0
    del qr["item"][1]
    (score,) = score_response(qr, q)
    assert not score.scorable and score.value is None and score.missing_link_ids == ("b",)
    # An answer without a weight ("n") is not a weighted answer: item c is then missing.
    qr["item"] = [{"linkId": "c", "answer": _answer("urn:example:yn", "n")}]
    assert score_response(qr, q)[0].missing_link_ids == ("a", "b", "c")


def test_the_worksheets_have_no_weights_and_get_no_score(built):
    for q in built.questionnaires:
        if q["id"] not in {"phq-9", "gad-7"}:
            assert score_response({"resourceType": "QuestionnaireResponse"}, q) == []


def test_tables_are_built_once_per_url_and_version(phq9):
    first = questionnaire_table(phq9)
    assert questionnaire_table(copy.deepcopy(phq9)) is first
    newer = dict(copy.deepcopy(phq9), version="1.0.1")
    assert questionnaire_table(newer) is not first
    anonymous = {k: v for k, v in phq9.items() if k != "url"}
    assert questionnaire_table(anonymous) is not questionnaire_table(anonymous)
    assert [i.key for i, _ in questionnaire_table(anonymous).instruments] == ["phq-9"]


def test_our_phq9_is_known_by_its_linkids_when_the_item_codes_are_gone(phq9):
    """e.g. a copy whose codes an intermediary stripped: our url still names our linkIds."""
    stripped = copy.deepcopy(phq9)
    for item in stripped["item"]:
        item.pop("code", None)
    qr = response("phq9", [2] * 9, stripped)
    (score,) = score_response(qr, stripped)
    assert score.instrument == "PHQ-9" and score.value == 18
    assert len(safety_alerts(qr, stripped)) == 1
    # Someone else's form with the same linkIds is known by the items' wording instead.
    foreign = dict(stripped, url="https://elsewhere.example/Questionnaire/mood")
    assert [s.instrument for s in score_response(qr, foreign)] == ["PHQ-9"]
    assert [a.kind for a in safety_alerts(qr, foreign)] == ["phq9-item9-positive"]
    # Without codes or wording, our linkIds in someone else's form are not scored as ours;
    # the PHQ answer codes still make it look like a PHQ-9, and then linkId phq9-9 is
    # read as item 9: a safety check errs on the side of asking.
    bare = copy.deepcopy(foreign)
    bare["url"] = "https://elsewhere.example/Questionnaire/bare"
    for item in bare["item"]:
        item["text"] = "question"
    assert [s.instrument for s in score_response(qr, bare)] == [
        "Patient Health Questionnaire (PHQ-9)"
    ]
    (alert,) = safety_alerts(qr, bare)
    assert alert.kind == "phq9-item9-positive" and alert.link_id == "phq9-9"
