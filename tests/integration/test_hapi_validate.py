"""Cross-check with the official validator: HAPI's ``Questionnaire/$validate`` on the local
server must agree with our ``validate``.  Every error HAPI reports on a deliberately broken
Questionnaire must be reported by ours too (same linkId, element or que-* constraint), and
our clean worksheets give HAPI no errors.

HAPI answers ``$validate`` with 200 and an OperationOutcome, or with 400 when the body does
not even parse (an unknown code in a required binding, e.g. status "bogus"; the server
parses leniently and lets the validator speak instead when started with
``RFHIR_HAPI_LENIENT_PARSING=true``).  Both shapes are mapped below, so the test runs
against either configuration.

The worksheets claim no ``meta.profile``: the local server, like most EHR servers, has no
SDC package, and would report the SDC profile as unresolvable.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rejection_fhir.commands.publish import publish
from rejection_fhir.commands.validate import validate
from rejection_fhir.findings import Finding
from tests.conftest import QUESTIONNAIRES
from tests.integration.fhir_paths import hapi_issues, link_id_on

pytestmark = pytest.mark.integration

_ELEMENT = re.compile(r'\[element="(?P<name>[^"]+)"\]')
_CONSTRAINT = re.compile(r"Constraint failed: (?P<key>[a-z]+-\d+)")


def hapi_validate(client: Any, resource: dict[str, Any]) -> list[dict[str, Any]]:
    return hapi_issues(client, "Questionnaire", resource)


def errors(issues: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [i for i in issues if i.get("severity") in {"error", "fatal"}]


def ours(resource: dict[str, Any], tmp_path: Path) -> list[Finding]:
    path = tmp_path / f"{resource.get('id', 'q')}-{len(list(tmp_path.iterdir()))}.json"
    path.write_text(json.dumps(resource, indent=2), encoding="utf-8")
    return [f for f in validate([path]) if f.severity == "error"]


def covered(issue: dict[str, Any], resource: dict[str, Any], found: list[Finding]) -> bool:
    """Does one of our errors report what this HAPI error reports?"""
    text = issue.get("diagnostics") or ""
    expression = (issue.get("expression") or issue.get("location") or [None])[0]
    if expression and expression.startswith("Questionnaire"):
        fhir_path = expression[len("Questionnaire") :].lstrip(".")
        fhir_path = fhir_path.replace(".value.ofType(Coding)", ".valueCoding")
        link_id = link_id_on(resource, fhir_path)
        if link_id is not None:
            return any(f.location == link_id for f in found)
        if not fhir_path:
            constraint = _CONSTRAINT.search(text)
            return (
                any(f.rule == constraint.group("key") for f in found) if constraint else bool(found)
            )
        return any(
            f.location.startswith(fhir_path) or fhir_path.startswith(f.location)
            for f in found
            if f.location
        )
    element = _ELEMENT.search(text)  # a parse error: HAPI names only the element
    if element:
        word = re.compile(rf"\b{re.escape(element.group('name'))}\b")
        return any(word.search(f.location) or word.search(f.message) for f in found)
    return bool(found)


# --- The worksheets as built -----------------------------------------------------------


def test_our_clean_worksheets_give_hapi_no_errors(client, built):
    warnings: dict[str, set[str]] = {}
    for q in built.questionnaires:
        issues = hapi_validate(client, q)
        assert errors(issues) == [], (q["id"], errors(issues))
        for i in issues:
            if i.get("severity") == "warning":
                warnings.setdefault(
                    re.sub(r"\[\d+\]", "[n]", str(i.get("diagnostics"))[:90]), set()
                ).add(q["id"])
    # What HAPI does warn about, for the record (pytest -rA shows it).
    print(
        "\n".join(
            f"HAPI warning: {w} ({', '.join(sorted(ids))})" for w, ids in sorted(warnings.items())
        )
    )


# --- Deliberately broken Questionnaires -------------------------------------------------


def _walk(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for item in items:
        yield item
        yield from _walk(item.get("item", []))


def _item(q: dict[str, Any], link_id: str) -> dict[str, Any]:
    return next(i for i in _walk(q["item"]) if i.get("linkId") == link_id)


Breakage = Callable[[dict[str, Any]], None]

BROKEN: dict[str, Breakage] = {
    "missing linkId": lambda q: q["item"][0].pop("linkId"),
    "duplicate linkId": lambda q: q["item"][3].update(linkId="kind"),
    "enableWhen points nowhere": lambda q: _item(q, "kind-other")["enableWhen"][0].update(
        question="nope"
    ),
    "display item with answerOption": lambda q: q["item"].append(
        {
            "linkId": "d",
            "type": "display",
            "text": "D",
            "answerOption": [{"valueCoding": {"system": "urn:x", "code": "a"}}],
        }
    ),
    "answerOption and answerValueSet": lambda q: _item(q, "kind").update(
        answerValueSet="http://example.org/ValueSet/x"
    ),
    "invalid status code": lambda q: q.update(status="bogus"),
    "invalid item type": lambda q: _item(q, "when").update(type="nonsense"),
    "invalid enableWhen operator": lambda q: _item(q, "kind-other")["enableWhen"][0].update(
        operator="~"
    ),
    "invalid enableBehavior": lambda q: _item(q, "kind-other").update(enableBehavior="some"),
    "invalid subjectType": lambda q: q.update(subjectType=["Pateint"]),
    "maxLength on a date": lambda q: _item(q, "when").update(maxLength=10),
    "group without items": lambda q: q["item"].append(
        {"linkId": "g", "type": "group", "text": "G"}
    ),
    "item without type": lambda q: _item(q, "when").pop("type"),
    "required display item": lambda q: q["item"].append(
        {"linkId": "d", "type": "display", "text": "D", "required": True}
    ),
    "display item with a code": lambda q: q["item"].append(
        {"linkId": "d", "type": "display", "text": "D", "code": [{"system": "urn:x", "code": "c"}]}
    ),
    "read-only display item": lambda q: q["item"].append(
        {"linkId": "d", "type": "display", "text": "D", "readOnly": True}
    ),
    "exists with a coding": lambda q: _item(q, "kind-other")["enableWhen"][0].update(
        operator="exists"
    ),
    "two enableWhen without enableBehavior": lambda q: _item(q, "kind-other")["enableWhen"].append(
        copy.deepcopy(_item(q, "kind-other")["enableWhen"][0])
    ),
    "initial on a group": lambda q: q["item"].append(
        {
            "linkId": "g",
            "type": "group",
            "text": "G",
            "initial": [{"valueString": "x"}],
            "item": [{"linkId": "g.a", "type": "string", "text": "a"}],
        }
    ),
    "initial with answerOption": lambda q: _item(q, "kind").update(
        initial=[{"valueCoding": {"system": "urn:x", "code": "a"}}]
    ),
    "options on a boolean": lambda q: q["item"].append(
        {
            "linkId": "b",
            "type": "boolean",
            "text": "B",
            "answerOption": [{"valueCoding": {"system": "urn:x", "code": "a"}}],
        }
    ),
    "several initial values without repeats": lambda q: q["item"].append(
        {
            "linkId": "s",
            "type": "string",
            "text": "S",
            "initial": [{"valueString": "a"}, {"valueString": "b"}],
        }
    ),
    "malformed date": lambda q: q.update(date="26/11/2026"),
    "unknown element": lambda q: _item(q, "when").update(colour="red"),
    "empty text": lambda q: _item(q, "when").update(text=""),
    "missing status": lambda q: q.pop("status"),
    "empty answerOption entry": lambda q: _item(q, "kind")["answerOption"].append({}),
    "enableWhen without an answer": lambda q: _item(q, "kind-other")["enableWhen"][0].pop(
        "answerCoding"
    ),
    "empty item array": lambda q: _item(q, "when").update(item=[]),
    "url with spaces": lambda q: q.update(url="not a url"),
    "extension without a value": lambda q: _item(q, "kind")["extension"][0].pop(
        "valueCodeableConcept"
    ),
    "relative coding system": lambda q: _item(q, "kind")["answerOption"][0]["valueCoding"].update(
        system="not a uri"
    ),
}


@pytest.fixture(scope="module")
def base_questionnaire(built) -> dict[str, Any]:
    return next(q for q in built.questionnaires if q["id"] == "rejection-log")


@pytest.mark.parametrize("breakage", sorted(BROKEN))
def test_every_hapi_error_is_one_of_ours(client, base_questionnaire, tmp_path, breakage):
    q = copy.deepcopy(base_questionnaire)
    BROKEN[breakage](q)
    hapi_errors = errors(hapi_validate(client, q))
    assert hapi_errors, f"HAPI finds nothing wrong with {breakage!r}: the case proves nothing"
    found = ours(q, tmp_path)
    missed = [i for i in hapi_errors if not covered(i, q, found)]
    assert missed == [], {
        "missed": missed,
        "ours": [(f.rule, f.location, f.message) for f in found],
    }


# --- The version guard against a live server --------------------------------------------


def test_guard_against_the_server_the_worksheets_are_published_on(
    settings, fhir_server, canonical_base, tmp_path
):
    publish(QUESTIONNAIRES, settings, base_url=canonical_base)
    folder = tmp_path / "questionnaires"
    shutil.copytree(QUESTIONNAIRES, folder)
    same = validate([folder], base_url=canonical_base, against=fhir_server)
    assert [f for f in same if f.rule.startswith(("version", "worksheet", "baseline"))] == []

    log = folder / "rejection-log.yaml"
    log.write_text(
        log.read_text(encoding="utf-8").replace("text: When did it happen?", "text: When?"),
        encoding="utf-8",
    )
    (f,) = [
        f
        for f in validate([folder], base_url=canonical_base, against=fhir_server)
        if f.rule.startswith("version")
    ]
    assert (f.rule, f.location, f.severity) == ("version-unchanged", "when", "error")
    assert f.file.endswith("rejection-log.yaml") and f.line is not None
    assert f.message.endswith("set version: 1.1.0")
