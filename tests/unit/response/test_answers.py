"""resolve_response: typed values, displays, units, weights and paths for every answer type."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from rejection_fhir.errors import ExitCode, InputError
from rejection_fhir.response import ResolvedAnswer, resolve_response
from tests.unit.response.helpers import answered, item, tiny_questionnaire, tiny_response

Json = dict[str, Any]


def by_path(response: Json, questionnaire: Json | None) -> dict[str, ResolvedAnswer]:
    resolved = resolve_response(response, questionnaire)
    return {answer.path: answer for it in resolved.walk() for answer in it.answers}


# fmt: off
EXPECTED = [
    # (path, value_type, display, unit, weight)
    ("event/event-date", "date", "2025-03-10", None, None),
    ("event/event-time", "time", "21:15:00", None, None),
    ("event/event-logged", "dateTime", "2025-03-10T21:40:00+01:00", None, None),
    ("event/event-what", "string", "He said he needed space & didn't call back.", None, None),
    ("event/event-who", "Coding", "Friend", None, None),  # answerOption display
    ("event/event-channel", "Coding", "Social media", None, Decimal(2)),  # contained compose concept
    ("event/event-support[0]", "Coding", "A friend", None, None),  # contained expansion
    ("event/event-support[1]", "Coding", "My therapist", None, Decimal(3)),
    ("event/event-link", "uri", "https://messages.test/thread/17", None, None),
    ("emotions[0]/emotion", "Coding", "Sad", None, Decimal(1)),  # ordinalValue on answerOption
    ("emotions[0]/intensity", "integer", "7 points", "points", None),  # questionnaire-unit
    ("emotions[1]/emotion", "Coding", "Ashamed", None, Decimal(3)),
    ("emotions[1]/intensity", "integer", "5 points", "points", None),
    ("emotions[1]/shame-source", "string", "That I cared so much", None, None),
    ("thoughts[0]", "string", "Nobody wants me around", None, None),
    ("thoughts[1]", "string", "Maybe it was about timing", None, None),
    ("hurt-self", "boolean", "No", None, None),
    ("sleep-hours", "decimal", "5.5 hours", "hours", None),
    ("weight-change", "Quantity", "-1.5 kg", "kg", None),
    ("journal-photo", "Attachment", "Journal page", None, None),
    ("therapist", "Reference", "Dr. Rivera", None, None),
    ("mood", "Coding", "Low", None, Decimal(0)),  # itemWeight on the option's Coding
    ("rating", "integer", "4", None, None),
    ("worst-time", "string", "Evening", None, None),
    ("check-in", "time", "18:00:00", None, None),
    ("follow-up/low-mood-support", "string", "A walk with my sister", None, None),
    ("follow-up/hard-day", "string", "Seeing his photos online", None, None),
]
# fmt: on


def test_every_answer_of_the_kitchen_sink(response: Json, questionnaire: Json) -> None:
    answers = by_path(response, questionnaire)
    assert list(answers) == [case[0] for case in EXPECTED]
    for path, value_type, display, unit, weight in EXPECTED:
        answer = answers[path]
        assert (answer.value_type, answer.display, answer.unit, answer.weight) == (
            value_type,
            display,
            unit,
            weight,
        ), path


def test_values_are_the_typed_values_sent(response: Json, questionnaire: Json) -> None:
    answers = by_path(response, questionnaire)
    assert answers["emotions[0]/intensity"].value == 7
    assert answers["hurt-self"].value is False
    assert answers["sleep-hours"].value == 5.5
    assert answers["mood"].value == {
        "system": "http://clinic.test/fhir/CodeSystem/mood",
        "code": "low",
    }
    assert (answers["mood"].system, answers["mood"].code) == (
        "http://clinic.test/fhir/CodeSystem/mood",
        "low",
    )
    assert answers["therapist"].value["reference"] == "Practitioner/t1"


def test_items_carry_their_questionnaire_definition(response: Json, questionnaire: Json) -> None:
    resolved = resolve_response(response, questionnaire)
    event = resolved.items[0]
    assert (event.link_id, event.path, event.type, event.label) == (
        "event",
        "event",
        "group",
        "What happened",
    )
    assert [child.link_id for child in event.items][:2] == ["event-date", "event-time"]
    intensity = resolved.find("intensity")
    assert [i.path for i in intensity] == ["emotions[0]/intensity", "emotions[1]/intensity"]
    assert intensity[0].definition is not None and intensity[0].definition.max_value == (
        "valueInteger",
        10,
    )
    assert [i.index for i in resolved.find("emotions")] == [0, 1]


@pytest.mark.parametrize(
    ("coding", "display"),
    [
        (
            {
                "system": "http://clinic.test/fhir/CodeSystem/emotion",
                "code": "sad",
                "display": "Blue",
            },
            "Sad",
        ),
        ({"code": "sad"}, "Sad"),  # no system: matched by code
        ({"system": "http://other.test", "code": "sad", "display": "Blue"}, "Blue"),
        ({"system": "http://other.test", "code": "sad"}, "sad"),
        ({"display": "Typed in"}, "Typed in"),
        ({}, "(no code)"),
    ],
)
def test_coding_display_prefers_the_questionnaire(
    coding: Json, display: str, response: Json, questionnaire: Json
) -> None:
    item(response, "emotions", "emotion")["answer"] = [{"valueCoding": coding}]
    assert by_path(response, questionnaire)["emotions[0]/emotion"].display == display


def test_an_option_without_display_shows_its_code(response: Json, questionnaire: Json) -> None:
    item(response, "event", "event-who")["answer"] = [
        {
            "valueCoding": {
                "system": "http://clinic.test/fhir/CodeSystem/relation",
                "code": "colleague",
            }
        }
    ]
    assert by_path(response, questionnaire)["event/event-who"].display == "colleague"


def test_a_value_set_concept_without_display_shows_its_code(
    response: Json, questionnaire: Json
) -> None:
    item(response, "event", "event-channel")["answer"] = [
        {"valueCoding": {"system": "http://clinic.test/fhir/CodeSystem/channel", "code": "ghosted"}}
    ]
    assert by_path(response, questionnaire)["event/event-channel"].display == "ghosted"


def test_a_weight_on_the_answer_coding_counts_when_the_questionnaire_has_none(
    response: Json, questionnaire: Json
) -> None:
    weighted = {
        "system": "http://clinic.test/fhir/CodeSystem/relation",
        "code": "neighbour",
        "display": "Neighbour",
        "extension": [
            {"url": "http://hl7.org/fhir/StructureDefinition/ordinalValue", "valueDecimal": 1.5}
        ],
    }
    item(response, "event", "event-who")["answer"] = [{"valueCoding": weighted}]
    answer = by_path(response, questionnaire)["event/event-who"]
    assert (answer.display, answer.weight) == ("Neighbour", Decimal("1.5"))


def test_a_quantity_without_unit_takes_the_item_unit(response: Json, questionnaire: Json) -> None:
    item(response, "weight-change")["answer"] = [{"valueQuantity": {"value": 2}}]
    answer = by_path(response, questionnaire)["weight-change"]
    assert (answer.display, answer.unit) == ("2 kg", "kg")


def test_without_the_questionnaire_texts_come_from_the_response(response: Json) -> None:
    resolved = resolve_response(response)
    event = resolved.items[0]
    assert (event.label, event.type, event.known) == ("What happened", None, False)
    answers = by_path(response, None)
    assert answers["mood"].display == "low"  # no option display to look up
    assert answers["emotions[1]/emotion"].display == "Ashamed"  # the response's own display
    assert answers["sleep-hours"].display == "5.5"
    assert resolved.items[1].path == "emotions"  # nothing says it repeats...
    assert resolved.items[2].path == "emotions[1]"  # ...but the second is told apart


def test_unknown_items_are_kept_with_their_own_text(response: Json, questionnaire: Json) -> None:
    response["item"].append(
        {"linkId": "extra", "text": "Anything else?", "answer": [{"valueString": "no"}]}
    )
    extra = resolve_response(response, questionnaire).items[-1]
    assert (extra.label, extra.known, extra.displays) == ("Anything else?", False, ("no",))


def test_questions_nested_under_repeating_answers() -> None:
    q = tiny_questionnaire(
        {
            "linkId": "symptom",
            "type": "open-choice",
            "repeats": True,
            "item": [{"linkId": "detail", "type": "string"}],
        }
    )
    r = tiny_response(
        {
            "linkId": "symptom",
            "answer": [
                {
                    "valueString": "headache",
                    "item": [answered("detail", {"valueString": "mornings"})],
                },
                {
                    "valueString": "nausea",
                    "item": [answered("detail", {"valueString": "after meals"})],
                },
            ],
        }
    )
    resolved = resolve_response(r, q)
    assert [i.path for i in resolved.find("detail")] == ["symptom[0]/detail", "symptom[1]/detail"]
    [symptom] = resolved.items
    assert [a.items[0].displays for a in symptom.answers] == [("mornings",), ("after meals",)]


def test_find_agrees_with_walk(response: Json, questionnaire: Json) -> None:
    walked = list(resolve_response(response, questionnaire).walk())
    resolved = resolve_response(response, questionnaire)  # a fresh one: find before items
    for link_id in {it.link_id for it in walked}:
        assert resolved.find(link_id) == tuple(it for it in walked if it.link_id == link_id)
    assert resolved.find("no-such-item") == ()
    assert resolved.first_answer("intensity") is not None
    assert resolved.first_answer("intensity").display == "7 points"  # type: ignore[union-attr]
    assert [a.display for a in resolved.answers("thoughts")] == [
        "Nobody wants me around",
        "Maybe it was about timing",
    ]


def test_response_metadata(response: Json, questionnaire: Json) -> None:
    resolved = resolve_response(response, questionnaire)
    assert (resolved.id, resolved.status, resolved.authored, resolved.subject) == (
        "ks-1",
        "completed",
        "2025-03-14T19:30:00+01:00",
        "Patient/p1",
    )
    assert resolved.title == "Looking back at a rejection"
    assert resolve_response(response).title == response["questionnaire"]


@pytest.mark.parametrize(
    "not_a_response",
    [None, [], "QuestionnaireResponse", {"resourceType": "Questionnaire"}, {"item": []}],
)
def test_not_a_response_is_an_input_error(not_a_response: Any) -> None:
    with pytest.raises(InputError) as raised:
        resolve_response(not_a_response)
    assert raised.value.exit_code is ExitCode.INPUT
    assert "QuestionnaireResponse" in str(raised.value)


def test_broken_parts_are_skipped_or_shown_as_unreadable(questionnaire: Json) -> None:
    r = tiny_response(
        "not an item",  # type: ignore[arg-type]
        {"text": "no linkId"},
        {"linkId": "mood", "answer": "low"},
        {"linkId": "rating", "answer": [{"valueInteger": "4"}]},
        {"linkId": "thoughts", "answer": [{}, 7, {"valueString": "kept"}]},
        url="http://clinic.test/fhir/Questionnaire/kitchen-sink",
    )
    resolved = resolve_response(r, questionnaire)
    # An item without linkId is kept, named by its position, so nothing under it vanishes.
    assert [(i.link_id, i.path, i.displays) for i in resolved.items][:1] == [("", "[1]", ())]
    assert [(i.link_id, i.displays) for i in resolved.items][1:] == [
        ("mood", ()),
        ("rating", ("(unreadable answer)",)),
        ("thoughts", ("(no value)", "kept")),
    ]
