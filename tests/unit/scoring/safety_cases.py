"""PHQ-9-shaped responses in every shape other systems send, for the item 9 safety rule.

``make_case(rng, phq9)`` draws one response with what the rule must say about it; the
property test (test_safety_property.py) draws hundreds through hypothesis, and

    .venv/bin/python -m tests.unit.scoring.safety_cases [N]

draws N (default 2000) with seeds 0..N-1 and prints how many alerted as required, per
variant and output (the figures reported in the closing note of issue 13).
"""

from __future__ import annotations

import random
import re
import sys
from collections import Counter
from dataclasses import dataclass
from typing import Any

import orjson

from rejection_fhir.commands.summarize import RENDERERS
from rejection_fhir.ehr.entries import ResponseVersion
from rejection_fhir.ehr.flag import safety_entries
from rejection_fhir.scoring import PHQ9
from rejection_fhir.scoring.clinical import clinical_summary

LOINC = "http://loinc.org"
ORDINAL = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
CODES = ["LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"]
DISPLAYS = ["Not at all", "Several days", "More than half the days", "Nearly every day"]
TEXTS = [
    "Little interest or pleasure in doing things",
    "Feeling down, depressed, or hopeless",
    "Trouble falling or staying asleep, or sleeping too much",
    "Feeling tired or having little energy",
    "Poor appetite or overeating",
    "Feeling bad about yourself - or that you are a failure or have let yourself or your "
    "family down",
    "Trouble concentrating on things, such as reading the newspaper or watching television",
    "Moving or speaking so slowly that other people could have noticed",
    "Thoughts that you would be better off dead, or of hurting yourself in some way",
]
LINK_STYLES = ("ours", "loinc", "path", "bare", "foreign")
ENCODINGS = (
    "coding",
    "coding-no-system",
    "display-only",
    "own-code-weight",
    "integer",
    "decimal",
    "string-digit",
    "string-display",
)
QUESTIONNAIRES = ("ours", "none", "unknown-version", "foreign-codes", "foreign-text-only")
ITEM9 = ("positive", "positive", "positive", "unreadable", "missing", "zero")
UNREADABLE = (
    {"valueString": "not sure"},
    {"valueBoolean": True},
    {"valueCoding": {"system": LOINC, "code": "LA9999-9"}},
    {"valueInteger": 7},
    {"valueDecimal": 1.5},
)


@dataclass
class Case:
    qr: dict[str, Any]
    questionnaire: dict[str, Any] | None
    fallback: dict[str, Any] | None
    #: "phq9-item9-positive", "phq9-item9-unreadable" or "" (no alert).
    expected: str
    variant: str


def encode(weight: int, how: str) -> dict[str, Any]:
    if how == "coding":
        return {
            "valueCoding": {"system": LOINC, "code": CODES[weight], "display": DISPLAYS[weight]}
        }
    if how == "coding-no-system":
        return {"valueCoding": {"code": CODES[weight]}}
    if how == "display-only":
        return {"valueCoding": {"display": DISPLAYS[weight]}}
    if how == "own-code-weight":
        return {
            "valueCoding": {
                "system": "urn:example:ehr-answers",
                "code": f"freq-{weight}",
                "extension": [{"url": ORDINAL, "valueDecimal": weight}],
            }
        }
    if how == "integer":
        return {"valueInteger": weight}
    if how == "decimal":
        return {"valueDecimal": float(weight)}
    if how == "string-digit":
        return {"valueString": str(weight)}
    return {"valueString": DISPLAYS[weight].upper() + " "}


def link_id(style: str, i: int) -> str:
    code = PHQ9.items[i - 1]
    return {
        "ours": f"phq9-{i}",
        "loinc": f"/{code}",
        "path": f"/44249-1/{code}",
        "bare": code,
        "foreign": f"q{i}",
    }[style]


def _foreign_questionnaire(style: str, codes: bool) -> dict[str, Any]:
    options = [
        {
            "valueCoding": {"system": LOINC, "code": c, "display": d},
            "extension": [{"url": ORDINAL, "valueDecimal": w}],
        }
        for w, (c, d) in enumerate(zip(CODES, DISPLAYS, strict=True))
    ]
    items = []
    for i in range(1, 10):
        item: dict[str, Any] = {
            "linkId": link_id(style, i),
            "type": "choice",
            "text": TEXTS[i - 1] if not codes else f"Question {i}",
            "answerOption": options,
        }
        if codes:
            item["code"] = [{"system": LOINC, "code": PHQ9.items[i - 1]}]
        items.append(item)
    kind = "codes" if codes else "text"
    return {
        "resourceType": "Questionnaire",
        "url": f"https://ehr.example/Questionnaire/mood-{style}-{kind}",
        "version": "3",
        "status": "active",
        "title": "Mood check",
        "item": [
            {"linkId": "/44249-1" if style == "path" else "grp", "type": "group", "item": items}
        ],
    }


