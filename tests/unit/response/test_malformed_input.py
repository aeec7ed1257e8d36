"""Whatever arrives, validate_response answers with findings and summarize with a summary
(or one InputError): never a traceback."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rejection_fhir.errors import InputError
from rejection_fhir.response import (
    ResponseFinding,
    render_markdown,
    render_text,
    render_xhtml,
    summarize,
    validate_response,
)
from tests.unit.response.conftest import load

QUESTIONNAIRE = load("kitchen-sink.questionnaire.json")
LINK_IDS = [
    "event",
    "event-date",
    "event-what",
    "event-who",
    "event-channel",
    "emotions",
    "emotion",
    "intensity",
    "shame-source",
    "thoughts",
    "hurt-self",
    "hurt-plan",
    "safety-check",
    "weight-change",
    "mood",
    "rating",
    "intro",
    "nope",
]
VALUE_KEYS = [
    "valueBoolean",
    "valueInteger",
    "valueDecimal",
    "valueDate",
    "valueDateTime",
    "valueTime",
    "valueString",
    "valueUri",
    "valueCoding",
    "valueQuantity",
    "valueReference",
    "valueAttachment",
    "valueOther",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["2024-02-30", "2024-06-01T10:00:00Z", "10:00:00", "<b>&", "low", "sad"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(["code", "system", "display", "value", "unit", "reference", "x"]),
            inner,
            max_size=3,
        ),
    ),
    max_leaves=6,
)


def _answer(items: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        json_values,
        st.fixed_dictionaries({}, optional={key: json_values for key in VALUE_KEYS[:3]}),
        st.builds(
            lambda key, value, children: {key: value, **({"item": children} if children else {})},
            st.sampled_from(VALUE_KEYS),
            json_values,
            st.one_of(st.none(), items),
        ),
    )


items = st.recursive(
    st.lists(
        st.one_of(json_values, st.fixed_dictionaries({"linkId": st.sampled_from(LINK_IDS)})),
        max_size=3,
    ),
    lambda children: st.lists(
        st.one_of(
            json_values,
            st.fixed_dictionaries(
                {"linkId": st.one_of(st.sampled_from(LINK_IDS), json_values)},
                optional={
                    "answer": st.one_of(json_values, st.lists(_answer(children), max_size=3)),
                    "item": st.one_of(json_values, children),
                    "text": json_values,
                },
            ),
        ),
        max_size=4,
    ),
    max_leaves=12,
)

responses = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"resourceType": st.just("QuestionnaireResponse")},
        optional={
            "questionnaire": st.one_of(
                st.just("http://clinic.test/fhir/Questionnaire/kitchen-sink|1.2.0"), json_values
            ),
            "status": st.one_of(st.sampled_from(["completed", "in-progress"]), json_values),
            "authored": st.one_of(st.just("2025-01-01T10:00:00Z"), json_values),
            "subject": json_values,
            "item": st.one_of(json_values, items),
        },
    ),
)

NOW = datetime(2025, 6, 1, tzinfo=UTC)
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(responses)
def test_validate_response_only_ever_returns_findings(response: Any) -> None:
    findings = validate_response(response, QUESTIONNAIRE, now=NOW)
    assert all(isinstance(finding, ResponseFinding) for finding in findings)
    assert validate_response(response, None, now=NOW) is not None


@FAST
@given(responses)
def test_summarize_and_render_or_one_input_error(response: Any) -> None:
    try:
        summary = summarize(response, QUESTIONNAIRE)
    except InputError:
        assert not (
            isinstance(response, dict) and response.get("resourceType") == "QuestionnaireResponse"
        )
        return
    render_text(summary)
    render_markdown(summary)
    ET.fromstring(render_xhtml(summary))
