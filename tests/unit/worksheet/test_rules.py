"""que-* invariants, SDC and own rules on FHIR JSON built anywhere."""

from __future__ import annotations

import copy
import json

import pytest

from rejection_fhir.commands.validate import validate
from rejection_fhir.worksheet import rules

BASE = {
    "resourceType": "Questionnaire",
    "url": "https://clinic.example/Questionnaire/q",
    "version": "1.0.0",
    "name": "Q",
    "status": "active",
    "item": [
        {
            "linkId": "kind",
            "type": "choice",
            "text": "Kind",
            "answerOption": [{"valueCoding": {"system": "urn:s", "code": "a"}}],
        },
        {"linkId": "n", "type": "integer", "text": "N"},
    ],
}


def _rules_hit(mutate) -> set[str]:
    q = copy.deepcopy(BASE)
    mutate(q)
    return {i.rule for i in rules.check_questionnaire(q, {"urn:s": {"a"}})}


def test_clean_questionnaire_has_no_issues():
    assert _rules_hit(lambda q: None) == set()
    assert rules.check_structure(BASE) == []


@pytest.mark.parametrize(
    ("rule", "mutate"),
    [
        ("que-0", lambda q: q.update(name="bad name")),
        ("que-1", lambda q: q["item"].append({"linkId": "g", "type": "group", "text": "G"})),
        (
            "que-1",
            lambda q: q["item"].append(
                {
                    "linkId": "d",
                    "type": "display",
                    "text": "D",
                    "item": [{"linkId": "x", "type": "string", "text": "x"}],
                }
            ),
        ),
        ("que-2", lambda q: q["item"].append({"linkId": "n", "type": "string", "text": "again"})),
        (
            "que-3",
            lambda q: q["item"].append(
                {"linkId": "d", "type": "display", "text": "D", "code": [{"code": "x"}]}
            ),
        ),
        ("que-4", lambda q: q["item"][0].update(answerValueSet="http://vs")),
        (
            "que-5",
            lambda q: q["item"].append(
                {"linkId": "b", "type": "boolean", "text": "B", "answerValueSet": "http://vs"}
            ),
        ),
        (
            "que-6",
            lambda q: q["item"].append(
                {"linkId": "d", "type": "display", "text": "D", "repeats": True}
            ),
        ),
        (
            "que-7",
            lambda q: q["item"][1].update(
                enableWhen=[
                    {"question": "kind", "operator": "exists", "answerCoding": {"code": "a"}}
                ]
            ),
        ),
        (
            "que-8",
            lambda q: q["item"].append(
                {
                    "linkId": "g",
                    "type": "group",
                    "text": "G",
                    "initial": [{"valueString": "x"}],
                    "item": [{"linkId": "y", "type": "string", "text": "y"}],
                }
            ),
        ),
        (
            "que-9",
            lambda q: q["item"].append(
                {"linkId": "d", "type": "display", "text": "D", "readOnly": True}
            ),
        ),
        (
            "que-10",
            lambda q: q["item"].append(
                {"linkId": "dt", "type": "date", "text": "D", "maxLength": 5}
            ),
        ),
        ("que-11", lambda q: q["item"][0].update(initial=[{"valueCoding": {"code": "a"}}])),
        (
            "que-12",
            lambda q: q["item"][1].update(
                enableWhen=[{"question": "kind", "operator": "exists", "answerBoolean": True}] * 2
            ),
        ),
        (
            "que-13",
            lambda q: q["item"][1].update(initial=[{"valueInteger": 1}, {"valueInteger": 2}]),
        ),
        (
            "unknown-code",
            lambda q: q["item"][0]["answerOption"].append(
                {"valueCoding": {"system": "urn:s", "code": "zzz"}}
            ),
        ),
        (
            "display-answers",
            lambda q: q["item"].append(
                {
                    "linkId": "d",
                    "type": "display",
                    "text": "D",
                    "answerOption": [{"valueString": "x"}],
                }
            ),
        ),
        (
            "enablewhen-unknown",
            lambda q: q["item"][1].update(
                enableWhen=[{"question": "nope", "operator": "exists", "answerBoolean": True}]
            ),
        ),
        (
            "enablewhen-order",
            lambda q: q["item"][0].update(
                enableWhen=[{"question": "n", "operator": ">", "answerInteger": 1}]
            ),
        ),
        (
            "enablewhen-type",
            lambda q: q["item"][1].update(
                enableWhen=[{"question": "kind", "operator": "=", "answerString": "a"}]
            ),
        ),
        (
            "sdc-slider-range",
            lambda q: q["item"][1].update(
                extension=[
                    {
                        "url": rules.ITEM_CONTROL,
                        "valueCodeableConcept": {"coding": [{"code": "slider"}]},
                    }
                ]
            ),
        ),
        (
            "sdc-item-control",
            lambda q: q["item"][1].update(
                extension=[
                    {
                        "url": rules.ITEM_CONTROL,
                        "valueCodeableConcept": {"coding": [{"code": "radio-button"}]},
                    }
                ]
            ),
        ),
        (
            "sdc-observation-code",
            lambda q: q["item"][1].update(
                extension=[{"url": rules.OBSERVATION_EXTRACT, "valueBoolean": True}]
            ),
        ),
        (
            "fhirpath",
            lambda q: q["item"][1].update(
                extension=[
                    {
                        "url": rules.CALCULATED_EXPRESSION,
                        "valueExpression": {
                            "language": "text/fhirpath",
                            "expression": "item.where((",
                        },
                    }
                ]
            ),
        ),
        ("semver", lambda q: q.update(version="v1")),
    ],
)
def test_each_rule_fires(rule, mutate):
    assert rule in _rules_hit(mutate)


