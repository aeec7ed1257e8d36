"""A write plan cut down to what the server takes.

Pure.  The note (DocumentReference) already carries everything a clinician needs: the
safety alerts first, then the scores with their bands (see
:func:`rejection_fhir.scoring.clinical.clinical_summary`).  So when a server does not take
Flags, Observations (or not of category ``survey``), Provenance, the tool's Device or Task,
those entries are simply left out and nothing is lost to the clinician; references to them
(Provenance.target, Provenance.agent.who) are dropped, keeping their display.  A server that
takes notes only in some content types gets only those attachments (plain text: the
Markdown rendering, see :func:`restrict_note`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from typing import Any

from rejection_fhir.ehr.writeback import WritePlan

#: Always kept: without the note the sync has nothing to write.
NOTE = "DocumentReference"


#: Accepted in place of the Markdown rendering when a server takes plain text only: Markdown
#: is written to be read as plain text (the alerts first, then the scores).
PLAIN = "text/plain"


def _base_type(content_type: object) -> str:
    return str(content_type).split(";")[0].strip().lower()


def restrict_note(resource: dict[str, Any], content_types: Collection[str]) -> dict[str, Any]:
    """The note with only the attachments of ``content_types``; when none is left and plain
    text is accepted, the Markdown rendering sent as ``text/plain`` (Epic takes notes as
    plain text only)."""
    accepted = {_base_type(t) for t in content_types}
    content = [
        c
        for c in resource.get("content", [])
        if _base_type(c.get("attachment", {}).get("contentType")) in accepted
    ]
    if not content and PLAIN in accepted:
        markdown = [
            c
            for c in resource.get("content", [])
            if _base_type(c.get("attachment", {}).get("contentType")) == "text/markdown"
        ]
        content = [
            {"attachment": {**c["attachment"], "contentType": f"{PLAIN}; charset=utf-8"}}
            for c in markdown[:1]
        ]
    return {**resource, "content": content}


def restrict_plan(
    plan: WritePlan,
    writable: Collection[str],
    content_types: Collection[str] | None = None,
) -> tuple[WritePlan, Counter[str]]:
    """The plan without entries of types outside ``writable``, and what was left out; with
    ``content_types``, the note carries only attachments of those types."""
    left_out: Counter[str] = Counter()
    dropped: set[str] = set()
    kept = []
    for entry in plan.entries:
        kind = entry["resource"]["resourceType"]
        if kind != NOTE and kind not in writable:
            left_out[kind] += 1
            dropped.add(entry["fullUrl"])
        else:
            if kind == NOTE and content_types is not None and entry["request"]["method"] == "POST":
                entry = {**entry, "resource": restrict_note(entry["resource"], content_types)}
            kept.append(entry)
    if not dropped:
        if content_types is None:
            return plan, left_out
        return WritePlan(kept, list(plan.written)), left_out
    entries = []
    for entry in kept:
        resource = entry["resource"]
        if resource["resourceType"] == "Provenance":
            resource = dict(resource)
            resource["target"] = [
                t for t in resource.get("target", []) if t.get("reference") not in dropped
            ]
            resource["agent"] = [
                {
                    **agent,
                    "who": {
                        k: v
                        for k, v in agent.get("who", {}).items()
                        if not (k == "reference" and v in dropped)
                    },
                }
                for agent in resource.get("agent", [])
            ]
            entry = {**entry, "resource": resource}
        entries.append(entry)
    written = [url for url in plan.written if url not in dropped]
    return WritePlan(entries, written), left_out
