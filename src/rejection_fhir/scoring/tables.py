"""Per-Questionnaire lookup tables for scoring, built once and cached by ``url|version``.

Scoring runs in the sync's hot path: walking a Questionnaire, resolving its contained
ValueSets and recognising standard instruments happens once per Questionnaire version;
each response then only walks its own items and looks answers up in dicts.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from rejection_fhir.scoring.instruments import (
    INSTRUMENTS,
    LOINC,
    PHQ9,
    PHQ9_ITEM9,
    PHQ9_ITEM9_LINK_ID,
    Instrument,
)

#: Extensions that give an answer its weight.  itemWeight is the current name; R4 and
#: SDC 2.x/3.0 wrote ordinalValue; STU3 content still carries the older two.
WEIGHT_URLS = (
    "http://hl7.org/fhir/StructureDefinition/itemWeight",
    "http://hl7.org/fhir/StructureDefinition/ordinalValue",
    "http://hl7.org/fhir/StructureDefinition/valueset-ordinalValue",
    "http://hl7.org/fhir/StructureDefinition/iso21090-CO-value",
)
CALCULATED_EXPRESSION = (
    "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-calculatedExpression"
)
#: LHC-Forms and LOINC-derived forms use the item's LOINC code as linkId, often with "/".
_LOINC_LINK_ID = re.compile(r"^/?(\d{1,7}-\d)$")

OptionKey = tuple[str | None, str]


@dataclass(frozen=True)
class ItemTable:
    link_id: str
    #: LOINC codes of the item: from item.code, or a linkId such as ``/44250-9``.
    loinc: frozenset[str]
    #: (system, code) of each weighted option → (weight, display).
    weights: Mapping[OptionKey, tuple[Decimal, str]]
    #: readOnly or calculated: the form fills it in, so it is never an item to score.
    calculated: bool
    #: Has enableWhen: an unanswered item may simply not have been asked.
    conditional: bool


@dataclass(frozen=True)
class QuestionnaireTable:
    title: str
    code: dict[str, str] | None
    items: Mapping[str, ItemTable]
    #: Each recognised standard instrument with the linkIds of its items, in its order.
    instruments: tuple[tuple[Instrument, tuple[str, ...]], ...]
    #: Weighted items outside any recognised instrument: the generic sum of weights.
    generic: tuple[str, ...]
    #: Items that are PHQ-9 item 9 (self-harm).
    item9_link_ids: tuple[str, ...]
    #: Every linkId a score or a safety alert reads: a response is walked for these only,
    #: and not at all when there are none (most worksheets carry no weights).
    scored_link_ids: frozenset[str] = frozenset()


def _walk(items: Any) -> Iterator[Mapping[str, Any]]:
    if not isinstance(items, list):
        return
    for item in items:
        if isinstance(item, Mapping):
            yield item
            yield from _walk(item.get("item"))


def _extension_weight(element: Any) -> Decimal | None:
    if not isinstance(element, Mapping):
        return None
    for ext in element.get("extension") or []:
        if (
            isinstance(ext, Mapping)
            and isinstance(ext.get("url"), str)
            and ext["url"] in WEIGHT_URLS
        ):
            value = ext.get("valueDecimal", ext.get("valueInteger"))
            if isinstance(value, int | float | str) and not isinstance(value, bool):
                try:
                    return Decimal(str(value))
                except InvalidOperation:
                    return None
    return None


def _contained_value_set(q: Mapping[str, Any], ref: str) -> Mapping[str, Any] | None:
    contained = [r for r in q.get("contained") or [] if isinstance(r, Mapping)]
    for resource in contained:
        if resource.get("resourceType") != "ValueSet":
            continue
        if ref.startswith("#") and resource.get("id") == ref[1:]:
            return resource
        url = resource.get("url")
        if isinstance(url, str) and ref.split("|")[0] == url:
            return resource
    return None


def _value_set_weights(vs: Mapping[str, Any]) -> dict[OptionKey, tuple[Decimal, str]]:
    out: dict[OptionKey, tuple[Decimal, str]] = {}
    compose = vs.get("compose")
    compose = compose if isinstance(compose, Mapping) else {}
    for include in compose.get("include") or []:
        if not isinstance(include, Mapping):
            continue
        system = include.get("system")
        for concept in include.get("concept") or []:
            weight = _extension_weight(concept)
            if weight is not None and isinstance(concept.get("code"), str):
                display = concept.get("display") or concept["code"]
                out[(system, concept["code"])] = (weight, str(display))
    expansion = vs.get("expansion")
    expansion = expansion if isinstance(expansion, Mapping) else {}
    stack = list(expansion.get("contains") or [])
    while stack:
        entry = stack.pop()
        if not isinstance(entry, Mapping):
            continue
        stack.extend(entry.get("contains") or [])
        weight = _extension_weight(entry)
        if weight is not None and isinstance(entry.get("code"), str):
            display = entry.get("display") or entry["code"]
            out[(entry.get("system"), entry["code"])] = (weight, str(display))
    return out


def _option_weights(
    q: Mapping[str, Any], item: Mapping[str, Any]
) -> dict[OptionKey, tuple[Decimal, str]]:
    out: dict[OptionKey, tuple[Decimal, str]] = {}
    for option in item.get("answerOption") or []:
        if not isinstance(option, Mapping):
            continue
        coding = option.get("valueCoding")
        if not isinstance(coding, Mapping) or not isinstance(coding.get("code"), str):
            continue
        # SDC puts the weight on answerOption; R4 content often puts it on the Coding.
        weight = _extension_weight(option)
        if weight is None:
            weight = _extension_weight(coding)
        if weight is not None:
            display = coding.get("display") or coding["code"]
            out[(coding.get("system"), coding["code"])] = (weight, str(display))
    ref = item.get("answerValueSet")
    if isinstance(ref, str):
        vs = _contained_value_set(q, ref)
        if vs is not None:
            out.update(_value_set_weights(vs))
    return out


def _item_table(q: Mapping[str, Any], item: Mapping[str, Any]) -> ItemTable:
    link_id = str(item["linkId"])
    loinc = {
        str(c["code"])
        for c in item.get("code") or []
        if isinstance(c, Mapping) and c.get("system") == LOINC and isinstance(c.get("code"), str)
    }
    if match := _LOINC_LINK_ID.match(link_id):
        loinc.add(match.group(1))
    calculated = bool(item.get("readOnly")) or any(
        isinstance(e, Mapping) and e.get("url") == CALCULATED_EXPRESSION
        for e in item.get("extension") or []
    )
    return ItemTable(
        link_id=link_id,
        loinc=frozenset(loinc),
        weights=_option_weights(q, item),
        calculated=calculated,
        conditional=bool(item.get("enableWhen")),
    )


def _ours(q: Mapping[str, Any], instrument: Instrument) -> bool:
    url = q.get("url")
    return isinstance(url, str) and url.endswith(f"/Questionnaire/{instrument.key}")


def build_table(q: Mapping[str, Any]) -> QuestionnaireTable:
    """The lookup table for one Questionnaire (uncached; see :func:`questionnaire_table`)."""
    items: dict[str, ItemTable] = {}
    for item in _walk(q.get("item")):
        if isinstance(item.get("linkId"), str) and str(item.get("type")) not in {
            "group",
            "display",
        }:
            items.setdefault(item["linkId"], _item_table(q, item))
    by_loinc: dict[str, str] = {}
    for table in items.values():
        for code in table.loinc:
            by_loinc.setdefault(code, table.link_id)
    recognised: list[tuple[Instrument, tuple[str, ...]]] = []
    claimed: set[str] = set()
    for instrument in INSTRUMENTS:
        if all(code in by_loinc for code in instrument.items):
            link_ids = tuple(by_loinc[code] for code in instrument.items)
        elif _ours(q, instrument) and all(link in items for link in instrument.link_ids):
            link_ids = instrument.link_ids
        else:
            continue
        recognised.append((instrument, link_ids))
        claimed.update(link_ids)
    generic = tuple(
        t.link_id
        for t in items.values()
        if t.weights and not t.calculated and t.link_id not in claimed
    )
    item9 = [t.link_id for t in items.values() if PHQ9_ITEM9 in t.loinc]
    if not item9 and _ours(q, PHQ9) and PHQ9_ITEM9_LINK_ID in items:
        item9 = [PHQ9_ITEM9_LINK_ID]
    codes = [c for c in q.get("code") or [] if isinstance(c, Mapping)]
    title = q.get("title") or q.get("name") or q.get("url") or q.get("id") or "Questionnaire"
    return QuestionnaireTable(
        title=str(title),
        code={k: str(v) for k, v in codes[0].items() if k in {"system", "code", "display"}}
        if codes
        else None,
        items=items,
        instruments=tuple(recognised),
        generic=generic,
        item9_link_ids=tuple(item9),
        scored_link_ids=frozenset(
            (*(link for _, links in recognised for link in links), *generic, *item9)
        ),
    )


_CACHE_SIZE = 256
_cache: OrderedDict[str, QuestionnaireTable] = OrderedDict()
_lock = threading.Lock()


def questionnaire_table(q: Mapping[str, Any]) -> QuestionnaireTable:
    """Cached by ``url|version``: a published url|version never changes content.  A
    Questionnaire without a url is built each time (nothing safe to key it on)."""
    url = q.get("url")
    if not isinstance(url, str) or not url:
        return build_table(q)
    key = f"{url}|{q.get('version') or ''}"
    with _lock:
        table = _cache.get(key)
        if table is not None:
            _cache.move_to_end(key)
            return table
    table = build_table(q)
    with _lock:
        _cache[key] = table
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return table


def clear_cache() -> None:
    with _lock:
        _cache.clear()
