"""The clinician summary of a response: one model, generic or worksheet-specific.

A :class:`Summary` is what every renderer in :mod:`rejection_fhir.response.render` draws:
alerts first (e.g. safety), then highlights, then sections of question -> answer lines in
Questionnaire order, nested as the worksheet nests them.

The generic summarizer turns any response into sections.  A worksheet that deserves a
better reading has its own summarizer, given by the caller under its Questionnaire's
canonical url (the project's are in ``worksheet.catalog.Catalog.summarizers``)::

    def core_beliefs(response: ResolvedResponse) -> Summary:
        base = generic_summary(response)
        return replace(base, highlights=(Line("Belief", ...), ...))

    summarize(qr, questionnaire, summarizers={"http://example.org/Questionnaire/core-beliefs": core_beliefs})

:func:`summarize` picks the summarizer for the Questionnaire (exact ``url|version``
first, then ``url``) and falls back to :func:`generic_summary`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias

from rejection_fhir.response.answers import (
    NO_LINK_ID,
    NO_VALUE,
    AnswerRecord,
    ResolvedResponse,
    Resolver,
    resolve_response,
)
from rejection_fhir.response.questionnaire import (
    CompiledQuestionnaire,
    ItemDef,
    path_segment,
    split_canonical,
)
from rejection_fhir.response.values import UNREADABLE

__all__ = [
    "Entry",
    "JsonReady",
    "Line",
    "Section",
    "Summarizer",
    "Summarizers",
    "Summary",
    "generic_summary",
    "summarize",
    "summarize_resolved",
    "summarizer_for",
]


class JsonReady(Protocol):
    """Anything a summary carries for programs: it knows its own JSON form."""

    def as_json(self) -> dict[str, Any]: ...


@dataclass(slots=True)
class Line:
    """A question and its answers (several when the question repeats).

    ``children`` holds what the worksheet asks under this answer (nested questions).
    Treat as read-only (not frozen only because frozen dataclasses are 3x slower to build,
    and a sync builds one Line per answered question).
    """

    label: str
    values: tuple[str, ...]
    link_id: str | None = None
    path: str | None = None
    children: tuple[Entry, ...] = ()


@dataclass(slots=True)
class Section:
    """A heading (a group, or None for loose top-level questions) over lines and subsections.

    Treat as read-only.
    """

    heading: str | None
    entries: tuple[Entry, ...]
    link_id: str | None = None
    path: str | None = None


Entry: TypeAlias = Line | Section


@dataclass(slots=True)
class Summary:
    """Everything a renderer needs; built by a summarizer, never by a renderer.

    Treat as read-only; derive variants with :func:`dataclasses.replace`.

    ``alerts`` come first in every rendering (e.g. a safety answer); ``highlights`` are
    the few lines a worksheet summarizer wants read before the full sections.
    """

    title: str
    questionnaire: str | None  # canonical as the response names it
    authored: str | None
    subject: str | None  # reference, e.g. "Patient/123"
    status: str | None
    alerts: tuple[str, ...] = ()
    highlights: tuple[Line, ...] = ()
    sections: tuple[Section, ...] = ()
    #: Machine-readable scores (objects with ``as_json()``, e.g. ``scoring.Score``), for
    #: the JSON rendering; turned into dicts only when JSON is rendered.
    scores: tuple[JsonReady, ...] = ()
    #: Machine-readable detail of the first ``len(alert_data)`` alerts (e.g.
    #: ``scoring.SafetyAlert``), for the JSON rendering.
    alert_data: tuple[JsonReady, ...] = ()


Summarizer: TypeAlias = Callable[[ResolvedResponse], Summary]


# ---------------------------------------------------------------------- generic


def generic_summary(response: ResolvedResponse) -> Summary:
    """Question -> answer for every answered item, in order, groups as headed sections.

    Top-level questions between groups gather in untitled sections.  Builds straight from
    the response dict (not via ``response.items``): this is the sync's hot path.  The same
    walk indexes the response's items by linkId, so a worksheet summarizer that then looks
    up a few answers (``response.first_answer``) does not walk the response again.
    """
    resolver = response.resolver
    walk = _Walk() if response.needs_answers else None
    sections: list[Section] = []
    loose: list[Entry] = []
    for entry in _entries(resolver, response.source.get("item"), resolver.root_index, "", walk):
        if type(entry) is Section:
            if loose:
                sections.append(Section(None, tuple(loose)))
                loose = []
            sections.append(entry)
        else:
            loose.append(entry)
    if loose:
        sections.append(Section(None, tuple(loose)))
    if walk is not None:
        response.adopt_answers(walk.firsts, walk.more)
    return Summary(
        response.title,
        response.questionnaire,
        response.authored,
        response.subject,
        response.status,
        (),
        (),
        tuple(sections),
    )


def _entries(
    resolver: Resolver,
    raw_items: object,
    expected: Mapping[str, ItemDef] | None,
    base: str,
    walk: _Walk | None,
) -> list[Entry]:
    # answers.iter_items and ResolvedResponse._index_items, inlined (with _shown for the
    # usual answers): this loop runs for every item of every response a sync summarises.
    # Paths, the index and the displays must stay identical to theirs.
    out: list[Entry] = []
    if not isinstance(raw_items, list):
        return out
    by_link_id = resolver.by_link_id
    display = resolver.display
    if expected is None:
        expected = _NO_ITEMS
    if walk is not None:
        firsts, more = walk.firsts, walk.more
    seen: dict[str, int] = {}
    for raw in raw_items:
        if type(raw) is not dict and not isinstance(raw, dict):
            continue
        link_id = raw.get("linkId")
        if type(link_id) is not str or not link_id:
            unnamed = _unnamed(resolver, raw_items, raw, base, walk)
            if unnamed is not None:
                out.append(unnamed)
            continue
        definition: ItemDef | None = expected.get(link_id) or by_link_id.get(link_id)
        segment = definition.segment if definition is not None else path_segment(link_id)
        if link_id in seen:
            repetition = seen[link_id]
            seen[link_id] = repetition + 1
        else:
            seen[link_id] = 1
            repetition = 0
        if repetition or (definition is not None and definition.indexed):
            path = f"{base}{segment}[{repetition}]"
        else:
            path = base + segment
            repetition = -1
        answers = raw.get("answer")
        nested = raw.get("item")
        if answers and isinstance(answers, list):
            if len(answers) == 1 and not nested:
                # One answer and nothing beside it: the usual question.
                answer = answers[0]
                if not isinstance(answer, dict):
                    continue
                shown: str | None = None
                if len(answer) == 1 and "item" not in answer:
                    # Just a value (so no items under it): the usual answers inline, the
                    # rest as _shown does.
                    value = answer.get("valueString")
                    if type(value) is str:
                        shown = value
                    else:
                        value = answer.get("valueCoding")
                        if definition is not None and type(value) is dict:
                            # Only text can be a key: a list where a code belongs is
                            # left to _shown, which reports it.
                            system, code = value.get("system"), value.get("code")
                            if type(code) is str and (system is None or type(system) is str):
                                option = definition.option_by_system_code.get((system, code))
                                if option is not None:
                                    shown = option.display
                        if shown is None:
                            shown = _shown(answer, definition, display)
                    children: list[Entry] | None = None
                else:
                    shown = _shown(answer, definition, display)
                    children = None
                shown_t = (NO_VALUE,) if shown is None else (shown,)
                if walk is not None:
                    # _Walk.record, inlined; before the answers under it, so that the
                    # records are in document order (the scores read them, see
                    # ResolvedResponse.recorded_answers).
                    if link_id not in firsts:
                        firsts[link_id] = (path, shown_t, answer)
                    elif link_id in more:
                        more[link_id].append((path, shown_t, answer))
                    else:
                        more[link_id] = [(path, shown_t, answer)]
                if answer.get("item"):
                    indexed = definition is not None and definition.repeats
                    children = _entries(
                        resolver,
                        answer["item"],
                        definition.child_index if definition is not None else None,
                        f"{path}[0]/" if indexed else path + "/",
                        walk,
                    )
                if children:
                    out.append(
                        Line(
                            _label(definition, raw, link_id),
                            () if shown is None else shown_t,
                            link_id,
                            path,
                            tuple(children),
                        )
                    )
                elif shown is not None:
                    out.append(
                        Line(
                            definition.label
                            if definition is not None
                            else _label(definition, raw, link_id),
                            shown_t,
                            link_id,
                            path,
                        )
                    )
                continue
            values: list[str] = []
            shown_all: list[str] = []
            first: dict[str, Any] | None = None
            children = []
            for answer in answers:
                if not isinstance(answer, dict):
                    continue
                shown = _shown(answer, definition, display)
                if shown is not None:
                    values.append(shown)
                shown_all.append(NO_VALUE if shown is None else shown)
                if first is None:
                    first = answer
            if walk is not None and first is not None:
                walk.record(link_id, (path, tuple(shown_all), first))
            for j, answer in enumerate(answers):
                if isinstance(answer, dict) and answer.get("item"):
                    indexed = len(answers) > 1 or (definition is not None and definition.repeats)
                    answer_base = f"{path}[{j}]/" if indexed else path + "/"
                    children_index = definition.child_index if definition is not None else None
                    children.extend(
                        _entries(resolver, answer["item"], children_index, answer_base, walk)
                    )
            if nested:  # items beside answers (invalid, but the reader should see them)
                children_index = definition.child_index if definition is not None else None
                children.extend(_entries(resolver, nested, children_index, path + "/", walk))
            if values or children:
                out.append(
                    Line(
                        _label(definition, raw, link_id),
                        tuple(values),
                        link_id,
                        path,
                        tuple(children),
                    )
                )
        elif nested:
            children_index = definition.child_index if definition is not None else None
            entries = _entries(resolver, nested, children_index, path + "/", walk)
            if entries:
                label = _group_heading(definition, raw, link_id)
                # Repeating groups: number the instances for the reader, from 1.
                heading = label if repetition < 0 else f"{label} ({repetition + 1})"
                out.append(Section(heading, tuple(entries), link_id, path))
    return out


class _Walk:
    """The answered items the summary's walk records for its ResolvedResponse (see
    ResolvedResponse.adopt_answers): worksheet highlights then look answers up."""

    __slots__ = ("firsts", "more")

    def __init__(self) -> None:
        self.firsts: dict[str, AnswerRecord] = {}
        self.more: dict[str, list[AnswerRecord]] = {}

    def record(self, link_id: str, record: AnswerRecord) -> None:
        if link_id not in self.firsts:
            self.firsts[link_id] = record
        elif link_id in self.more:
            self.more[link_id].append(record)
        else:
            self.more[link_id] = [record]


_NO_ITEMS: dict[str, ItemDef] = {}


def _shown(
    answer: dict[str, Any],
    definition: ItemDef | None,
    display: Callable[[str, Any, ItemDef | None], str],
) -> str | None:
    """What a reader sees for one answer (Resolver.display, with the common cases first)."""
    for key in answer:
        if key == "valueString":
            value = answer[key]
            return value if isinstance(value, str) else UNREADABLE
        if key == "valueCoding":
            value = answer[key]
            if definition is not None and isinstance(value, dict):
                # A code from answerOption, without three calls (a list or object where a
                # code belongs cannot be a dict key: it takes the long way and is reported).
                system, code = value.get("system"), value.get("code")
                if isinstance(code, str) and (system is None or isinstance(system, str)):
                    option = definition.option_by_system_code.get((system, code))
                    if option is not None:
                        return option.display
            return display(key, value, definition)
        if key == "valueInteger":
            value = answer[key]
            if type(value) is int and (definition is None or not definition.unit):
                return str(value)  # sliders and scores: the next most common answer
            return display(key, value, definition)
        if key.startswith("value"):
            return display(key, answer[key], definition)
    return None


def _unnamed(
    resolver: Resolver,
    raw_items: list[Any],
    raw: dict[str, Any],
    base: str,
    walk: _Walk | None,
) -> Entry | None:
    """An item without a linkId: nothing to match it to, but what it holds must be shown.

    It is named by its position in its list (see :mod:`rejection_fhir.response.answers`);
    its items are read by their own linkIds, wherever the Questionnaire has them.
    """
    position = next(n for n, other in enumerate(raw_items) if other is raw)
    path = f"{base}[{position}]"
    text = raw.get("text")
    own = " ".join(text.split()) if isinstance(text, str) and text.strip() else None
    values: list[str] = []
    children: list[Entry] = []
    answers = raw.get("answer")
    if isinstance(answers, list):
        for j, answer in enumerate(answers):
            if not isinstance(answer, dict):
                continue
            shown = _shown(answer, None, resolver.display)
            if shown is not None:
                values.append(shown)
            if answer.get("item"):
                answer_base = f"{path}[{j}]/" if len(answers) > 1 else path + "/"
                children.extend(_entries(resolver, answer["item"], None, answer_base, walk))
    nested = raw.get("item")
    if nested:
        children.extend(_entries(resolver, nested, None, path + "/", walk))
    if values:
        return Line(own or NO_LINK_ID, tuple(values), None, path, tuple(children))
    if children:
        heading = f"{own} (group without a linkId)" if own else GROUP_WITHOUT_LINK_ID
        return Section(heading, tuple(children), None, path)
    return None


#: The heading of a group that has neither linkId nor text.
GROUP_WITHOUT_LINK_ID = "Group without a linkId (not matched to the Questionnaire)"

_WORD_BREAK_RE = re.compile(r"[-_.\s]+|(?<=[a-z])(?=[A-Z])")
_NAME_LIKE_RE = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]*")


def _group_heading(definition: ItemDef | None, raw: dict[str, Any], link_id: str) -> str:
    """A group's heading: its text (the Questionnaire's, else the response's), else a
    humanised linkId that says it is a group (a bare "g1" heading reads as an answer)."""
    if definition is not None and definition.text:
        return definition.label
    text = raw.get("text")
    if isinstance(text, str) and text.strip():
        prefix = definition.prefix if definition is not None else None
        return f"{prefix} {text}" if prefix else text
    if _NAME_LIKE_RE.fullmatch(link_id):
        words = " ".join(part for part in _WORD_BREAK_RE.split(link_id) if part)
        name = words[:1].upper() + words[1:]
    else:
        name = link_id
    return f"{name} (group)"


def _label(definition: ItemDef | None, raw: dict[str, Any], link_id: str) -> str:
    if definition is not None:
        return definition.label
    text = raw.get("text")
    return text if isinstance(text, str) and text else link_id


# ---------------------------------------------------------------------- summarizers

#: Summarizers by Questionnaire canonical (``url``, or ``url|version`` for one version),
#: e.g. ``worksheet.catalog.Catalog.summarizers``; passed in, never registered globally.
Summarizers: TypeAlias = Mapping[str, Summarizer]


def summarizer_for(summarizers: Summarizers | None, canonical: str | None) -> Summarizer | None:
    """The summarizer for ``url|version`` (exact first, then the bare url), if any."""
    if not canonical or not summarizers:
        return None
    found = summarizers.get(canonical)
    if found is None and "|" in canonical:
        found = summarizers.get(split_canonical(canonical)[0])
    return found


def summarize(
    response: Mapping[str, Any],
    questionnaire: Mapping[str, Any] | CompiledQuestionnaire | None,
    *,
    terminology: Mapping[str, Mapping[str, Any]] | None = None,
    summarizers: Summarizers | None = None,
) -> Summary:
    """Summarize a response with its worksheet's summarizer (from ``summarizers``), or
    the generic one.

    The Questionnaire's own url|version chooses the summarizer; without a Questionnaire,
    the canonical the response names does.  Raises :class:`InputError` if ``response``
    is not a QuestionnaireResponse.
    """
    return summarize_resolved(
        resolve_response(response, questionnaire, terminology=terminology), summarizers
    )


def summarize_resolved(
    resolved: ResolvedResponse, summarizers: Summarizers | None = None
) -> Summary:
    """:func:`summarize` for a response already resolved, which the caller keeps: after the
    generic summary's walk, its answers are lookups (``ResolvedResponse.recorded_answers``)."""
    summarizer = None
    if summarizers:
        compiled = resolved.compiled
        if compiled is not None:
            summarizer = summarizer_for(summarizers, compiled.canonical)
        if summarizer is None and resolved.questionnaire is not None:
            summarizer = summarizer_for(summarizers, resolved.questionnaire)
    if summarizer is None:
        return generic_summary(resolved)
    return summarizer(resolved)
