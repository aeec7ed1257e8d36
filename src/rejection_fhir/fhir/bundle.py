"""Bundle entries for FHIR R4 transactions and batches: the one home of their shapes.

Pure and generic (nothing of worksheets or the EHR): each helper returns a plain
``Bundle.entry`` dict (``fullUrl``, ``resource``, ``request``) as
https://hl7.org/fhir/R4/http.html#transaction describes it.

- :func:`conditional_create`: ``POST Type`` with ``ifNoneExist``: created only if nothing
  matches the criteria, so replaying the entry changes nothing;
- :func:`conditional_update`: ``PUT Type?criteria``: updates the one match, or creates;
- :func:`update`: ``PUT Type/id``, optionally version-checked with ``ifMatch``
  (``W/"versionId"``);
- :func:`transaction` / :func:`batch`: the Bundle around entries.

Criteria are a mapping of search parameters, form-encoded here (``urlencode``), so a
``|`` or ``:`` in a token is escaped the same way wherever an entry is built.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from rejection_fhir.fhir.json import JsonDict

__all__ = ["batch", "conditional_create", "conditional_update", "transaction", "update"]


def conditional_create(full_url: str, resource: JsonDict, criteria: Mapping[str, str]) -> JsonDict:
    """``POST {resourceType}`` with ``If-None-Exist: criteria``."""
    return {
        "fullUrl": full_url,
        "resource": resource,
        "request": {
            "method": "POST",
            "url": resource["resourceType"],
            "ifNoneExist": urlencode(criteria),
        },
    }


def conditional_update(full_url: str, resource: JsonDict, criteria: Mapping[str, str]) -> JsonDict:
    """``PUT {resourceType}?criteria``: the match updated in place, or created."""
    return {
        "fullUrl": full_url,
        "resource": resource,
        "request": {"method": "PUT", "url": f"{resource['resourceType']}?{urlencode(criteria)}"},
    }


def update(
    resource_type: str, resource_id: str, resource: JsonDict, *, version_id: Any = None
) -> JsonDict:
    """``PUT {resource_type}/{id}``; with ``version_id``, only if that is still the current
    version (``If-Match: W/"version_id"``), else the server refuses (409/412)."""
    request: JsonDict = {"method": "PUT", "url": f"{resource_type}/{resource_id}"}
    if version_id:
        request["ifMatch"] = f'W/"{version_id}"'
    return {
        "fullUrl": f"{resource_type}/{resource_id}",
        "resource": resource,
        "request": request,
    }


def transaction(entries: Sequence[JsonDict]) -> JsonDict:
    """A transaction Bundle: all entries commit, or none."""
    return {"resourceType": "Bundle", "type": "transaction", "entry": list(entries)}


def batch(entries: Sequence[JsonDict]) -> JsonDict:
    """A batch Bundle: each entry commits (or fails) on its own."""
    return {"resourceType": "Bundle", "type": "batch", "entry": list(entries)}
