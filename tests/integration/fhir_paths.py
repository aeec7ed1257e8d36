"""HAPI's $validate for the validation tests: its issues, and their locations (FHIRPath
expressions) read back onto the resource validated."""

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


def hapi_issues(client: Any, resource_type: str, resource: dict[str, Any]) -> list[dict[str, Any]]:
    """The issues of HAPI's ``$validate`` of ``resource`` (its OperationOutcome, also when the
    answer is an error status)."""
    outcome = client.operation(
        "validate",
        resource_type=resource_type,
        body=resource,
        idempotent=True,
        outcome_on_error=True,
    )
    assert outcome is not None and outcome.get("resourceType") == "OperationOutcome", outcome
    return list(outcome.get("issue") or [])
