"""Summaries of the project's six worksheets: what a clinician reads in twenty seconds.

Each summarizer puts the few lines that matter in ``highlights`` (the belief and its
strength before → after, the strongest emotions…) and keeps the full question → answer
sections below.  They are keyed on each worksheet's canonical url, which depends on the
canonical base the clinic built with, so :func:`worksheet_summarizers` takes the built
Questionnaires rather than a hard-coded url (the catalog holds the result).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from rejection_fhir.response.answers import AnswerRecord, ResolvedResponse, value_of
from rejection_fhir.response.summary import Line, Summarizer, Summary, generic_summary

# The highlights read answers through ResolvedResponse.firsts and answered: the summary's
# walk has already recorded them, so a highlight costs a lookup or two.


#: The first answered instance of each linkId (ResolvedResponse.firsts).
Firsts = Mapping[str, AnswerRecord]


def _text(first: Firsts, link_id: str) -> str | None:
    record = first.get(link_id)
    return record[1][0] if record is not None else None


def _code(answer: Mapping[str, Any]) -> Any:
    key, value = value_of(answer)
    return value.get("code") if key == "valueCoding" and isinstance(value, dict) else None


def _choice(first: Firsts, link_id: str, other: str) -> str | None:
    """The chosen option, or what the client wrote for "Other"."""
    record = first.get(link_id)
    if record is None:
        return None
    if _code(record[2]) == "other":
        specified = _text(first, other)
        return f"Other: {specified}" if specified else record[1][0]
    return record[1][0]


def _number(first: Firsts, link_id: str) -> float | None:
    record = first.get(link_id)
    if record is None:
        return None
    value = value_of(record[2])[1]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _fmt(value: float) -> str:
    # A hostile or broken response can carry 1e999 (infinity) or NaN; show it, never crash.
    if not math.isfinite(value):
        return str(value)
    return str(int(value)) if value == int(value) else f"{value:g}"


def _named_intensities(
    response: ResolvedResponse, group: str, name: str, other: str, intensity: str
) -> list[tuple[str, float]]:
    """(emotion, intensity) for each instance of a repeating group, strongest first.

    Pairs the answers by the group instance their paths name, rather than resolving the
    groups (this runs for every rejection log a sync summarises).
    """
    names: dict[str, tuple[str, dict[str, Any]]] = {}
    for path, shown, answer in response.answered(name):
        # The last one wins, as reading the items in order would.
        names[path.rpartition("/")[0]] = (shown[0], answer)
    if not names:
        return []
    strengths: dict[str, float] = {}
    for path, _, answer in response.answered(intensity):
        value = value_of(answer)[1]
        if isinstance(value, int | float):
            strengths[path.rpartition("/")[0]] = float(value)
    others: dict[str, str] | None = None
    out: list[tuple[str, float]] = []
    for instance, (label, answer) in names.items():
        strength = strengths.get(instance)
        if strength is None or not _is_instance_of(instance, group):
            continue
        if _code(answer) == "other":
            if others is None:
                others = {}
                for path, shown, _ in response.answered(other):
                    others.setdefault(path.rpartition("/")[0], shown[0])
            label = others.get(instance, label)
        out.append((label, strength))
    out.sort(key=lambda pair: -pair[1])
    return out


def _is_instance_of(path: str, group: str) -> bool:
    """``emotion[1]`` or ``x/emotion`` is an instance of ``emotion``."""
    last = path.rpartition("/")[2]
    return last == group or (last.startswith(group + "[") and last.endswith("]"))


def _line(label: str, value: str | None) -> Line | None:
    return Line(label, (value,)) if value else None


def _with(base: Summary, *lines: Line | None) -> Summary:
    # The summary generic_summary just made for us, given its highlights in place: a copy
    # (dataclasses.replace) would cost more than the highlights themselves.
    base.highlights = tuple(line for line in lines if line is not None)
    return base


def rejection_log(response: ResolvedResponse) -> Summary:
    base = generic_summary(response)  # first: its walk records the answers looked up below
    first = response.firsts
    emotions = _named_intensities(
        response, "emotion", "emotion.name", "emotion.other", "emotion.intensity"
    )
    worth = _number(first, "worth-impact")
    reactions = response.displays("reactions")
    return _with(
        base,
        _line("Kind of rejection", _choice(first, "kind", "kind-other")),
        _line("Strongest emotions", ", ".join(f"{name} {_fmt(v)}/10" for name, v in emotions[:3])),
        _line("Reactions", ", ".join(reactions)),
        _line("Feels it says about my worth", f"{_fmt(worth)}/10" if worth is not None else None),
    )


def validate_emotions(response: ResolvedResponse) -> Summary:
    base = generic_summary(response)  # first: its walk records the answers looked up below
    first = response.firsts
    feelings = _named_intensities(
        response, "feeling", "feeling.name", "feeling.other", "feeling.intensity"
    )
    return _with(
        base,
        _line("Feelings", ", ".join(f"{name} {_fmt(v)}/10" for name, v in feelings)),
        _line("What mattered", _text(first, "what-mattered")),
        _line("Kind sentence", _text(first, "kind-sentence")),
    )


def reframe_redirection(response: ResolvedResponse) -> Summary:
    base = generic_summary(response)  # first: its walk records the answers looked up below
    first = response.firsts
    hope = _number(first, "hopefulness")
    return _with(
        base,
        _line("What is possible now", _text(first, "possible-now")),
        _line("What I learned", _text(first, "learned")),
        _line("Hopefulness", f"{_fmt(hope)}/10" if hope is not None else None),
    )


def self_compassion(response: ResolvedResponse) -> Summary:
    base = generic_summary(response)  # first: its walk records the answers looked up below
    first = response.firsts
    practice = _choice(first, "practice", "practice-other")
    frequency = _text(first, "frequency")
    kindness = _number(first, "self-kindness")
    return _with(
        base,
        _line("Would tell a friend", _text(first, "friend")),
        _line(
            "Practice", f"{practice}, {frequency.lower()}" if practice and frequency else practice
        ),
        _line("Self-kindness now", f"{_fmt(kindness)}/10" if kindness is not None else None),
    )


def core_beliefs(response: ResolvedResponse) -> Summary:
    base = generic_summary(response)  # first: its walk records the answers looked up below
    first = response.firsts
    before, after = _number(first, "strength-before"), _number(first, "strength-after")
    strength = None
    if before is not None and after is not None:
        change = after - before
        strength = f"{_fmt(before)} % → {_fmt(after)} % ({'+' if change > 0 else '−' if change < 0 else '±'}{_fmt(abs(change))})"
    elif before is not None:
        strength = f"{_fmt(before)} % before"
    return _with(
        base,
        _line("Belief", _choice(first, "belief", "belief-other")),
        _line("Strength before → after", strength),
        _line("Balanced alternative", _text(first, "alternative")),
    )


def future_focus(response: ResolvedResponse) -> Summary:
    base = generic_summary(response)  # first: its walk records the answers looked up below
    first = response.firsts
    action, when = _text(first, "next-step.action"), _text(first, "next-step.date")
    return _with(
        base,
        _line("Values", _text(first, "values")),
        _line("Next step", f"{action} (by {when})" if action and when else action),
        _line("Boundaries and insights", _text(first, "insights")),
    )


WORKSHEET_SUMMARIZERS: dict[str, Summarizer] = {
    "rejection-log": rejection_log,
    "validate-emotions": validate_emotions,
    "reframe-redirection": reframe_redirection,
    "self-compassion": self_compassion,
    "core-beliefs": core_beliefs,
    "future-focus": future_focus,
}


def worksheet_summarizers(questionnaires: Iterable[Mapping[str, Any]]) -> dict[str, Summarizer]:
    """The worksheet summarizers keyed on the urls these Questionnaires carry."""
    found: dict[str, Summarizer] = {}
    for q in questionnaires:
        url = q.get("url")
        if not isinstance(url, str) or "/Questionnaire/" not in url:
            continue
        summarizer = WORKSHEET_SUMMARIZERS.get(url.rsplit("/Questionnaire/", 1)[1])
        if summarizer is not None:
            found[url] = summarizer
    return found
