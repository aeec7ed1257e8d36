"""Summaries of the project's six worksheets: what a clinician reads in twenty seconds.

Each summarizer puts the few lines that matter in ``highlights`` (the belief and its
strength before → after, the strongest emotions…) and keeps the full question → answer
sections below.  They are registered under each worksheet's canonical url, which depends
on the canonical base the clinic built with, so :func:`register_worksheets` takes the
built Questionnaires rather than a hard-coded url.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

from rejection_fhir.response.answers import ResolvedAnswer, ResolvedItem, ResolvedResponse
from rejection_fhir.response.summary import Line, Summary, generic_summary, register_summarizer

Summarizer = Callable[[ResolvedResponse], Summary]


def _first(response: ResolvedResponse, link_id: str) -> ResolvedAnswer | None:
    return response.first_answer(link_id)


def _text(response: ResolvedResponse, link_id: str) -> str | None:
    answer = _first(response, link_id)
    return answer.display if answer is not None else None


def _choice(response: ResolvedResponse, link_id: str, other: str) -> str | None:
    """The chosen option, or what the client wrote for "Other"."""
    answer = _first(response, link_id)
    if answer is None:
        return None
    if answer.code == "other":
        specified = _text(response, other)
        return f"Other: {specified}" if specified else answer.display
    return answer.display


def _number(response: ResolvedResponse, link_id: str) -> float | None:
    answer = _first(response, link_id)
    if (
        answer is None
        or isinstance(answer.value, bool)
        or not isinstance(answer.value, int | float)
    ):
        return None
    return float(answer.value)


def _fmt(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"


def _named_intensities(
    response: ResolvedResponse, group: str, name: str, other: str, intensity: str
) -> list[tuple[str, float]]:
    """(emotion, intensity) for each instance of a repeating group, strongest first."""
    out: list[tuple[str, float]] = []
    for instance in response.find(group):
        label, strength = None, None
        for child in _children(instance):
            if child.link_id == name and child.answers:
                label = child.answers[0].display
                if child.answers[0].code == "other":
                    label = next(
                        (
                            c.answers[0].display
                            for c in _children(instance)
                            if c.link_id == other and c.answers
                        ),
                        label,
                    )
            elif (
                child.link_id == intensity
                and child.answers
                and isinstance(child.answers[0].value, int | float)
            ):
                strength = float(child.answers[0].value)
        if label is not None and strength is not None:
            out.append((label, strength))
    return sorted(out, key=lambda pair: -pair[1])


def _children(item: ResolvedItem) -> Iterable[ResolvedItem]:
    yield from item.items
    for answer in item.answers:
        yield from answer.items


def _line(label: str, *values: str | None) -> Line | None:
    kept = tuple(v for v in values if v)
    return Line(label, kept) if kept else None


def _with(response: ResolvedResponse, *lines: Line | None) -> Summary:
    return replace(
        generic_summary(response), highlights=tuple(line for line in lines if line is not None)
    )


def rejection_log(response: ResolvedResponse) -> Summary:
    emotions = _named_intensities(
        response, "emotion", "emotion.name", "emotion.other", "emotion.intensity"
    )
    worth = _number(response, "worth-impact")
    reactions = tuple(a.display for a in response.answers("reactions"))
    return _with(
        response,
        _line("Kind of rejection", _choice(response, "kind", "kind-other")),
        _line("Strongest emotions", ", ".join(f"{name} {_fmt(v)}/10" for name, v in emotions[:3])),
        _line("Reactions", ", ".join(reactions)),
        _line("Feels it says about my worth", f"{_fmt(worth)}/10" if worth is not None else None),
    )


def validate_emotions(response: ResolvedResponse) -> Summary:
    feelings = _named_intensities(
        response, "feeling", "feeling.name", "feeling.other", "feeling.intensity"
    )
    return _with(
        response,
        _line("Feelings", ", ".join(f"{name} {_fmt(v)}/10" for name, v in feelings)),
        _line("What mattered", _text(response, "what-mattered")),
        _line("Kind sentence", _text(response, "kind-sentence")),
    )


def reframe_redirection(response: ResolvedResponse) -> Summary:
    hope = _number(response, "hopefulness")
    return _with(
        response,
        _line("What is possible now", _text(response, "possible-now")),
        _line("What I learned", _text(response, "learned")),
        _line("Hopefulness", f"{_fmt(hope)}/10" if hope is not None else None),
    )


def self_compassion(response: ResolvedResponse) -> Summary:
    practice = _choice(response, "practice", "practice-other")
    frequency = _text(response, "frequency")
    kindness = _number(response, "self-kindness")
    return _with(
        response,
        _line("Would tell a friend", _text(response, "friend")),
        _line(
            "Practice", f"{practice}, {frequency.lower()}" if practice and frequency else practice
        ),
        _line("Self-kindness now", f"{_fmt(kindness)}/10" if kindness is not None else None),
    )


def core_beliefs(response: ResolvedResponse) -> Summary:
    before, after = _number(response, "strength-before"), _number(response, "strength-after")
    strength = None
    if before is not None and after is not None:
        change = after - before
        strength = f"{_fmt(before)} % → {_fmt(after)} % ({'+' if change > 0 else '−' if change < 0 else '±'}{_fmt(abs(change))})"
    elif before is not None:
        strength = f"{_fmt(before)} % before"
    return _with(
        response,
        _line("Belief", _choice(response, "belief", "belief-other")),
        _line("Strength before → after", strength),
        _line("Balanced alternative", _text(response, "alternative")),
    )


def future_focus(response: ResolvedResponse) -> Summary:
    action, when = _text(response, "next-step.action"), _text(response, "next-step.date")
    return _with(
        response,
        _line("Values", _text(response, "values")),
        _line("Next step", f"{action} (by {when})" if action and when else action),
        _line("Boundaries and insights", _text(response, "insights")),
    )


WORKSHEET_SUMMARIZERS: dict[str, Summarizer] = {
    "rejection-log": rejection_log,
    "validate-emotions": validate_emotions,
    "reframe-redirection": reframe_redirection,
    "self-compassion": self_compassion,
    "core-beliefs": core_beliefs,
    "future-focus": future_focus,
}


def register_worksheets(questionnaires: Iterable[Mapping[str, Any]]) -> int:
    """Register the worksheet summarizers under the urls these Questionnaires carry."""
    count = 0
    for q in questionnaires:
        url = q.get("url")
        if not isinstance(url, str) or "/Questionnaire/" not in url:
            continue
        summarizer = WORKSHEET_SUMMARIZERS.get(url.rsplit("/Questionnaire/", 1)[1])
        if summarizer is not None:
            register_summarizer(url)(summarizer)
            count += 1
    return count
