"""Shared helpers: our instrument Questionnaires as built, responses, and their FHIRPath."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pytest

from rejection_fhir.fhirpath import evaluate
from rejection_fhir.scoring import clear_cache
from rejection_fhir.worksheet.build import CALCULATED_EXPRESSION

LOINC = "http://loinc.org"
#: LOINC answer list LL358-3, indexed by weight.
FREQUENCY = ["LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"]


@pytest.fixture(autouse=True)
def _fresh_tables():
    clear_cache()
    yield
    clear_cache()


@pytest.fixture(scope="session")
def phq9(built) -> dict[str, Any]:
    return next(q for q in built.questionnaires if q["id"] == "phq-9")


@pytest.fixture(scope="session")
def gad7(built) -> dict[str, Any]:
    return next(q for q in built.questionnaires if q["id"] == "gad-7")


def coding(code: str, system: str | None = LOINC) -> dict[str, Any]:
    out: dict[str, Any] = {"code": code}
    if system is not None:
        out["system"] = system
    return {"valueCoding": out}


def response(
    prefix: str, weights: Sequence[int | None], questionnaire: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A response to our instrument: weights[i] is item i+1's answer (None: unanswered)."""
    items = [
        {"linkId": f"{prefix}-{i}", "answer": [coding(FREQUENCY[w])]}
        for i, w in enumerate(weights, start=1)
        if w is not None
    ]
    qr: dict[str, Any] = {"resourceType": "QuestionnaireResponse", "status": "completed"}
    if questionnaire is not None:
        qr["questionnaire"] = f"{questionnaire['url']}|{questionnaire['version']}"
    qr["item"] = items
    return qr


def total_expression(questionnaire: dict[str, Any]) -> str:
    total = next(i for i in questionnaire["item"] if i["linkId"].endswith("-total"))
    ext = next(e for e in total["extension"] if e["url"] == CALCULATED_EXPRESSION)
    return str(ext["valueExpression"]["expression"])


def fhirpath_total(questionnaire: dict[str, Any], qr: dict[str, Any]) -> Decimal | None:
    """What a form renderer shows in the total item: the Questionnaire's own FHIRPath."""
    result = evaluate(qr, total_expression(questionnaire), {"resource": qr})
    assert len(result) <= 1, result
    return Decimal(str(result[0])) if result else None
