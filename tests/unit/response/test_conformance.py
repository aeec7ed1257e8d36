"""validate_response: each check the HL7 validator makes, with its path and code."""

from __future__ import annotations

import ast
import copy
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from rejection_fhir.response import ResponseFinding, has_errors, validate_response
from tests.unit.response.helpers import (
    CANONICAL,
    answered,
    codes,
    item,
    only,
    remove,
    tiny_questionnaire,
    tiny_response,
)

Json = dict[str, Any]


def check(response: Any, questionnaire: Any, now: datetime, **kwargs: Any) -> list[ResponseFinding]:
    return validate_response(response, questionnaire, now=now, **kwargs)


def test_the_complete_response_is_valid(response: Json, questionnaire: Json, now: datetime) -> None:
    assert check(response, questionnaire, now) == []


# ---------------------------------------------------------------------- the resource


@pytest.mark.parametrize("not_a_response", [None, "{}", 42, ["QuestionnaireResponse"]])
def test_a_response_that_is_not_an_object_is_one_error(
    not_a_response: Any, questionnaire: Json, now: datetime
) -> None:
    [finding] = check(not_a_response, questionnaire, now)
    assert (finding.severity, finding.path, finding.code) == ("error", "", "not-an-object")


def test_wrong_resource_type(questionnaire: Json, now: datetime) -> None:
    [finding] = check({"resourceType": "Patient", "id": "p1"}, questionnaire, now)
    assert finding.code == "wrong-resource-type"
    assert "'Patient'" in finding.message


@pytest.mark.parametrize(
    ("status", "code", "severity"),
    [
        (None, "missing-status", "error"),
        ("done", "invalid-status", "error"),
        ("entered-in-error", "entered-in-error", "information"),
    ],
)
def test_status(
    status: str | None, code: str, severity: str, response: Json, questionnaire: Json, now: datetime
) -> None:
    if status is None:
        del response["status"]
    else:
        response["status"] = status
    finding = only(check(response, questionnaire, now), code)
    assert (finding.severity, finding.path) == (severity, "")


def test_no_questionnaire_is_an_error(response: Json, now: datetime) -> None:
    [finding] = check(response, None, now)
    assert finding.code == "questionnaire-not-found"
    assert CANONICAL in finding.message


def test_response_without_questionnaire_canonical(
    response: Json, questionnaire: Json, now: datetime
) -> None:
    del response["questionnaire"]
    assert codes(check(response, questionnaire, now)) == ["questionnaire-missing"]


def test_something_else_passed_as_questionnaire(response: Json, now: datetime) -> None:
    assert codes(check(response, {"resourceType": "ValueSet"}, now)) == ["questionnaire-invalid"]


@pytest.mark.parametrize(
    ("canonical", "matches"),
    [
        (CANONICAL, True),  # no version: any version of this url will do
        (f"{CANONICAL}|1.2.0", True),
        (f"{CANONICAL}|1.3.0", False),
        ("http://clinic.test/fhir/Questionnaire/other|1.2.0", False),
    ],
)
def test_the_response_must_name_this_questionnaire(
    canonical: str, matches: bool, response: Json, questionnaire: Json, now: datetime
) -> None:
    response["questionnaire"] = canonical
    expected = [] if matches else ["questionnaire-mismatch"]
    assert codes(check(response, questionnaire, now)) == expected


def test_a_contained_questionnaire_is_found_without_being_passed(
    response: Json, questionnaire: Json, now: datetime
) -> None:
    contained = copy.deepcopy(questionnaire)
    contained["id"] = "q"
    response["contained"] = [contained]
    response["questionnaire"] = "#q"
    assert check(response, None, now) == []
    response["questionnaire"] = "#nope"
    assert codes(check(response, None, now)) == ["questionnaire-not-found"]


@pytest.mark.parametrize(
    ("authored", "code"),
    [
        ("yesterday", "invalid-authored"),
        ("2025-03-14T19:30:00", "invalid-authored"),  # a time needs a zone
        ("2025-07-01T00:00:00Z", "authored-in-future"),  # now is 2025-06-01
        ("2023-12-30T10:00:00Z", "outside-effective-period"),  # before 2024-01-01
        ("2031-01-02T10:00:00Z", "outside-effective-period"),  # after 2030-12-31
    ],
)
def test_authored(
    authored: str, code: str, response: Json, questionnaire: Json, now: datetime
) -> None:
    response["authored"] = authored
    if code == "outside-effective-period":
        now = datetime(2032, 1, 1, tzinfo=now.tzinfo)
    finding = only(check(response, questionnaire, now), code)
    assert finding.path == ""


