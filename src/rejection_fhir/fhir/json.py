"""FHIR JSON as plain dicts: the alias, the tolerant array read, equality, and which
elements a server owns.

Resources travel as plain dicts on every hot path (``fhir.resources`` models validate
structure only), so these helpers are what every layer shares.  Pure; no third-party
imports.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: A FHIR resource or element as parsed JSON.
JsonDict = dict[str, Any]

#: Elements the server owns or may add (``id``, ``meta``: versionId, lastUpdated, source,
#: tags, sometimes profiles; ``text``: generated narrative).  Never part of what we built,
#: so never part of a content comparison.
SERVER_MANAGED = frozenset({"id", "meta", "text"})


def as_list(value: object) -> list[Any]:
    """A JSON array, or nothing: content from a server, an old ref or mutated input may
    be malformed, and a reader must not crash on it."""
    return value if isinstance(value, list) else []


def same_value(a: Any, b: Any) -> bool:
    """Equal as FHIR JSON.  Numbers compare by value: a server may send 1.0 back for 1
    (decimal round trip), and booleans are never numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b)
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)
