"""The item-level checks of a QuestionnaireResponse, in one walk of its items.

:class:`Checker` is what :func:`rejection_fhir.response.conformance.validate_response`
runs after the resource-level checks (and :func:`~.conformance.answer_findings` runs
alone): structure and order against the Questionnaire, enableWhen, required-ness, repeats,
and every answer's type, value, options, bounds and lengths, each reported as a
:class:`ResponseFinding` (the table of codes is in :mod:`.conformance`).

About 720 lines, over the ~600 the project keeps modules under: the checks share the
walk's state (the item's definition, its enableWhen chain, its path), so they stay one
class; splitting them across modules would mean passing that state around or walking the
items twice.  The value helpers at the end serve only these checks.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from rejection_fhir.findings import Severity
from rejection_fhir.response.enablewhen import Chain, EnableWhenEvaluator, Frame
from rejection_fhir.response.questionnaire import (
    CompiledQuestionnaire,
    ItemDef,
    path_segment,
)
from rejection_fhir.response.values import (
    VALUE_TYPES,
    compare_temporal,
    format_number,
    is_number,
    parse_temporal,
    parse_time,
    problem_with_value,
    same_unit,
    to_decimal,
)

_STRING_KEYS: Final = frozenset({"valueString", "valueUri"})


@dataclass(frozen=True, slots=True)
class ResponseFinding:
    """One problem found in a response.  Safe to log: quotes no free-text answer."""

    severity: Severity
    path: str
    message: str
    code: str

    def __str__(self) -> str:
        where = self.path or "(response)"
        return f"{self.severity}: {where}: {self.message} [{self.code}]"


# ---------------------------------------------------------------------- items


class Checker:
    __slots__ = ("compiled", "enable", "findings", "noted", "require", "terminology")

    def __init__(
        self,
        compiled: CompiledQuestionnaire,
        terminology: Mapping[str, Mapping[str, Any]] | None,
        require: bool,
        findings: list[ResponseFinding],
    ) -> None:
        self.compiled = compiled
        self.terminology = terminology
        self.require = require
        self.findings = findings
        self.enable = EnableWhenEvaluator(compiled)
        self.noted: set[tuple[str, str]] = set()  # (code, linkId) reported once per response

    def add(self, severity: Severity, path: str, message: str, code: str) -> None:
        self.findings.append(ResponseFinding(severity, path, message, code))

    def empty(self, node: Mapping[str, Any], path: str, what: str) -> None:
        """``item: []`` / ``answer: []``: FHIR forbids empty arrays (the HL7 validator says so)."""
        for key in ("item", "answer"):
            value = node.get(key)
            if isinstance(value, list) and not value:
                self.add(
                    "error",
                    path,
                    f"{key} of {what} is an empty list; leave {key} out when there is none.",
                    "empty-list",
                )

    def once(self, severity: Severity, path: str, message: str, code: str, link_id: str) -> None:
        if (code, link_id) not in self.noted:
            self.noted.add((code, link_id))
            self.add(severity, path, message, code)

    def items(
        self,
        raw_items: object,
        expected: tuple[ItemDef, ...],
        index: Mapping[str, ItemDef],
        chain: Chain,
        base: str,
    ) -> None:
        here = base[:-1] if base.endswith("/") else base
        if raw_items is None:
            raw_list: list[Any] = []
        elif isinstance(raw_items, list):
            raw_list = raw_items
        else:
            self.add("error", here, "item must be a list of items.", "malformed")
            raw_list = []

        groups: dict[str, list[Mapping[str, Any]]] = {}
        placed: list[tuple[ItemDef, int]] = []  # (definition, instance) in response order
        for n, raw in enumerate(raw_list):
            if not isinstance(raw, dict):
                self.add("error", here, f"item {n} (0-based) is not a JSON object.", "malformed")
                continue
            link_id = raw.get("linkId")
            if not isinstance(link_id, str) or not link_id:
                self.unnamed(raw, n, chain, base)
                continue
            segment = path_segment(link_id)
            definition = index.get(link_id)
            if definition is None:
                elsewhere = self.compiled.by_link_id.get(link_id)
                if elsewhere is None:
                    self.add(
                        "error",
                        base + segment,
                        f"linkId {_quote(link_id)} is not in the Questionnaire.",
                        "unknown-linkid",
                    )
                else:
                    self.add(
                        "error",
                        base + segment,
                        f"linkId {_quote(link_id)} belongs "
                        + (
                            f"under {_quote('/'.join(elsewhere.ancestors))}"
                            if elsewhere.ancestors
                            else "at the top level"
                        )
                        + " in the Questionnaire, not here.",
                        "misplaced-item",
                    )
                    self.item(elsewhere, raw, chain, base + segment, True)
                continue
            same = groups.setdefault(link_id, [])
            placed.append((definition, len(same)))
            same.append(raw)
        self.order(placed, len(expected), base)

        for definition in expected:
            instances = groups.get(definition.link_id)
            enabled = self.enable.enabled(definition, chain)
            if enabled is None and (instances or definition.required):
                self.once(
                    "information",
                    base + definition.segment,
                    f"Item {_quote(definition.link_id)} uses enableWhenExpression, which is not "
                    "evaluated here; its enabled state and required-ness were not checked.",
                    "enable-when-expression",
                    definition.link_id,
                )
            if not instances:
                if (
                    enabled is True
                    and self.require
                    and definition.required
                    and definition.type != "display"
                ):
                    self.add(
                        "error",
                        base + definition.segment,
                        f"Required item {_quote(definition.link_id)} is missing.",
                        "required-missing",
                    )
                continue
            if len(instances) > 1 and not definition.repeats:
                self.add(
                    "error",
                    f"{base}{definition.segment}[1]",
                    f"Item {_quote(definition.link_id)} does not repeat but appears "
                    f"{len(instances)} times.",
                    "too-many-items",
                )
            indexed = definition.repeats and definition.type == "group"
            for i, raw in enumerate(instances):
                path = (
                    f"{base}{definition.segment}[{i}]"
                    if i or indexed
                    else base + definition.segment
                )
                if enabled is False:
                    if not _has_answer(raw):
                        continue
                    self.add(
                        "error",
                        path,
                        f"Item {_quote(definition.link_id)} is disabled by its enableWhen "
                        "but carries answers.",
                        "disabled-item",
                    )
                    if definition.type == "group":
                        continue  # its items were not asked: nothing in it is required
                    # A question's answers are still checked (type, options, text), as the
                    # HL7 validator does: the author learns every problem in one run.
                self.item(definition, raw, chain, path, enabled is True)

    def answers_only(self, raw_items: object, index: Mapping[str, ItemDef], base: str) -> None:
        """See :func:`answer_findings`."""
        if not isinstance(raw_items, list):
            return
        seen: dict[str, int] = {}
        by_link_id = self.compiled.by_link_id
        for n, raw in enumerate(raw_items):
            if not isinstance(raw, dict):
                continue
            link_id = raw.get("linkId")
            definition: ItemDef | None = None
            if not isinstance(link_id, str) or not link_id:
                path = self.no_link_id(raw, n, base, "; it holds {held} answer(s).")
            else:
                definition = index.get(link_id) or by_link_id.get(link_id)
                segment = definition.segment if definition is not None else path_segment(link_id)
                instance = seen.get(link_id, 0)
                seen[link_id] = instance + 1
                indexed = definition is not None and definition.indexed
                path = f"{base}{segment}[{instance}]" if instance or indexed else base + segment
                if definition is None:
                    self.add(
                        "error",
                        path,
                        f"linkId {_quote(link_id)} is not in the Questionnaire.",
                        "unknown-linkid",
                    )
            children = definition.child_index if definition is not None else {}
            answers = raw.get("answer")
            if isinstance(answers, list) and answers:
                repeated = len(answers) > 1 or (definition is not None and definition.repeats)
                for j, answer in enumerate(answers):
                    if not isinstance(answer, dict):
                        continue
                    answer_path = f"{path}[{j}]" if repeated else path
                    if definition is not None and definition.is_question:
                        self.answer(definition, answer, answer_path)
                    if answer.get("item"):
                        self.answers_only(answer["item"], children, answer_path + "/")
            if raw.get("item"):
                self.answers_only(raw["item"], children, path + "/")

    def no_link_id(self, raw: Mapping[str, Any], n: int, base: str, held_note: str) -> str:
        """Report item ``n`` of ``base`` for having no linkId, followed by ``held_note``
        (``{held}``: how many answers it holds) when it holds any; its path."""
        path = f"{base}[{n}]"
        held = _count_answers(raw)
        self.add(
            "error",
            path,
            f"item {n} (0-based) has no linkId" + (held_note.format(held=held) if held else "."),
            "missing-linkid",
        )
        return path

    def unnamed(self, raw: Mapping[str, Any], n: int, chain: Chain, base: str) -> None:
        """An item without linkId: reported, and what it holds checked by its own linkIds.

        Its path names it by position (``[n]``, see :mod:`rejection_fhir.response.answers`).
        """
        path = self.no_link_id(
            raw,
            n,
            base,
            "; the {held} answer(s) it holds cannot be placed in the Questionnaire "
            "and are shown under a group without a linkId.",
        )
        self.empty(raw, path, "an item without linkId")
        # Nothing here is expected: nested items are reported as misplaced (or unknown) and
        # checked against their own definitions, so a bad answer inside is not missed.
        nested = raw.get("item")
        if isinstance(nested, list) and nested:
            self.items(nested, (), {}, chain, path + "/")
        raw_answers = raw.get("answer")
        answers: list[Any] = raw_answers if isinstance(raw_answers, list) else []
        for j, answer in enumerate(answers):
            if isinstance(answer, dict) and isinstance(answer.get("item"), list):
                answer_path = f"{path}[{j}]" if len(answers) > 1 else path
                self.empty(answer, answer_path, "an answer")
                if answer["item"]:
                    self.items(answer["item"], (), {}, chain, answer_path + "/")

    def order(self, placed: list[tuple[ItemDef, int]], siblings: int, base: str) -> None:
        """Report the fewest items whose moving would restore Questionnaire order."""
        positions = [definition.position for definition, _ in placed]
        if all(a <= b for a, b in itertools.pairwise(positions)):
            return
        keep = _longest_ordered_run(positions)
        for n, (definition, instance) in enumerate(placed):
            if n in keep:
                continue
            link_id = definition.link_id
            self.add(
                "error",
                f"{base}{definition.segment}[{instance}]"
                if instance or definition.indexed
                else base + definition.segment,
                f"Item {_quote(link_id)} is out of Questionnaire order; there it is item "
                f"{definition.position + 1} of {siblings} at this level.",
                "item-order",
            )

    def item(
        self,
        definition: ItemDef,
        raw: Mapping[str, Any],
        chain: Chain,
        path: str,
        enabled: bool,
    ) -> None:
        link_id = definition.link_id
        text = raw.get("text")
        if isinstance(text, str) and definition.text is not None and text != definition.text:
            self.add(
                "warning",
                path,
                f"item.text for {_quote(link_id)} differs from the Questionnaire's text.",
                "text-mismatch",
            )
        raw_answers = raw.get("answer")
        answers: list[Any]
        if raw_answers is None:
            answers = []
        elif isinstance(raw_answers, list):
            answers = raw_answers
        else:
            self.add("error", path, "answer must be a list of answers.", "malformed")
            answers = []
        self.empty(raw, path, f"item {_quote(link_id)}")
        raw_children = raw.get("item")

        if definition.type == "group":
            if answers:
                self.add(
                    "error",
                    path,
                    f"Group {_quote(link_id)} carries answer[]; groups hold items, not answers.",
                    "group-has-answer",
                )
            if enabled and self.require and definition.required and not _has_answer(raw):
                self.add(
                    "error",
                    path,
                    f"Required group {_quote(link_id)} has no answered item.",
                    "required-missing",
                )
            self.items(
                raw_children,
                definition.children,
                definition.child_index,
                (*chain, Frame(definition, raw, raw)),
                path + "/",
            )
            return
        if definition.type == "display":
            if answers:
                self.add(
                    "error",
                    path,
                    f"Display item {_quote(link_id)} carries answer[]; display items take no answers.",
                    "display-has-answer",
                )
            if raw_children:
                self.add(
                    "error",
                    path,
                    f"Display item {_quote(link_id)} carries item[].",
                    "display-has-items",
                )
            return

        if raw_children:
            self.add(
                "error",
                path,
                f"Question {_quote(link_id)} carries item[] beside its answers; "
                "items under a question belong in answer.item.",
                "question-has-items",
            )
        if not answers and enabled and self.require and definition.required:
            self.add(
                "error",
                path,
                f"Required question {_quote(link_id)} has no answer.",
                "required-missing",
            )
        if len(answers) > 1 and not definition.repeats:
            self.add(
                "error",
                f"{path}[1]",
                f"Question {_quote(link_id)} does not repeat but has {len(answers)} answers.",
                "too-many-answers",
            )
        indexed = len(answers) > 1 or definition.repeats
        for j, answer in enumerate(answers):
            answer_path = f"{path}[{j}]" if indexed else path
            if not isinstance(answer, dict):
                self.add(
                    "error", answer_path, f"answer {j} (0-based) is not a JSON object.", "malformed"
                )
                continue
            self.answer(definition, answer, answer_path)
            self.empty(answer, answer_path, f"an answer to {_quote(link_id)}")
            nested = answer.get("item")
            if nested is not None or definition.children:
                self.items(
                    nested,
                    definition.children,
                    definition.child_index,
                    (*chain, Frame(definition, raw, answer)),
                    answer_path + "/",
                )

    def answer(self, definition: ItemDef, answer: Mapping[str, Any], path: str) -> None:
        link_id = definition.link_id
        keys = [key for key in answer if key.startswith("value")]
        if not keys:
            self.add(
                "error",
                path,
                f"An answer to {_quote(link_id)} has no value[x].",
                "answer-missing-value",
            )
            return
        if len(keys) > 1:
            self.add(
                "error",
                path,
                f"An answer to {_quote(link_id)} has {len(keys)} values "
                f"({', '.join(sorted(keys))}); it may have one.",
                "answer-multiple-values",
            )
            return
        key = keys[0]
        value = answer[key]
        if key not in VALUE_TYPES:
            self.add(
                "error",
                path,
                f"{_quote(key)} is not an answer type in FHIR R4.",
                "answer-type",
            )
            return
        if definition.value_keys and key not in definition.value_keys:
            self.add(
                "error",
                path,
                f"Item {_quote(link_id)} has type {_quote(definition.type)} and takes "
                f"{' or '.join(sorted(definition.value_keys))}, not {key}.",
                "answer-type",
            )
            return
        if definition.type in ("group", "display"):
            return  # reported by the caller
        reason = problem_with_value(key, value)
        if reason is not None:
            self.add(
                "error", path, f"Answer to {_quote(link_id)}: {reason}.", "answer-invalid-value"
            )
            return
        if definition.options:
            self.option(definition, key, value, path)
        elif definition.answer_value_set and key == "valueCoding":
            self.value_set(definition, value, path)
        self.bounds(definition, key, value, path)
        if key in _STRING_KEYS:
            length = len(value)
            if definition.max_length is not None and length > definition.max_length:
                self.add(
                    "error",
                    path,
                    f"Answer to {_quote(link_id)} has {length} characters; "
                    f"maxLength is {definition.max_length}.",
                    "too-long",
                )
            if definition.min_length is not None and length < definition.min_length:
                self.add(
                    "error",
                    path,
                    f"Answer to {_quote(link_id)} has {length} characters; "
                    f"minLength is {definition.min_length}.",
                    "too-short",
                )

    def option(self, definition: ItemDef, key: str, value: Any, path: str) -> None:
        open_choice = definition.type == "open-choice"
        if open_choice and (key == "valueString" or (key == "valueCoding" and _free_text(value))):
            return
        option = definition.option_for_value(key, value)
        link_id = definition.link_id
        if option is None:
            if key == "valueCoding":
                what = f"Code {_coding(value)}"
            elif key == "valueInteger":
                what = f"Value {value}"
            else:
                what = "The answer"
            # open-choice takes free text (returned above) or one of the options: a code
            # that is neither is an error, as the HL7 validator says.
            self.add(
                "error",
                path,
                f"{what} is not one of the answerOptions of {_quote(link_id)}"
                + ("; free text belongs in valueString." if open_choice else "."),
                "answer-not-in-options",
            )
            return
        if key == "valueCoding" and option.system is not None and value.get("system") is None:
            self.add(
                "warning",
                path,
                f"Code {_coding(value)} for {_quote(link_id)} has no system; "
                f"the option's system is {_quote(option.system)}.",
                "coding-system-missing",
            )

    def value_set(self, definition: ItemDef, coding: Mapping[str, Any], path: str) -> None:
        open_choice = definition.type == "open-choice"
        if open_choice and _free_text(coding):
            return
        reference = definition.answer_value_set or ""
        link_id = definition.link_id
        codes = self.compiled.code_list(reference, self.terminology)
        if codes is None:
            self.once(
                "warning",
                path,
                f"answerValueSet {_quote(reference)} of {_quote(link_id)} could not be resolved; "
                "its codes were not checked (pass the ValueSet in terminology).",
                "valueset-not-found",
                link_id,
            )
            return
        system = coding.get("system")
        concept = codes.find(system if isinstance(system, str) else None, coding.get("code"))
        if concept is not None:
            if system is None and concept.system is not None:
                self.add(
                    "warning",
                    path,
                    f"Code {_coding(coding)} for {_quote(link_id)} has no system; "
                    f"the ValueSet's system is {_quote(concept.system)}.",
                    "coding-system-missing",
                )
            return
        if not codes.complete:
            self.once(
                "information",
                path,
                f"answerValueSet {_quote(reference)} of {_quote(link_id)} cannot be expanded "
                "here (filters, imports or external code systems); codes were not checked.",
                "valueset-not-enumerable",
                link_id,
            )
            return
        self.add(
            "error",
            path,
            f"Code {_coding(coding)} is not in answerValueSet {_quote(reference)} of {_quote(link_id)}.",
            "answer-not-in-valueset",
        )

    def bounds(self, definition: ItemDef, key: str, value: Any, path: str) -> None:
        for bound, name in ((definition.min_value, "minValue"), (definition.max_value, "maxValue")):
            if bound is None:
                continue
            order = _compare_to_bound(key, value, bound[0], bound[1])
            if order is None:
                continue
            if name == "minValue" and order < 0:
                code, relation = "below-min-value", "below" if _numeric(key) else "before"
            elif name == "maxValue" and order > 0:
                code, relation = "above-max-value", "above" if _numeric(key) else "after"
            else:
                continue
            subject = f"Answer {_number_of(key, value)}" if _numeric(key) else "Answer"
            self.add(
                "error",
                path,
                f"{subject} to {_quote(definition.link_id)} is {relation} "
                f"{name} {_bound_text(bound[0], bound[1])}.",
                code,
            )


# ---------------------------------------------------------------------- helpers


def _longest_ordered_run(positions: list[int]) -> set[int]:
    """Indexes of one longest non-decreasing subsequence of ``positions``."""
    tails: list[int] = []  # smallest tail position of a run of each length
    tail_at: list[int] = []  # index (into positions) of that tail
    previous = [-1] * len(positions)
    for n, position in enumerate(positions):
        length = bisect.bisect_right(tails, position)
        if length == len(tails):
            tails.append(position)
            tail_at.append(n)
        else:
            tails[length] = position
            tail_at[length] = n
        previous[n] = tail_at[length - 1] if length else -1
    keep: set[int] = set()
    n = tail_at[-1] if tail_at else -1
    while n >= 0:
        keep.add(n)
        n = previous[n]
    return keep


def _has_answer(item: Mapping[str, Any]) -> bool:
    """Whether an item or anything under it carries an answer."""
    return _count_answers(item, at_most=1) > 0


def _count_answers(item: Mapping[str, Any], *, at_most: int | None = None) -> int:
    """How many answers an item and everything under it carry (counting stops once it
    reaches ``at_most``)."""
    count = 0
    stack: list[Any] = [item]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        answers = node.get("answer")
        if isinstance(answers, list):
            count += len(answers)
            if at_most is not None and count >= at_most:
                return count
            stack.extend(answers)
        children = node.get("item")
        if isinstance(children, list):
            stack.extend(children)
    return count


def _free_text(coding: object) -> bool:
    """An open-choice Coding that only carries display: typed-in text, not a code."""
    return isinstance(coding, dict) and coding.get("code") is None and coding.get("system") is None


def _numeric(key: str) -> bool:
    return key in ("valueInteger", "valueDecimal", "valueQuantity")


def _number_of(key: str, value: Any) -> str:
    if key == "valueQuantity":
        return format_number(value.get("value")) if isinstance(value, dict) else "?"
    return format_number(value)


def _bound_text(key: str, bound: Any) -> str:
    if key == "valueQuantity" and isinstance(bound, dict):
        number = format_number(bound.get("value"))
        unit = bound.get("unit") or bound.get("code")
        return f"{number} {unit}" if isinstance(unit, str) else number
    if is_number(bound):
        return format_number(bound)
    return _quote(bound) if isinstance(bound, str) else "(unreadable bound)"


def _compare_to_bound(key: str, value: Any, bound_key: str, bound: Any) -> int | None:
    """-1/0/1 of an answer against a minValue/maxValue; None when they do not compare."""
    if key in ("valueInteger", "valueDecimal", "valueQuantity"):
        if key == "valueQuantity":
            if not isinstance(value, dict):
                return None
            if bound_key == "valueQuantity":
                if not isinstance(bound, dict) or not same_unit(value, bound):
                    return None
                bound = bound.get("value")
            value = value.get("value")
        elif bound_key not in ("valueInteger", "valueDecimal"):
            return None
        a, b = to_decimal(value), to_decimal(bound)
        if a is None or b is None or isinstance(bound, str):
            return None
        return (a > b) - (a < b)
    if key in ("valueDate", "valueDateTime") and bound_key in ("valueDate", "valueDateTime"):
        ta = parse_temporal(value) if isinstance(value, str) else None
        tb = parse_temporal(bound) if isinstance(bound, str) else None
        if ta is None or tb is None:
            return None
        return compare_temporal(ta, tb)
    if key == "valueTime" and bound_key == "valueTime":
        ka, kb = parse_time(value), parse_time(bound)
        if ka is None or kb is None:
            return None
        return (ka > kb) - (ka < kb)
    return None


def _coding(coding: Mapping[str, Any]) -> str:
    system, code = coding.get("system"), coding.get("code")
    text = f"{system}|{code}" if isinstance(system, str) else str(code)
    return _quote(text)


def _quote(value: object, limit: int = 80) -> str:
    """An identifier (linkId, code, canonical) quoted for a message: bounded and escaped."""
    if value is None:
        return "(none)"
    text = value if isinstance(value, str) else repr(value)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return repr(text)
