"""The engine on the project's own built worksheets: complete answers are valid and summarised."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any

import pytest

from rejection_fhir.response import (
    Line,
    Section,
    render_markdown,
    render_xhtml,
    resolve_response,
    summarize,
    validate_response,
)
from tests.unit.response.helpers import item

Json = dict[str, Any]
NOW = datetime(2030, 1, 1, tzinfo=UTC)
WORDS = "It was a Friday & I'd waited all week <really>. Then the message came."


def _first_value(option: Json) -> Json:
    key = next(key for key in option if key.startswith("value"))
    return {key: option[key]}


def _bound(item: Json, name: str, default: int) -> int:
    for extension in item.get("extension", []):
        if extension.get("url", "").endswith(f"/{name}"):
            return int(extension.get("valueInteger", extension.get("valueDecimal", default)))
    return default


def _answer(item: Json) -> Json | None:
    """A plausible answer for any question type, inside its limits."""
    kind = item["type"]
    if kind in ("choice", "open-choice"):
        options = item.get("answerOption")
        return _first_value(options[0]) if options else None
    low, high = _bound(item, "minValue", 0), _bound(item, "maxValue", 10)
    return {
        "boolean": {"valueBoolean": True},
        "integer": {"valueInteger": (low + high) // 2},
        "decimal": {"valueDecimal": (low + high) / 2},
        "date": {"valueDate": "2026-11-20"},
        "dateTime": {"valueDateTime": "2026-11-20T18:30:00+01:00"},
        "time": {"valueTime": "18:30:00"},
        "string": {"valueString": WORDS[: item.get("maxLength", 200)]},
        "text": {"valueString": WORDS[: item.get("maxLength", 2000)]},
        "url": {"valueUri": "https://example.org/note"},
    }.get(kind)


def fill(items: list[Json]) -> list[Json]:
    """Answer every question that is enabled without conditions; two instances of repeats.

    Items carry their text, as LHC-Forms and most SDC renderers send them.
    """
    out: list[Json] = []
    for question in items:
        if question.get("enableWhen") or question["type"] == "display":
            continue
        if question["type"] == "group":
            for _ in range(2 if question.get("repeats") else 1):
                children = fill(question.get("item", []))
                if children:
                    out.append(
                        {
                            "linkId": question["linkId"],
                            "text": question.get("text"),
                            "item": children,
                        }
                    )
            continue
        answer = _answer(question)
        if answer is None:
            continue
        nested = fill(question.get("item", []))
        if nested:
            answer["item"] = nested
        out.append({"linkId": question["linkId"], "text": question.get("text"), "answer": [answer]})
    return out


def complete_response(questionnaire: Json) -> Json:
    return {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": f"{questionnaire['url']}|{questionnaire['version']}",
        "status": "completed",
        "subject": {"reference": "Patient/p1"},
        "authored": "2026-11-20T18:35:00+01:00",
        "item": fill(questionnaire["item"]),
    }


@pytest.fixture(scope="module")
def terminology(built: Any) -> dict[str, Json]:
    resources = [built.codesystem, *built.valuesets]
    return {resource["url"]: resource for resource in resources}


def test_every_worksheet_a_complete_response_is_valid_and_summarised(
    built: Any, terminology: dict[str, Json]
) -> None:
    assert built.questionnaires
    for questionnaire in built.questionnaires:
        response = complete_response(questionnaire)
        assert response["item"], questionnaire["url"]
        findings = validate_response(response, questionnaire, now=NOW, terminology=terminology)
        assert findings == [], (questionnaire["url"], [str(f) for f in findings])

        resolved = resolve_response(response, questionnaire)
        answered = [it for it in resolved.walk() if it.answers]
        summary = summarize(response, questionnaire)
        lines = {line.path: line.values for line in _lines(summary.sections)}
        for it in answered:
            assert lines[it.path] == it.displays, (questionnaire["url"], it.path)
        assert all(it.known for it in resolved.walk())
        ET.fromstring(render_xhtml(summary))
        assert render_markdown(summary).startswith("# ")


def _lines(entries: Any) -> Any:
    for entry in entries:
        if isinstance(entry, Section):
            yield from _lines(entry.entries)
        elif isinstance(entry, Line):
            yield entry
            yield from _lines(entry.children)


def _rejection_log(built: Any) -> Json:
    return next(q for q in built.questionnaires if q["url"].endswith("/rejection-log"))


def test_rejection_log_other_needs_its_description(built: Any) -> None:
    questionnaire = _rejection_log(built)
    response = complete_response(questionnaire)
    other = next(
        option["valueCoding"]
        for option in item(questionnaire, "kind")["answerOption"]
        if option["valueCoding"]["code"] == "other"
    )
    item(response, "kind")["answer"] = [{"valueCoding": other}]
    findings = validate_response(response, questionnaire, now=NOW)
    assert [(f.code, f.path) for f in findings] == [("required-missing", "kind-other")]

    position = response["item"].index(item(response, "kind")) + 1
    response["item"].insert(
        position, {"linkId": "kind-other", "answer": [{"valueString": "A band audition"}]}
    )
    assert validate_response(response, questionnaire, now=NOW) == []
