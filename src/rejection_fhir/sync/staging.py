"""A plan's entries arranged for sending, pure: stages in dependency order, ``urn:uuid:``
references resolved to what earlier stages wrote, client-assigned ids, conditional keys.

Used by :mod:`rejection_fhir.sync.executors` for every mode that does not send one
transaction (chunks, batches, single requests).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any

from rejection_fhir.ehr.entries import WritePlan
from rejection_fhir.fhir.json import JsonDict


def client_id(key: str) -> str:
    """A client-assigned id for update-as-create, stable for the entry's conditional key."""
    return "rf-" + hashlib.sha256(key.encode()).hexdigest()[:40]


def entry_key(entry: Mapping[str, Any]) -> str | None:
    """The conditional key of an entry: its If-None-Exist, or its conditional update URL."""
    request = entry["request"]
    if request.get("ifNoneExist"):
        return f"{request['url']}?{request['ifNoneExist']}"
    if request["method"] == "PUT" and "?" in request["url"]:
        return str(request["url"])
    return None


def _mentions(resource: Any, urls: set[str]) -> set[str]:
    text = json.dumps(resource)
    return {url for url in urls if url in text}


def stages(entries: Sequence[JsonDict]) -> list[list[JsonDict]]:
    """Entries in dependency order: each stage references only fullUrls of earlier ones."""
    urls = {e["fullUrl"] for e in entries if e["fullUrl"].startswith("urn:")}
    needs = {id(e): _mentions(e["resource"], urls - {e["fullUrl"]}) for e in entries}
    done: set[str] = set()
    left = list(entries)
    out: list[list[JsonDict]] = []
    while left:
        ready = [e for e in left if needs[id(e)] <= done]
        if not ready:  # a cycle: send the rest together, as a transaction would
            ready = left
        out.append(ready)
        done |= {e["fullUrl"] for e in ready}
        left = [e for e in left if all(e is not r for r in ready)]
    return out


def resolve(
    value: Any, resolved: Mapping[str, str], dropped: AbstractSet[str] = frozenset()
) -> Any:
    """``value`` with each reference to a written ``urn:uuid:`` replaced by ``Type/id``;
    a reference to a dropped one loses its ``reference`` (its display stays)."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key == "reference" and isinstance(item, str):
                if item in resolved:
                    out[key] = resolved[item]
                    continue
                if item in dropped:
                    continue
            out[key] = resolve(item, resolved, dropped)
        return out
    if isinstance(value, list):
        return [resolve(item, resolved, dropped) for item in value]
    return value


def combined(plans: Sequence[WritePlan]) -> list[JsonDict]:
    """The plans' entries with each fullUrl once (the tool's Device is in every plan)."""
    seen: set[str] = set()
    out: list[JsonDict] = []
    for plan in plans:
        for entry in plan.entries:
            if entry["fullUrl"] not in seen:
                seen.add(entry["fullUrl"])
                out.append(entry)
    return out


def in_chunks(items: Sequence[JsonDict], size: int | None) -> list[list[JsonDict]]:
    if size is None or size <= 0 or len(items) <= size:
        return [list(items)]
    return [list(items[i : i + size]) for i in range(0, len(items), size)]
