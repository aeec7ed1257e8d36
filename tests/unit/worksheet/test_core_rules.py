"""R4 core rules the models leave out (found by cross-checking with HAPI's $validate)."""

from __future__ import annotations

import copy

import pytest

from rejection_fhir.worksheet import core_rules, rules

BASE = {
    "resourceType": "Questionnaire",
    "url": "https://clinic.example/Questionnaire/q",
    "version": "1.0.0",
    "name": "Q",
    "status": "active",
    "subjectType": ["Patient"],
    "contact": [{"telecom": [{"system": "url", "value": "https://clinic.example"}]}],
    "item": [
        {
            "extension": [{"url": "http://x.example/ext", "valueBoolean": True}],
            "linkId": "kind",
            "type": "choice",
            "text": "Kind",
            "answerOption": [{"valueCoding": {"system": "urn:s", "code": "a"}}],
        },
        {
            "linkId": "n",
            "type": "integer",
            "text": "N",
            "enableWhen": [{"question": "kind", "operator": "exists", "answerBoolean": True}],
        },
    ],
}


def test_clean_questionnaire_passes():
    assert core_rules.check_core(BASE) == []
    assert rules.check_structure(BASE) == []


@pytest.mark.parametrize(
    ("rule", "link_id", "path", "mutate"),
    [
        ("binding", None, "status", lambda q: q.update(status="bogus")),
        ("binding", None, "subjectType[0]", lambda q: q.update(subjectType=["Pateint"])),
        ("binding", "kind", "item[0].type", lambda q: q["item"][0].update(type="nonsense")),
        (
            "binding",
            "n",
            "item[1].enableWhen[0].operator",
            lambda q: q["item"][1]["enableWhen"][0].update(operator="~"),
        ),
        (
            "binding",
            "n",
            "item[1].enableBehavior",
            lambda q: q["item"][1].update(enableBehavior="some"),
        ),
        ("empty", "n", "item[1].item", lambda q: q["item"][1].update(item=[])),
        (
            "empty",
            "kind",
            "item[0].answerOption[0]",
            lambda q: q["item"][0]["answerOption"].__setitem__(0, {}),
        ),
        ("uri", None, "url", lambda q: q.update(url="not a url")),
        (
            "uri",
            "kind",
            "item[0].answerOption[0].valueCoding.system",
            lambda q: q["item"][0]["answerOption"][0]["valueCoding"].update(system="local"),
        ),
        (
            "ext-1",
            "kind",
            "item[0].extension[0]",
            lambda q: q["item"][0]["extension"][0].pop("valueBoolean"),
        ),
        (
            "ext-1",
            "kind",
            "item[0].extension[0]",
            lambda q: q["item"][0]["extension"][0].update(
                extension=[{"url": "a", "valueString": "b"}]
            ),
        ),
    ],
)
def test_each_rule(rule, link_id, path, mutate):
    q = copy.deepcopy(BASE)
    mutate(q)
    issues = [i for i in core_rules.check_core(q) if i.rule == rule]
    assert [(i.link_id, i.path) for i in issues] == [(link_id, path)]
    assert all(i.severity == "error" for i in issues)
    assert path in issues[0].message
    assert issues[0] in rules.check_structure(q)


def test_resource_types_come_from_the_r4_model():
    types = core_rules.resource_types()
    assert {"Patient", "Questionnaire", "Group", "Resource"} <= types
    assert "SubscriptionTopic" not in types  # R4B/R5 only
    assert "Pateint" not in types


def _imports(module: str) -> set[str]:
    """Every rejection_fhir module ``module`` imports, at the top or inside a function."""
    import ast
    import importlib.util

    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None
    with open(spec.origin, encoding="utf-8") as source:
        tree = ast.parse(source.read())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("rejection_fhir.")}


def test_rules_and_core_rules_do_not_import_each_other() -> None:
    # The cycle used to hide inside check_structure (a function-level import); the static
    # walk sees imports wherever they are.
    rules_name, core_name = "rejection_fhir.worksheet.rules", "rejection_fhir.worksheet.core_rules"
    assert not (core_name in _imports(rules_name) and rules_name in _imports(core_name))
    assert rules_name not in _imports(core_name)


@pytest.mark.parametrize(
    "module",
    ["rejection_fhir.worksheet.core_rules", "rejection_fhir.worksheet.rules"],
)
def test_each_rules_module_imports_alone(module: str) -> None:
    import subprocess
    import sys

    code = f"import {module} as m; assert m.__name__ == {module!r}"
    subprocess.run([sys.executable, "-c", code], check=True)