def test_authored_on_the_first_day_somewhere_on_earth_is_inside_the_period(
    response: Json, questionnaire: Json, now: datetime
) -> None:
    # 2023-12-31T17:00Z is already 2024-01-01 in Sydney; the period's start has no zone.
    response["authored"] = "2024-01-01T03:00:00+10:00"
    assert check(response, questionnaire, now) == []


# ---------------------------------------------------------------------- structure

Mutation = Callable[[Json], None]


def _set(*link_ids: str, **fields: Any) -> Mutation:
    """Set fields (answer, item, text) on the item at ``link_ids``."""

    def mutate(response: Json) -> None:
        item(response, *link_ids).update(copy.deepcopy(fields))

    return mutate


def _append(*new_items: Any, under: tuple[str, ...] = ()) -> Mutation:
    def mutate(response: Json) -> None:
        parent = item(response, *under) if under else response
        parent["item"].extend(copy.deepcopy(list(new_items)))

    return mutate


def _move_mood_first(response: Json) -> None:
    mood = item(response, "mood")
    response["item"].remove(mood)
    response["item"].insert(0, mood)


def _duplicate_mood(response: Json) -> None:
    mood = item(response, "mood")
    response["item"].insert(response["item"].index(mood), copy.deepcopy(mood))


def _intensity_at_top(response: Json) -> None:
    response["item"].append({"linkId": "intensity", "answer": [{"valueInteger": 3}]})


def _hurt_self_yes_with_plan_but_no_check(response: Json) -> None:
    item(response, "hurt-self")["answer"] = [
        {
            "valueBoolean": True,
            "item": [{"linkId": "hurt-plan", "answer": [{"valueString": "x"}]}],
        }
    ]


SECRET = "SECRET-7731 my private words"


def link_ids(path: str) -> tuple[str, ...]:
    """``"emotions[0]/intensity"`` -> ``("emotions", "intensity")`` (first instances)."""
    return tuple(re.sub(r"\[\d+\]", "", path).split("/"))


def coding(system: str, code: str) -> dict[str, Any]:
    """A Coding from one of the kitchen sink's code systems."""
    return {"valueCoding": {"system": f"http://clinic.test/fhir/CodeSystem/{system}", "code": code}}


def text(value: str) -> dict[str, Any]:
    return {"valueString": value}