def make_case(rng: random.Random, phq9: dict[str, Any]) -> Case:
    q_mode = rng.choice(QUESTIONNAIRES)
    style = "ours" if q_mode == "ours" else rng.choice(LINK_STYLES)
    needs_text = style == "foreign" and q_mode in ("none", "unknown-version")
    text_in_response = needs_text or rng.random() < 0.3
    nine = rng.choice(ITEM9)
    missing = set(rng.sample(range(1, 9), rng.choice([0, 0, 1, 2, 3])))
    items: list[dict[str, Any]] = []
    encodings = []
    for i in range(1, 10):
        if i in missing:
            continue
        item: dict[str, Any] = {"linkId": link_id(style, i)}
        if text_in_response:
            item["text"] = TEXTS[i - 1]
        if i == 9:
            if nine == "missing":
                continue
            if nine == "unreadable":
                item["answer"] = [rng.choice(UNREADABLE)]
                encodings.append("garbage")
            else:
                how = rng.choice(ENCODINGS)
                encodings.append(how)
                item["answer"] = [encode(rng.randint(1, 3) if nine == "positive" else 0, how)]
        else:
            item["answer"] = [encode(rng.randint(0, 3), rng.choice(ENCODINGS))]
        items.append(item)
    if rng.random() < 0.5:
        items = [{"linkId": "/44249-1" if style == "path" else "grp", "item": items}]
    qr: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "id": f"case-{rng.randrange(10**6)}",
        "status": "completed",
        "authored": "2026-11-20T10:00:00Z",
        "subject": {"reference": "Patient/p1"},
        "item": items,
    }
    questionnaire: dict[str, Any] | None = None
    fallback: dict[str, Any] | None = None
    if q_mode == "ours":
        questionnaire = phq9
        qr["questionnaire"] = f"{phq9['url']}|{phq9['version']}"
    elif q_mode == "unknown-version":
        qr["questionnaire"] = f"{phq9['url']}|2024.2"
        fallback = phq9
    elif q_mode == "none":
        if rng.random() < 0.5:
            qr["questionnaire"] = "https://elsewhere.example/Questionnaire/unknown|1"
    else:
        questionnaire = _foreign_questionnaire(style, codes=q_mode == "foreign-codes")
        qr["questionnaire"] = f"{questionnaire['url']}|3"
    expected = {
        "positive": "phq9-item9-positive",
        "unreadable": "phq9-item9-unreadable",
        "missing": "phq9-item9-unreadable",
        "zero": "",
    }[nine]
    variant = (
        f"item9={nine} q={q_mode} linkIds={style} text={'yes' if text_in_response else 'no'} "
        f"answer9={encodings[-1] if nine not in ('missing',) else '-'} "
        f"missing={len(missing)}"
    )
    return Case(qr, questionnaire, fallback, expected, variant)


_TAGS = re.compile(r"<[^>]+>")


def outcomes(case: Case) -> dict[str, bool]:
    """Whether each output says what the rule requires (the alert first, or nothing)."""
    clinical = clinical_summary(case.qr, case.questionnaire, fallback=case.fallback)
    summary = clinical.summary
    kinds = [a.kind for a in clinical.alerts]
    result: dict[str, bool] = {"alerts": kinds == ([case.expected] if case.expected else [])}
    labels = [line.label for line in summary.highlights]
    for section in summary.sections:
        for entry in section.entries:
            labels.append(getattr(entry, "label", None) or getattr(entry, "heading", "") or "")
    for fmt, render in RENDERERS.items():
        out = render(summary)
        if fmt == "json":
            alerts = orjson.loads(out)["alerts"]
            if case.expected:
                result[fmt] = bool(alerts) and alerts[0]["kind"] == case.expected
            else:
                result[fmt] = not any(a["kind"].startswith("phq9-") for a in alerts)
            continue
        if not case.expected:
            result[fmt] = "SAFETY" not in out
            continue
        at = out.find("SAFETY")
        before = _TAGS.sub(" ", out[:at]).replace("\\", "") if at >= 0 else ""
        first = at >= 0 and "score" not in before.lower() and "Highlights" not in before
        first = first and not any(label[:12] and label[:12] in before for label in labels)
        wording = "could not check" if case.expected.endswith("unreadable") else "was answered"
        result[fmt] = first and wording in out[at : at + 200]
    flags = [
        e["resource"]
        for e in safety_entries(
            case.qr, ResponseVersion("http://source.example/fhir", "r1", "1"), clinical.alerts
        )
        if e["resource"]["resourceType"] == "Flag"
    ]
    want = {"phq9-item9-positive": "6471006", "phq9-item9-unreadable": "phq9-item9-unreadable"}
    result["flag"] = [f["code"]["coding"][0]["code"] for f in flags] == (
        [want[case.expected]] if case.expected else []
    )
    return result


def main(argv: list[str]) -> int:
    from pathlib import Path

    from rejection_fhir.commands.build import build_all

    count = int(argv[0]) if argv else 2000
    built, _ = build_all(Path(__file__).resolve().parents[3] / "questionnaires")
    phq9 = next(q for q in built.questionnaires if q["id"] == "phq-9")
    totals: Counter[tuple[str, str]] = Counter()
    passed: Counter[tuple[str, str]] = Counter()
    failures = []
    for seed in range(count):
        case = make_case(random.Random(seed), phq9)
        group = case.expected or "no alert (item 9 = 0)"
        for output, ok in outcomes(case).items():
            totals[(group, output)] += 1
            passed[(group, output)] += ok
            if not ok:
                failures.append((seed, output, case.variant))
    print(f"{count} generated PHQ-9-shaped responses (seeds 0..{count - 1})")
    for group in sorted({g for g, _ in totals}):
        cells = [
            f"{output} {passed[(group, output)]}/{totals[(group, output)]}"
            for output in ("alerts", "text", "markdown", "json", "xhtml", "flag")
        ]
        print(f"  {group}: " + ", ".join(cells))
    for seed, output, variant in failures[:20]:
        print(f"  FAILED seed {seed} {output}: {variant}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
