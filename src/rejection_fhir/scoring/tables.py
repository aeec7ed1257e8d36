"""Per-Questionnaire lookup tables for scoring, built once and cached by ``url|version``.

Scoring runs in the sync's hot path: walking a Questionnaire, resolving its contained
ValueSets and recognising standard instruments happens once per Questionnaire version;
each response then only walks its own items and looks answers up in dicts.

About 600 lines, kept whole: every place R4 lets a form declare an answer's weight
(itemWeight, ordinalValue, iso21090-CO-value, contained or referenced ValueSets), read
into one table per Questionnaire version, is one concern and one cache.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from rejection_fhir.fhir.json import as_list as _list
from rejection_fhir.scoring.instruments import (
    FREQUENCY_LL358_3,
    GAD7,
    GAD7_CODES,
    INSTRUMENTS,
    LOINC,
    PHQ9,
    PHQ9_CODES,
    PHQ9_ITEM9,
    PHQ9_ITEM9_LINK_ID,
    Instrument,
    gad7_item_by_text,
    phq9_item_by_text,
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
#: LHC-Forms and LOINC-derived forms use the item's LOINC code as linkId, often with "/",
#: sometimes as a path of codes (``/44249-1/44260-8``): every LOINC-shaped segment counts.
_LOINC_SEGMENT = re.compile(r"(?<![0-9A-Za-z.-])(\d{1,7}-\d)(?![0-9A-Za-z-])")
#: The R5 backport extensions that carry a concept's properties in an R4 expansion
#: (``ValueSet.expansion.contains.property``: sub-extensions ``code`` and ``value``) and
#: declare what each property code means (``ValueSet.expansion.property``: ``code`` and
#: ``uri``), as tx.fhir.org and SDC-based IGs write them.
BACKPORT_CONTAINS_PROPERTY = (
    "http://hl7.org/fhir/5.0/StructureDefinition/extension-ValueSet.expansion.contains.property"
)
BACKPORT_EXPANSION_PROPERTY = (
    "http://hl7.org/fhir/5.0/StructureDefinition/extension-ValueSet.expansion.property"
)
#: Property URIs (R5 concept-properties) and bare codes that mean "the option's weight".
WEIGHT_PROPERTY_URIS = frozenset(
    {
        "http://hl7.org/fhir/concept-properties#itemWeight",
        "http://hl7.org/fhir/concept-properties#weight",
        "http://hl7.org/fhir/concept-properties#ordinalValue",
    }
)
WEIGHT_PROPERTY_CODES = frozenset({"itemWeight", "weight", "ordinalValue"})
#: LL358-3 answer codes: seen on an item's options or answers, a PHQ-9 signal.
FREQUENCY_CODES = frozenset(FREQUENCY_LL358_3)
#: Marks the stand-in Questionnaire read off a response (no form to say otherwise, so our
#: own linkIds count as our instruments').
STAND_IN = "_rejectionFhirStandIn"
#: Our PHQ-9's linkIds (questionnaires/phq-9.yaml) are a sign of a PHQ-9 too.
_PHQ9_LINK_IDS = frozenset(PHQ9.link_ids)

OptionKey = tuple[str | None, str]
#: A response's answers by linkId, as JSON objects in document order (plain dicts, which
#: the compiled build reads with direct dict calls).
Answers = dict[str, list[dict[str, Any]]]


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
    #: Offers LL358-3 answer codes (the PHQ frequency list), weighted or not.
    frequency: bool = False
    #: Weights by code alone, for Codings sent without their system.
    by_code: Mapping[str, tuple[Decimal, str]] = field(default_factory=dict)
    #: casefold(code) → code of each weighted option: to report (never score) a code
    #: that matches only ignoring case.
    folded: Mapping[str, str] = field(default_factory=dict)


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
    #: Why the form looks like a PHQ-9 (its first signal), or "" when it does not.
    phq9_signal: str = ""
    #: The Questionnaire's canonical url, if any.
    url: str | None = None
    #: answerValueSet canonicals it does not contain (looked up in the given value sets).
    external: tuple[str, ...] = ()


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
    for ext in _list(element.get("extension")):
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
    contained = [r for r in _list(q.get("contained")) if isinstance(r, Mapping)]
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
    for include in _list(compose.get("include")):
        if not isinstance(include, Mapping):
            continue
        system = include.get("system")
        for concept in _list(include.get("concept")):
            weight = _extension_weight(concept)
            if weight is not None and isinstance(concept.get("code"), str):
                display = concept.get("display") or concept["code"]
                out[(system, concept["code"])] = (weight, str(display))
    expansion = vs.get("expansion")
    expansion = expansion if isinstance(expansion, Mapping) else {}
    weight_codes = _weight_property_codes(expansion)
    stack = list(_list(expansion.get("contains")))
    while stack:
        entry = stack.pop()
        if not isinstance(entry, Mapping):
            continue
        stack.extend(_list(entry.get("contains")))
        weight = _extension_weight(entry)
        if weight is None:
            weight = _property_weight(entry, weight_codes)
        if weight is not None and isinstance(entry.get("code"), str):
            display = entry.get("display") or entry["code"]
            out[(entry.get("system"), entry["code"])] = (weight, str(display))
    return out


def _weight_property_codes(expansion: Mapping[str, Any]) -> frozenset[str]:
    """The property codes an expansion declares to mean "weight" (R5 ``expansion.property``
    or its R4 backport extension), besides the bare codes itemWeight / weight /
    ordinalValue that expansions also use without declaring them."""
    codes = set(WEIGHT_PROPERTY_CODES)
    declared: list[tuple[Any, Any]] = []
    for prop in _list(expansion.get("property")):
        if isinstance(prop, Mapping):
            declared.append((prop.get("code"), prop.get("uri")))
    for ext in _list(expansion.get("extension")):
        if isinstance(ext, Mapping) and ext.get("url") == BACKPORT_EXPANSION_PROPERTY:
            parts = {
                e.get("url"): e.get("valueCode", e.get("valueUri"))
                for e in _list(ext.get("extension"))
                if isinstance(e, Mapping)
            }
            declared.append((parts.get("code"), parts.get("uri")))
    for code, uri in declared:
        if isinstance(code, str) and isinstance(uri, str) and uri in WEIGHT_PROPERTY_URIS:
            codes.add(code)
    return frozenset(codes)


def _number(value: Any) -> Decimal | None:
    if isinstance(value, int | float | str) and not isinstance(value, bool):
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            return None
        return number if number.is_finite() else None
    return None


def _property_weight(entry: Mapping[str, Any], weight_codes: frozenset[str]) -> Decimal | None:
    """A weight carried as a concept property: R5 ``contains.property`` or, in R4, the
    backport extension (sub-extensions ``code`` and ``value[x]``)."""
    for prop in _list(entry.get("property")):
        if (
            isinstance(prop, Mapping)
            and isinstance(prop.get("code"), str)
            and prop["code"] in weight_codes
        ):
            number = _number(prop.get("valueDecimal", prop.get("valueInteger")))
            if number is not None:
                return number
    for ext in _list(entry.get("extension")):
        if not isinstance(ext, Mapping) or ext.get("url") != BACKPORT_CONTAINS_PROPERTY:
            continue
        code: Any = None
        value: Any = None
        for part in _list(ext.get("extension")):
            if not isinstance(part, Mapping):
                continue
            if part.get("url") == "code":
                code = part.get("valueCode")
            elif part.get("url") == "value":
                value = part.get("valueDecimal", part.get("valueInteger"))
        if isinstance(code, str) and code in weight_codes:
            number = _number(value)
            if number is not None:
                return number
    return None


#: ValueSets a Questionnaire references by canonical rather than contains (e.g. from
#: ``summarize --questionnaire bundle.json``): canonical url (and url|version) → resource.
#: Passed in by the caller (``worksheet.catalog.Catalog.value_sets``), never registered.
ValueSets = Mapping[str, Mapping[str, Any]]


def value_set_index(resources: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """The ValueSets among ``resources`` by canonical url and by url|version."""
    found: dict[str, Mapping[str, Any]] = {}
    for resource in resources:
        url = resource.get("url")
        if resource.get("resourceType") == "ValueSet" and isinstance(url, str) and url:
            found[url] = resource
            version = resource.get("version")
            if isinstance(version, str) and version:
                found[f"{url}|{version}"] = resource
    return found


def _external_value_set(value_sets: ValueSets | None, ref: str) -> Mapping[str, Any] | None:
    if not value_sets:
        return None
    return value_sets.get(ref) or value_sets.get(ref.split("|")[0])


def _option_weights(
    q: Mapping[str, Any],
    item: Mapping[str, Any],
    value_sets: ValueSets | None,
    external: list[str],
) -> dict[OptionKey, tuple[Decimal, str]]:
    out: dict[OptionKey, tuple[Decimal, str]] = {}
    for option in _list(item.get("answerOption")):
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
        if vs is None:
            external.append(ref)
            vs = _external_value_set(value_sets, ref)
        if vs is not None:
            out.update(_value_set_weights(vs))
    return out


def _offers_frequency(item: Mapping[str, Any], weights: Mapping[OptionKey, Any]) -> bool:
    if any(code in FREQUENCY_CODES for _, code in weights):
        return True
    for option in _list(item.get("answerOption")):
        coding = option.get("valueCoding") if isinstance(option, Mapping) else None
        code = coding.get("code") if isinstance(coding, Mapping) else None
        if isinstance(code, str) and code in FREQUENCY_CODES:
            return True
    return False


def loinc_segments(link_id: str) -> list[str]:
    """LOINC-shaped codes in a linkId: ``/44260-8``, ``/44249-1/44260-8``, ``44260-8``."""
    if "-" not in link_id:
        return []
    return _LOINC_SEGMENT.findall(link_id)


def text_codes(text: Any) -> set[str]:
    """The LOINC item code whose wording ``text`` carries (PHQ-9 or GAD-7), if any."""
    if not isinstance(text, str) or len(text) < 10:
        return set()
    number = phq9_item_by_text(text)
    if number is not None:
        return {PHQ9.items[number - 1]}
    number = gad7_item_by_text(text)
    if number is not None:
        return {GAD7.items[number - 1]}
    return set()


def _item_table(
    q: Mapping[str, Any], item: Mapping[str, Any], value_sets: ValueSets | None, external: list[str]
) -> ItemTable:
    link_id = str(item["linkId"])
    loinc = {
        str(c["code"])
        for c in _list(item.get("code"))
        if isinstance(c, Mapping) and c.get("system") == LOINC and isinstance(c.get("code"), str)
    }
    segments = loinc_segments(link_id)
    if segments:
        # The item's own code is the last segment; earlier ones name its groups (a panel).
        loinc.add(segments[-1])
    loinc |= text_codes(item.get("text"))
    calculated = bool(item.get("readOnly")) or any(
        isinstance(e, Mapping) and e.get("url") == CALCULATED_EXPRESSION
        for e in _list(item.get("extension"))
    )
    weights = _option_weights(q, item, value_sets, external)
    by_code: dict[str, tuple[Decimal, str]] = {}
    for (_, code), found in weights.items():
        by_code.setdefault(code, found)
    return ItemTable(
        link_id=link_id,
        loinc=frozenset(loinc),
        weights=weights,
        calculated=calculated,
        conditional=bool(item.get("enableWhen")),
        frequency=_offers_frequency(item, weights),
        by_code=by_code,
        folded={code.casefold(): code for code in by_code},
    )


def _ours(q: Mapping[str, Any], instrument: Instrument) -> bool:
    url = q.get("url")
    return isinstance(url, str) and url.endswith(f"/Questionnaire/{instrument.key}")


def build_table(q: Mapping[str, Any], value_sets: ValueSets | None = None) -> QuestionnaireTable:
    """The lookup table for one Questionnaire (uncached; see :func:`questionnaire_table`);
    ``value_sets`` lend weights to options taken from a ValueSet it does not contain."""
    items: dict[str, ItemTable] = {}
    external: list[str] = []
    for item in _walk(q.get("item")):
        if isinstance(item.get("linkId"), str) and str(item.get("type")) not in {
            "group",
            "display",
        }:
            items.setdefault(item["linkId"], _item_table(q, item, value_sets, external))
    by_loinc: dict[str, str] = {}
    for table in items.values():
        for code in table.loinc:
            by_loinc.setdefault(code, table.link_id)
    recognised: list[tuple[Instrument, tuple[str, ...]]] = []
    claimed: set[str] = set()
    for instrument in INSTRUMENTS:
        if all(code in by_loinc for code in instrument.items):
            link_ids = tuple(by_loinc[code] for code in instrument.items)
        elif (_ours(q, instrument) or q.get(STAND_IN) is True) and all(
            link in items for link in instrument.link_ids
        ):
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
    codes = [c for c in _list(q.get("code")) if isinstance(c, Mapping)]
    signal = phq9_signal(q, codes, items.values(), recognised, group_codes(q))
    item9 = [t.link_id for t in items.values() if PHQ9_ITEM9 in t.loinc]
    if not item9 and signal and PHQ9_ITEM9_LINK_ID in items:
        # Our linkId, in a form that looks like a PHQ-9 on some other sign.
        item9 = [PHQ9_ITEM9_LINK_ID]
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
        phq9_signal=signal,
        url=q.get("url") if isinstance(q.get("url"), str) else None,
        external=tuple(dict.fromkeys(external)),
    )


def phq9_url(url: Any) -> bool:
    """Our PHQ-9's canonical url, whatever the canonical base (``…/Questionnaire/phq-9``)."""
    return isinstance(url, str) and url.split("|")[0].endswith(f"/Questionnaire/{PHQ9.key}")


