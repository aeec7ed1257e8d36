"""enableWhen: every operator over every answer type, enableBehavior, and where answers are looked up."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from rejection_fhir.response import compile_questionnaire, validate_response
from rejection_fhir.response.enablewhen import EnableWhenEvaluator, root_chain
from tests.unit.response.helpers import answered, codes, tiny_questionnaire, tiny_response

Json = dict[str, Any]

ITEM_TYPE = {
    "answerBoolean": "boolean",
    "answerDecimal": "decimal",
    "answerInteger": "integer",
    "answerDate": "date",
    "answerDateTime": "dateTime",
    "answerTime": "time",
    "answerString": "string",
    "answerCoding": "choice",
    "answerQuantity": "quantity",
    "answerReference": "reference",
}


def enabled(
    conditions: list[Json], *response_items: Json, behavior: str | None = None
) -> bool | None:
    """Whether item "dep" is enabled, given its conditions and the response's items."""
    first = conditions[0]
    answer_key = next(key for key in first if key.startswith("answer"))
    source = {"linkId": "source", "type": ITEM_TYPE.get(answer_key, "boolean")}
    dependent: Json = {"linkId": "dep", "type": "string", "enableWhen": conditions}
    if behavior:
        dependent["enableBehavior"] = behavior
    other = {"linkId": "other", "type": "integer"}
    q = compile_questionnaire(tiny_questionnaire(source, other, dependent))
    r = tiny_response(*response_items)
    return EnableWhenEvaluator(q).enabled(q.by_link_id["dep"], root_chain(r))


def when(operator: str, **answer: Any) -> Json:
    return {"question": "source", "operator": operator, **answer}


def source(*values: Json) -> Json:
    return answered("source", *values)


KG = {"system": "http://unitsofmeasure.org", "code": "kg", "unit": "kg"}
SAD = {"system": "http://clinic.test/emotion", "code": "sad"}

# fmt: off
OPERATOR_CASES = [
    # (condition answer, operator, response value, expected)
    ({"answerInteger": 5}, "=", {"valueInteger": 5}, True),
    ({"answerInteger": 5}, "=", {"valueInteger": 7}, False),
    ({"answerInteger": 5}, "!=", {"valueInteger": 7}, True),
    ({"answerInteger": 5}, "!=", {"valueInteger": 5}, False),
    ({"answerInteger": 5}, ">", {"valueInteger": 7}, True),
    ({"answerInteger": 5}, ">", {"valueInteger": 5}, False),
    ({"answerInteger": 5}, "<", {"valueInteger": 4}, True),
    ({"answerInteger": 5}, "<", {"valueInteger": 5}, False),
    ({"answerInteger": 5}, ">=", {"valueInteger": 5}, True),
    ({"answerInteger": 5}, ">=", {"valueInteger": 4}, False),
    ({"answerInteger": 5}, "<=", {"valueInteger": 5}, True),
    ({"answerInteger": 5}, "<=", {"valueInteger": 6}, False),
    ({"answerDecimal": 4.5}, "<", {"valueDecimal": 4.25}, True),
    ({"answerDecimal": 0.3}, "=", {"valueDecimal": 0.3}, True),
    ({"answerDecimal": 5}, "=", {"valueInteger": 5}, True),  # integer and decimal compare as numbers
    ({"answerBoolean": True}, "=", {"valueBoolean": True}, True),
    ({"answerBoolean": True}, "=", {"valueBoolean": False}, False),
    ({"answerBoolean": True}, "!=", {"valueBoolean": False}, True),
    ({"answerBoolean": False}, ">", {"valueBoolean": True}, False),  # booleans have no order
    ({"answerDate": "2024-06-01"}, ">", {"valueDate": "2024-06-02"}, True),
    ({"answerDate": "2024-06-01"}, "<=", {"valueDate": "2024-06-01"}, True),
    ({"answerDate": "2024-06-01"}, ">=", {"valueDate": "2024-05-31"}, False),
    ({"answerDate": "2024-06-01"}, "=", {"valueDate": "2024-06"}, False),  # a month is not a day
    ({"answerDate": "2024-06-01"}, "<", {"valueDate": "2024-06"}, False),  # nor before it
    ({"answerDate": "2024-06-01"}, "!=", {"valueDate": "2024-06"}, True),
    ({"answerDate": "2024-06-01"}, ">", {"valueDate": "2024-07"}, True),  # July is after either way
    ({"answerDateTime": "2024-06-01T10:00:00Z"}, "=", {"valueDateTime": "2024-06-01T12:00:00+02:00"}, True),
    ({"answerDateTime": "2024-06-01T10:00:00Z"}, "<", {"valueDateTime": "2024-06-01T10:00:00.5Z"}, False),
    ({"answerDateTime": "2024-06-01T10:00:00Z"}, ">", {"valueDateTime": "2024-06-01T10:00:00.5Z"}, True),
    ({"answerTime": "06:00:00"}, "<", {"valueTime": "05:30:00"}, True),
    ({"answerTime": "06:00:00"}, "=", {"valueTime": "06:00:00"}, True),
    ({"answerString": "b"}, "=", {"valueString": "b"}, True),
    ({"answerString": "b"}, "<", {"valueString": "a"}, True),
    ({"answerString": "b"}, "!=", {"valueString": "B"}, True),
    ({"answerCoding": SAD}, "=", {"valueCoding": {**SAD, "display": "Sad"}}, True),
    ({"answerCoding": SAD}, "=", {"valueCoding": {"system": "http://other.test", "code": "sad"}}, False),
    ({"answerCoding": {"code": "sad"}}, "=", {"valueCoding": SAD}, True),  # no system: any system
    ({"answerCoding": SAD}, "!=", {"valueCoding": {**SAD, "code": "angry"}}, True),
    ({"answerCoding": SAD}, ">", {"valueCoding": SAD}, False),  # codes have no order
    ({"answerQuantity": {"value": 5, **KG}}, ">", {"valueQuantity": {"value": 7, **KG}}, True),
    ({"answerQuantity": {"value": 5, **KG}}, "=", {"valueQuantity": {"value": 5.0, **KG}}, True),
    ({"answerQuantity": {"value": 5, **KG}}, ">", {"valueQuantity": {"value": 70, "unit": "lb"}}, False),
    ({"answerReference": {"reference": "Practitioner/1"}}, "=", {"valueReference": {"reference": "Practitioner/1"}}, True),
    ({"answerReference": {"reference": "Practitioner/1"}}, "!=", {"valueReference": {"reference": "Practitioner/2"}}, True),
    ({"answerInteger": 5}, "=", {"valueString": "5"}, False),  # another type never matches
]
# fmt: on


