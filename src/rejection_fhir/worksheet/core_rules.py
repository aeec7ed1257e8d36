"""R4 core rules on a Questionnaire that the fhir.resources models leave out.

Found by cross-checking with HAPI's validator (``$validate``, see
``tests/integration/test_hapi_validate.py``): the models accept any text in a ``code``
element and empty arrays, so without these checks HAPI would report errors that
``validate`` misses.

* required bindings: ``status``, ``subjectType``, ``item.type``, ``enableWhen.operator``,
  ``enableBehavior`` must use their value set's codes;
* no empty arrays or objects anywhere (FHIR JSON leaves an element out instead; ele-1);
* canonical and system URIs (``url``, ``Coding.system``, ``answerValueSet``, extension
  and profile urls) are absolute and carry no whitespace;
* ext-1: an extension has a value or nested extensions, not both and not neither;
* an item's booleans, integers and strings have that JSON type (the models would read
  ``"repeats": "yes"`` as true).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any

from rejection_fhir.fhir.json import as_list as _list
from rejection_fhir.fhir.r4 import (
    ENABLE_BEHAVIORS,
    ENABLE_WHEN_OPERATORS,
    ITEM_TYPES,
    PUBLICATION_STATUS,
)
from rejection_fhir.worksheet.issue import Issue, link_id_at

_ABSOLUTE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$")


def _shown(value: Any, limit: int = 80) -> str:
    """A value quoted in a message, cut short: forms made elsewhere may hold anything."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


@cache
def resource_types() -> frozenset[str]:
    """R4's ResourceType codes, from the R4 model fhirpathpy ships (no network, no copy)."""
    from fhirpathpy.models import models

    parents: Mapping[str, str] = models["r4"]["type2Parent"]

    def is_resource(name: str) -> bool:
        seen = set()
        while name in parents and name not in seen:
            seen.add(name)
            name = parents[name]
            if name in {"DomainResource", "Resource"}:
                return True
        return False

    return frozenset({"Resource", *(name for name in parents if is_resource(name))})


def _walk_items(items: Any, path: str = "item") -> Iterator[tuple[str, Mapping[str, Any]]]:
    if not isinstance(items, list):
        return
    for i, item in enumerate(items):
        if isinstance(item, Mapping):
            here = f"{path}[{i}]"
            yield here, item
            yield from _walk_items(item.get("item"), f"{here}.item")


def _link_id(item: Mapping[str, Any]) -> str | None:
    link_id = item.get("linkId")
    return link_id if isinstance(link_id, str) else None


def _code(
    value: Any, allowed: tuple[str, ...] | frozenset[str], what: str, path: str, link_id: str | None
) -> list[Issue]:
    if value is None or (isinstance(value, str) and value in allowed):
        return []
    shown = ", ".join(allowed) if len(allowed) < 20 else "an R4 resource type such as Patient"
    return [
        Issue(
            "binding",
            "error",
            f"{path}: {_shown(value)} is not a {what} code; use one of: {shown}",
            link_id,
            path,
        )
    ]


def _check_bindings(q: Mapping[str, Any]) -> list[Issue]:
    issues = _code(q.get("status"), PUBLICATION_STATUS, "publication status", "status", None)
    for i, subject in enumerate(_list(q.get("subjectType"))):
        issues += _code(subject, resource_types(), "resource type", f"subjectType[{i}]", None)
    for path, item in _walk_items(q.get("item")):
        link_id = _link_id(item)
        issues += _code(
            item.get("type"), ITEM_TYPES, "Questionnaire item type", f"{path}.type", link_id
        )
        issues += _code(
            item.get("enableBehavior"),
            ENABLE_BEHAVIORS,
            "enableBehavior",
            f"{path}.enableBehavior",
            link_id,
        )
        for j, condition in enumerate(_list(item.get("enableWhen"))):
            if isinstance(condition, Mapping):
                issues += _code(
                    condition.get("operator"),
                    ENABLE_WHEN_OPERATORS,
                    "enableWhen operator",
                    f"{path}.enableWhen[{j}].operator",
                    link_id,
                )
    return issues


