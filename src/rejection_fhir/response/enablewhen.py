"""Whether a Questionnaire item is enabled in a given place of a QuestionnaireResponse.

Semantics follow FHIR R4 (Questionnaire.item.enableWhen) and the HL7 validator:

* The answers an ``enableWhen.question`` looks at are found from the nearest common
  ancestor of the two items: inside one instance of a repeating group, a condition looks
  at that instance's answers, not at its siblings'.
* ``exists`` compares "has at least one answer" with ``answerBoolean``; ``=`` and the
  ordering operators hold when at least one answer satisfies them; ``!=`` holds when no
  answer equals the value (so also when there is no answer at all).
* Several conditions combine with ``enableBehavior`` (``all`` when absent).
* Answers to an item that is itself disabled count as absent (R4: "proceed as though the
  item is not valued").
* Values compare by type: numbers numerically (integer and decimal mix), dates and
  dateTimes as instants when their precision allows a verdict (else the condition does
  not hold), times, strings, Quantities by value when their units agree, Codings (``=``
  / ``!=`` only) by code and, when the condition names one, system.

Items using the SDC ``enableWhenExpression`` are reported as unknown (None): evaluating
FHIRPath is outside this engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, NamedTuple

from rejection_fhir.fhir.json import as_list
from rejection_fhir.response.questionnaire import CompiledQuestionnaire, EnableWhen, ItemDef
from rejection_fhir.response.values import (
    compare_temporal,
    parse_temporal,
    parse_time,
    same_unit,
    to_decimal,
)

__all__ = ["EnableWhenEvaluator", "Frame", "condition_holds", "root_chain"]

_KIND: Final[dict[str, str]] = {
    "answerBoolean": "boolean",
    "valueBoolean": "boolean",
    "answerDecimal": "number",
    "answerInteger": "number",
    "valueDecimal": "number",
    "valueInteger": "number",
    "answerDate": "temporal",
    "answerDateTime": "temporal",
    "valueDate": "temporal",
    "valueDateTime": "temporal",
    "answerTime": "time",
    "valueTime": "time",
    "answerString": "string",
    "valueString": "string",
    "valueUri": "string",
    "answerCoding": "coding",
    "valueCoding": "coding",
    "answerQuantity": "quantity",
    "valueQuantity": "quantity",
    "answerReference": "reference",
    "valueReference": "reference",
}
_ORDERING: Final = frozenset({">", "<", ">=", "<="})


class Frame(NamedTuple):
    """One level of the response around an item.

    ``container`` holds the next level's ``item`` list: the response itself, a group
    instance, or (for questions nested under answers) the answer.
    """

    definition: ItemDef | None
    item: Mapping[str, Any]
    container: Mapping[str, Any]


Chain = tuple[Frame, ...]


def root_chain(response: Mapping[str, Any]) -> Chain:
    return (Frame(None, response, response),)


class EnableWhenEvaluator:
    """Evaluates enableWhen for one response; memoises per (item, place) within it."""

    __slots__ = ("_active", "_memo", "compiled")

    def __init__(self, compiled: CompiledQuestionnaire) -> None:
        self.compiled = compiled
        self._memo: dict[tuple[str, int], bool | None] = {}
        self._active: set[tuple[str, int]] = set()

    def enabled(self, definition: ItemDef, chain: Chain) -> bool | None:
        """True/False, or None when it depends on an expression this engine does not run.

        ``chain`` is the path of frames from the response root to the item's parent.
        """
        if definition.has_enable_expression:
            return None
        if not definition.enable_when:
            return True
        key = (definition.link_id, id(chain[-1].container))
        if key in self._memo:
            return self._memo[key]
        if key in self._active:
            return True  # a cycle in the Questionnaire; its own validation reports that
        self._active.add(key)
        try:
            verdicts = [
                verdict
                for verdict in (
                    condition_holds(condition, self._answers(condition.question, definition, chain))
                    for condition in definition.enable_when
                )
                if verdict is not None
            ]
        finally:
            self._active.discard(key)
        if not verdicts:
            result = True
        elif definition.enable_behavior == "any":
            result = any(verdicts)
        else:
            result = all(verdicts)
        self._memo[key] = result
        return result

    def _answers(self, question: str, source: ItemDef, chain: Chain) -> list[tuple[str, Any]]:
        target = self.compiled.by_link_id.get(question)
        if target is None:
            return []
        if question in source.ancestors:
            for frame in chain:
                if frame.definition is target:
                    return _values(frame.item)
        depth = _common_depth(source.ancestors, target.ancestors)
        if not _chain_follows(chain, source.ancestors, depth):
            depth = 0  # the item sits somewhere the Questionnaire does not put it
        route = (*target.ancestors[depth:], target.link_id)
        frontier: list[Chain] = [chain[: depth + 1]]
        found: list[tuple[str, Any]] = []
        last = len(route) - 1
        for step, link_id in enumerate(route):
            definition = self.compiled.by_link_id.get(link_id)
            if definition is None:
                return []
            next_frontier: list[Chain] = []
            for here in frontier:
                matches = [
                    raw
                    for raw in as_list(here[-1].container.get("item"))
                    if isinstance(raw, dict) and raw.get("linkId") == link_id
                ]
                if not matches or self.enabled(definition, here) is False:
                    continue
                for raw in matches:
                    if step == last:
                        found.extend(_values(raw))
                    elif definition.type == "group":
                        next_frontier.append((*here, Frame(definition, raw, raw)))
                    else:
                        next_frontier.extend(
                            (*here, Frame(definition, raw, answer))
                            for answer in as_list(raw.get("answer"))
                            if isinstance(answer, dict)
                        )
            frontier = next_frontier
        return found


def condition_holds(condition: EnableWhen, answers: list[tuple[str, Any]]) -> bool | None:
    """One enableWhen against the answers found for its question; None if it is malformed."""
    operator = condition.operator
    if operator == "exists":
        if condition.answer_key != "answerBoolean" or not isinstance(condition.answer, bool):
            return None
        return condition.answer == bool(answers)
    kind = _KIND.get(condition.answer_key)
    if kind is None:
        return None
    if operator == "=":
        return any(_equal(kind, key, value, condition.answer) for key, value in answers)
    if operator == "!=":
        return not any(_equal(kind, key, value, condition.answer) for key, value in answers)
    if operator in _ORDERING:
        for key, value in answers:
            if _KIND.get(key) != kind:
                continue
            order = _compare(kind, value, condition.answer)
            if order is None:
                continue
            if (
                (operator == ">" and order > 0)
                or (operator == "<" and order < 0)
                or (operator == ">=" and order >= 0)
                or (operator == "<=" and order <= 0)
            ):
                return True
        return False
    return None


def _equal(kind: str, key: str, actual: Any, expected: Any) -> bool:
    if _KIND.get(key) != kind:
        return False
    if kind == "boolean":
        return isinstance(actual, bool) and actual is expected
    if kind == "coding":
        if not isinstance(actual, dict) or not isinstance(expected, dict):
            return False
        if actual.get("code") != expected.get("code"):
            return False
        system = expected.get("system")
        return system is None or actual.get("system") == system
    if kind == "reference":
        return (
            isinstance(actual, dict)
            and isinstance(expected, dict)
            and actual.get("reference") is not None
            and actual.get("reference") == expected.get("reference")
        )
    return _compare(kind, actual, expected) == 0


def _compare(kind: str, actual: Any, expected: Any) -> int | None:
    if kind == "number":
        a, b = to_decimal(actual), to_decimal(expected)
        if a is None or b is None or isinstance(actual, str) or isinstance(expected, str):
            return None
        return (a > b) - (a < b)
    if kind == "temporal":
        ta = parse_temporal(actual) if isinstance(actual, str) else None
        tb = parse_temporal(expected) if isinstance(expected, str) else None
        if ta is None or tb is None:
            return None
        return compare_temporal(ta, tb)
    if kind == "time":
        ka, kb = parse_time(actual), parse_time(expected)
        if ka is None or kb is None:
            return None
        return (ka > kb) - (ka < kb)
    if kind == "string":
        if not isinstance(actual, str) or not isinstance(expected, str):
            return None
        return (actual > expected) - (actual < expected)
    if kind == "quantity":
        if not isinstance(actual, dict) or not isinstance(expected, dict):
            return None
        if not same_unit(actual, expected):
            return None
        a = to_decimal(actual.get("value"))
        b = to_decimal(expected.get("value"))
        if a is None or b is None:
            return None
        return (a > b) - (a < b)
    return None


def _values(item: Mapping[str, Any]) -> list[tuple[str, Any]]:
    found = []
    for answer in as_list(item.get("answer")):
        if isinstance(answer, dict):
            for key, value in answer.items():
                if key.startswith("value"):
                    found.append((key, value))
                    break
    return found


def _common_depth(a: tuple[str, ...], b: tuple[str, ...]) -> int:
    depth = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        depth += 1
    return depth


def _chain_follows(chain: Chain, ancestors: tuple[str, ...], depth: int) -> bool:
    """Whether the first ``depth`` frames below the root are the item's Q ancestors."""
    if len(chain) <= depth:
        return False
    for level in range(depth):
        definition = chain[level + 1].definition
        if definition is None or definition.link_id != ancestors[level]:
            return False
    return True