# fmt: off
STRUCTURE_CASES: list[tuple[str, Mutation, str, str]] = [
    # (case, mutation, code, path of the finding)
    ("root item not a list", lambda r: r.update(item={"linkId": "mood"}), "malformed", ""),
    ("group item not a list", _set("event", item="event-date"), "malformed", "event"),
    ("item not an object", _append("mood"), "malformed", ""),
    ("answer not a list", _set("mood", answer={"valueBoolean": True}), "malformed", "mood"),
    ("answer not an object", _set("mood", answer=["low"]), "malformed", "mood"),
    ("item without linkId", _append({"answer": [text(SECRET)]}), "missing-linkid", "[14]"),
    ("bad answer in a group without linkId", _append({"item": [{"linkId": "sleep-hours", "answer": [{"valueDecimal": 42}]}]}), "above-max-value", "[14]/sleep-hours"),
    ("empty answer list", _set("mood", answer=[]), "empty-list", "mood"),
    ("empty item list", _set("follow-up", item=[]), "empty-list", "follow-up"),
    ("empty item list under an answer", _set("hurt-self", answer=[{"valueBoolean": False, "item": []}]), "empty-list", "hurt-self"),
    ("empty item list in the response", lambda r: r.update(item=[]), "empty-list", ""),
    ("unknown linkId", _append({"linkId": "colour", "answer": [text(SECRET)]}), "unknown-linkid", "colour"),
    ("unknown nested linkId", _append({"linkId": "venue"}, under=("event",)), "unknown-linkid", "event/venue"),
    ("linkId at the wrong level", _intensity_at_top, "misplaced-item", "intensity"),
    ("items out of order", _move_mood_first, "item-order", "mood"),
    ("non-repeating item twice", _duplicate_mood, "too-many-items", "mood[1]"),
    ("two answers, not repeating", _set("mood", answer=[coding("mood", "low"), coding("mood", "ok")]), "too-many-answers", "mood[1]"),
    ("disabled in this group instance", _append({"linkId": "shame-source", "answer": [text(SECRET)]}, under=("emotions",)), "disabled-item", "emotions[0]/shame-source"),
    ("disabled under an answer", _set("hurt-self", answer=[{"valueBoolean": False, "item": [{"linkId": "hurt-plan", "answer": [text(SECRET)]}]}]), "disabled-item", "hurt-self/hurt-plan"),
    ("disabled by 'any' of two", _set("rating", answer=[{"valueInteger": 2}]), "disabled-item", "follow-up/hard-day"),
    ("required question removed", lambda r: remove(r, "event", "event-what"), "required-missing", "event/event-what"),
    ("required in 2nd group instance", lambda r: item(r, "emotions", instance=1)["item"].pop(1), "required-missing", "emotions[1]/intensity"),
    ("required group removed", lambda r: remove(r, "event"), "required-missing", "event"),
    ("required once enabled", _hurt_self_yes_with_plan_but_no_check, "required-missing", "safety-check"),
    ("required question, no answer", _set("event", "event-date", answer=[]), "required-missing", "event/event-date"),
    ("item text changed", _set("event", text="Something else"), "text-mismatch", "event"),
    ("group with answers", _set("event", answer=[text(SECRET)]), "group-has-answer", "event"),
    ("display with answers", _append({"linkId": "intro", "answer": [text(SECRET)]}), "display-has-answer", "intro"),
    ("display with items", _append({"linkId": "intro", "item": [{"linkId": "mood"}]}), "display-has-items", "intro"),
    ("question with items beside answers", _set("hurt-self", item=[{"linkId": "hurt-plan"}]), "question-has-items", "hurt-self"),
]
# fmt: on


@pytest.mark.parametrize(
    ("new_item", "says"),
    [
        (
            {"answer": [text(SECRET)]},
            "item 14 (0-based) has no linkId; the 1 answer(s) it holds cannot be placed in the "
            "Questionnaire and are shown under a group without a linkId.",
        ),
        ({"text": "nothing held"}, "item 14 (0-based) has no linkId."),
    ],
    ids=["holding an answer", "holding nothing"],
)
def test_an_item_without_link_id_says_what_it_holds(
    new_item: Json, says: str, response: Json, questionnaire: Json, now: datetime
) -> None:
    _append(new_item)(response)
    finding = only(check(response, questionnaire, now), "missing-linkid")
    assert (finding.path, finding.message) == ("[14]", says)


@pytest.mark.parametrize(
    ("mutation", "code", "path"),
    [case[1:] for case in STRUCTURE_CASES],
    ids=[case[0] for case in STRUCTURE_CASES],
)
def test_structure(
    mutation: Mutation, code: str, path: str, response: Json, questionnaire: Json, now: datetime
) -> None:
    mutation(response)
    findings = check(response, questionnaire, now)
    finding = only(findings, code)
    assert finding.path == path
    assert has_errors(findings) == (finding.severity == "error")


def test_required_is_only_enforced_on_finished_responses(
    response: Json, questionnaire: Json, now: datetime
) -> None:
    remove(response, "event", "event-what")
    for status in ("in-progress", "stopped"):
        response["status"] = status
        assert check(response, questionnaire, now) == []
    response["status"] = "amended"
    assert codes(check(response, questionnaire, now)) == ["required-missing"]


def test_a_disabled_required_item_may_be_missing(
    response: Json, questionnaire: Json, now: datetime
) -> None:
    # safety-check is required but only enabled when hurt-self is true; it is false here.
    assert item(response, "hurt-self")["answer"] == [{"valueBoolean": False}]
    with pytest.raises(KeyError):
        item(response, "safety-check")
    assert check(response, questionnaire, now) == []


def test_a_repeated_group_keeps_its_findings_apart(
    response: Json, questionnaire: Json, now: datetime
) -> None:
    item(response, "emotions", "intensity", instance=0)["answer"] = [{"valueInteger": 11}]
    item(response, "emotions", instance=1)["item"][1]["answer"] = [{"valueInteger": -1}]
    findings = check(response, questionnaire, now)
    assert [(f.code, f.path) for f in findings] == [
        ("above-max-value", "emotions[0]/intensity"),
        ("below-min-value", "emotions[1]/intensity"),
    ]