def group_codes(q: Mapping[str, Any]) -> set[str]:
    """LOINC codes on groups and in group linkIds (a panel code such as 44249-1)."""
    found: set[str] = set()
    for item in _walk(q.get("item")):
        if item.get("type") == "group":
            link_id = item.get("linkId")
            if isinstance(link_id, str):
                found.update(loinc_segments(link_id))
            for c in _list(item.get("code")):
                if isinstance(c, Mapping) and isinstance(c.get("code"), str):
                    found.add(c["code"])
    return found


def phq9_signal(
    q: Mapping[str, Any],
    codes: list[Mapping[str, Any]],
    items: Any,
    recognised: list[tuple[Instrument, tuple[str, ...]]],
    groups: set[str],
) -> str:
    """The first sign that a form is a PHQ-9 (docs/instruments.md, "Safety"), or "".

    PHQ-9 codes and wording are signs on their own.  The PHQ frequency answers (LL358-3)
    are too, unless the form is recognisably a GAD-7, which uses the same answers."""
    if any(c.get("code") == PHQ9.panel["code"] for c in codes) or PHQ9.panel["code"] in groups:
        return f"the PHQ-9 panel code {PHQ9.panel['code']}"
    if phq9_url(q.get("url")):
        return "the PHQ-9 Questionnaire's url"
    frequency = False
    for table in items:
        found = table.loinc & PHQ9_CODES
        if found:
            return f"the PHQ-9 item code {min(found)} (item {table.link_id})"
        if table.link_id in _PHQ9_LINK_IDS:
            return f"the PHQ-9 linkId {table.link_id}"
        frequency = frequency or table.frequency
    if not frequency:
        return ""
    gad7 = any(instrument is GAD7 for instrument, _ in recognised) or any(
        c.get("code") == GAD7.panel["code"] for c in codes
    )
    if gad7 or GAD7.panel["code"] in groups or any(table.loinc & GAD7_CODES for table in items):
        return ""
    return "the PHQ answer codes (LOINC LL358-3)"