@pytest.mark.parametrize(("condition", "operator", "value", "expected"), OPERATOR_CASES)
def test_operator(condition: Json, operator: str, value: Json, expected: bool) -> None:
    assert enabled([when(operator, **condition)], source(value)) is expected


@pytest.mark.parametrize(
    ("present", "wanted", "expected"),
    [(True, True, True), (False, True, False), (True, False, False), (False, False, True)],
)
def test_exists(present: bool, wanted: bool, expected: bool) -> None:
    items = [source({"valueInteger": 1})] if present else []
    assert enabled([when("exists", answerBoolean=wanted)], *items) is expected


def test_an_item_without_answers_does_not_exist() -> None:
    assert enabled([when("exists", answerBoolean=True)], {"linkId": "source"}) is False


def test_with_no_answer_only_not_equal_holds() -> None:
    # R4: "!=" is "no answer has a value equal to ..." - true when nothing was answered.
    assert enabled([when("!=", answerInteger=5)]) is True
    for operator in ("=", ">", "<", ">=", "<="):
        assert enabled([when(operator, answerInteger=5)]) is False, operator


def test_any_answer_of_a_repeating_question_can_satisfy() -> None:
    values = ({"valueInteger": 1}, {"valueInteger": 9})
    assert enabled([when(">", answerInteger=5)], source(*values)) is True
    assert enabled([when("=", answerInteger=1)], source(*values)) is True
    assert enabled([when("!=", answerInteger=1)], source(*values)) is False


BOTH = [when(">", answerInteger=5), {"question": "other", "operator": "=", "answerInteger": 1}]


@pytest.mark.parametrize(
    ("behavior", "source_value", "other_value", "expected"),
    [
        ("all", 7, 1, True),
        ("all", 7, 2, False),
        ("any", 7, 2, True),
        ("any", 3, 2, False),
        ("any", 3, 1, True),
        (None, 7, 2, False),  # several conditions without enableBehavior: all must hold
        (None, 7, 1, True),
    ],
)
def test_enable_behavior(
    behavior: str | None, source_value: int, other_value: int, expected: bool
) -> None:
    items = [
        source({"valueInteger": source_value}),
        answered("other", {"valueInteger": other_value}),
    ]
    assert enabled(BOTH, *items, behavior=behavior) is expected