# ---------------------------------------------------------------------- answers

# fmt: off
ANSWER_CASES: list[tuple[str, str, Any, str, str]] = [
    # (case, path of the answer, answer, code, severity)
    ("no value", "mood", {}, "answer-missing-value", "error"),
    ("two values", "mood", {"valueString": SECRET, "valueInteger": 1}, "answer-multiple-values", "error"),
    ("not an R4 type", "mood", {"valueSecret": SECRET}, "answer-type", "error"),
    ("string for integer", "emotions[0]/intensity", text("7"), "answer-type", "error"),
    ("string for choice", "mood", text(SECRET), "answer-type", "error"),
    ("integer for text", "event/event-what", {"valueInteger": 3}, "answer-type", "error"),
    ("date for dateTime", "event/event-logged", {"valueDate": "2025-03-10"}, "answer-type", "error"),
    ("coding for url", "event/event-link", {"valueCoding": {"code": "x"}}, "answer-type", "error"),
    ("fractional integer", "emotions[0]/intensity", {"valueInteger": 7.5}, "answer-invalid-value", "error"),
    ("boolean as integer", "emotions[0]/intensity", {"valueInteger": True}, "answer-invalid-value", "error"),
    ("integer beyond 32 bits", "emotions[0]/intensity", {"valueInteger": 2**31}, "answer-invalid-value", "error"),
    ("yes for boolean", "hurt-self", {"valueBoolean": "yes"}, "answer-invalid-value", "error"),
    ("no such day", "event/event-date", {"valueDate": "2025-02-30"}, "answer-invalid-value", "error"),
    ("dateTime without zone", "event/event-logged", {"valueDateTime": "2025-03-10T21:40:00"}, "answer-invalid-value", "error"),
    ("hour 25", "event/event-time", {"valueTime": "25:00:00"}, "answer-invalid-value", "error"),
    ("blank string", "event/event-what", text("   "), "answer-invalid-value", "error"),
    ("uri with spaces", "event/event-link", {"valueUri": "my link"}, "answer-invalid-value", "error"),
    ("empty coding", "mood", {"valueCoding": {}}, "answer-invalid-value", "error"),
    ("NaN decimal", "sleep-hours", {"valueDecimal": float("nan")}, "answer-invalid-value", "error"),
    ("text quantity", "weight-change", {"valueQuantity": {"value": "two", "unit": "kg"}}, "answer-invalid-value", "error"),
    ("empty reference", "therapist", {"valueReference": {}}, "answer-invalid-value", "error"),
    ("code not offered", "mood", coding("mood", "ecstatic"), "answer-not-in-options", "error"),
    ("code from another system", "mood", {"valueCoding": {"system": "http://other.test", "code": "low"}}, "answer-not-in-options", "error"),
    ("open-choice code not offered", "event/event-who", coding("relation", "stranger"), "answer-not-in-options", "error"),
    ("integer not offered", "rating", {"valueInteger": 9}, "answer-not-in-options", "error"),
    ("string not offered", "worst-time", text(SECRET), "answer-not-in-options", "error"),
    ("time not offered", "check-in", {"valueTime": "12:00:00"}, "answer-not-in-options", "error"),
    ("code without system", "mood", {"valueCoding": {"code": "low"}}, "coding-system-missing", "warning"),
    ("code not in contained ValueSet", "event/event-channel", coding("channel", "carrier-pigeon"), "answer-not-in-valueset", "error"),
    ("code not in expansion", "event/event-support[0]", coding("support", "boss"), "answer-not-in-valueset", "error"),
    ("below minValue", "emotions[0]/intensity", {"valueInteger": -1}, "below-min-value", "error"),
    ("above maxValue", "emotions[0]/intensity", {"valueInteger": 11}, "above-max-value", "error"),
    ("decimal above maxValue", "sleep-hours", {"valueDecimal": 24.5}, "above-max-value", "error"),
    ("date before minValue", "event/event-date", {"valueDate": "1999-12-31"}, "below-min-value", "error"),
    ("quantity above maxValue", "weight-change", {"valueQuantity": {"value": 31, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}}, "above-max-value", "error"),
    ("longer than maxLength", "event/event-what", text(SECRET + "x" * 500), "too-long", "error"),
    ("shorter than minLength", "event/event-what", text("ok"), "too-short", "error"),
]
# fmt: on


