"""Item by item: how the items of two versions of one Questionnaire differ, each change
classified by what it does to a response made with the old version (the table in
:mod:`rejection_fhir.worksheet.versioning`).

Pure: plain dicts in, :class:`Reason` values out.  Content from a server or an old git ref
may be malformed, so every read tolerates a wrong type.

About 600 lines, kept whole: one element-by-element walk over the R4 Questionnaire.item
fields, each compared by its own small function in the walk's order, so that the reasons
come out in the order the guard reports them; split across modules the order would be
spread too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from rejection_fhir.fhir.json import as_list as _list
from rejection_fhir.fhir.json import same_value
from rejection_fhir.fhir.r4 import (
    CALCULATED_EXPRESSION,
    ENTRY_FORMAT,
    ITEM_CONTROL,
    MAX_VALUE,
    MIN_VALUE,
    OBSERVATION_EXTRACT,
    ORDINAL_VALUE,
    SLIDER_STEP,
    UNIT,
)

Kind = Literal["none", "compatible", "needs-new-version", "breaking"]

KINDS: tuple[Kind, ...] = ("none", "compatible", "needs-new-version", "breaking")
#: Item extensions that only change how an item is shown.
RENDERING_EXTENSIONS = frozenset({ITEM_CONTROL, ENTRY_FORMAT, SLIDER_STEP})
#: Item elements compared one by one below; any other element is compared as a whole.
_ITEM_HANDLED = frozenset(
    {
        "linkId",
        "item",
        "type",
        "text",
        "prefix",
        "required",
        "repeats",
        "readOnly",
        "maxLength",
        "answerOption",
        "answerValueSet",
        "enableWhen",
        "enableBehavior",
        "code",
        "extension",
    }
)


# --- What changed ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Reason:
    """One change, in words an author can act on."""

    kind: Kind
    message: str
    #: The item the change is about (None for the Questionnaire itself).
    link_id: str | None = None
    #: FHIR element that changed (``type``, ``answerOption``, ``description``, ``item`` …).
    element: str = ""
    #: An item of the *new* Questionnaire to point at: the item itself, or the nearest
    #: surviving parent of a removed one (None: the Questionnaire).
    anchor: str | None = None


@dataclass(frozen=True)
class _Node:
    item: Mapping[str, Any]
    parent: str | None


def _index(
    items: Any, parent: str | None = None, out: dict[str, _Node] | None = None
) -> dict[str, _Node]:
    out = {} if out is None else out
    if not isinstance(items, list):
        return out
    for item in items:
        if not isinstance(item, Mapping) or not isinstance(item.get("linkId"), str):
            continue
        link_id = item["linkId"]
        if link_id in out:
            continue  # a duplicate linkId is validate's business (que-2), not ours
        out[link_id] = _Node(item, parent)
        _index(item.get("item"), link_id, out)
    return out


def _children(items: Any) -> list[str]:
    if not isinstance(items, list):
        return []
    return [
        i["linkId"] for i in items if isinstance(i, Mapping) and isinstance(i.get("linkId"), str)
    ]


def _descendants(node: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for child in _list(node.get("item")):
        if isinstance(child, Mapping):
            yield child
            yield from _descendants(child)


def _takes_answers(item: Mapping[str, Any]) -> bool:
    return item.get("type") not in {"group", "display"}


def _is_help(item: Mapping[str, Any]) -> bool:
    return item.get("type") == "display" and _control(item) == "help"


def _ext_map(item: Mapping[str, Any]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for ext in _list(item.get("extension")):
        if isinstance(ext, Mapping) and isinstance(ext.get("url"), str):
            out.setdefault(ext["url"], []).append({k: v for k, v in ext.items() if k != "url"})
    return out


def _ext_value(item: Mapping[str, Any], url: str) -> Any:
    for ext in _list(item.get("extension")):
        if isinstance(ext, Mapping) and ext.get("url") == url:
            for key, value in ext.items():
                if key.startswith("value"):
                    return value
    return None


def _control(item: Mapping[str, Any]) -> str | None:
    concept = _ext_value(item, ITEM_CONTROL)
    if isinstance(concept, Mapping):
        for coding in _list(concept.get("coding")):
            if isinstance(coding, Mapping) and isinstance(coding.get("code"), str):
                return str(coding["code"])
    return None


def _name(link_id: str, item: Mapping[str, Any]) -> str:
    if _is_help(item) and link_id.endswith(".help"):
        return f"the help text of '{link_id[: -len('.help')]}'"
    return f"item '{link_id}'"


def _where(parent: str | None) -> str:
    return f"under '{parent}'" if parent is not None else "at the top level"


def _changed(old: Any, new: Any) -> str:
    if old is None:
        return f"{new!r} added"
    if new is None:
        return f"{old!r} removed"
    return f"changed from {old!r} to {new!r}"


def _place(parent: str | None) -> str:
    return f"'{parent}'" if parent is not None else "the top level"


def _show(value: Any) -> str:
    if isinstance(value, Mapping):
        for key in ("code", "value", "display"):
            if key in value:
                return str(value[key])
    return str(value)


# --- Options ---------------------------------------------------------------------------------


def _option_key(option: Any) -> tuple[Any, ...] | None:
    if not isinstance(option, Mapping):
        return None
    for key, value in option.items():
        if not key.startswith("value"):
            continue
        if isinstance(value, Mapping):
            if "code" in value:
                return (key, _hashable(value.get("system")), _hashable(value.get("code")))
            return (key, tuple(sorted((k, str(v)) for k, v in value.items() if k != "display")))
        return (key, _hashable(value))
    return None


def _hashable(value: Any) -> Any:
    """A key part: malformed content (a list where a code belongs) compares as its text."""
    return repr(value) if isinstance(value, list | dict) else value


def _option_label(key: tuple[Any, ...]) -> str:
    return str(key[2]) if len(key) == 3 else str(key[-1])


def _options(item: Mapping[str, Any]) -> dict[tuple[Any, ...], Mapping[str, Any]]:
    out: dict[tuple[Any, ...], Mapping[str, Any]] = {}
    for option in _list(item.get("answerOption")):
        key = _option_key(option)
        if key is not None:
            out.setdefault(key, option)
    return out


def _option_value(option: Mapping[str, Any]) -> Any:
    return next((v for k, v in option.items() if k.startswith("value")), None)


def _compare_options(old: Mapping[str, Any], new: Mapping[str, Any], add: Any) -> None:
    before, after = _options(old), _options(new)
    for key in before:
        if key not in after:
            add(
                "breaking",
                f"option '{_option_label(key)}' removed: earlier answers may use it",
                "answerOption",
            )
    for key in after:
        if key not in before:
            add("needs-new-version", f"option '{_option_label(key)}' added", "answerOption")
    for key, was in before.items():
        now = after.get(key)
        if now is None:
            continue
        label = _option_label(key)
        old_value, new_value = _option_value(was), _option_value(now)
        if isinstance(old_value, Mapping) and isinstance(new_value, Mapping):
            if old_value.get("display") != new_value.get("display"):
                add(
                    "needs-new-version",
                    f"option '{label}' reworded from {old_value.get('display')!r} to {new_value.get('display')!r}",
                    "answerOption",
                )
            old_weight = _ext_value(old_value, ORDINAL_VALUE)
            new_weight = _ext_value(new_value, ORDINAL_VALUE)
            if not same_value(old_weight, new_weight):
                add(
                    "breaking",
                    f"the weight (score) of option '{label}' changed from {old_weight} to {new_weight}: earlier scores would be read differently",
                    "answerOption",
                )
            rest_old = {k: v for k, v in old_value.items() if k not in {"display", "extension"}}
            rest_new = {k: v for k, v in new_value.items() if k not in {"display", "extension"}}
            other_old = {u: v for u, v in _ext_map(old_value).items() if u != ORDINAL_VALUE}
            other_new = {u: v for u, v in _ext_map(new_value).items() if u != ORDINAL_VALUE}
            if not same_value(rest_old, rest_new) or not same_value(other_old, other_new):
                add("needs-new-version", f"option '{label}' changed", "answerOption")
        if not same_value(
            {k: v for k, v in was.items() if not k.startswith("value")},
            {k: v for k, v in now.items() if not k.startswith("value")},
        ):
            add(
                "needs-new-version",
                f"option '{label}' changed (initial selection or extensions)",
                "answerOption",
            )
    common_before = [k for k in before if k in after]
    common_after = [k for k in after if k in before]
    if common_before != common_after:
        add("compatible", "options reordered", "answerOption")


# --- Items -----------------------------------------------------------------------------------


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _compare_bound(label: str, old: Any, new: Any, *, upper: bool, element: str, add: Any) -> None:
    if same_value(old, new):
        return
    if old is None:
        add("breaking", f"{label} {new} added: earlier answers may lie outside it", element)
        return
    if new is None:
        add("compatible", f"{label} {old} removed", element)
        return
    a, b = _number(old), _number(new)
    if a is None or b is None:
        # Dates and other bounds: compare as text (ISO dates sort), else assume the worst.
        narrower = (str(new) < str(old)) if upper else (str(new) > str(old))
    else:
        narrower = b < a if upper else b > a
    if narrower:
        add(
            "breaking",
            f"{label} narrowed from {old} to {new}: earlier answers may lie outside it",
            element,
        )
    else:
        add("compatible", f"{label} widened from {old} to {new}", element)


def _codes(item: Mapping[str, Any]) -> dict[tuple[Any, Any], Any]:
    return {
        (c.get("system"), c.get("code")): c.get("display")
        for c in _list(item.get("code"))
        if isinstance(c, Mapping)
    }


#: Records one change of the item being compared: (class, what changed, FHIR element).
Add = Callable[[Kind, str, str], None]


def _compare_item(
    link_id: str, old: Mapping[str, Any], new: Mapping[str, Any], reasons: list[Reason]
) -> None:
    """Every change of one item present in both versions, in a stable order: the item's
    own elements, its answers, its conditions, its codes, its extensions, the rest."""
    name = _name(link_id, new)

    def add(kind: Kind, what: str, element: str) -> None:
        reasons.append(Reason(kind, f"{name}: {what}", link_id, element, link_id))

    _compare_elements(old, new, add)
    _compare_answers(old, new, add)
    _compare_conditions(old, new, add)
    _compare_codes(old, new, add)
    _compare_extensions(old, new, add)
    for key in sorted((old.keys() | new.keys()) - _ITEM_HANDLED):
        if not same_value(old.get(key), new.get(key)):
            add("needs-new-version", f"{key} changed", key)


def _is_required(item: Mapping[str, Any]) -> bool:
    return bool(item.get("required"))


def _compare_elements(old: Mapping[str, Any], new: Mapping[str, Any], add: Add) -> None:
    """type, text, prefix, required, repeats, readOnly, maxLength."""
    old_type, new_type = old.get("type"), new.get("type")
    if old_type != new_type:
        add(
            "breaking",
            f"type changed from {old_type} to {new_type}: earlier answers no longer fit",
            "type",
        )
    if old.get("text") != new.get("text"):
        add(
            "needs-new-version",
            "text reworded" if old.get("text") and new.get("text") else "text changed",
            "text",
        )
    if old.get("prefix") != new.get("prefix"):
        add("compatible", f"prefix {_changed(old.get('prefix'), new.get('prefix'))}", "prefix")
    required = _is_required(old), _is_required(new)
    if required == (False, True):
        add("breaking", "now required: earlier responses may lack this answer", "required")
    elif required == (True, False):
        add("compatible", "no longer required", "required")
    repeats = bool(old.get("repeats")), bool(new.get("repeats"))
    if repeats == (True, False):
        add("breaking", "no longer repeats: earlier responses may hold several answers", "repeats")
    elif repeats == (False, True):
        add("needs-new-version", "now repeats: new responses may hold several answers", "repeats")
    if bool(old.get("readOnly")) != bool(new.get("readOnly")):
        add("needs-new-version", "readOnly changed", "readOnly")
    old_max, new_max = old.get("maxLength"), new.get("maxLength")
    _compare_bound("maxLength", old_max, new_max, upper=True, element="maxLength", add=add)


def _compare_answers(old: Mapping[str, Any], new: Mapping[str, Any], add: Add) -> None:
    """answerValueSet and answerOption."""
    if old.get("answerValueSet") != new.get("answerValueSet"):
        add(
            "breaking",
            f"answerValueSet changed from {old.get('answerValueSet')} to {new.get('answerValueSet')}: earlier answers may not be in it",
            "answerValueSet",
        )
    _compare_options(old, new, add)


def _compare_conditions(old: Mapping[str, Any], new: Mapping[str, Any], add: Add) -> None:
    """enableWhen and enableBehavior: breaking when the item is (or was) required."""
    conditions = (old.get("enableWhen"), old.get("enableBehavior"))
    if same_value(conditions, (new.get("enableWhen"), new.get("enableBehavior"))):
        return
    if _is_required(old) or _is_required(new):
        add(
            "breaking",
            "enableWhen changed on a required item: earlier responses may lack this answer, or answer it where it is now hidden",
            "enableWhen",
        )
    else:
        add(
            "needs-new-version",
            "enableWhen changed: the item shows in other situations",
            "enableWhen",
        )


def _compare_codes(old: Mapping[str, Any], new: Mapping[str, Any], add: Add) -> None:
    """Item codes: what data extracted from the answers is coded as."""
    old_codes, new_codes = _codes(old), _codes(new)
    if old_codes.keys() - new_codes.keys():
        lost = ", ".join(str(c[1]) for c in old_codes.keys() - new_codes.keys())
        add(
            "breaking",
            f"item code {lost} removed or changed: data extracted from earlier answers is coded differently",
            "code",
        )
    elif new_codes.keys() - old_codes.keys():
        gained = ", ".join(str(c[1]) for c in new_codes.keys() - old_codes.keys())
        add("needs-new-version", f"item code {gained} added", "code")
    elif old_codes != new_codes:
        add("compatible", "item code display changed", "code")


def _compare_extensions(old: Mapping[str, Any], new: Mapping[str, Any], add: Add) -> None:
    """Bounds, unit, calculated expression, extraction, display hints, and any other
    extension (compared as a whole)."""
    old_ext, new_ext = _ext_map(old), _ext_map(new)
    _compare_bound(
        "min",
        _ext_value(old, MIN_VALUE),
        _ext_value(new, MIN_VALUE),
        upper=False,
        element="minValue",
        add=add,
    )
    _compare_bound(
        "max",
        _ext_value(old, MAX_VALUE),
        _ext_value(new, MAX_VALUE),
        upper=True,
        element="maxValue",
        add=add,
    )
    old_unit, new_unit = _ext_value(old, UNIT), _ext_value(new, UNIT)
    if not same_value(old_unit, new_unit):
        if old_unit is not None and new_unit is not None:
            add(
                "breaking",
                f"unit changed from {_show(old_unit)} to {_show(new_unit)}: earlier numbers meant another unit",
                "unit",
            )
        else:
            add(
                "needs-new-version",
                f"unit {'added' if new_unit is not None else 'removed'}",
                "unit",
            )
    if not same_value(old_ext.get(CALCULATED_EXPRESSION), new_ext.get(CALCULATED_EXPRESSION)):
        add(
            "breaking",
            "calculated expression changed: earlier scores would be computed differently",
            "calculatedExpression",
        )
    if not same_value(old_ext.get(OBSERVATION_EXTRACT), new_ext.get(OBSERVATION_EXTRACT)):
        add("needs-new-version", "Observation extraction changed", "observationExtract")
    for url in sorted(RENDERING_EXTENSIONS):
        if not same_value(old_ext.get(url), new_ext.get(url)):
            add(
                "compatible",
                f"display hint changed ({url.rsplit('/', 1)[-1]})",
                url.rsplit("/", 1)[-1],
            )
    known = RENDERING_EXTENSIONS | {
        MIN_VALUE,
        MAX_VALUE,
        UNIT,
        CALCULATED_EXPRESSION,
        OBSERVATION_EXTRACT,
    }
    for url in sorted((old_ext.keys() | new_ext.keys()) - known):
        if not same_value(old_ext.get(url), new_ext.get(url)):
            add("needs-new-version", f"extension {url} changed", "extension")


def _renames(before: Mapping[str, _Node], after: Mapping[str, _Node]) -> dict[str, str]:
    """Removed → added linkId pairs that look like one item renamed: same parent, type and
    text.  Only the message changes; a new linkId is a new question either way."""
    gone = [k for k in before if k not in after]
    new = [k for k in after if k not in before]
    out: dict[str, str] = {}
    for old_id in gone:
        was = before[old_id]
        for new_id in new:
            now = after[new_id]
            if (
                new_id not in out.values()
                and now.parent == was.parent
                and now.item.get("type") == was.item.get("type")
                and now.item.get("text") == was.item.get("text")
            ):
                out[old_id] = new_id
                break
    return out


def compare_items(old_items: Any, new_items: Any, reasons: list[Reason]) -> None:
    before, after = _index(old_items), _index(new_items)

    def surviving_parent(link_id: str | None) -> str | None:
        # The nearest ancestor (in the old tree) that still exists in the new one.
        while link_id is not None and link_id not in after:
            link_id = before[link_id].parent if link_id in before else None
        return link_id

    renamed = _renames(before, after)
    for link_id, node in before.items():
        if link_id in after or (node.parent is not None and node.parent not in after):
            continue  # inside a removed item: reported with it
        if link_id in renamed:
            reasons.append(
                Reason(
                    "breaking",
                    f"{_name(link_id, node.item)}: linkId changed to '{renamed[link_id]}': earlier answers carry the old linkId",
                    link_id,
                    "linkId",
                    renamed[link_id],
                )
            )
            continue
        inside = [d for d in _descendants(node.item) if isinstance(d.get("linkId"), str)]
        answered = _takes_answers(node.item) or any(_takes_answers(d) for d in inside)
        more = (
            f" (with {len(inside)} item{'s' if len(inside) != 1 else ''} inside)" if inside else ""
        )
        name = _name(link_id, node.item)
        if answered:
            reasons.append(
                Reason(
                    "breaking",
                    f"{name} removed{more}: earlier answers to it would match no question",
                    link_id,
                    "item",
                    surviving_parent(node.parent),
                )
            )
        else:
            reasons.append(
                Reason(
                    "needs-new-version",
                    f"{name} removed{more}",
                    link_id,
                    "item",
                    surviving_parent(node.parent),
                )
            )

    for link_id, node in after.items():
        if link_id in before or (node.parent is not None and node.parent not in before):
            continue  # inside an added item: an earlier response has none of it
        if link_id in renamed.values():
            continue
        inside = [d for d in _descendants(node.item) if isinstance(d.get("linkId"), str)]
        more = (
            f" (with {len(inside)} item{'s' if len(inside) != 1 else ''} inside)" if inside else ""
        )
        name = _name(link_id, node.item)
        if node.item.get("required") and node.item.get("type") != "display":
            reasons.append(
                Reason(
                    "breaking",
                    f"{name} added as required{more}: earlier responses lack its answer",
                    link_id,
                    "item",
                    link_id,
                )
            )
        else:
            where = (
                f" {_where(node.parent)}"
                if node.parent is not None and not _is_help(node.item)
                else ""
            )
            reasons.append(
                Reason("needs-new-version", f"{name} added{where}{more}", link_id, "item", link_id)
            )

    for link_id, node in after.items():
        was = before.get(link_id)
        if was is None:
            continue
        if was.parent != node.parent:
            reasons.append(
                Reason(
                    "breaking",
                    f"{_name(link_id, node.item)} moved from {_place(was.parent)} to {_place(node.parent)}: responses nest answers by group",
                    link_id,
                    "item",
                    link_id,
                )
            )
        _compare_item(link_id, was.item, node.item, reasons)

    # Order among siblings that exist on both sides, per parent present on both sides.
    parents: list[str | None] = [None, *[k for k in after if k in before]]
    for parent in parents:
        old_kids = _children(old_items if parent is None else before[parent].item.get("item"))
        new_kids = _children(new_items if parent is None else after[parent].item.get("item"))
        common = set(old_kids) & set(new_kids)
        if [k for k in old_kids if k in common] != [k for k in new_kids if k in common]:
            reasons.append(
                Reason(
                    "breaking",
                    f"items {_where(parent)} reordered: response items follow the Questionnaire's order",
                    parent,
                    "item",
                    parent,
                )
            )
