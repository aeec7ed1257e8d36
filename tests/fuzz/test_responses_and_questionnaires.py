"""Mutated QuestionnaireResponses, Questionnaires and EHR records through the pure engine:
validate_response only returns findings, resolve/summarize raise at most one InputError,
every renderer draws what they make (the XHTML parses), check_questionnaire only returns
issues, and the report model and page take whatever the EHR holds."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from rejection_fhir.errors import InputError
from rejection_fhir.response import (
    ResponseFinding,
    compile_questionnaire,
    render_json,
    render_markdown,
    render_text,
    render_xhtml,
    resolve_response,
    validate_response,
)
from rejection_fhir.scoring.clinical import clinical_summary
from rejection_fhir.worksheet.rules import Issue, check_questionnaire
from rejection_fhir.worksheet.synthetic import ResponseFactory
from tests.fuzz.conftest import SEED, count, rng_for, tag
from tests.fuzz.mutator import Mutator
from tests.unit.response.conftest import load

NOW = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
RESPONSE_CASES = 2600
QUESTIONNAIRE_CASES = 900
REPORT_CASES = 500


@pytest.fixture(scope="module")
def corpus(built: Any) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(Questionnaire, a valid response to it): every project worksheet and the kitchen sink."""
    factory = ResponseFactory(SEED)
    pairs = [
        (q, factory.response(q, subject="Patient/fuzz", response_id=f"r{i}"))
        for i, q in enumerate(built.questionnaires)
    ]
    pairs.append((load("kitchen-sink.questionnaire.json"), load("kitchen-sink.response.json")))
    return pairs


def _summarise_and_render(response: Any, questionnaire: Any, where: str) -> None:
    try:
        resolve_response(response, questionnaire)
        summary = clinical_summary(response, questionnaire).summary
    except InputError as exc:
        assert exc.message and len(exc.message) < 2000, where
        good_response = (
            isinstance(response, dict) and response.get("resourceType") == "QuestionnaireResponse"
        )
        good_questionnaire = (
            questionnaire is None
            or not isinstance(questionnaire, dict)
            or (questionnaire.get("resourceType") == "Questionnaire")
        )
        assert not (good_response and good_questionnaire), (
            f"{where} InputError for a QuestionnaireResponse: {exc.message}"
        )
        return
    render_text(summary)
    render_markdown(summary)
    render_json(summary)
    xhtml = render_xhtml(summary)
    try:
        ET.fromstring(xhtml)
    except ET.ParseError as exc:
        raise AssertionError(f"{where} XHTML does not parse: {exc}") from None


def test_mutated_responses_through_the_engine(corpus: list[Any]) -> None:
    name = "engine/responses"
    compiled = [compile_questionnaire(q) for q, _ in corpus]
    for case in range(RESPONSE_CASES):
        rng = rng_for(name, case)
        pick = rng.randrange(len(corpus))
        questionnaire, response = corpus[pick]
        mutated = Mutator(rng, max_huge=50_000).mutate(response)
        where = tag(name, case)
        against: Any = rng.choice([questionnaire, compiled[pick], None])
        findings = validate_response(mutated, against, now=NOW)
        assert all(isinstance(f, ResponseFinding) for f in findings), where
        _summarise_and_render(mutated, against, where)
        count(name)


def test_responses_against_mutated_questionnaires(corpus: list[Any]) -> None:
    name = "engine/questionnaires"
    for case in range(QUESTIONNAIRE_CASES):
        rng = rng_for(name, case)
        questionnaire, response = corpus[rng.randrange(len(corpus))]
        mutated = Mutator(rng, max_huge=50_000).mutate(questionnaire)
        where = tag(name, case)
        if isinstance(mutated, dict):
            issues = check_questionnaire(mutated)
            assert all(isinstance(i, Issue) for i in issues), where
        findings = validate_response(
            response, mutated if isinstance(mutated, dict) else None, now=NOW
        )
        assert all(isinstance(f, ResponseFinding) for f in findings), where
        _summarise_and_render(response, mutated if isinstance(mutated, dict) else None, where)
        count(name)


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=20),
    st.sampled_from(["2026-02-30", "2026-01-01T10:00:00Z", "completed", "amended", "\u202e"]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.sampled_from(
                ["linkId", "item", "answer", "valueString", "valueCoding", "text", "x"]
            ),
            inner,
            max_size=4,
        ),
    ),
    max_leaves=20,
)


@seed(SEED)
@settings(max_examples=1500, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(
    st.fixed_dictionaries(
        {"resourceType": st.just("QuestionnaireResponse")},
        optional={
            "status": json_values,
            "questionnaire": json_values,
            "authored": json_values,
            "item": json_values,
            "subject": json_values,
        },
    ),
    st.one_of(
        st.none(),
        st.fixed_dictionaries(
            {"resourceType": st.just("Questionnaire")},
            optional={"item": json_values, "url": json_values, "version": json_values},
        ),
    ),
)
def test_generated_responses_and_questionnaires(response: Any, questionnaire: Any) -> None:
    count("engine/hypothesis")
    where = tag("engine/hypothesis")
    assert all(
        isinstance(f, ResponseFinding) for f in validate_response(response, questionnaire, now=NOW)
    ), where
    if questionnaire is not None:
        check_questionnaire(questionnaire)
    _summarise_and_render(response, questionnaire, where)


def test_report_from_mutated_ehr_records(catalog: Any) -> None:
    from rejection_fhir.report import build_report, render_html
    from tests.unit.report.records import course_of_care

    name = "report/records"
    clinic = course_of_care(catalog)
    kinds = {
        "observations": [r for r in clinic.resources if r.get("resourceType") == "Observation"],
        "documents": [r for r in clinic.resources if r.get("resourceType") == "DocumentReference"],
        "flags": [r for r in clinic.resources if r.get("resourceType") == "Flag"],
    }
    for case in range(REPORT_CASES):
        rng = rng_for(name, case)
        mutator = Mutator(rng, max_huge=20_000)
        records = {kind: list(found) for kind, found in kinds.items()}
        for _ in range(rng.randint(1, 3)):
            kind = rng.choice(list(records))
            if records[kind]:
                i = rng.randrange(len(records[kind]))
                mutated = mutator.mutate(records[kind][i])
                if isinstance(mutated, dict):  # a search only ever yields JSON objects
                    records[kind][i] = mutated
        report = build_report("p1", generated_at=NOW, **records)
        html = render_html(report)
        assert html.startswith("<!DOCTYPE html>") or html.lower().startswith("<!doctype html>"), (
            tag(name, case)
        )
        count(name)