@pytest.mark.parametrize(
    ("path", "answer", "code", "severity"),
    [case[1:] for case in ANSWER_CASES],
    ids=[case[0] for case in ANSWER_CASES],
)
def test_answer(
    path: str,
    answer: Any,
    code: str,
    severity: str,
    response: Json,
    questionnaire: Json,
    now: datetime,
) -> None:
    item(response, *link_ids(path))["answer"] = [answer]
    findings = check(response, questionnaire, now)
    finding = only(findings, code)
    assert (finding.severity, finding.path) == (severity, path)


@pytest.mark.parametrize(
    "answer",
    [
        {"valueString": "A neighbour"},  # free text is what open-choice is for
        {"valueCoding": {"display": "A neighbour"}},  # free text as a display-only Coding
        {
            "valueCoding": {
                "system": "http://clinic.test/fhir/CodeSystem/relation",
                "code": "colleague",
            }
        },
    ],
)
def test_open_choice_takes_options_and_free_text(
    answer: Json, response: Json, questionnaire: Json, now: datetime
) -> None:
    item(response, "event", "event-who")["answer"] = [answer]
    assert check(response, questionnaire, now) == []


def test_a_value_set_with_filters_cannot_be_checked_here(
    response: Json, questionnaire: Json, now: datetime
) -> None:
    item(response, "event")["item"].insert(
        7,
        answered(
            "event-place",
            {"valueCoding": {"system": "http://snomed.info/sct", "code": "264362003"}},
        ),
    )
    assert [(f.code, f.severity, f.path) for f in check(response, questionnaire, now)] == [
        ("valueset-not-enumerable", "information", "event/event-place")
    ]


def test_quantities_in_other_units_are_not_compared(
    response: Json, questionnaire: Json, now: datetime
) -> None:
    item(response, "weight-change")["answer"] = [
        {
            "valueQuantity": {
                "value": 60,
                "unit": "lb",
                "system": "http://unitsofmeasure.org",
                "code": "[lb_av]",
            }
        }
    ]
    assert check(response, questionnaire, now) == []


def test_each_answer_of_a_repeating_question_is_checked(
    response: Json, questionnaire: Json, now: datetime
) -> None:
    item(response, "thoughts")["answer"].append({"valueString": "y" * 201})
    finding = only(check(response, questionnaire, now), "too-long")
    assert finding.path == "thoughts[2]"
    assert finding.message == "Answer to 'thoughts' has 201 characters; maxLength is 200."


def test_numbers_and_codes_are_quoted_but_never_free_text(
    response: Json, questionnaire: Json, now: datetime
) -> None:
    item(response, "emotions", "intensity")["answer"] = [{"valueInteger": 12}]
    item(response, "mood")["answer"] = [
        {"valueCoding": {"system": "http://clinic.test/fhir/CodeSystem/mood", "code": "ecstatic"}}
    ]
    messages = {f.code: f.message for f in check(response, questionnaire, now)}
    assert messages["above-max-value"] == "Answer 12 to 'intensity' is above maxValue 10."
    assert "'http://clinic.test/fhir/CodeSystem/mood|ecstatic'" in messages["answer-not-in-options"]


def test_no_message_or_path_repeats_what_the_client_wrote(
    response: Json, questionnaire: Json, now: datetime
) -> None:
    breakages: list[Mutation] = [case[1] for case in STRUCTURE_CASES if SECRET in repr(case)]
    for breakage in breakages:
        breakage(response)
    for path, answer, *_ in (case[1:] for case in ANSWER_CASES):
        if SECRET in repr(answer):
            copy_of = copy.deepcopy(response)
            item(copy_of, *link_ids(path))["answer"] = [answer]
            findings = check(copy_of, questionnaire, now)
            assert findings
            assert all("SECRET" not in str(finding) for finding in findings)
    item(response, "event", "event-date")["answer"] = [{"valueDate": "1999-12-31"}]
    findings = check(response, questionnaire, now)
    assert len(findings) >= len(breakages)
    assert all("SECRET" not in str(finding) for finding in findings)
    assert all("1999" not in finding.message for finding in findings)  # a client's date