def response_questionnaire(
    qr: Mapping[str, Any], fallback: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A stand-in Questionnaire read off a response whose own cannot be resolved.

    Each answered item becomes a question with the response's text; its answer codes
    become options (so the PHQ answer codes are seen).  An item that ``fallback`` (another
    version of the same Questionnaire) defines under the same linkId is taken from it, with
    its codes and weights.  Items with nested items but no answers become groups, so a
    panel code in their linkId is seen too."""
    known: dict[str, Mapping[str, Any]] = {}
    if fallback is not None:
        for item in _walk(fallback.get("item")):
            if isinstance(item.get("linkId"), str):
                known.setdefault(item["linkId"], item)
    items: list[dict[str, Any]] = []
    _stand_in_items(qr.get("item"), known, items)
    canonical = qr.get("questionnaire")
    url = fallback.get("url") if fallback is not None else None
    if not isinstance(url, str) and isinstance(canonical, str):
        url = canonical.split("|")[0]
    stand_in: dict[str, Any] = {"resourceType": "Questionnaire", STAND_IN: True, "item": items}
    if isinstance(url, str):
        stand_in["url"] = url
    if fallback is not None:
        for key in ("title", "name", "code", "contained"):
            if key in fallback:
                stand_in[key] = fallback[key]
    return stand_in


def _stand_in_items(
    raw: Any, known: Mapping[str, Mapping[str, Any]], out: list[dict[str, Any]]
) -> None:
    if not isinstance(raw, list):
        return
    for item in raw:
        if not isinstance(item, Mapping):
            continue
        link_id = item.get("linkId")
        answers = [a for a in _list(item.get("answer")) if isinstance(a, Mapping)]
        if isinstance(link_id, str):
            defined = known.get(link_id)
            if defined is not None:
                entry = {k: v for k, v in defined.items() if k != "item"}
            else:
                entry = {"linkId": link_id, "type": "choice" if answers else "group"}
                if isinstance(item.get("text"), str):
                    entry["text"] = item["text"]
                options = [
                    {"valueCoding": {"code": coding["code"]}}
                    for a in answers
                    if isinstance(coding := a.get("valueCoding"), Mapping)
                    and isinstance(coding.get("code"), str)
                ]
                if options:
                    entry["answerOption"] = options
            out.append(entry)
        for answer in answers:
            _stand_in_items(answer.get("item"), known, out)
        _stand_in_items(item.get("item"), known, out)


_CACHE_SIZE = 256
#: url|version → (table, the ValueSet each of its ``external`` refs was found as).
_cache: OrderedDict[str, tuple[QuestionnaireTable, tuple[object, ...]]] = OrderedDict()
_lock = threading.Lock()


def _still_valid(
    entry: tuple[QuestionnaireTable, tuple[object, ...]], value_sets: ValueSets | None
) -> bool:
    """A cached table whose external ValueSets resolve to the same resources now (the
    entry keeps them alive, so ``is`` is safe)."""
    table, seen = entry
    return not table.external or all(
        _external_value_set(value_sets, ref) is found
        for ref, found in zip(table.external, seen, strict=True)
    )


def questionnaire_table(
    q: Mapping[str, Any], value_sets: ValueSets | None = None
) -> QuestionnaireTable:
    """Cached by ``url|version``: a published url|version never changes content.  A
    Questionnaire without a url is built each time (nothing safe to key it on).  A table
    that took weights from ``value_sets`` is rebuilt when they give other ValueSets."""
    url = q.get("url")
    if not isinstance(url, str) or not url:
        return build_table(q, value_sets)
    key = f"{url}|{q.get('version') or ''}"
    with _lock:
        entry = _cache.get(key)
        if entry is not None and _still_valid(entry, value_sets):
            _cache.move_to_end(key)
            return entry[0]
    table = build_table(q, value_sets)
    seen = tuple(_external_value_set(value_sets, ref) for ref in table.external)
    with _lock:
        _cache[key] = (table, seen)
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return table


def clear_cache() -> None:
    with _lock:
        _cache.clear()
