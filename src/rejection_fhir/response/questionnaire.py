"""A Questionnaire compiled once for reading many responses, and an index of Questionnaires.

About 800 lines, over the ~600 the project keeps modules under: the compiled definitions
(ItemDef, options, code lists), the compiling that fills them and the index that finds them
are read on every response of a sync; kept in one compiled (mypyc) module they stay native
calls, and the index's callers (sync, summarize, the CLI) import it from here.

Reading a QuestionnaireResponse needs, for every answered linkId, the item's definition,
its position among its siblings, its options and its enableWhen.  Building those lookups
per response would dominate the cost of a sync run, so :func:`compile_questionnaire` builds
them once per Questionnaire and caches the result.  The compiled form treats the source
dict as frozen: mutate a Questionnaire after compiling it and you must compile a copy.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from rejection_fhir.errors import InputError, VersionConflictError
from rejection_fhir.fhir import r4
from rejection_fhir.fhir.json import as_list
from rejection_fhir.response.values import display_value, to_decimal

EXT_UNIT: Final = r4.UNIT
EXT_MIN_VALUE: Final = r4.MIN_VALUE
EXT_MAX_VALUE: Final = r4.MAX_VALUE
EXT_MIN_LENGTH: Final = r4.MIN_LENGTH
EXT_ORDINAL_VALUE: Final = r4.ORDINAL_VALUE
EXT_ITEM_WEIGHT: Final = r4.ITEM_WEIGHT
EXT_CO_VALUE: Final = r4.CO_VALUE
EXT_ENABLE_WHEN_EXPRESSION: Final = r4.ENABLE_WHEN_EXPRESSION
#: Score extensions in order of preference: R5's name, R4's name, the pre-R4 name.
WEIGHT_EXTENSIONS: Final = (EXT_ITEM_WEIGHT, EXT_ORDINAL_VALUE, EXT_CO_VALUE)

#: Questionnaire.item.type -> the answer value[x] keys it accepts (before answerOption types).
ITEM_VALUE_KEYS: Final[dict[str, frozenset[str]]] = {
    "group": frozenset(),
    "display": frozenset(),
    "boolean": frozenset({"valueBoolean"}),
    "decimal": frozenset({"valueDecimal"}),
    "integer": frozenset({"valueInteger"}),
    "date": frozenset({"valueDate"}),
    "dateTime": frozenset({"valueDateTime"}),
    "time": frozenset({"valueTime"}),
    "string": frozenset({"valueString"}),
    "text": frozenset({"valueString"}),
    "url": frozenset({"valueUri"}),
    "choice": frozenset({"valueCoding"}),
    "open-choice": frozenset({"valueCoding", "valueString"}),
    "attachment": frozenset({"valueAttachment"}),
    "reference": frozenset({"valueReference"}),
    "quantity": frozenset({"valueQuantity"}),
}
QUESTION_TYPES: Final = frozenset(ITEM_VALUE_KEYS) - {"group", "display"}

_SEMVER_RE: Final = re.compile(
    r"(0|[1-9]\d*)(?:\.(0|[1-9]\d*))?(?:\.(0|[1-9]\d*))?(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?"
)


def path_segment(link_id: str) -> str:
    """``link_id`` as one segment of a response path (see :mod:`rejection_fhir.response.answers`).

    ``\\``, ``/`` and ``[`` are backslash-escaped, so a linkId such as ``/44249-1/44260-8``
    or ``a[1]`` cannot be read as several segments or as an index.  LinkIds without them,
    the usual case, are their own segment, so paths read as they always did.
    """
    if "/" not in link_id and "[" not in link_id and "\\" not in link_id:
        return link_id
    return link_id.replace("\\", "\\\\").replace("/", "\\/").replace("[", "\\[")


def split_path(path: str) -> list[tuple[str, int | None]]:
    """A response path back into ``(linkId, index)`` steps, undoing :func:`path_segment`.

    ``"g/a\\/b[1]/c"`` -> ``[("g", None), ("a/b", 1), ("c", None)]``.  An item without
    linkId is named by its position in its list (``[2]``): its step is ``("", 2)``.
    """
    steps: list[tuple[str, int | None]] = []
    if not path:
        return steps
    name: list[str] = []
    index: int | None = None
    n = 0
    while n < len(path):
        char = path[n]
        if char == "\\" and n + 1 < len(path):
            name.append(path[n + 1])
            n += 2
            continue
        if char == "[":
            close = path.find("]", n)
            if close < 0:
                raise ValueError(f"unclosed '[' in path {path!r}")
            index = int(path[n + 1 : close])
            n = close + 1
            continue
        if char == "/":
            steps.append(("".join(name), index))
            name, index = [], None
        else:
            name.append(char)
        n += 1
    steps.append(("".join(name), index))
    return steps


def extension_value(element: Mapping[str, Any], url: str) -> tuple[str, Any] | None:
    """``(value[x] key, value)`` of the first extension with ``url`` on ``element``."""
    extensions = element.get("extension")
    if not isinstance(extensions, list):
        return None
    for extension in extensions:
        if isinstance(extension, dict) and extension.get("url") == url:
            for key, value in extension.items():
                if key.startswith("value"):
                    return key, value
    return None


def weight_of(element: Mapping[str, Any]) -> Decimal | None:
    """The score an option carries (itemWeight / ordinalValue / iso21090-CO-value)."""
    if "extension" not in element:
        return None
    for url in WEIGHT_EXTENSIONS:
        found = extension_value(element, url)
        if found is not None:
            number = to_decimal(found[1])
            if number is not None:
                return number
    return None


@dataclass(frozen=True, slots=True)
class Concept:
    """One permitted code with what a reader needs to show and score it."""

    system: str | None
    code: str | None
    display: str
    weight: Decimal | None = None


@dataclass(frozen=True, slots=True)
class OptionDef:
    """One ``Questionnaire.item.answerOption``."""

    value_key: str  # valueCoding, valueInteger, valueDate, valueTime, valueString, valueReference
    value: Any
    display: str
    weight: Decimal | None = None

    @property
    def system(self) -> str | None:
        if self.value_key == "valueCoding" and isinstance(self.value, dict):
            system = self.value.get("system")
            return system if isinstance(system, str) else None
        return None

    @property
    def code(self) -> str | None:
        if self.value_key == "valueCoding" and isinstance(self.value, dict):
            code = self.value.get("code")
            return code if isinstance(code, str) else None
        return None


@dataclass(frozen=True, slots=True)
class EnableWhen:
    question: str
    operator: str
    answer_key: str  # answerBoolean, answerCoding, ...
    answer: Any


@dataclass(frozen=True, slots=True)
class CodeList:
    """The codes a ValueSet permits, as far as they can be known without a terminology server.

    ``complete`` is False when the ValueSet uses filters, imports other ValueSets or
    includes whole code systems we do not hold: then membership cannot be decided here.
    """

    by_system_code: Mapping[tuple[str | None, str], Concept]
    by_code: Mapping[str, Concept]
    complete: bool

    def find(self, system: str | None, code: object) -> Concept | None:
        if not isinstance(code, str):  # a response may hold anything where a code belongs
            return None
        if system is None:
            return self.by_code.get(code)
        return self.by_system_code.get((system, code))


@dataclass(eq=False, slots=True)
class ItemDef:
    """One Questionnaire item with its lookups prepared.  Treat as read-only."""

    link_id: str
    type: str | None
    text: str | None
    prefix: str | None
    required: bool
    repeats: bool
    read_only: bool
    max_length: int | None
    min_length: int | None
    min_value: tuple[str, Any] | None
    max_value: tuple[str, Any] | None
    unit: str | None
    options: tuple[OptionDef, ...]
    answer_value_set: str | None
    enable_when: tuple[EnableWhen, ...]
    enable_behavior: str  # "all" or "any"
    has_enable_expression: bool
    value_keys: frozenset[str]
    ancestors: tuple[str, ...]  # linkIds from the root down to the parent
    position: int  # index among its siblings
    order: int  # pre-order index in the whole Questionnaire
    source: Mapping[str, Any]
    parent: ItemDef | None = None
    children: tuple[ItemDef, ...] = ()
    child_index: dict[str, ItemDef] = field(default_factory=dict)
    option_by_system_code: dict[tuple[Any, Any], OptionDef] = field(default_factory=dict)
    option_by_code: dict[str, OptionDef] = field(default_factory=dict)
    #: The question as a reader sees it: prefix and text, or the linkId as a last resort.
    label: str = ""
    #: Whether response paths index every instance (repeating groups).
    indexed: bool = False
    #: The linkId as a path segment (:func:`path_segment`), escaped once per Questionnaire.
    segment: str = ""

    @property
    def is_question(self) -> bool:
        return self.type in QUESTION_TYPES

    def option_for_coding(self, coding: Mapping[str, Any]) -> OptionDef | None:
        code = coding.get("code")
        if not isinstance(code, str):
            return None
        system = coding.get("system")
        if isinstance(system, str):
            return self.option_by_system_code.get((system, code))
        return self.option_by_code.get(code)

    def option_for_value(self, key: str, value: Any) -> OptionDef | None:
        """The answerOption an answer picks, matching system+code for Codings."""
        if key == "valueCoding":
            return self.option_for_coding(value) if isinstance(value, dict) else None
        for option in self.options:
            if option.value_key != key:
                continue
            if key == "valueReference":
                if (
                    isinstance(value, dict)
                    and isinstance(option.value, dict)
                    and option.value.get("reference") == value.get("reference")
                ):
                    return option
            elif option.value == value and type(option.value) is type(value):
                return option
        return None


class CompiledQuestionnaire:
    """A Questionnaire prepared for reading responses: linkId index, order, options, enableWhen."""

    __slots__ = (
        "_code_lists",
        "by_link_id",
        "canonical",
        "contained",
        "duplicate_link_ids",
        "effective_end",
        "effective_start",
        "extras",
        "items",
        "reference",
        "root_index",
        "source",
        "title",
        "url",
        "version",
    )

    def __init__(self, questionnaire: Mapping[str, Any]) -> None:
        if not isinstance(questionnaire, dict):
            raise InputError(
                "A Questionnaire must be a JSON object.",
                hint="Pass the parsed Questionnaire resource (a dict), not its text.",
            )
        if questionnaire.get("resourceType") != "Questionnaire":
            raise InputError(
                f"Expected resourceType 'Questionnaire', got {_short(questionnaire.get('resourceType'))}.",
                hint="Pass a Questionnaire resource; Bundles must be unpacked first.",
            )
        self.source = questionnaire
        #: Per-Questionnaire objects other modules build once (e.g. a default Resolver).
        self.extras: dict[str, object] = {}
        url = questionnaire.get("url")
        version = questionnaire.get("version")
        self.url: str | None = url if isinstance(url, str) and url else None
        self.version: str | None = version if isinstance(version, str) and version else None
        self.canonical: str | None = (
            f"{self.url}|{self.version}" if self.url and self.version else self.url
        )
        resource_id = questionnaire.get("id")
        #: The relative reference a server may put in ``questionnaire`` (``Questionnaire/id``).
        self.reference: str | None = (
            f"Questionnaire/{resource_id}" if isinstance(resource_id, str) and resource_id else None
        )
        title = questionnaire.get("title") or questionnaire.get("name")
        self.title: str | None = title if isinstance(title, str) and title else None
        period = questionnaire.get("effectivePeriod")
        period = period if isinstance(period, dict) else {}
        start, end = period.get("start"), period.get("end")
        self.effective_start: str | None = start if isinstance(start, str) else None
        self.effective_end: str | None = end if isinstance(end, str) else None

        self.contained: dict[str, Mapping[str, Any]] = {}
        contained = questionnaire.get("contained")
        if isinstance(contained, list):
            for resource in contained:
                if isinstance(resource, dict) and isinstance(resource.get("id"), str):
                    self.contained[resource["id"]] = resource

        self.by_link_id: dict[str, ItemDef] = {}
        self.duplicate_link_ids: set[str] = set()
        self._code_lists: dict[str, CodeList | None] = {}
        counter = [0]
        self.items: tuple[ItemDef, ...] = self._compile_items(
            questionnaire.get("item"), None, (), counter
        )
        self.root_index: dict[str, ItemDef] = {}
        for item in self.items:
            self.root_index.setdefault(item.link_id, item)

    # ------------------------------------------------------------------ building

    def _compile_items(
        self,
        raw_items: object,
        parent: ItemDef | None,
        ancestors: tuple[str, ...],
        counter: list[int],
    ) -> tuple[ItemDef, ...]:
        if not isinstance(raw_items, list):
            return ()
        compiled: list[ItemDef] = []
        for raw in raw_items:
            if not isinstance(raw, dict) or not isinstance(raw.get("linkId"), str):
                continue
            item = self._compile_item(raw, parent, ancestors, len(compiled), counter[0])
            counter[0] += 1
            if item.link_id in self.by_link_id:
                # que-2 forbids this; keep the first so lookups stay deterministic.
                self.duplicate_link_ids.add(item.link_id)
            else:
                self.by_link_id[item.link_id] = item
            item.children = self._compile_items(
                raw.get("item"), item, (*ancestors, item.link_id), counter
            )
            for child in item.children:
                item.child_index.setdefault(child.link_id, child)
            compiled.append(item)
        return tuple(compiled)

    def _compile_item(
        self,
        raw: Mapping[str, Any],
        parent: ItemDef | None,
        ancestors: tuple[str, ...],
        position: int,
        order: int,
    ) -> ItemDef:
        item_type = raw.get("type") if isinstance(raw.get("type"), str) else None
        unit = None
        unit_ext = extension_value(raw, EXT_UNIT)
        if unit_ext is not None and isinstance(unit_ext[1], dict):
            label = unit_ext[1].get("display") or unit_ext[1].get("code")
            unit = label if isinstance(label, str) and label else None

        options = tuple(
            option
            for option in (_compile_option(o) for o in as_list(raw.get("answerOption")))
            if option is not None
        )
        value_keys = ITEM_VALUE_KEYS.get(item_type or "", frozenset())
        if item_type in ("choice", "open-choice") and options:
            # R4 answerOption may hold integers, dates, times, strings or References.
            value_keys = value_keys | {o.value_key for o in options}
        elif item_type is not None and item_type not in ITEM_VALUE_KEYS:
            value_keys = frozenset()  # a type this engine does not know: no type check

        enable_when = tuple(
            ew for ew in (_compile_enable_when(e) for e in as_list(raw.get("enableWhen"))) if ew
        )
        behavior = raw.get("enableBehavior")
        answer_vs = raw.get("answerValueSet")
        max_length = raw.get("maxLength")
        min_length = extension_value(raw, EXT_MIN_LENGTH)
        item = ItemDef(
            link_id=raw["linkId"],
            type=item_type,
            text=raw.get("text") if isinstance(raw.get("text"), str) else None,
            prefix=raw.get("prefix") if isinstance(raw.get("prefix"), str) else None,
            required=raw.get("required") is True,
            repeats=raw.get("repeats") is True,
            read_only=raw.get("readOnly") is True,
            max_length=max_length if _is_count(max_length) else None,
            min_length=min_length[1] if min_length and _is_count(min_length[1]) else None,
            min_value=extension_value(raw, EXT_MIN_VALUE),
            max_value=extension_value(raw, EXT_MAX_VALUE),
            unit=unit,
            options=options,
            answer_value_set=answer_vs if isinstance(answer_vs, str) and answer_vs else None,
            enable_when=enable_when,
            enable_behavior="any" if behavior == "any" else "all",
            has_enable_expression=extension_value(raw, EXT_ENABLE_WHEN_EXPRESSION) is not None,
            value_keys=value_keys,
            ancestors=ancestors,
            position=position,
            order=order,
            source=raw,
            parent=parent,
        )
        text = item.text or item.link_id
        item.label = f"{item.prefix} {text}" if item.prefix else text
        item.indexed = item.repeats and item_type == "group"
        item.segment = path_segment(item.link_id)
        for option in options:
            code = option.code
            if code is not None:
                item.option_by_system_code.setdefault((option.system, code), option)
                item.option_by_code.setdefault(code, option)
        return item

    # ------------------------------------------------------------------ lookups

    def item(self, link_id: str) -> ItemDef | None:
        return self.by_link_id.get(link_id)

    def walk(self) -> Iterator[ItemDef]:
        """Every item in Questionnaire (pre-)order."""
        stack = list(reversed(self.items))
        while stack:
            item = stack.pop()
            yield item
            stack.extend(reversed(item.children))

    def code_list(
        self, reference: str, terminology: Mapping[str, Mapping[str, Any]] | None = None
    ) -> CodeList | None:
        """The codes of ``answerValueSet``: a contained ``#id`` or a canonical in ``terminology``.

        ``terminology`` maps canonical urls (optionally ``url|version``) to ValueSet and
        CodeSystem resources.  Contained results are cached on this object; results that
        depend on ``terminology`` are not, since the map may differ between calls.
        """
        if reference.startswith("#"):
            if reference in self._code_lists:
                return self._code_lists[reference]
            value_set = self.contained.get(reference[1:])
            result = (
                _code_list(value_set, self.contained, terminology)
                if value_set is not None and value_set.get("resourceType") == "ValueSet"
                else None
            )
            if terminology is None:
                self._code_lists[reference] = result
            return result
        value_set = _lookup_canonical(terminology, reference)
        if value_set is None or value_set.get("resourceType") != "ValueSet":
            return None
        return _code_list(value_set, self.contained, terminology)

    def matches(self, canonical: str) -> bool:
        """Whether a response's ``questionnaire`` canonical names this Questionnaire.

        A relative reference ``Questionnaire/{id}`` (some servers fill ``questionnaire``
        with one) names it too, as :meth:`QuestionnaireIndex.compiled` resolves it.
        """
        url, _, version = canonical.partition("|")
        if url != self.url:
            return not version and self.reference is not None and url == self.reference
        return not version or version == self.version


# ---------------------------------------------------------------------- compile helpers


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _short(value: object, limit: int = 60) -> str:
    """A bounded, printable rendering of an identifier for messages (never free text)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _compile_option(raw: object) -> OptionDef | None:
    if not isinstance(raw, dict):
        return None
    for key, value in raw.items():
        if key.startswith("value"):
            weight = weight_of(raw)
            if weight is None and isinstance(value, dict):
                weight = weight_of(value)
            return OptionDef(key, value, display_value(key, value), weight)
    return None


def _compile_enable_when(raw: object) -> EnableWhen | None:
    if not isinstance(raw, dict):
        return None
    question, operator = raw.get("question"), raw.get("operator")
    if not isinstance(question, str) or not isinstance(operator, str):
        return None
    for key, value in raw.items():
        if key.startswith("answer"):
            return EnableWhen(question, operator, key, value)
    return None


def _lookup_canonical(
    resources: Mapping[str, Mapping[str, Any]] | None, canonical: str
) -> Mapping[str, Any] | None:
    if not resources:
        return None
    found = resources.get(canonical)
    if found is None and "|" in canonical:
        found = resources.get(canonical.partition("|")[0])
    return found if isinstance(found, dict) else None


def _concept(system: str | None, raw: Mapping[str, Any]) -> Concept | None:
    code = raw.get("code")
    if not isinstance(code, str):
        return None
    display = raw.get("display")
    return Concept(
        system,
        code,
        display if isinstance(display, str) and display else code,
        weight_of(raw),
    )


def _code_list(
    value_set: Mapping[str, Any],
    contained: Mapping[str, Mapping[str, Any]],
    terminology: Mapping[str, Mapping[str, Any]] | None,
) -> CodeList:
    concepts: dict[tuple[str | None, str], Concept] = {}
    complete = True
    expansion = value_set.get("expansion")
    if isinstance(expansion, dict) and isinstance(expansion.get("contains"), list):
        stack = list(expansion["contains"])
        while stack:
            entry = stack.pop()
            if not isinstance(entry, dict):
                continue
            stack.extend(as_list(entry.get("contains")))
            if entry.get("abstract") is True or entry.get("inactive") is True:
                continue
            system = entry.get("system") if isinstance(entry.get("system"), str) else None
            concept = _concept(system, entry)
            if concept is not None and concept.code is not None:
                concepts[(system, concept.code)] = concept
        total = expansion.get("total")
        if isinstance(total, int) and total > len(concepts):
            complete = False  # a paged expansion: we only hold part of it
    else:
        compose = value_set.get("compose")
        compose = compose if isinstance(compose, dict) else {}
        includes = as_list(compose.get("include"))
        if not includes:
            complete = False
        for include in includes:
            if not isinstance(include, dict):
                continue
            system = include.get("system") if isinstance(include.get("system"), str) else None
            if include.get("filter") or include.get("valueSet"):
                complete = False
                continue
            raw_concepts = include.get("concept")
            if isinstance(raw_concepts, list):
                for raw in raw_concepts:
                    if isinstance(raw, dict):
                        concept = _concept(system, raw)
                        if concept is not None and concept.code is not None:
                            concepts[(system, concept.code)] = concept
                continue
            code_system = _find_code_system(system, contained, terminology)
            if code_system is None:
                complete = False
                continue
            for concept in _code_system_concepts(system, code_system):
                if concept.code is not None:
                    concepts[(system, concept.code)] = concept
        for exclude in as_list(compose.get("exclude")):
            if not isinstance(exclude, dict):
                continue
            system = exclude.get("system") if isinstance(exclude.get("system"), str) else None
            for raw in as_list(exclude.get("concept")):
                if isinstance(raw, dict) and isinstance(raw.get("code"), str):
                    concepts.pop((system, raw["code"]), None)
    by_code: dict[str, Concept] = {}
    for (_, code), concept in concepts.items():
        by_code.setdefault(code, concept)
    return CodeList(concepts, by_code, complete)


def _find_code_system(
    system: str | None,
    contained: Mapping[str, Mapping[str, Any]],
    terminology: Mapping[str, Mapping[str, Any]] | None,
) -> Mapping[str, Any] | None:
    if system is None:
        return None
    for resource in contained.values():
        if resource.get("resourceType") == "CodeSystem" and resource.get("url") == system:
            return resource
    found = _lookup_canonical(terminology, system)
    if found is not None and found.get("resourceType") == "CodeSystem":
        if found.get("content") not in (None, "complete"):
            return None  # a fragment or example CodeSystem cannot list every code
        return found
    return None


def _code_system_concepts(system: str | None, code_system: Mapping[str, Any]) -> Iterator[Concept]:
    stack = list(as_list(code_system.get("concept")))
    while stack:
        raw = stack.pop()
        if isinstance(raw, dict):
            stack.extend(as_list(raw.get("concept")))
            concept = _concept(system, raw)
            if concept is not None:
                yield concept


# ---------------------------------------------------------------------- compile cache

_CACHE_SIZE: Final = 256
# id(dict) -> (dict, compiled).  Holding the dict keeps its id from being reused.
# Eviction is first-in first-out: a run uses a handful of Questionnaires, far below the size.
_cache: OrderedDict[int, tuple[Mapping[str, Any], CompiledQuestionnaire]] = OrderedDict()
_cache_lock = threading.Lock()


def compile_questionnaire(
    questionnaire: Mapping[str, Any] | CompiledQuestionnaire,
) -> CompiledQuestionnaire:
    """The compiled form of ``questionnaire``, built once per Questionnaire object and cached.

    Raises :class:`InputError` when ``questionnaire`` is not a Questionnaire resource.
    """
    if isinstance(questionnaire, CompiledQuestionnaire):
        return questionnaire
    key = id(questionnaire)
    hit = _cache.get(key)  # lock-free read: a sync looks this up once per response
    if hit is not None and hit[0] is questionnaire:
        return hit[1]
    compiled = CompiledQuestionnaire(questionnaire)
    with _cache_lock:
        _cache[key] = (questionnaire, compiled)
        _cache.move_to_end(key)
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return compiled


# ---------------------------------------------------------------------- index by canonical


def split_canonical(canonical: str) -> tuple[str, str | None]:
    """``"url|version"`` -> ``(url, version)``; a fragment after ``#`` is dropped."""
    url, _, version = canonical.partition("|")
    url = url.partition("#")[0] if "#" in url and not url.startswith("#") else url
    return url, (version or None)


def version_key(version: str | None, date: str | None = None) -> tuple[Any, ...]:
    """Sort key: semantic versions by precedence, above anything else; then by date."""
    match = _SEMVER_RE.fullmatch(version or "")
    if match is None:
        return (0, (0, 0, 0), 0, (), date or "", version or "")
    major, minor, patch, pre = match.groups()
    release = (int(major), int(minor or 0), int(patch or 0))
    if pre is None:
        return (1, release, 1, (), date or "", version or "")
    pre_key = tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part) for part in pre.split(".")
    )
    return (1, release, 0, pre_key, date or "", version or "")


