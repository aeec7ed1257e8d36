"""Cross-check with the official validator for responses: every error HAPI's
``QuestionnaireResponse/$validate`` reports on a few hundred seeded, mutated responses must
be one of ours (``validate_response``): the same kind of problem about the same linkId, or
a known difference explained in ``docs/validation.md`` (which this test reads).

HAPI finds the Questionnaire by the canonical the response names, so the worksheets, their
CodeSystem and ValueSets are published first under a fresh canonical base.  A response
HAPI cannot parse (an impossible date) comes back as a 400 with one parse error, mapped
like the rest.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from rejection_fhir.commands.build import build_all
from rejection_fhir.response import QuestionnaireIndex, ResponseFinding, validate_response
from rejection_fhir.response.answers import split_path
from rejection_fhir.worksheet.synthetic import ResponseFactory
from tests.conftest import QUESTIONNAIRES, REPO
from tests.integration.fhir_paths import hapi_issues, link_id_on
from tests.integration.response_mutations import mutate

pytestmark = pytest.mark.integration

SEED = 20261202
COUNT = 360
#: Of which mutations of the kitchen sink's response.
SINK_COUNT = 60
#: One response in this many is sent as made: both validators must find no error in it.
INTACT_EVERY = 6

#: HAPI's message -> the finding codes of ours that report the same problem.  A named
#: group "link" takes the linkId from the message (else the expression's item gives it).
KINDS: list[tuple[re.Pattern[str], frozenset[str]]] = [
    (re.compile(pattern), frozenset(codes))
    for pattern, codes in (
        (r"^Array cannot be empty", {"empty-list"}),
        (r"^No response answer found for required item '(?P<link>[^']+)'", {"required-missing"}),
        (r"^No sub-items found for required group", {"required-missing"}),
        # HAPI names the group whose items are out of order; we name the item to move.
        (r"^Structural Error: items are out of order", {"item-order"}),
        (
            r"^Structural Error: item with linkid (?P<link>\S+) is in the wrong place",
            {"misplaced-item"},
        ),
        (r"^QuestionnaireResponse\.item\.linkId: minimum required = 1", {"missing-linkid"}),
        (r"^No LinkId, so can't be validated", {"missing-linkid"}),
        (
            r"^The code \S+ is not in the set of permitted values",
            {"answer-not-in-options", "answer-not-in-valueset", "coding-system-missing"},
        ),
        (r"^LinkId '(?P<link>[^']+)' not found in questionnaire", {"unknown-linkid"}),
        (r"^Object must have some content", {"answer-missing-value"}),
        (
            r"^If text exists, it must match the questionnaire definition for linkId (?P<link>\S+)",
            {"text-mismatch"},
        ),
        (r"^Only one response answer item with this linkId allowed", {"too-many-answers"}),
        (r"^Only one response item with the linkId (?P<link>\S+) allowed", {"too-many-items"}),
        (r"^The answer '.*' is longer then the allowed maximum length", {"too-long"}),
        (r"^Answer value must be (of the type|one of the \d+ types)", {"answer-type"}),
        (r"^Option list has no option values of type", {"answer-not-in-options", "answer-type"}),
        # A date (or time) item holding another type: HAPI tries to read it as a date.
        (
            r"^An error occurred checking the (date|time): Invalid",
            {"answer-type", "answer-invalid-value"},
        ),
        # From enableWhen: the answer it compares has another type than the condition's.
        (
            r"^Expected answer and actual answer have incompatible types",
            {"answer-type", "answer-not-in-options"},
        ),
        (r"^The value \S+ is greater than the allowed maximum", {"above-max-value"}),
        (r"^The value \S+ is less than the allowed minimum", {"below-min-value"}),
        (r"^Items of type question should not have answers", {"group-has-answer"}),
        (r"^Constraint failed: qrs-1", {"group-has-answer", "question-has-items"}),
        (
            r"^Item has answer, even though it is not enabled \(item id = '(?P<link>[^']+)'\)",
            {"disabled-item"},
        ),
        (r"Failed to parse request body.*\[element=\"value[A-Za-z]+\"\]", {"answer-invalid-value"}),
        (r"^Canonical URLs must be absolute URLs", {"questionnaire-relative"}),
    )
]


def known_differences() -> list[tuple[re.Pattern[str], str | None]]:
    """The table in docs/validation.md: (HAPI's message pattern, our code or None)."""
    text = (REPO / "docs" / "validation.md").read_text(encoding="utf-8")
    table = text.split("<!-- known-differences:start -->")[1].split(
        "<!-- known-differences:end -->"
    )[0]
    rows = []
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].startswith("`") and cells[0].endswith("`"):
            code = cells[1].strip("`")
            rows.append((re.compile(cells[0][1:-1]), None if code == "-" else code))
    assert rows, "docs/validation.md lists no known differences: the table was not found"
    return rows


def link_id_at(resource: dict[str, Any], expression: str) -> str | None:
    """The linkId of the deepest item on a FHIRPath like ``QuestionnaireResponse.item[3]
    .item[0].answer[0].value.ofType(string)``."""
    return link_id_on(resource, expression.removeprefix("QuestionnaireResponse").lstrip("."))


def our_link_id(finding: ResponseFinding, *, parent: bool = False) -> str | None:
    """The linkId a finding is about (the last named step of its path), or its parent's."""
    names = [name for name, _ in split_path(finding.path) if name]
    if parent:
        names = names[:-1]
    return names[-1] if names else None


