"""Seeded mutations of a valid QuestionnaireResponse, each the kind of mistake other systems
send: what the HL7 validator and our ``validate_response`` should both report.

Every choice comes from the ``random.Random`` handed in, so ``(seed, case)`` reproduces a
response exactly.  A mutation returns a short name of what it did, or None when the
response offers it nothing to break (the caller then picks another).
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Iterator
from typing import Any

from rejection_fhir.response.questionnaire import CompiledQuestionnaire, ItemDef

Json = dict[str, Any]
Mutation = Callable[[random.Random, Json, CompiledQuestionnaire], str | None]


def _items(container: Json) -> Iterator[tuple[list[Any], Json]]:
    """Every (list, item) in the response, items under answers included, in order."""
    for item in list(container.get("item") or []):
        if not isinstance(item, dict):
            continue
        yield container["item"], item
        for answer in item.get("answer") or []:
            if isinstance(answer, dict) and answer.get("item"):
                yield from _items(answer)
        if item.get("item"):
            yield from _items(item)


def _pick(
    rng: random.Random,
    qr: Json,
    compiled: CompiledQuestionnaire,
    test: Callable[[ItemDef, Json], bool],
) -> tuple[list[Any], Json, ItemDef] | None:
    found = []
    for siblings, item in _items(qr):
        definition = compiled.by_link_id.get(item.get("linkId", ""))
        if definition is not None and test(definition, item):
            found.append((siblings, item, definition))
    return rng.choice(found) if found else None


def _answered(definition: ItemDef, item: Json) -> bool:
    return bool(item.get("answer"))


def _bound(definition: ItemDef, which: str) -> int | None:
    bound = definition.max_value if which == "max" else definition.min_value
    if bound is None or bound[0] != "valueInteger":
        return None
    return int(bound[1])


def empty_answer(rng: random.Random, qr: Json, compiled: CompiledQuestionnaire) -> str | None:
    picked = _pick(rng, qr, compiled, lambda d, i: d.is_question and _answered(d, i))
    if picked is None:
        return None
    picked[1]["answer"] = []
    return f"empty answer {picked[2].link_id}"


def empty_items(rng: random.Random, qr: Json, compiled: CompiledQuestionnaire) -> str | None:
    picked = _pick(rng, qr, compiled, lambda d, i: d.type == "group")
    if picked is None:
        return None
    picked[1]["item"] = []
    return f"empty item {picked[2].link_id}"


def drop_required(rng: random.Random, qr: Json, compiled: CompiledQuestionnaire) -> str | None:
    picked = _pick(rng, qr, compiled, lambda d, i: d.required and d.is_question)
    if picked is None:
        return None
    siblings, item, definition = picked
    siblings.remove(item)
    return f"drop required {definition.link_id}"


def wrong_type(rng: random.Random, qr: Json, compiled: CompiledQuestionnaire) -> str | None:
    picked = _pick(rng, qr, compiled, lambda d, i: d.is_question and _answered(d, i))
    if picked is None:
        return None
    _, item, definition = picked
    if definition.type in ("string", "text"):
        item["answer"][0] = {"valueInteger": rng.randint(0, 99)}
    elif definition.type == "integer":
        item["answer"][0] = {"valueString": "seven"}
    elif definition.type in ("choice", "open-choice"):
        item["answer"][0] = {"valueBoolean": True}
    else:
        item["answer"][0] = {"valueDecimal": 1.5}
    return f"wrong type {definition.link_id}"


def out_of_range(rng: random.Random, qr: Json, compiled: CompiledQuestionnaire) -> str | None:
    picked = _pick(
        rng,
        qr,
        compiled,
        lambda d, i: _answered(d, i) and d.type == "integer" and _bound(d, "max") is not None,
    )
    if picked is None:
        return None
    _, item, definition = picked
    if rng.random() < 0.5 and _bound(definition, "min") is not None:
        item["answer"][0] = {"valueInteger": (_bound(definition, "min") or 0) - rng.randint(1, 5)}
    else:
        item["answer"][0] = {"valueInteger": (_bound(definition, "max") or 0) + rng.randint(1, 40)}
    return f"out of range {definition.link_id}"


def unknown_code(rng: random.Random, qr: Json, compiled: CompiledQuestionnaire) -> str | None:
    picked = _pick(rng, qr, compiled, lambda d, i: _answered(d, i) and bool(d.options))
    if picked is None:
        return None
    _, item, definition = picked
    coding = dict(item["answer"][0].get("valueCoding") or {})
    coding["code"] = f"not-a-code-{rng.randint(1, 99)}"
    coding.pop("display", None)
    item["answer"][0] = {"valueCoding": coding}
    return f"unknown code {definition.link_id}"


def two_answers(rng: random.Random, qr: Json, compiled: CompiledQuestionnaire) -> str | None:
    picked = _pick(rng, qr, compiled, lambda d, i: _answered(d, i) and not d.repeats)
    if picked is None:
        return None
    _, item, definition = picked
    item["answer"].append(copy.deepcopy(item["answer"][0]))
    return f"two answers {definition.link_id}"


def twice(rng: random.Random, qr: Json, compiled: CompiledQuestionnaire) -> str | None:
    picked = _pick(rng, qr, compiled, lambda d, i: not d.repeats)
    if picked is None:
        return None
    siblings, item, definition = picked
    siblings.insert(siblings.index(item) + 1, copy.deepcopy(item))
    return f"item twice {definition.link_id}"


def unknown_link_id(rng: random.Random, qr: Json, compiled: CompiledQuestionnaire) -> str | None:
    where = rng.choice([s for s, _ in _items(qr)] or [qr.setdefault("item", [])])
    where.insert(
        rng.randint(0, len(where)), {"linkId": "no-such-item", "answer": [{"valueString": "x"}]}
    )
    return "unknown linkId"


def misplaced(rng: random.Random, qr: Json, compiled: CompiledQuestionnaire) -> str | None:
    picked = _pick(rng, qr, compiled, lambda d, i: bool(d.ancestors))
    if picked is None:
        return None
    siblings, item, definition = picked
    siblings.remove(item)
    qr["item"].append(item)
    return f"misplaced {definition.link_id}"


def swap(rng: random.Random, qr: Json, compiled: CompiledQuestionnaire) -> str | None:
    items = qr.get("item") or []
    pairs = [
        (a, b)
        for a in range(len(items))
        for b in range(a + 1, len(items))
        if items[a].get("linkId") != items[b].get("linkId")
    ]
    if not pairs:
        return None
    a, b = rng.choice(pairs)
    items[a], items[b] = items[b], items[a]
    return "swap"


def no_link_id(rng: random.Random, qr: Json, compiled: CompiledQuestionnaire) -> str | None:
    picked = _pick(rng, qr, compiled, lambda d, i: True)
    if picked is None:
        return None
    picked[1].pop("linkId")
    return f"no linkId {picked[2].link_id}"


def enable_other(rng: random.Random, qr: Json, compiled: CompiledQuestionnaire) -> str | None:
    """Answer an 'other, specify' item whose enableWhen does not hold."""
    picked = _pick(
        rng,
        qr,
        compiled,
        lambda d, i: any(c.enable_when and not c.has_enable_expression for c in _siblings_of(d)),
    )
    if picked is None:
        return None
    siblings, _, definition = picked
    target = next(c for c in _siblings_of(definition) if c.enable_when)
    if any(s.get("linkId") == target.link_id for s in siblings):
        return None
    trigger = next((s for s in siblings if s.get("linkId") == target.enable_when[0].question), None)
    if trigger is None or not trigger.get("answer"):
        return None
    if trigger["answer"][0].get("valueCoding", {}).get("code") == "other":
        return None
    position = siblings.index(trigger) + 1
    siblings.insert(position, {"linkId": target.link_id, "answer": [{"valueString": "x"}]})
    return f"disabled answered {target.link_id}"


def _siblings_of(definition: ItemDef) -> tuple[ItemDef, ...]:
    return definition.parent.children if definition.parent else ()


def text_changed(rng: random.Random, qr: Json, compiled: CompiledQuestionnaire) -> str | None:
    picked = _pick(rng, qr, compiled, lambda d, i: d.text is not None)
    if picked is None:
        return None
    picked[1]["text"] = "Something else"
    return f"text {picked[2].link_id}"


def no_value(rng: random.Random, qr: Json, compiled: CompiledQuestionnaire) -> str | None:
    picked = _pick(rng, qr, compiled, lambda d, i: d.is_question and _answered(d, i))
    if picked is None:
        return None
    picked[1]["answer"][0] = {}
    return f"no value {picked[2].link_id}"


def too_long(rng: random.Random, qr: Json, compiled: CompiledQuestionnaire) -> str | None:
    picked = _pick(rng, qr, compiled, lambda d, i: d.max_length is not None)
    if picked is None:
        return None
    _, item, definition = picked
    item["answer"] = [{"valueString": "x" * ((definition.max_length or 0) + rng.randint(1, 9))}]
    return f"too long {definition.link_id}"


def bad_date(rng: random.Random, qr: Json, compiled: CompiledQuestionnaire) -> str | None:
    picked = _pick(rng, qr, compiled, lambda d, i: d.type == "date" and _answered(d, i))
    if picked is None:
        return None
    picked[1]["answer"][0] = {"valueDate": rng.choice(["2026-02-30", "2026-13-01", "26/11/2026"])}
    return f"bad date {picked[2].link_id}"


def group_answer(rng: random.Random, qr: Json, compiled: CompiledQuestionnaire) -> str | None:
    picked = _pick(rng, qr, compiled, lambda d, i: d.type == "group")
    if picked is None:
        return None
    picked[1]["answer"] = [{"valueString": "x"}]
    return f"group answer {picked[2].link_id}"


def no_system(rng: random.Random, qr: Json, compiled: CompiledQuestionnaire) -> str | None:
    picked = _pick(
        rng,
        qr,
        compiled,
        lambda d, i: _answered(d, i) and "valueCoding" in i["answer"][0] and bool(d.options),
    )
    if picked is None:
        return None
    picked[1]["answer"][0]["valueCoding"].pop("system", None)
    return f"no system {picked[2].link_id}"


def relative_reference(rng: random.Random, qr: Json, compiled: CompiledQuestionnaire) -> str | None:
    """What some servers put in ``questionnaire``: a literal reference, not the canonical."""
    if compiled.reference is None or rng.random() < 0.5:  # rarer: HAPI stops checking there
        return None
    qr["questionnaire"] = compiled.reference
    return "relative reference"


MUTATIONS: tuple[Mutation, ...] = (
    empty_answer,
    empty_items,
    drop_required,
    wrong_type,
    out_of_range,
    unknown_code,
    two_answers,
    twice,
    unknown_link_id,
    misplaced,
    swap,
    no_link_id,
    enable_other,
    text_changed,
    no_value,
    too_long,
    bad_date,
    group_answer,
    no_system,
    relative_reference,
)


def mutate(
    rng: random.Random, qr: Json, compiled: CompiledQuestionnaire, rounds: int = 1
) -> tuple[Json, list[str]]:
    """A copy of ``qr`` with ``rounds`` mutations applied, and what they did."""
    out = copy.deepcopy(qr)
    done: list[str] = []
    for _ in range(50):
        if len(done) == rounds:
            break
        what = rng.choice(MUTATIONS)(rng, out, compiled)
        if what is not None:
            done.append(what)
    return out, done
