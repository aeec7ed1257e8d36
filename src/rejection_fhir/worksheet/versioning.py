"""Version guard: how a Questionnaire changed, and which version that change needs.

A QuestionnaireResponse points at ``url|version``.  Once a version is published its content
is frozen: changing it silently changes what earlier responses mean (SDC: a change that
would invalidate earlier responses, such as added or removed items, a changed type, changed
options or reworded text, needs a new version).  :func:`classify` compares two builds of
one worksheet, the old one (a git ref, a folder of built JSON, a server) and the new one,
and says which of four classes the change falls in.  The test for each class is what
happens to a response made with the old version if it is read as a response to the new one:

=====================  =====================================================  ============
class                  what changed (examples)                                bump
=====================  =====================================================  ============
``none``               nothing that is built: identical once server-managed   none
                       ``id``/``meta``/``text`` and the version are set aside
``compatible``         metadata (title, description, purpose, publisher,      patch
                       contact, copyright, jurisdiction, date, status,
                       experimental, name), rendering hints (itemControl,
                       placeholder, slider step, prefix, option order, code
                       displays) and loosened rules (required dropped, wider
                       min/max or maxLength).  Earlier responses stay valid
                       and mean the same.  SDC would not ask for a new
                       version, but a published ``url|version`` is frozen
                       (``publish`` refuses different content under it), so
                       any change takes at least a patch.
``needs-new-version``  what is asked changes, earlier responses stay valid:   minor
                       reworded item, option or help text; added optional
                       items, added options, added display items and help,
                       removed display items; repeats allowed, readOnly
                       changed; enableWhen changed on an optional item; item
                       codes, units or extraction added; anything not listed
                       here (we do not guess that it is harmless)
``breaking``           an earlier response may no longer be valid, or its     major
                       answers would be read differently: removed items
                       (a changed linkId is a removal plus an addition),
                       moved or reordered items (response items follow the
                       Questionnaire's nesting and order), a changed type,
                       removed or recoded options, changed option weights,
                       scores or units, new required items (or required
                       added), repeats dropped, narrower min/max or
                       maxLength, enableWhen changed on a required item, a
                       changed or removed item code, a changed
                       answerValueSet, a changed canonical url
=====================  =====================================================  ============

Version rules (semantic versions, ``MAJOR.MINOR.PATCH[-pre]``):

* the same version is only allowed for ``none``;
* a changed version must be higher (versions never go backwards, even without a change);
* the bump must be at least the one the class needs (breaking → major, …);
* under ``0.y.z`` everything may change (semver's initial development): a breaking change
  needs a minor bump, everything else a patch;
* after a pre-release (``1.1.0-rc.1``) any higher version is accepted: a pre-release
  promises nothing.

Pure: plain dicts in, a :class:`Change` out.  The edge that loads the old build and turns
a :class:`Change` into findings is :mod:`rejection_fhir.commands.guard`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from rejection_fhir.fhir.json import SERVER_MANAGED, same_value
from rejection_fhir.fhir.json import as_list as _list
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
from rejection_fhir.fhir.semver import BUMPS as _BUMPS
from rejection_fhir.fhir.semver import Bump as Bump
from rejection_fhir.fhir.semver import Version as Version
from rejection_fhir.fhir.semver import bump_between as bump_between
from rejection_fhir.fhir.semver import parse_version as parse_version

Kind = Literal["none", "compatible", "needs-new-version", "breaking"]

KINDS: tuple[Kind, ...] = ("none", "compatible", "needs-new-version", "breaking")
#: The bump each class needs from a released version ``>= 1.0.0``.
REQUIRED_BUMP: Mapping[Kind, Bump] = {
    "none": "none",
    "compatible": "patch",
    "needs-new-version": "minor",
    "breaking": "major",
}

#: Resource-level elements whose change leaves every earlier response valid and meaning
#: the same: descriptive metadata.
METADATA = frozenset(
    {
        "name",
        "title",
        "status",
        "experimental",
        "date",
        "publisher",
        "contact",
        "description",
        "useContext",
        "jurisdiction",
        "purpose",
        "copyright",
        "approvalDate",
        "lastReviewDate",
        "effectivePeriod",
        "identifier",
        "meta.profile",
    }
)
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

# --- Version rules (semantic versions: rejection_fhir.fhir.semver) --------------------------


def required_bump(kind: Kind, old: Version) -> Bump:
    """The smallest bump ``kind`` needs after ``old`` (semver's 0.y.z rule applied)."""
    bump = REQUIRED_BUMP[kind]
    if old.major == 0 and bump != "none":
        return "minor" if bump == "major" else "patch"
    return bump


def next_version(old: Version, kind: Kind) -> Version:
    """The smallest version after ``old`` that a change of ``kind`` may take."""
    if kind == "none":
        return old
    if old.prerelease:
        last = old.prerelease[-1]
        if isinstance(last, int):
            return Version(old.major, old.minor, old.patch, (*old.prerelease[:-1], last + 1))
        return Version(old.major, old.minor, old.patch)
    bump = required_bump(kind, old)
    if bump == "major":
        return Version(old.major + 1, 0, 0)
    if bump == "minor":
        return Version(old.major, old.minor + 1, 0)
    return Version(old.major, old.minor, old.patch + 1)


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


VersionProblem = Literal["unchanged", "too-small", "backwards", "unreadable"]


@dataclass(frozen=True)
class Change:
    kind: Kind
    reasons: tuple[Reason, ...]
    old_version: str
    new_version: str
    #: The bump the change needs from ``old_version`` (after the 0.y.z and pre-release rules).
    required_bump: Bump
    #: The smallest version that would do, e.g. ``2.0.0``; ``old_version`` for ``none``.
    suggested_version: str
    #: Why the new version does not do, or None when it does.
    problem: VersionProblem | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def reasons_needing_more(self) -> tuple[Reason, ...]:
        """The reasons the new version does not cover (all of them for a version problem
        other than a too-small bump; there, only those that need more than was bumped)."""
        if self.problem != "too-small":
            return self.reasons if self.problem else ()
        old, new = parse_version(self.old_version), parse_version(self.new_version)
        if old is None or new is None:
            return self.reasons
        got = _BUMPS.index(bump_between(old, new))
        return tuple(r for r in self.reasons if _BUMPS.index(required_bump(r.kind, old)) > got)


def _worst(kinds: Sequence[Kind]) -> Kind:
    return max(kinds, key=KINDS.index, default="none")


def _content(q: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in q.items() if k not in SERVER_MANAGED and k != "version"}
    profiles = (q.get("meta") or {}).get("profile") if isinstance(q.get("meta"), Mapping) else None
    if profiles:
        out["meta.profile"] = sorted(str(p) for p in profiles)
    return out


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


def _compare_item(
    link_id: str, old: Mapping[str, Any], new: Mapping[str, Any], reasons: list[Reason]
) -> None:
    name = _name(link_id, new)

    def add(kind: Kind, what: str, element: str) -> None:
        reasons.append(Reason(kind, f"{name}: {what}", link_id, element, link_id))

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
    required = bool(old.get("required")), bool(new.get("required"))
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

    if old.get("answerValueSet") != new.get("answerValueSet"):
        add(
            "breaking",
            f"answerValueSet changed from {old.get('answerValueSet')} to {new.get('answerValueSet')}: earlier answers may not be in it",
            "answerValueSet",
        )
    _compare_options(old, new, add)

    conditions = (old.get("enableWhen"), old.get("enableBehavior"))
    if not same_value(conditions, (new.get("enableWhen"), new.get("enableBehavior"))):
        if required[0] or required[1]:
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
    for key in sorted((old.keys() | new.keys()) - _ITEM_HANDLED):
        if not same_value(old.get(key), new.get(key)):
            add("needs-new-version", f"{key} changed", key)


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


def _compare_items(old_items: Any, new_items: Any, reasons: list[Reason]) -> None:
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


def changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Reason]:
    """Every difference between two Questionnaires, classified; empty when the content is
    the same (server-managed elements and the version aside)."""
    a, b = _content(old), _content(new)
    reasons: list[Reason] = []
    for key in sorted(set(a) | set(b)):
        if key == "item":
            continue
        if same_value(a.get(key), b.get(key)):
            continue
        if key == "url":
            reasons.append(
                Reason(
                    "breaking",
                    f"canonical url changed from {a.get(key)} to {b.get(key)}: earlier responses point at the old one",
                    None,
                    "url",
                )
            )
        elif key in METADATA:
            reasons.append(Reason("compatible", f"{key} changed", None, key))
        else:
            reasons.append(Reason("needs-new-version", f"{key} changed", None, key))
    if not same_value(a.get("item"), b.get("item")):
        _compare_items(a.get("item"), b.get("item"), reasons)
    return reasons


