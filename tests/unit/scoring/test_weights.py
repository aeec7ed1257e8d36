"""Option weights declared every way FHIR content declares them, each scored by hand.

The form: three questions answered "often" (weight 2.5), "sometimes" (1) and "never" (0),
so every correctly read declaration gives 3.5.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from rejection_fhir.scoring import score_response
from rejection_fhir.scoring.score import assess
from rejection_fhir.scoring.tables import value_set_index
from tests.unit.scoring.conftest import FREQUENCY, LOINC

SYSTEM = "urn:example:how-often"
WEIGHTS = {"never": 0, "sometimes": 1, "often": 2.5}
ITEM_WEIGHT = "http://hl7.org/fhir/StructureDefinition/itemWeight"
ORDINAL = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
CO_VALUE = "http://hl7.org/fhir/StructureDefinition/iso21090-CO-value"
CONTAINS_PROPERTY = (
    "http://hl7.org/fhir/5.0/StructureDefinition/extension-ValueSet.expansion.contains.property"
)
EXPANSION_PROPERTY = (
    "http://hl7.org/fhir/5.0/StructureDefinition/extension-ValueSet.expansion.property"
)


def _form(item_extra: dict[str, Any], contained: list[dict[str, Any]] | None = None) -> dict:
    q: dict[str, Any] = {
        "resourceType": "Questionnaire",
        "url": f"https://example.org/Questionnaire/how-often-{id(item_extra)}",
        "version": "1",
        "title": "How often",
        "status": "active",
        "item": [
            {"linkId": f"q{i}", "type": "choice", "text": f"Question {i}", **item_extra}
            for i in (1, 2, 3)
        ],
    }
    if contained:
        q["contained"] = contained
    return q


def _response(
    codes: tuple[str, ...] = ("often", "sometimes", "never"), **coding: Any
) -> dict[str, Any]:
    return {
        "resourceType": "QuestionnaireResponse",
        "item": [
            {
                "linkId": f"q{i}",
                "answer": [{"valueCoding": {"system": SYSTEM, "code": c, **coding}}],
            }
            for i, c in enumerate(codes, start=1)
        ],
    }


def _options(url: str, on: str = "option") -> list[dict[str, Any]]:
    out = []
    for code, weight in WEIGHTS.items():
        ext = [{"url": url, "valueDecimal": weight}]
        coding: dict[str, Any] = {"system": SYSTEM, "code": code}
        if on == "coding":
            out.append({"valueCoding": {**coding, "extension": ext}})
        else:
            out.append({"valueCoding": coding, "extension": ext})
    return out


def _only(q: dict[str, Any], qr: dict[str, Any] | None = None) -> Any:
    (score,) = score_response(qr or _response(), q)
    return score


@pytest.mark.parametrize("url", [ITEM_WEIGHT, ORDINAL, CO_VALUE])
def test_weights_on_answer_option(url):
    score = _only(_form({"answerOption": _options(url)}))
    assert score.scorable and score.value == Decimal("3.5")


def test_weights_on_the_options_coding():
    score = _only(_form({"answerOption": _options(ORDINAL, on="coding")}))
    assert score.value == Decimal("3.5")


def test_weights_on_the_responses_own_codings():
    """The form weighs one option; the response's Codings carry the weights of the rest."""
    options = [{"valueCoding": {"system": SYSTEM, "code": c}} for c in WEIGHTS]
    options[0]["extension"] = [{"url": ITEM_WEIGHT, "valueDecimal": 0}]
    qr = _response()
    for item in qr["item"]:
        coding = item["answer"][0]["valueCoding"]
        coding["extension"] = [{"url": ORDINAL, "valueDecimal": WEIGHTS[coding["code"]]}]
    score = _only(_form({"answerOption": options}), qr)
    assert score.value == Decimal("3.5")


def _value_set(vs_id: str, where: str) -> dict[str, Any]:
    vs: dict[str, Any] = {
        "resourceType": "ValueSet",
        "id": vs_id,
        "url": f"https://example.org/ValueSet/{vs_id}",
        "status": "active",
    }
    if where == "compose":
        vs["compose"] = {
            "include": [
                {
                    "system": SYSTEM,
                    "concept": [
                        {"code": c, "extension": [{"url": ITEM_WEIGHT, "valueDecimal": w}]}
                        for c, w in WEIGHTS.items()
                    ],
                }
            ]
        }
    elif where == "expansion":
        vs["expansion"] = {
            "timestamp": "2026-01-01T00:00:00Z",
            "contains": [
                {
                    "system": SYSTEM,
                    "code": c,
                    "extension": [{"url": ORDINAL, "valueDecimal": w}],
                }
                for c, w in WEIGHTS.items()
            ],
        }
    else:  # the R5 backport of expansion.contains.property, code declared or bare
        declared = where == "backport-declared"
        vs["expansion"] = {
            "timestamp": "2026-01-01T00:00:00Z",
            "contains": [
                {
                    "system": SYSTEM,
                    "code": c,
                    "extension": [
                        {
                            "url": CONTAINS_PROPERTY,
                            "extension": [
                                {"url": "code", "valueCode": "w" if declared else "itemWeight"},
                                {"url": "value", "valueDecimal": w},
                            ],
                        }
                    ],
                }
                for c, w in WEIGHTS.items()
            ],
        }
        if declared:
            vs["expansion"]["extension"] = [
                {
                    "url": EXPANSION_PROPERTY,
                    "extension": [
                        {"url": "code", "valueCode": "w"},
                        {
                            "url": "uri",
                            "valueUri": "http://hl7.org/fhir/concept-properties#itemWeight",
                        },
                    ],
                }
            ]
    return vs


