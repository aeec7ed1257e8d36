"""Reading HAPI's issue locations (FHIRPath expressions) back onto the resource validated."""

from __future__ import annotations

import re
from typing import Any

_STEP = re.compile(r"(?P<name>[A-Za-z]+)(?:\[(?P<index>\d+)\])?")


def link_id_on(resource: dict[str, Any], fhir_path: str) -> str | None:
    """The linkId of the deepest item on ``fhir_path``, a FHIRPath below the resource's type
    (``item[3].item[0].answer[0].value.ofType(string)``): what stands after the first step
    that is not a plain element (a function) is not followed."""
    node: Any = resource
    link_id = None
    for step in fhir_path.split("."):
        match = _STEP.fullmatch(step)
        if match is None:
            break
        node = node.get(match.group("name")) if isinstance(node, dict) else None
        if match.group("index") is not None:
            index = int(match.group("index"))
            node = node[index] if isinstance(node, list) and index < len(node) else None
        if isinstance(node, dict) and isinstance(node.get("linkId"), str):
            link_id = node["linkId"]
    return link_id