def classify(old: Mapping[str, Any], new: Mapping[str, Any]) -> Change:
    """Classify the change from ``old`` to ``new`` and check ``new``'s version against it."""
    reasons = changes(old, new)
    kind = _worst([r.kind for r in reasons])
    old_text, new_text = str(old.get("version", "")), str(new.get("version", ""))
    old_version, new_version = parse_version(old_text), parse_version(new_text)
    if old_version is None or new_version is None:
        if kind == "none" and old_text == new_text:
            return Change(kind, tuple(reasons), old_text, new_text, "none", old_text)
        problem: VersionProblem = "unchanged" if old_text == new_text else "unreadable"
        return Change(
            kind, tuple(reasons), old_text, new_text, REQUIRED_BUMP[kind], "a new version", problem
        )
    need = required_bump(kind, old_version)
    suggested = str(next_version(old_version, kind))
    if new_version < old_version:
        problem_found: VersionProblem | None = "backwards"
        if kind == "none":
            suggested = old_text
    elif new_version == old_version:
        problem_found = None if kind == "none" else "unchanged"
    elif old_version.prerelease:
        problem_found = None  # a pre-release promises nothing
    else:
        got = bump_between(old_version, new_version)
        problem_found = "too-small" if _BUMPS.index(got) < _BUMPS.index(need) else None
    return Change(kind, tuple(reasons), old_text, new_text, need, suggested, problem_found)