class QuestionnaireIndex:
    """Questionnaires by canonical url, resolving ``url`` and ``url|version``.

    ``url|version`` resolves to exactly that version (or nothing).  A bare ``url``
    resolves to the highest semantic version, else the latest ``date``.  ``Questionnaire/id``
    references resolve too, for servers that fill ``questionnaire`` with a literal reference.
    """

    def __init__(self, questionnaires: Iterable[Mapping[str, Any]] = ()) -> None:
        self._versions: dict[str, dict[str | None, CompiledQuestionnaire]] = {}
        self._latest: dict[str, CompiledQuestionnaire] = {}
        self._by_id: dict[str, CompiledQuestionnaire] = {}
        for questionnaire in questionnaires:
            self.add(questionnaire)

    def add(
        self, questionnaire: Mapping[str, Any] | CompiledQuestionnaire
    ) -> CompiledQuestionnaire:
        """Index one Questionnaire.

        Raises :class:`VersionConflictError` when a different Questionnaire is already
        indexed under the same url and version, and :class:`InputError` when it is not a
        Questionnaire or has no url.
        """
        compiled = compile_questionnaire(questionnaire)
        resource_id = compiled.source.get("id")
        if isinstance(resource_id, str) and resource_id:
            self._by_id[f"Questionnaire/{resource_id}"] = compiled
        if compiled.url is None:
            if isinstance(resource_id, str) and resource_id:
                return compiled
            raise InputError(
                "A Questionnaire without url (and without id) cannot be indexed.",
                hint="Give the Questionnaire its canonical url before indexing it.",
            )
        versions = self._versions.setdefault(compiled.url, {})
        existing = versions.get(compiled.version)
        if existing is not None and existing.source != compiled.source:
            raise VersionConflictError(
                f"Two different Questionnaires share {compiled.canonical!s}.",
                hint="Give the changed Questionnaire a new version.",
            )
        versions[compiled.version] = compiled
        latest = self._latest.get(compiled.url)
        if latest is None or _sort_key(compiled) >= _sort_key(latest):
            self._latest[compiled.url] = compiled
        return compiled

    def compiled(self, canonical: str) -> CompiledQuestionnaire | None:
        """The compiled Questionnaire for a canonical (or ``Questionnaire/id``), or None."""
        if not isinstance(canonical, str) or not canonical:
            return None
        url, version = split_canonical(canonical)
        if version is not None:
            return self._versions.get(url, {}).get(version)
        found = self._latest.get(url)
        if found is None:
            found = self._by_id.get(url)
        return found

    def get(self, canonical: str) -> Mapping[str, Any] | None:
        """The Questionnaire resource for a canonical, or None."""
        compiled = self.compiled(canonical)
        return compiled.source if compiled is not None else None

    def for_response(self, response: Mapping[str, Any]) -> CompiledQuestionnaire | None:
        """The Questionnaire a response names: a contained ``#id`` or a canonical in the index."""
        if not isinstance(response, dict):
            return None
        canonical = response.get("questionnaire")
        if not isinstance(canonical, str) or not canonical:
            return None
        if canonical.startswith("#"):
            for resource in as_list(response.get("contained")):
                if (
                    isinstance(resource, dict)
                    and resource.get("resourceType") == "Questionnaire"
                    and resource.get("id") == canonical[1:]
                ):
                    return compile_questionnaire(resource)
            return None
        return self.compiled(canonical)

    def __contains__(self, canonical: object) -> bool:
        return isinstance(canonical, str) and self.compiled(canonical) is not None

    def __len__(self) -> int:
        return sum(len(v) for v in self._versions.values())

    def __iter__(self) -> Iterator[CompiledQuestionnaire]:
        for versions in self._versions.values():
            yield from versions.values()


def _sort_key(compiled: CompiledQuestionnaire) -> tuple[Any, ...]:
    date = compiled.source.get("date")
    return version_key(compiled.version, date if isinstance(date, str) else None)