def _dotted(parts: list[str | int]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _walk_json(
    value: Any, parts: list[str | int], parent: Any = None
) -> Iterator[tuple[list[str | int], Any, Any]]:
    yield parts, value, parent
    if isinstance(value, Mapping):
        for key, child in value.items():
            yield from _walk_json(child, [*parts, str(key)], value)
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from _walk_json(child, [*parts, i], value)


_URI_KEYS = {"url", "system", "answerValueSet", "profile"}


def _check_shapes(q: Mapping[str, Any]) -> list[Issue]:
    issues = []
    for parts, value, parent in _walk_json(q, []):
        if not parts:
            continue
        path = _dotted(parts)
        link_id = link_id_at(q, parts)
        if isinstance(value, list | Mapping) and not value:
            kind = "array" if isinstance(value, list) else "object"
            issues.append(
                Issue(
                    "empty",
                    "error",
                    f"{path}: an empty {kind}; leave the element out instead",
                    link_id,
                    path,
                )
            )
        key = next((p for p in reversed(parts) if isinstance(p, str)), "")
        # ContactPoint.system is a code ("url", "email"); only a Coding's system is a URI.
        is_uri = key in _URI_KEYS and (
            key != "system" or (isinstance(parent, Mapping) and "code" in parent)
        )
        if is_uri and isinstance(value, str) and not _ABSOLUTE.match(value):
            issues.append(
                Issue(
                    "uri",
                    "error",
                    f"{path}: {_shown(value)} must be an absolute URI without spaces (e.g. https://… or urn:…)",
                    link_id,
                    path,
                )
            )
        if key == "extension" and isinstance(value, Mapping):
            has_value = any(k.startswith("value") for k in value)
            if has_value == bool(value.get("extension")):
                issues.append(
                    Issue(
                        "ext-1",
                        "error",
                        f"{path}: an extension needs either a value or nested extensions, not "
                        + ("both" if has_value else "neither"),
                        link_id,
                        path,
                    )
                )
    return issues


#: Item elements and the JSON type FHIR gives them.  The models coerce in lax mode
#: ("yes" → true, "5" → 5); FHIR JSON does not, and HAPI rejects such a resource.
_ITEM_PRIMITIVES: tuple[tuple[str, type, str], ...] = (
    ("required", bool, "true or false"),
    ("repeats", bool, "true or false"),
    ("readOnly", bool, "true or false"),
    ("maxLength", int, "a whole number"),
    ("linkId", str, "text"),
    ("text", str, "text"),
    ("prefix", str, "text"),
    ("definition", str, "text"),
)


def _check_primitives(q: Mapping[str, Any]) -> list[Issue]:
    issues = []
    checks: list[tuple[str, Any, type, str, str | None]] = [
        ("experimental", q.get("experimental"), bool, "true or false", None)
    ]
    for path, item in _walk_items(q.get("item")):
        for key, kind, words in _ITEM_PRIMITIVES:
            checks.append((f"{path}.{key}", item.get(key), kind, words, _link_id(item)))
    for path, value, kind, words, link_id in checks:
        if value is None:
            continue
        wrong = not isinstance(value, kind) or (kind is int and isinstance(value, bool))
        if wrong:
            issues.append(
                Issue(
                    "primitive-type",
                    "error",
                    f"{path} must be {words} in FHIR JSON, not {type(value).__name__} "
                    f"{str(value)[:40]!r}",
                    link_id,
                    path,
                )
            )
    return issues


def check_core(q: Mapping[str, Any]) -> list[Issue]:
    """Required bindings, empty elements, URIs, ext-1 and JSON primitive types."""
    return [*_check_bindings(q), *_check_shapes(q), *_check_primitives(q)]
