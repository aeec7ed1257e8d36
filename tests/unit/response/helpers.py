"""Small helpers to reach into response dicts and to build tiny Questionnaires."""

from __future__ import annotations

from typing import Any

from rejection_fhir.response import ResponseFinding

CANONICAL = "http://clinic.test/fhir/Questionnaire/kitchen-sink"


def item(container: dict[str, Any], *link_ids: str, instance: int = 0) -> dict[str, Any]:
    """The item at ``link_ids`` below ``container`` (a response, item or answer).

    Steps into a question's first answer to reach items nested under answers;
    ``instance`` picks the repetition at the last step.
    """
    node = container
    for depth, link_id in enumerate(link_ids):
        last = depth == len(link_ids) - 1
        children = node.get("item")
        if children is None and node.get("answer"):
            children = node["answer"][0].get("item")
        matches = [child for child in children or [] if child.get("linkId") == link_id]
        if not matches:
            raise KeyError(f"no item {link_id!r} under {node.get('linkId', '(root)')!r}")
        node = matches[instance if last else 0]
    return node


def remove(container: dict[str, Any], *link_ids: str) -> None:
    """Drop the item at ``link_ids`` (the first instance)."""
    parent = item(container, *link_ids[:-1]) if len(link_ids) > 1 else container
    target = item(container, *link_ids)
    parent["item"].remove(target)


def codes(findings: list[ResponseFinding]) -> list[str]:
    return [finding.code for finding in findings]


def only(findings: list[ResponseFinding], code: str) -> ResponseFinding:
    """The single finding with ``code``; fails listing all findings otherwise."""
    matching = [finding for finding in findings if finding.code == code]
    assert len(matching) == 1, [str(finding) for finding in findings]
    return matching[0]


def tiny_questionnaire(
    *items: dict[str, Any], url: str = "http://clinic.test/Q/tiny"
) -> dict[str, Any]:
    return {
        "resourceType": "Questionnaire",
        "url": url,
        "version": "1.0.0",
        "status": "active",
        "item": list(items),
    }


def tiny_response(
    *items: dict[str, Any], status: str = "completed", url: str = "http://clinic.test/Q/tiny"
) -> dict[str, Any]:
    response: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": url,
        "status": status,
    }
    if items:  # FHIR forbids empty arrays: no items, no item element
        response["item"] = list(items)
    return response


def answered(link_id: str, *values: dict[str, Any]) -> dict[str, Any]:
    """A response item with one answer per value dict (e.g. ``{"valueInteger": 3}``)."""
    return {"linkId": link_id, "answer": [dict(value) for value in values]}
