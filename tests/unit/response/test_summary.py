"""The generic summary, and choosing a worksheet's own summarizer by canonical url."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from rejection_fhir.response import (
    Line,
    ResolvedResponse,
    Section,
    Summary,
    generic_summary,
    resolve_response,
    summarize,
    summarizer_for,
)
from tests.unit.response.helpers import CANONICAL, answered, item, tiny_questionnaire, tiny_response

Json = dict[str, Any]


def outline(entries: tuple[Line | Section, ...]) -> list[Any]:
    """Sections as (heading, [...]) and lines as (label, values[, children])."""
    out: list[Any] = []
    for entry in entries:
        if isinstance(entry, Section):
            out.append((entry.heading, outline(entry.entries)))
        elif entry.children:
            out.append((entry.label, entry.values, outline(entry.children)))
        else:
            out.append((entry.label, entry.values))
    return out


def test_generic_summary_of_the_kitchen_sink(response: Json, questionnaire: Json) -> None:
    summary = summarize(response, questionnaire)
    assert (
        summary.title,
        summary.questionnaire,
        summary.authored,
        summary.subject,
        summary.status,
    ) == (
        "Looking back at a rejection",
        f"{CANONICAL}|1.2.0",
        "2025-03-14T19:30:00+01:00",
        "Patient/p1",
        "completed",
    )
    assert (summary.alerts, summary.highlights) == ((), ())
    assert [section.heading for section in summary.sections] == [
        "What happened",
        "Emotion (1)",
        "Emotion (2)",
        None,  # the loose top-level questions between the groups
        "Follow-up",
    ]
    assert outline(summary.sections[1].entries) == [
        ("What did you feel?", ("Sad",)),
        ("How strong (0-10)?", ("7 points",)),
    ]
    loose = outline(summary.sections[3].entries)
    assert loose[0] == (
        "Thoughts that came up",
        ("Nobody wants me around", "Maybe it was about timing"),
    )
    assert loose[1] == ("Did you think about hurting yourself?", ("No",))
    assert ("Mood today", ("Low",)) in loose


def test_lines_keep_links_back_to_the_response(response: Json, questionnaire: Json) -> None:
    summary = summarize(response, questionnaire)
    emotion = summary.sections[2]
    assert (emotion.link_id, emotion.path) == ("emotions", "emotions[1]")
    line = emotion.entries[2]
    assert isinstance(line, Line)
    assert (line.link_id, line.path) == ("shame-source", "emotions[1]/shame-source")


def test_questions_under_answers_nest_under_their_line(response: Json, questionnaire: Json) -> None:
    item(response, "hurt-self")["answer"] = [
        {
            "valueBoolean": True,
            "item": [answered("hurt-plan", {"valueString": "No plan"})],
        }
    ]
    summary = summarize(response, questionnaire)
    hurt = next(
        entry
        for entry in summary.sections[3].entries
        if isinstance(entry, Line) and entry.link_id == "hurt-self"
    )
    assert outline((hurt,)) == [
        (
            "Did you think about hurting yourself?",
            ("Yes",),
            [("Did you make a plan?", ("No plan",))],
        )
    ]
    assert hurt.children[0].path == "hurt-self/hurt-plan"  # type: ignore[union-attr]


def test_unanswered_questions_and_empty_groups_are_left_out(questionnaire: Json) -> None:
    r = tiny_response(
        {"linkId": "event", "item": [{"linkId": "event-what"}]},
        {"linkId": "mood", "answer": []},
        answered("rating", {"valueInteger": 3}),
        url=CANONICAL,
    )
    summary = summarize(r, questionnaire)
    assert [outline(s.entries) for s in summary.sections] == [
        [("How hard was today (1-5)?", ("3",))]
    ]


def test_summary_without_questionnaire_uses_the_response_texts(response: Json) -> None:
    summary = summarize(response, None)
    assert summary.title == f"{CANONICAL}|1.2.0"
    assert summary.sections[0].heading == "What happened"  # item.text in the response
    assert outline(summary.sections[0].entries)[0] == ("event-date", ("2025-03-10",))


def test_generic_and_resolved_agree(response: Json, questionnaire: Json) -> None:
    # The generic summary reads the response directly for speed; it must show exactly
    # what the resolved tree shows.
    resolved = resolve_response(response, questionnaire)
    shown = [(line.path, line.values) for line in _lines(generic_summary(resolved).sections)]
    expected = [(it.path, it.displays) for it in resolved.walk() if it.answers]
    assert shown == expected


def _lines(entries: tuple[Line | Section, ...]) -> Iterator[Line]:
    for entry in entries:
        if isinstance(entry, Section):
            yield from _lines(entry.entries)
        else:
            yield entry
            yield from _lines(entry.children)


# ---------------------------------------------------------------------- summarizers


def _highlighting(label: str):  # type: ignore[no-untyped-def]
    def summarizer(response: ResolvedResponse) -> Summary:
        mood = response.first_answer("mood")
        return replace(
            generic_summary(response),
            alerts=("Check in about safety",) if response.answers("safety-check") else (),
            highlights=(Line(label, (mood.display if mood else "?",)),),
        )

    return summarizer


def test_a_given_summarizer_is_used_for_its_url(response: Json, questionnaire: Json) -> None:
    summarizers = {CANONICAL: _highlighting("Mood")}
    summary = summarize(response, questionnaire, summarizers=summarizers)
    assert summary.highlights == (Line("Mood", ("Low",)),)
    assert summary.sections == generic_summary(resolve_response(response, questionnaire)).sections
    other = tiny_questionnaire(url="http://clinic.test/fhir/Questionnaire/other")
    assert (
        summarize(tiny_response(url=other["url"]), other, summarizers=summarizers).highlights == ()
    )


def test_an_exact_version_wins_over_the_url(response: Json, questionnaire: Json) -> None:
    summarizers = {
        CANONICAL: _highlighting("any version"),
        f"{CANONICAL}|9.0.0": _highlighting("version 9"),
    }
    assert summarize(response, questionnaire, summarizers=summarizers).highlights[0].label == (
        "any version"
    )
    summarizers[f"{CANONICAL}|1.2.0"] = _highlighting("version 1.2.0")
    assert summarize(response, questionnaire, summarizers=summarizers).highlights[0].label == (
        "version 1.2.0"
    )
    assert summarizer_for(summarizers, f"{CANONICAL}|3.0.0") is summarizers[CANONICAL]


def test_without_questionnaire_the_response_canonical_chooses(response: Json) -> None:
    summarizers = {CANONICAL: _highlighting("Mood")}
    assert summarize(response, None, summarizers=summarizers).highlights[0].values == ("low",)


def test_without_summarizers_the_summary_is_generic(response: Json, questionnaire: Json) -> None:
    assert summarizer_for({}, CANONICAL) is None
    assert summarize(response, questionnaire) == generic_summary(
        resolve_response(response, questionnaire)
    )


def test_alerts_and_highlights_come_from_the_summarizer(
    response: Json, questionnaire: Json
) -> None:
    item(response, "hurt-self")["answer"] = [{"valueBoolean": True}]
    response["item"].insert(5, answered("safety-check", {"valueBoolean": False}))
    summarizers = {CANONICAL: _highlighting("Mood")}
    assert summarize(response, questionnaire, summarizers=summarizers).alerts == (
        "Check in about safety",
    )


def test_answers_under_a_group_without_linkid_are_shown_under_a_clear_heading() -> None:
    q = tiny_questionnaire(
        {
            "linkId": "phq",
            "type": "group",
            "text": "PHQ",
            "item": [{"linkId": "q9", "type": "integer", "text": "Thoughts of self-harm"}],
        }
    )
    for missing in ({}, {"linkId": None}, {"linkId": ""}):
        r = tiny_response({**missing, "item": [answered("q9", {"valueInteger": 2})]})
        (section,) = summarize(r, q).sections
        assert section.heading == "Group without a linkId (not matched to the Questionnaire)"
        assert outline(section.entries) == [("Thoughts of self-harm", ("2",))]
        assert (section.path, section.entries[0].path) == ("[0]", "[0]/q9")
    r = tiny_response({"text": "Mood items", "item": [answered("q9", {"valueInteger": 1})]})
    (section,) = summarize(r, q).sections
    assert section.heading == "Mood items (group without a linkId)"
    r = tiny_response({"text": "Loose", "answer": [{"valueString": "kept"}]})
    assert outline(summarize(r, None).sections[0].entries) == [("Loose", ("kept",))]


@pytest.mark.parametrize(
    ("group", "heading"),
    [
        ({"linkId": "coping-plan", "type": "group"}, "Coping plan (group)"),
        ({"linkId": "copingPlan", "type": "group"}, "Coping Plan (group)"),
        ({"linkId": "/44249-1", "type": "group"}, "/44249-1 (group)"),
        ({"linkId": "g", "type": "group", "text": "Your plan"}, "Your plan"),
        ({"linkId": "g", "type": "group", "prefix": "2.", "text": "Your plan"}, "2. Your plan"),
    ],
)
def test_a_group_without_text_is_headed_as_a_group(group: Json, heading: str) -> None:
    q = tiny_questionnaire({**group, "item": [{"linkId": "a", "type": "string", "text": "A"}]})
    r = tiny_response({"linkId": group["linkId"], "item": [answered("a", {"valueString": "x"})]})
    assert summarize(r, q).sections[0].heading == heading


def test_a_response_text_heads_a_group_the_questionnaire_leaves_untitled() -> None:
    q = tiny_questionnaire(
        {"linkId": "g", "type": "group", "item": [{"linkId": "a", "type": "string"}]}
    )
    r = tiny_response(
        {"linkId": "g", "text": "Plan", "item": [answered("a", {"valueString": "x"})]}
    )
    assert summarize(r, q).sections[0].heading == "Plan"


def test_summary_paths_escape_slashes_in_linkids() -> None:
    r = tiny_response(
        {"linkId": "/44249-1", "item": [answered("/44249-1/44260-8", {"valueInteger": 2})]}
    )
    (section,) = summarize(r, None).sections
    assert section.path == "\\/44249-1"
    assert section.entries[0].path == "\\/44249-1/\\/44249-1\\/44260-8"
    resolved = resolve_response(r, None)
    assert [i.path for i in resolved.walk()] == [section.path, section.entries[0].path]