def classify(
    issue: dict[str, Any], response: dict[str, Any], ours: list[ResponseFinding]
) -> tuple[str, str]:
    """("matched" | "warning" | "missed", what): how our findings cover one HAPI error."""
    text = issue.get("diagnostics") or ""
    expression = (issue.get("expression") or issue.get("location") or [""])[0]
    for pattern, codes in KINDS:
        match = pattern.search(text)
        if match is None:
            continue
        link = match.groupdict().get("link") or (
            link_id_at(response, expression) if expression else None
        )
        same = [
            f
            for f in ours
            if f.code in codes
            and (
                link is None
                or our_link_id(f) in (link, None)
                or (f.code == "item-order" and our_link_id(f, parent=True) == link)
            )
        ]
        if any(f.severity == "error" for f in same):
            return "matched", pattern.pattern
        if same:
            return "warning", same[0].code
        return "missed", f"{pattern.pattern} at {link}"
    return "missed", f"unmapped: {text[:160]}"


KITCHEN_SINK = REPO / "tests" / "unit" / "response" / "data"


@pytest.fixture
def published(client, canonical_base) -> tuple[list[dict[str, Any]], QuestionnaireIndex]:
    """The worksheets, and the unit tests' kitchen sink (every R4 answer type, contained
    ValueSets, enableWhen of every kind), under a fresh canonical base."""
    result, _ = build_all(QUESTIONNAIRES, base_url=canonical_base)
    client.transaction(result.bundle())
    sink = json.loads((KITCHEN_SINK / "kitchen-sink.questionnaire.json").read_text("utf-8"))
    sink.pop("id", None)
    sink["url"] = sink["url"].replace("http://clinic.test/fhir", canonical_base)
    client.create(sink)
    return [*result.questionnaires, sink], QuestionnaireIndex([*result.questionnaires, sink])


def kitchen_sink_response(sink: dict[str, Any]) -> dict[str, Any]:
    """The unit tests' complete, valid response to the kitchen sink, naming it as published."""
    response: dict[str, Any] = json.loads(
        (KITCHEN_SINK / "kitchen-sink.response.json").read_text("utf-8")
    )
    response["questionnaire"] = f"{sink['url']}|{sink['version']}"
    return response


def hapi_errors(client: Any, response: dict[str, Any]) -> list[dict[str, Any]]:
    issues = hapi_issues(client, "QuestionnaireResponse", response)
    return [i for i in issues if i.get("severity") in ("error", "fatal")]


def test_every_hapi_error_on_a_response_is_one_of_ours(client, published) -> None:
    questionnaires, index = published
    rng = random.Random(SEED)
    patients = [f"Patient/cross-{n}" for n in range(5)]
    worksheets, sink = questionnaires[:-1], questionnaires[-1]
    made = list(ResponseFactory(SEED).many(worksheets, patients, COUNT - SINK_COUNT))
    made += [kitchen_sink_response(sink) for _ in range(SINK_COUNT)]
    differences = known_differences()
    tally: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    missed: list[Any] = []
    for n, original in enumerate(made):
        compiled = index.for_response(original)
        assert compiled is not None
        if n % INTACT_EVERY == 0:
            response, what = original, ["intact"]
        else:
            response, what = mutate(rng, original, compiled, rounds=rng.choice((1, 1, 2, 3)))
        errors = hapi_errors(client, response)
        ours = [f for f in validate_response(response, compiled) if f.severity != "information"]
        tally["responses"] += 1
        tally["HAPI errors"] += len(errors)
        if what == ["intact"]:
            assert errors == [], (n, errors)
            assert [f for f in ours if f.severity == "error"] == [], (n, [str(f) for f in ours])
            continue
        for issue in errors:
            verdict, detail = classify(issue, response, ours)
            if verdict == "matched":
                tally["matched by an error of ours"] += 1
                kinds[detail] += 1
                continue
            text = issue.get("diagnostics") or ""
            known = [
                code
                for pattern, code in differences
                if pattern.search(text) and (code is None or code == detail)
            ]
            if known and (verdict == "warning" or known[0] is None):
                tally[f"known difference ({known[0] or 'none of ours'})"] += 1
                continue
            missed.append((n, what, verdict, detail, issue, [str(f) for f in ours]))
    print("\nHAPI cross-check of QuestionnaireResponses:")
    for key, value in tally.items():
        print(f"  {key}: {value}")
    assert missed == [], missed[:5]
    assert tally["matched by an error of ours"] >= 200, tally  # the mutations really break things


def test_a_mapped_message_says_what_it_maps(client, published) -> None:
    """The mapping itself: a response with one known problem, one HAPI error, one of ours."""
    questionnaires, index = published
    q = next(q for q in questionnaires if q["id"] == "rejection-log")
    compiled = index.compiled(f"{q['url']}|{q['version']}")
    assert compiled is not None
    response = {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": compiled.canonical,
        "status": "completed",
        "item": [
            {"linkId": "what-happened", "answer": [{"valueString": "x"}]},
            {"linkId": "kind", "answer": []},
            {"linkId": "worth-impact", "answer": [{"valueInteger": 42}]},
        ],
    }
    errors = hapi_errors(client, response)
    ours = validate_response(response, compiled)
    verdicts = sorted(classify(issue, response, ours)[0] for issue in errors)
    assert verdicts and set(verdicts) == {"matched"}, (errors, [str(f) for f in ours])
    assert {"empty-list", "above-max-value", "required-missing"} <= {f.code for f in ours}


def test_the_docs_table_is_read() -> None:
    rows = known_differences()
    assert {code for _, code in rows} >= {"text-mismatch", "coding-system-missing"}
    assert Path(REPO / "docs" / "validation.md").is_file()
