"""Read a QuestionnaireResponse against its Questionnaire into a tree of resolved answers.

Every answer comes out with its typed value, the text a reader should see (option display
from the Questionnaire, then the ValueSet, then the response's own display, then the code),
its unit and, for coded answers, the score the Questionnaire gives it.  Works for any FHIR
R4 Questionnaire.  Tolerant by design: whatever cannot be read is skipped or shown as
unreadable; :func:`rejection_fhir.response.conformance.validate_response` says what is wrong.

Paths name items by linkId from the root, ``/``-separated.  ``[i]`` (0-based) marks the
i-th repetition of an item that repeats: the i-th instance of a repeating group, or the
i-th answer of a repeating question (so ``emotions[1]/intensity`` is the intensity in the
second emotion, and ``symptom[2]/detail`` the question asked under the third symptom).
A second instance of an item that should not repeat gets an index too (``mood[1]``).
Inside a linkId, ``\\``, ``/`` and ``[`` are backslash-escaped (``\\/44249-1\\/44260-8``), so
every path reads back unambiguously (:func:`split_path`); paths of linkIds without those
characters are unchanged.  An item without a linkId is named by its 0-based position in
its list (``[2]``, ``g/[0]/mood``): it cannot be matched to the Questionnaire, but what it
holds is still read.

This is a hot path (a sync summarises every response), so it works on plain dicts as
``json.loads`` gives them, builds nothing per response that could be built per
Questionnaire (see :func:`compile_questionnaire`), and resolves lazily: looking up a few
linkIds does not resolve the whole response.

About 630 lines: the resolver and the resolved response share the path and index rules
that :func:`rejection_fhir.response.summary.generic_summary` inlines; one module keeps
them side by side (they must stay identical).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from rejection_fhir.errors import InputError
from rejection_fhir.response.questionnaire import (
    CompiledQuestionnaire,
    ItemDef,
    compile_questionnaire,
    path_segment,
    split_path,
    weight_of,
)
from rejection_fhir.response.values import (
    UNREADABLE,
    VALUE_TYPES,
    coding_label,
    display_value,
    format_number,
    quantity_label,
)

__all__ = [
    "AnswerRecord",
    "ResolvedAnswer",
    "ResolvedItem",
    "ResolvedResponse",
    "resolve_response",
    "split_path",
]

_NUMERIC_KEYS: Final = frozenset({"valueDecimal", "valueInteger"})

#: What an answer without a value[x] shows.
NO_VALUE: Final = "(no value)"
#: The label of an item that has neither a linkId nor a text.
NO_LINK_ID: Final = "Item without a linkId"


@dataclass(slots=True)
class ResolvedAnswer:
    """One answer: its value as sent, what to show for it, and its score if it has one.

    Treat as read-only (not frozen only because frozen dataclasses are 3x slower to build).
    """

    path: str
    value_type: str  # FHIR type of value[x]: boolean, decimal, ..., Coding, Quantity; "" if none
    value: Any  # bool | int | float | Decimal | str | dict (Coding, Quantity, ...) as sent
    display: str
    system: str | None = None
    code: str | None = None
    unit: str | None = None
    weight: Decimal | None = None  # itemWeight / ordinalValue of the chosen option
    items: tuple[ResolvedItem, ...] = ()  # questions asked under this answer


@dataclass(slots=True)
class ResolvedItem:
    """One item of the response with its Questionnaire definition (None if unknown).

    Treat as read-only.
    """

    link_id: str
    path: str
    label: str  # prefix + text from the Questionnaire (the response's text if unknown)
    type: str | None
    answers: tuple[ResolvedAnswer, ...]
    items: tuple[ResolvedItem, ...]
    definition: ItemDef | None = None
    index: int | None = None  # which repetition, when the path shows one

    @property
    def text(self) -> str | None:
        if self.definition is not None:
            return self.definition.text
        return self.label if self.label not in (self.link_id, NO_LINK_ID) else None

    @property
    def known(self) -> bool:
        return self.definition is not None

    @property
    def displays(self) -> tuple[str, ...]:
        return tuple(answer.display for answer in self.answers)

    def walk(self) -> Iterator[ResolvedItem]:
        """This item and every item below it (through answers and groups), in order."""
        yield self
        for answer in self.answers:
            for child in answer.items:
                yield from child.walk()
        for child in self.items:
            yield from child.walk()


#: An answered item instance: (its path, the displays of its answers, its first answer).
AnswerRecord = tuple[str, tuple[str, ...], dict[str, Any]]


def value_of(answer: Mapping[str, Any]) -> tuple[str | None, Any]:
    """``(value[x] key, value)`` of an answer as sent: its first ``value...`` key."""
    for key in answer:
        if key.startswith("value"):
            return key, answer[key]
    return None, None


# One raw item in place: (item dict, linkId, definition, path, repetition index).
RawEntry = tuple[dict[str, Any], str, ItemDef | None, str, int | None]


def iter_items(
    raw_items: object,
    expected: Mapping[str, ItemDef] | None,
    by_link_id: Mapping[str, ItemDef],
    base: str,
) -> Iterator[RawEntry]:
    """The items of one ``item`` list with their definitions and paths (see module doc)."""
    if not isinstance(raw_items, list):
        return
    seen: dict[str, int] = {}
    for position, raw in enumerate(raw_items):
        if not isinstance(raw, dict):
            continue
        link_id = raw.get("linkId")
        if not isinstance(link_id, str) or not link_id:
            # Nothing to match it to, but its answers must not vanish: named by position.
            yield raw, "", None, f"{base}[{position}]", None
            continue
        definition = expected.get(link_id) if expected is not None else None
        if definition is None:
            definition = by_link_id.get(link_id)
        segment = definition.segment if definition is not None else path_segment(link_id)
        index = seen.get(link_id, 0)
        seen[link_id] = index + 1
        if index or (definition is not None and definition.indexed):
            yield raw, link_id, definition, f"{base}{segment}[{index}]", index
        else:
            yield raw, link_id, definition, base + segment, None


class Resolver:
    """Resolves answers for one Questionnaire (and terminology); reusable across responses."""

    __slots__ = ("by_link_id", "compiled", "root_index", "terminology")

    def __init__(
        self,
        compiled: CompiledQuestionnaire | None,
        terminology: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.compiled = compiled
        self.terminology = terminology
        self.by_link_id: Mapping[str, ItemDef] = compiled.by_link_id if compiled else {}
        self.root_index: Mapping[str, ItemDef] | None = compiled.root_index if compiled else None

    def items(
        self, raw_items: object, expected: Mapping[str, ItemDef] | None, base: str
    ) -> tuple[ResolvedItem, ...]:
        if not raw_items:
            return ()
        return tuple(
            self.item(raw, link_id, definition, path, index)
            for raw, link_id, definition, path, index in iter_items(
                raw_items, expected, self.by_link_id, base
            )
        )

    def item(
        self,
        raw: dict[str, Any],
        link_id: str,
        definition: ItemDef | None,
        path: str,
        index: int | None,
    ) -> ResolvedItem:
        children_index = definition.child_index if definition is not None else None
        raw_answers = raw.get("answer")
        answers: tuple[ResolvedAnswer, ...] = ()
        if isinstance(raw_answers, list) and raw_answers:
            if len(raw_answers) > 1 or (definition is not None and definition.repeats):
                answers = tuple(
                    self.answer(answer, definition, f"{path}[{j}]", children_index)
                    for j, answer in enumerate(raw_answers)
                    if isinstance(answer, dict)
                )
            elif isinstance(raw_answers[0], dict):
                answers = (self.answer(raw_answers[0], definition, path, children_index),)
        nested = raw.get("item")
        items = self.items(nested, children_index, path + "/") if nested else ()
        if definition is not None:
            return ResolvedItem(
                link_id, path, definition.label, definition.type, answers, items, definition, index
            )
        text = raw.get("text")
        label = text if isinstance(text, str) and text else link_id or NO_LINK_ID
        return ResolvedItem(link_id, path, label, None, answers, items, None, index)

    def answer(
        self,
        raw: dict[str, Any],
        definition: ItemDef | None,
        path: str,
        children_index: Mapping[str, ItemDef] | None,
    ) -> ResolvedAnswer:
        key = None
        value: Any = None
        for k in raw:
            if k.startswith("value"):
                key, value = k, raw[k]
                break
        nested = raw.get("item")
        items = self.items(nested, children_index, path + "/") if nested else ()
        if key is None:
            return ResolvedAnswer(path, "", None, NO_VALUE, items=items)
        if key == "valueCoding" and isinstance(value, dict):
            display, weight = self.coding(value, definition)
            system, code = value.get("system"), value.get("code")
            return ResolvedAnswer(
                path,
                "Coding",
                value,
                display,
                system if isinstance(system, str) else None,
                code if isinstance(code, str) else None,
                None,
                weight,
                items,
            )
        value_type = VALUE_TYPES.get(key, key[5:])
        unit = None
        weight = None
        if key == "valueQuantity" and isinstance(value, dict):
            default_unit = definition.unit if definition is not None else None
            raw_unit = value.get("unit") or value.get("code") or default_unit
            unit = raw_unit if isinstance(raw_unit, str) else None
            display = quantity_label(value, default_unit)
        else:
            display = self.display(key, value, definition)
            if definition is not None:
                if key in _NUMERIC_KEYS and definition.unit and display != UNREADABLE:
                    unit = definition.unit
                if definition.options:
                    option = definition.option_for_value(key, value)
                    if option is not None:
                        weight = option.weight
        return ResolvedAnswer(path, value_type, value, display, None, None, unit, weight, items)

    def display(self, key: str, value: Any, definition: ItemDef | None) -> str:
        """What a reader sees for one answer value."""
        if key == "valueCoding":
            return self.coding(value, definition)[0] if isinstance(value, dict) else UNREADABLE
        if key == "valueString":
            return value if isinstance(value, str) else UNREADABLE
        if key in _NUMERIC_KEYS:
            if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
                if definition is not None and definition.unit:
                    return f"{format_number(value)} {definition.unit}"
                return format_number(value)
            return UNREADABLE
        if key == "valueQuantity" and isinstance(value, dict):
            return quantity_label(value, definition.unit if definition is not None else None)
        if key == "valueReference" and definition is not None and definition.options:
            option = definition.option_for_value(key, value)
            if option is not None:
                return option.display
        return display_value(key, value)

    def coding(
        self, coding: dict[str, Any], definition: ItemDef | None
    ) -> tuple[str, Decimal | None]:
        """Display and weight of a coded answer: option, then ValueSet, then the Coding."""
        display: str | None = None
        weight: Decimal | None = None
        if definition is not None:
            if definition.options:
                option = definition.option_for_coding(coding)
                if option is not None:
                    display, weight = option.display, option.weight
            elif definition.answer_value_set and self.compiled is not None:
                codes = self.compiled.code_list(definition.answer_value_set, self.terminology)
                if codes is not None:
                    system = coding.get("system")
                    concept = codes.find(
                        system if isinstance(system, str) else None, coding.get("code")
                    )
                    if concept is not None:
                        display, weight = concept.display, concept.weight
        if display is None:
            display = coding_label(coding)
        if weight is None and "extension" in coding:
            weight = weight_of(coding)
        return display, weight


class ResolvedResponse:
    """A QuestionnaireResponse read against its Questionnaire.

    ``items`` resolves the whole tree on first use; ``find`` and ``answers`` resolve only
    the items asked for, so worksheet summarizers that pick a few linkIds stay cheap.
    """

    __slots__ = (
        "_firsts",
        "_index",
        "_items",
        "_more",
        "authored",
        "compiled",
        "questionnaire",
        "resolver",
        "source",
        "status",
        "subject",
    )

    def __init__(self, source: dict[str, Any], resolver: Resolver) -> None:
        self.source = source
        self.resolver = resolver
        self.compiled = resolver.compiled
        # _str_or_none, inlined: a sync makes one of these per response.
        value = source.get("questionnaire")
        self.questionnaire: str | None = value if type(value) is str and value else None
        value = source.get("status")
        self.status: str | None = value if type(value) is str and value else None
        value = source.get("authored")
        self.authored: str | None = value if type(value) is str and value else None
        self.subject = _reference(source.get("subject"))
        self._items: tuple[ResolvedItem, ...] | None = None
        self._index: dict[str, list[RawEntry]] | None = None
        self._firsts: dict[str, AnswerRecord] | None = None
        self._more: dict[str, list[AnswerRecord]] | None = None

    @property
    def items(self) -> tuple[ResolvedItem, ...]:
        if self._items is None:
            self._items = self.resolver.items(self.source.get("item"), self.resolver.root_index, "")
        return self._items

    @property
    def id(self) -> str | None:
        return _str_or_none(self.source.get("id"))

    @property
    def author(self) -> str | None:
        return _reference(self.source.get("author"))

    @property
    def title(self) -> str:
        if self.compiled is not None and self.compiled.title:
            return self.compiled.title
        return self.questionnaire or "Questionnaire response"

    def walk(self) -> Iterator[ResolvedItem]:
        """Every item in document order, depth first."""
        for item in self.items:
            yield from item.walk()

    def find(self, link_id: str) -> tuple[ResolvedItem, ...]:
        """Every instance of ``link_id`` anywhere in the response, in document order."""
        entries = self._entries(link_id)
        if not entries:
            return ()
        return tuple(self.resolver.item(*entry) for entry in entries)

    def answers(self, link_id: str) -> tuple[ResolvedAnswer, ...]:
        """Every answer to ``link_id``, across all its instances."""
        return tuple(answer for item in self.find(link_id) for answer in item.answers)

    def first_answer(self, link_id: str) -> ResolvedAnswer | None:
        """The first answer to ``link_id`` in document order (resolving only that answer)."""
        for entry in self._entries(link_id):
            answer = self._first_of(entry)
            if answer is not None:
                return answer
        return None

    def answered(self, link_id: str) -> list[AnswerRecord]:
        """Every instance of ``link_id`` that has an answer, in document order, as
        (the instance's path, what a reader sees for each of its answers, its first
        answer as sent).

        Cheaper than :meth:`find` when a summary needs a few answers: after the summary's
        walk (which records them on its way, see :meth:`adopt_answers`) it is a lookup.
        """
        return self._records(link_id)

    @property
    def firsts(self) -> Mapping[str, AnswerRecord]:
        """The first answered instance of every linkId, as :meth:`answered` gives them.

        The summary's walk records it; a summary highlight is then one lookup.
        """
        if self._firsts is not None:
            return self._firsts
        if self._index is None:
            self._index = self._build_index()
        found = {}
        for link_id in self._index:
            records = self._records(link_id)
            if records:
                found[link_id] = records[0]
        return found

    def first_display(self, link_id: str) -> str | None:
        """``first_answer(link_id).display``."""
        record = self._first_record(link_id)
        return record[1][0] if record is not None else None

    def first_value(self, link_id: str) -> Any:
        """``first_answer(link_id).value``: the value[x] as sent."""
        record = self._first_record(link_id)
        return value_of(record[2])[1] if record is not None else None

    def displays(self, link_id: str) -> tuple[str, ...]:
        """What a reader sees for every answer to ``link_id``, across its instances."""
        records = self._records(link_id)
        if len(records) == 1:
            return records[0][1]
        return tuple(shown for record in records for shown in record[1])

    @property
    def needs_answers(self) -> bool:
        """True until a walk has recorded the answered items (see :meth:`adopt_answers`)."""
        return self._firsts is None

    def adopt_answers(
        self, firsts: dict[str, AnswerRecord], more: dict[str, list[AnswerRecord]]
    ) -> None:
        """Take the answered items a walk in document order recorded on its way.

        ``firsts`` holds, per linkId, its first instance with an answer: (the instance's
        path, the displays of its answers as :class:`ResolvedAnswer` shows them, its first
        answer); ``more`` the later instances, in order.
        """
        if self._firsts is None:
            self._firsts = firsts
            self._more = more

    def recorded_answers(self, link_ids: Iterable[str]) -> dict[str, list[dict[str, Any]]] | None:
        """The answers to each of ``link_ids`` as sent, in document order, from the records
        of the summary's walk (what ``scoring.score.answers_by_link`` finds by walking the
        response again); None when no walk recorded them, or when an instance of one of
        them has more than one answer (a record keeps only its first)."""
        firsts = self._firsts
        if firsts is None:
            return None
        more = self._more
        out: dict[str, list[dict[str, Any]]] = {}
        for link_id in link_ids:
            first = firsts.get(link_id)
            if first is None:
                continue
            if len(first[1]) != 1:
                return None
            later = more.get(link_id) if more else None
            if later:
                found = [first[2]]
                for record in later:
                    if len(record[1]) != 1:
                        return None
                    found.append(record[2])
                out[link_id] = found
            else:
                out[link_id] = [first[2]]
        return out

    def _first_record(self, link_id: str) -> AnswerRecord | None:
        if self._firsts is not None:
            return self._firsts.get(link_id)
        records = self._records(link_id)
        return records[0] if records else None

    def _records(self, link_id: str) -> list[AnswerRecord]:
        if self._firsts is not None:
            first = self._firsts.get(link_id)
            if first is None:
                return []
            later = self._more.get(link_id) if self._more else None
            return [first, *later] if later else [first]
        # No walk ran (a summarizer that never called generic_summary): resolve the items.
        records: list[AnswerRecord] = []
        for entry in self._entries(link_id):
            raw_answers = entry[0].get("answer")
            if not isinstance(raw_answers, list):
                continue
            answer = next((a for a in raw_answers if isinstance(a, dict)), None)
            if answer is not None:
                records.append((entry[3], self.resolver.item(*entry).displays, answer))
        return records

    def _entries(self, link_id: str) -> list[RawEntry]:
        if self._index is None:
            self._index = self._build_index()
        return self._index.get(link_id) or []

    def _first_of(self, entry: RawEntry) -> ResolvedAnswer | None:
        # Resolver.item, for the first answer only; the path must be the one it gives.
        raw, _, definition, path, _ = entry
        raw_answers = raw.get("answer")
        if not isinstance(raw_answers, list) or not raw_answers:
            return None
        indexed = len(raw_answers) > 1 or (definition is not None and definition.repeats)
        for j, answer in enumerate(raw_answers):
            if isinstance(answer, dict):
                children = definition.child_index if definition is not None else None
                return self.resolver.answer(
                    answer, definition, f"{path}[{j}]" if indexed else path, children
                )
        return None

    def _build_index(self) -> dict[str, list[RawEntry]]:
        index: dict[str, list[RawEntry]] = {}
        self._index_items(self.source.get("item"), self.resolver.root_index, "", index)
        return index

    def _index_items(
        self,
        raw_items: object,
        expected: Mapping[str, ItemDef] | None,
        base: str,
        index: dict[str, list[RawEntry]],
    ) -> None:
        # Same order as ResolvedItem.walk: an item, what hangs under its answers, its items.
        for entry in iter_items(raw_items, expected, self.resolver.by_link_id, base):
            index.setdefault(entry[1], []).append(entry)
            raw, _, definition, path, _ = entry
            children = definition.child_index if definition is not None else None
            answers = raw.get("answer")
            if isinstance(answers, list) and answers:
                indexed = len(answers) > 1 or (definition is not None and definition.repeats)
                for j, answer in enumerate(answers):
                    if isinstance(answer, dict) and answer.get("item"):
                        answer_base = f"{path}[{j}]/" if indexed else path + "/"
                        self._index_items(answer["item"], children, answer_base, index)
            if raw.get("item"):
                self._index_items(raw["item"], children, path + "/", index)


def resolve_response(
    response: Mapping[str, Any],
    questionnaire: Mapping[str, Any] | CompiledQuestionnaire | None = None,
    *,
    terminology: Mapping[str, Mapping[str, Any]] | None = None,
) -> ResolvedResponse:
    """Resolve the answers of ``response`` against ``questionnaire``.

    ``questionnaire`` may be the resource, its compiled form (see
    :func:`compile_questionnaire`) or None, in which case texts come from the response.
    ``terminology`` maps canonical urls to ValueSets/CodeSystems for displays of codes
    from a non-contained ``answerValueSet``.

    Raises :class:`InputError` when ``response`` is not a QuestionnaireResponse object.
    """
    source = check_response(response)
    if questionnaire is None:
        return ResolvedResponse(source, Resolver(None, terminology))
    compiled = compile_questionnaire(questionnaire)
    if terminology is not None:
        return ResolvedResponse(source, Resolver(compiled, terminology))
    resolver = compiled.extras.get("resolver")
    if not isinstance(resolver, Resolver):
        resolver = compiled.extras["resolver"] = Resolver(compiled)
    return ResolvedResponse(source, resolver)


def check_response(response: object) -> dict[str, Any]:
    """``response`` itself, or :class:`InputError` unless it is a QuestionnaireResponse dict."""
    if not isinstance(response, dict):
        raise InputError(
            "A QuestionnaireResponse must be a JSON object.",
            hint="Pass the parsed resource (a dict); unpack Bundles and NDJSON lines first.",
        )
    if response.get("resourceType") != "QuestionnaireResponse":
        kind = response.get("resourceType")
        raise InputError(
            f"Expected resourceType 'QuestionnaireResponse', got {kind!r}."
            if isinstance(kind, str) and len(kind) < 60
            else "Expected resourceType 'QuestionnaireResponse'.",
            hint="Pass a QuestionnaireResponse; Bundles must be unpacked first.",
        )
    return response


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _reference(value: object) -> str | None:
    if isinstance(value, dict):
        reference = value.get("reference")
        if isinstance(reference, str) and reference:
            return reference
        identifier = value.get("identifier")
        if isinstance(identifier, dict):
            system, id_value = identifier.get("system"), identifier.get("value")
            if isinstance(id_value, str) and id_value:
                return f"{system}|{id_value}" if isinstance(system, str) else id_value
    return None