def test_a_malformed_condition_is_ignored() -> None:
    broken = {"question": "source", "operator": "~", "answerInteger": 5}
    assert enabled([broken], source({"valueInteger": 1})) is True
    assert enabled([broken, when("=", answerInteger=2)], source({"valueInteger": 1})) is False


def test_answers_of_a_disabled_item_count_as_absent(now: datetime) -> None:
    q = tiny_questionnaire(
        {"linkId": "a", "type": "boolean"},
        {
            "linkId": "b",
            "type": "string",
            "enableWhen": [{"question": "a", "operator": "=", "answerBoolean": True}],
        },
        {
            "linkId": "c",
            "type": "string",
            "enableWhen": [{"question": "b", "operator": "exists", "answerBoolean": True}],
        },
    )
    r = tiny_response(
        answered("a", {"valueBoolean": False}),
        answered("b", {"valueString": "left over"}),
        answered("c", {"valueString": "also left over"}),
    )
    findings = validate_response(r, q, now=now)
    assert [(f.code, f.path) for f in findings] == [("disabled-item", "b"), ("disabled-item", "c")]


def test_a_cycle_in_the_questionnaire_does_not_hang() -> None:
    q = compile_questionnaire(
        tiny_questionnaire(
            {
                "linkId": "x",
                "type": "string",
                "enableWhen": [{"question": "y", "operator": "exists", "answerBoolean": True}],
            },
            {
                "linkId": "y",
                "type": "string",
                "enableWhen": [{"question": "x", "operator": "exists", "answerBoolean": True}],
            },
        )
    )
    r = tiny_response(answered("x", {"valueString": "a"}), answered("y", {"valueString": "b"}))
    assert EnableWhenEvaluator(q).enabled(q.by_link_id["x"], root_chain(r)) in (True, False)


# ---------------------------------------------------------------------- context

REPEATING = tiny_questionnaire(
    {
        "linkId": "episode",
        "type": "group",
        "repeats": True,
        "item": [
            {
                "linkId": "kind",
                "type": "choice",
                "answerOption": [
                    {"valueCoding": {"code": "other"}},
                    {"valueCoding": {"code": "work"}},
                ],
            },
            {
                "linkId": "kind-other",
                "type": "string",
                "required": True,
                "enableWhen": [
                    {"question": "kind", "operator": "=", "answerCoding": {"code": "other"}}
                ],
            },
        ],
    },
    {
        "linkId": "any-other",
        "type": "string",
        "enableWhen": [{"question": "kind", "operator": "=", "answerCoding": {"code": "other"}}],
    },
)


def episode(kind: str, other: str | None = None) -> Json:
    items = [answered("kind", {"valueCoding": {"code": kind}})]
    if other is not None:
        items.append(answered("kind-other", {"valueString": other}))
    return {"linkId": "episode", "item": items}


def test_inside_a_repeating_group_each_instance_looks_at_its_own_answers(now: datetime) -> None:
    ok = tiny_response(episode("work"), episode("other", "a wedding"))
    assert validate_response(ok, REPEATING, now=now) == []

    crossed = tiny_response(episode("work", "a wedding"), episode("other"))
    assert [(f.code, f.path) for f in validate_response(crossed, REPEATING, now=now)] == [
        ("disabled-item", "episode[0]/kind-other"),
        ("required-missing", "episode[1]/kind-other"),
    ]


def test_outside_the_group_any_instance_counts(now: datetime) -> None:
    r = tiny_response(
        episode("work"), episode("other", "a wedding"), answered("any-other", {"valueString": "x"})
    )
    assert validate_response(r, REPEATING, now=now) == []
    r = tiny_response(episode("work"), answered("any-other", {"valueString": "x"}))
    assert codes(validate_response(r, REPEATING, now=now)) == ["disabled-item"]


def test_a_question_under_an_answer_sees_its_parent_question_answers(now: datetime) -> None:
    q = tiny_questionnaire(
        {
            "linkId": "symptom",
            "type": "choice",
            "repeats": True,
            "answerOption": [
                {"valueCoding": {"code": "pain"}},
                {"valueCoding": {"code": "nausea"}},
            ],
            "item": [
                {
                    "linkId": "where",
                    "type": "string",
                    "enableWhen": [
                        {"question": "symptom", "operator": "=", "answerCoding": {"code": "pain"}}
                    ],
                }
            ],
        }
    )
    r = tiny_response(
        {
            "linkId": "symptom",
            "answer": [
                {"valueCoding": {"code": "nausea"}},
                {
                    "valueCoding": {"code": "pain"},
                    "item": [answered("where", {"valueString": "head"})],
                },
            ],
        }
    )
    assert validate_response(r, q, now=now) == []