def test_structure_errors_name_the_item():
    q = copy.deepcopy(BASE)
    q["item"][1]["required"] = "sometimes"
    issues = rules.check_structure(q)
    assert issues and issues[0].link_id == "n" and "item[1].required" in issues[0].message


def test_validate_reads_built_json_and_bundles(tmp_path):
    q = copy.deepcopy(BASE)
    q["item"].append({"linkId": "n", "type": "string", "text": "dup"})
    path = tmp_path / "Questionnaire-q.json"
    path.write_text(json.dumps(q, indent=2))
    bundle = tmp_path / "bundle.json"
    bundle.write_text(
        json.dumps(
            {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": q}]}, indent=2
        )
    )
    findings = validate([path, bundle])
    assert {(f.rule, f.location) for f in findings} == {("que-2", "n")}
    assert all(f.line is not None for f in findings)


def test_validate_reports_invalid_json_with_position(tmp_path):
    path = tmp_path / "q.json"
    path.write_text('{"resourceType": "Questionnaire",\n "item": [}')
    (finding,) = validate([path])
    assert finding.rule == "json-syntax" and finding.line == 2


def test_built_json_with_a_text_boolean_is_caught_at_its_line_and_column(tmp_path):
    q = copy.deepcopy(BASE)
    q["item"][1]["repeats"] = "yes"  # pydantic would read "yes" as true
    path = tmp_path / "Questionnaire-q.json"
    text = json.dumps(q, indent=2)
    path.write_text(text)
    (finding,) = [f for f in validate([path]) if f.severity == "error"]
    line = next(i for i, row in enumerate(text.splitlines(), 1) if '"repeats"' in row)
    column = text.splitlines()[line - 1].index('"repeats"') + 1
    assert (finding.rule, finding.location) == ("primitive-type", "n")
    assert (finding.line, finding.column) == (line, column)
    assert "true or false" in finding.message


def test_built_json_choice_without_options_is_caught_at_the_item(tmp_path):
    q = copy.deepcopy(BASE)
    del q["item"][0]["answerOption"]
    bundle = tmp_path / "bundle.json"
    text = json.dumps(
        {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": q}]}, indent=2
    )
    bundle.write_text(text)
    (finding,) = [f for f in validate([bundle]) if f.severity == "error"]
    rows = text.splitlines()
    line = next(i for i, row in enumerate(rows, 1) if '"type": "choice"' in row)
    assert (finding.rule, finding.location) == ("no-options", "kind")
    assert (finding.line, finding.column) == (line, rows[line - 1].index('"type"') + 1)


def test_choice_with_an_answer_expression_needs_no_options():
    q = copy.deepcopy(BASE)
    del q["item"][0]["answerOption"]
    q["item"][0]["extension"] = [
        {
            "url": "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-answerExpression",
            "valueExpression": {"language": "text/fhirpath", "expression": "%kinds"},
        }
    ]
    assert "no-options" not in {i.rule for i in rules.check_questionnaire(q, {})}