# ---------------------------------------------------------------------- terminology


def test_answer_value_set_by_canonical_needs_the_value_set(
    response: Json, questionnaire: Json, now: datetime
) -> None:
    changed = copy.deepcopy(questionnaire)
    channel = item(changed, "event", "event-channel")
    channel["answerValueSet"] = "http://clinic.test/fhir/ValueSet/channels|1.0.0"
    value_set = dict(changed["contained"][0], url="http://clinic.test/fhir/ValueSet/channels")

    finding = only(check(response, changed, now), "valueset-not-found")
    assert (finding.severity, finding.path) == ("warning", "event/event-channel")

    assert check(response, changed, now, terminology={value_set["url"]: value_set}) == []
    item(response, "event", "event-channel")["answer"] = [
        {"valueCoding": {"system": "http://clinic.test/fhir/CodeSystem/channel", "code": "fax"}}
    ]
    findings = check(response, changed, now, terminology={value_set["url"]: value_set})
    assert codes(findings) == ["answer-not-in-valueset"]


def test_a_value_set_including_a_whole_code_system(now: datetime) -> None:
    system = "http://clinic.test/CodeSystem/feelings"
    code_system = {
        "resourceType": "CodeSystem",
        "url": system,
        "content": "complete",
        "concept": [{"code": "calm", "concept": [{"code": "serene"}]}, {"code": "tense"}],
    }
    value_set = {
        "resourceType": "ValueSet",
        "id": "vs",
        "compose": {
            "include": [{"system": system}],
            "exclude": [{"system": system, "concept": [{"code": "tense"}]}],
        },
    }
    q = tiny_questionnaire({"linkId": "f", "type": "choice", "answerValueSet": "#vs"})
    q["contained"] = [value_set]
    terminology = {system: code_system}

    def findings(code: str) -> list[str]:
        r = tiny_response(answered("f", {"valueCoding": {"system": system, "code": code}}))
        return codes(validate_response(r, q, now=now, terminology=terminology))

    assert findings("serene") == []
    assert findings("tense") == ["answer-not-in-valueset"]
    assert codes(
        validate_response(
            tiny_response(answered("f", {"valueCoding": {"system": system, "code": "x"}})),
            q,
            now=now,
        )
    ) == ["valueset-not-enumerable"]


def test_enable_when_expression_is_reported_not_guessed(now: datetime) -> None:
    expression = {
        "url": "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-enableWhenExpression",
        "valueExpression": {"language": "text/fhirpath", "expression": "false"},
    }
    q = tiny_questionnaire(
        {"linkId": "a", "type": "string", "required": True, "extension": [expression]}
    )
    findings = validate_response(tiny_response(), q, now=now)
    assert [(f.code, f.severity, f.path) for f in findings] == [
        ("enable-when-expression", "information", "a")
    ]


def test_every_code_is_documented_and_every_documented_code_exists() -> None:
    # The file, not the module: the compiled build's C extension keeps no source or docstring.
    # The codes are made in conformance.py (resource level) and itemcheck.py (items).
    folder = Path(__file__).parents[3] / "src" / "rejection_fhir" / "response"
    text = (folder / "conformance.py").read_text(encoding="utf-8")
    doc = ast.get_docstring(ast.parse(text)) or ""
    table = re.findall(r"^([a-z]+(?:-[a-z]+)*)\s+(error|warning|information)\s", doc, re.M)
    documented = {code: severity for code, severity in table}
    source = text.split('"""', 2)[2]  # without the module docstring
    source += (folder / "itemcheck.py").read_text(encoding="utf-8").split('"""', 2)[2]
    for code in documented:
        assert f'"{code}"' in source, code
    exercised = {case[3] for case in ANSWER_CASES} | {case[2] for case in STRUCTURE_CASES}
    assert exercised <= set(documented)


def test_a_reference_the_index_resolves_is_no_mismatch(
    response: Json, questionnaire: Json, now: datetime
) -> None:
    """Some servers fill ``questionnaire`` with ``Questionnaire/{id}``: the index resolves it,
    so validating against what it resolved must not call it another Questionnaire."""
    from rejection_fhir.response import QuestionnaireIndex

    response["questionnaire"] = "Questionnaire/kitchen-sink"
    found = QuestionnaireIndex([questionnaire]).for_response(response)
    assert found is not None and found.source is questionnaire
    # The same Questionnaire; the HL7 validator wants an absolute url there, so a warning.
    assert codes(check(response, found, now)) == ["questionnaire-relative"]
    response["questionnaire"] = "Questionnaire/someone-else"
    assert codes(check(response, questionnaire, now)) == [
        "questionnaire-relative",
        "questionnaire-mismatch",
    ]


