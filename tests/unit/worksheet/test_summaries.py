"""The six worksheet summaries: the lines a clinician reads first."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rejection_fhir.response.render import render_text, render_xhtml
from rejection_fhir.response.summary import summarize as summarize_with
from rejection_fhir.worksheet.summaries import worksheet_summarizers

DATA = Path(__file__).parents[2] / "data"
CS = "https://rejection-fhir.org/fhir/CodeSystem/coping-with-rejection"


@pytest.fixture
def worksheets(built):
    return {q["id"]: q for q in built.questionnaires}


def summarize(qr, questionnaire):
    """The worksheet's own summary, its summarizer given explicitly (no registry)."""
    return summarize_with(qr, questionnaire, summarizers=worksheet_summarizers([questionnaire]))


def _code(code):
    return {"valueCoding": {"system": CS, "code": code}}


def _qr(name, items):
    return {
        "resourceType": "QuestionnaireResponse",
        "id": f"{name}-1",
        "questionnaire": f"https://rejection-fhir.org/fhir/Questionnaire/{name}|1.0.0",
        "status": "completed",
        "authored": "2026-11-20T10:00:00Z",
        "subject": {"reference": "Patient/p1"},
        "item": items,
    }


def _item(link_id, *answers, items=None):
    out = {"linkId": link_id}
    if answers:
        out["answer"] = list(answers)
    if items:
        out["item"] = items
    return out


def _highlights(summary):
    return {line.label: line.values for line in summary.highlights}


def test_rejection_log(worksheets):
    qr = json.loads((DATA / "qr-rejection-log.json").read_text())
    summary = summarize(qr, worksheets["rejection-log"])
    assert _highlights(summary) == {
        "Kind of rejection": ("Social",),
        "Strongest emotions": ("Hurt 8/10, Left out 6/10",),
        "Reactions": ("Going over it again and again, Low mood",),
        "Feels it says about my worth": ("7/10",),
    }
    text = render_text(summary)
    assert text.index("Highlights") < text.index("What happened?")
    assert "<b>ouch</b>" not in render_xhtml(summary) and "&lt;b&gt;ouch&lt;/b&gt;" in render_xhtml(
        summary
    )


def test_core_beliefs_strength_before_and_after(worksheets):
    qr = _qr(
        "core-beliefs",
        [
            _item("belief", _code("other")),
            _item("belief-other", {"valueString": "Nobody picks me"}),
            _item("strength-before", {"valueInteger": 80}),
            _item("evidence-for", {"valueString": "Not invited"}),
            _item("evidence-against", {"valueString": "Invited last month"}),
            _item("alternative", {"valueString": "Sometimes I'm left out, and I'm often included"}),
            _item("strength-after", {"valueInteger": 45}),
        ],
    )
    assert _highlights(summarize(qr, worksheets["core-beliefs"])) == {
        "Belief": ("Other: Nobody picks me",),
        "Strength before → after": ("80 % → 45 % (−35)",),
        "Balanced alternative": ("Sometimes I'm left out, and I'm often included",),
    }


def test_self_compassion(worksheets):
    qr = _qr(
        "self-compassion",
        [
            _item("friend", {"valueString": "You matter to me"}),
            _item("self-talk", {"valueString": "I'm allowed to hurt"}),
            _item("practice", _code("journaling")),
            _item("frequency", _code("daily")),
            _item("self-kindness", {"valueInteger": 4}),
        ],
    )
    assert _highlights(summarize(qr, worksheets["self-compassion"])) == {
        "Would tell a friend": ("You matter to me",),
        "Practice": ("Journaling, every day",),
        "Self-kindness now": ("4/10",),
    }


def test_validate_emotions_sorts_feelings(worksheets):
    qr = _qr(
        "validate-emotions",
        [
            _item(
                "feeling",
                items=[
                    _item("feeling.name", _code("sadness")),
                    _item("feeling.intensity", {"valueInteger": 3}),
                ],
            ),
            _item(
                "feeling",
                items=[
                    _item("feeling.name", _code("grief")),
                    _item("feeling.intensity", {"valueInteger": 9}),
                ],
            ),
            _item("what-mattered", {"valueString": "Belonging"}),
            _item("kind-sentence", {"valueString": "It makes sense"}),
        ],
    )
    assert _highlights(summarize(qr, worksheets["validate-emotions"]))["Feelings"] == (
        "Grief 9/10, Sadness 3/10",
    )


def test_reframe_and_future_focus(worksheets):
    reframe = _qr(
        "reframe-redirection",
        [
            _item("situation", {"valueString": "Job"}),
            _item("possible-now", {"valueString": "Apply elsewhere"}),
            _item("learned", {"valueString": "I care about craft"}),
            _item("hopefulness", {"valueInteger": 6}),
        ],
    )
    assert _highlights(summarize(reframe, worksheets["reframe-redirection"])) == {
        "What is possible now": ("Apply elsewhere",),
        "What I learned": ("I care about craft",),
        "Hopefulness": ("6/10",),
    }
    future = _qr(
        "future-focus",
        [
            _item("values", {"valueString": "Honesty"}),
            _item("insights", {"valueString": "Say no sooner"}),
            _item(
                "next-step",
                items=[
                    _item("next-step.action", {"valueString": "Call Sam"}),
                    _item("next-step.date", {"valueDate": "2026-12-01"}),
                ],
            ),
        ],
    )
    assert _highlights(summarize(future, worksheets["future-focus"]))["Next step"] == (
        "Call Sam (by 2026-12-01)",
    )


def test_unanswered_highlights_are_left_out(worksheets):
    summary = summarize(
        _qr("core-beliefs", [_item("belief", _code("unlovable"))]), worksheets["core-beliefs"]
    )
    assert _highlights(summary) == {"Belief": ("I'm unlovable",)}


def test_non_finite_numbers_are_shown_not_crashed_on(worksheets):
    qr = _qr(
        "core-beliefs",
        [
            _item("strength-before", {"valueInteger": 80}),
            _item("strength-after", {"valueDecimal": float("inf")}),
        ],
    )
    summary = summarize(qr, worksheets["core-beliefs"])
    assert _highlights(summary)["Strength before → after"][0].startswith("80 % → inf %")