@pytest.mark.parametrize(
    "where", ["compose", "expansion", "backport-declared", "backport-bare-code"]
)
def test_weights_in_a_contained_value_set(where):
    vs = _value_set(f"often-{where}", where)
    score = _only(_form({"answerValueSet": f"#{vs['id']}"}, [vs]))
    assert score.value == Decimal("3.5"), score.method


def test_weights_in_a_referenced_value_set():
    vs = _value_set("often-referenced", "compose")
    q = _form({"answerValueSet": vs["url"] + "|1"})
    assert score_response(_response(), q) == []  # not given: nothing weighted
    value_sets = value_set_index([vs])
    (score,) = score_response(_response(), q, value_sets=value_sets)
    assert score.value == Decimal("3.5")
    # The same Questionnaire, cached: without the ValueSet again, nothing weighted.
    assert score_response(_response(), q) == []
    (bare,) = score_response(
        _response(), _form({"answerValueSet": vs["url"]}), value_sets=value_sets
    )
    assert bare.value == Decimal("3.5")


def test_a_code_matching_only_ignoring_case_is_reported_not_scored():
    q = _form({"answerOption": _options(ITEM_WEIGHT)})
    score = _only(q, _response(("OFTEN", "sometimes", "never")))
    assert not score.scorable and score.value is None
    assert "'OFTEN' matches 'often' only when case is ignored" in score.method


def test_a_phq9_code_matching_only_ignoring_case_is_not_scored_but_alerts(built):
    phq9 = next(q for q in built.questionnaires if q["id"] == "phq-9")
    qr = {
        "resourceType": "QuestionnaireResponse",
        "item": [
            {
                "linkId": f"phq9-{i}",
                "answer": [{"valueCoding": {"system": LOINC, "code": FREQUENCY[1]}}],
            }
            for i in range(1, 9)
        ]
        + [
            {"linkId": "phq9-9", "answer": [{"valueCoding": {"system": LOINC, "code": "la6571-9"}}]}
        ],
    }
    (score,) = score_response(qr, phq9)
    assert score.prorated and score.missing_link_ids == ("phq9-9",)
    assert "only when case is ignored" in score.method
    (alert,) = assess(qr, None)[1]
    assert alert.kind == "phq9-item9-positive" and alert.weight == 3


def test_without_a_questionnaire_a_phq9_is_scored_by_its_codes_linkids_or_wording():
    texts = {"/44250-9": "Little interest or pleasure in doing things"}
    by_link = {
        "codes in path": [f"/44249-1/{code}" for code in _phq9_items()],
        "LOINC linkIds": [f"/{code}" for code in _phq9_items()],
        "our linkIds": [f"phq9-{i}" for i in range(1, 10)],
    }
    for label, link_ids in by_link.items():
        qr = {
            "resourceType": "QuestionnaireResponse",
            "item": [
                {
                    "linkId": link_id,
                    "text": texts.get(link_id, "x"),
                    "answer": [{"valueCoding": {"system": LOINC, "code": FREQUENCY[2]}}],
                }
                for link_id in link_ids
            ],
        }
        scores, alerts = assess(qr, None)
        assert [(s.instrument, s.value) for s in scores] == [("PHQ-9", 18)], label
        assert [a.kind for a in alerts] == ["phq9-item9-positive"], label
    wording = {
        "resourceType": "QuestionnaireResponse",
        "item": [
            {
                "linkId": f"item-{i}",
                "text": text,
                "answer": [{"valueCoding": {"system": LOINC, "code": FREQUENCY[1]}}],
            }
            for i, text in enumerate(_phq9_texts(), start=1)
        ],
    }
    scores, alerts = assess(wording, None)
    assert [(s.instrument, s.value) for s in scores] == [("PHQ-9", 9)]
    assert alerts[0].link_id == "item-9" and alerts[0].weight == 1


def _phq9_items() -> tuple[str, ...]:
    from rejection_fhir.scoring import PHQ9

    return PHQ9.items


def _phq9_texts() -> list[str]:
    from tests.unit.scoring.safety_cases import TEXTS

    return TEXTS