@pytest.mark.parametrize(
    ("named", "shown"),
    [
        (f"{CANONICAL}|1.2.1", ["'1.2.1'", "'1.2.0'"]),  # only the version differs
        (f"{CANONICAL}-for-adolescents-and-young-adults-in-primary-care|1.2.0", ["primary-care"]),
        (
            "http://clinic.test/fhir/a-rather-long-path-segment/Questionnaire/kitchen-sinq|1.2.0",
            ["kitchen-sinq|1.2.0", "kitchen-sink|1.2.0"],
        ),
    ],
)
def test_a_mismatch_message_shows_the_part_that_differs(
    named: str, shown: list[str], response: Json, questionnaire: Json, now: datetime
) -> None:
    response["questionnaire"] = named
    message = only(check(response, questionnaire, now), "questionnaire-mismatch").message
    for part in shown:
        assert part in message, message


def test_every_answer_path_is_unambiguous(now: datetime) -> None:
    """LinkIds holding '/' or '[' (e.g. LOINC paths) are escaped in paths, which read back."""
    from rejection_fhir.response.answers import split_path

    q = tiny_questionnaire(
        {
            "linkId": "/44249-1",
            "type": "group",
            "item": [
                {"linkId": "/44249-1/44260-8", "type": "integer", "extension": [_max(3)]},
                {"linkId": "a[1]", "type": "integer", "extension": [_max(3)]},
            ],
        }
    )
    r = tiny_response(
        {
            "linkId": "/44249-1",
            "item": [
                {"linkId": "/44249-1/44260-8", "answer": [{"valueInteger": 9}]},
                {"linkId": "a[1]", "answer": [{"valueInteger": 9}]},
            ],
        }
    )
    paths = [f.path for f in check(r, q, now)]
    assert paths == ["\\/44249-1/\\/44249-1\\/44260-8", "\\/44249-1/a\\[1]"]
    assert [split_path(p) for p in paths] == [
        [("/44249-1", None), ("/44249-1/44260-8", None)],
        [("/44249-1", None), ("a[1]", None)],
    ]


def _max(value: int) -> dict[str, Any]:
    return {"url": "http://hl7.org/fhir/StructureDefinition/maxValue", "valueInteger": value}


def test_answer_findings_are_validate_responses_answer_checks(
    response: Json, questionnaire: Json, now: datetime
) -> None:
    """What summarize warns about: the same findings, at the same paths, without the
    structure checks (and at a fraction of the cost)."""
    from rejection_fhir.response.conformance import answer_findings

    item(item(response, "emotions", instance=1), "intensity")["answer"] = [{"valueInteger": 42}]
    item(response, "sleep-hours")["answer"] = [{"valueString": "eight"}]
    item(response, "mood")["answer"] = [coding("mood", "furious")]
    response["item"].append({"item": [{"linkId": "rating", "answer": [{"valueInteger": 9}]}]})
    _move_mood_first(response)  # an order problem: validate_response's alone
    answer_codes = {"above-max-value", "answer-type", "answer-not-in-options", "missing-linkid"}
    full = [(f.path, f.code) for f in check(response, questionnaire, now) if f.code in answer_codes]
    found = [(f.path, f.code) for f in answer_findings(response, questionnaire)]
    assert sorted(found) == sorted(full)
    assert {code for _, code in found} == answer_codes


def test_a_disabled_question_still_has_its_answers_checked(
    response: Json, questionnaire: Json, now: datetime
) -> None:
    # As the HL7 validator does: the author learns the wrong type in the same run.
    _set("hurt-self", answer=[{"valueBoolean": False, "item": [{"linkId": "hurt-plan", "answer": [{"valueInteger": 3}]}]}])(response)  # fmt: skip
    found = {(f.code, f.path) for f in check(response, questionnaire, now)}
    assert ("disabled-item", "hurt-self/hurt-plan") in found
    assert ("answer-type", "hurt-self/hurt-plan") in found
