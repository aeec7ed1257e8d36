"""The clinical note: one DocumentReference per response version.

The note carries the rendered summary (Markdown and XHTML attachments, the XHTML also as
its narrative), safety alerts first and scores with their bands
(:func:`rejection_fhir.scoring.clinical.clinical_summary`), so it says everything a
clinician needs even where nothing else can be written.  An amended version's note
``replaces`` the earlier one, which is updated to ``superseded`` under ``If-Match``.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rejection_fhir.ehr.entries import ResponseVersion, create_once, identifier, urn
from rejection_fhir.fhir import bundle

JsonDict = dict[str, Any]

LOINC = "http://loinc.org"
#: LOINC 74465-6 "Questionnaire response Document".
NOTE_TYPE = {"system": LOINC, "code": "74465-6", "display": "Questionnaire response Document"}
NOTE_CATEGORY = {
    "system": "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category",
    "code": "clinical-note",
    "display": "Clinical Note",
}


@dataclass(frozen=True)
class Note:
    title: str
    markdown: str
    xhtml: str


_INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def _is_instant(value: Any) -> bool:
    """DocumentReference.date is an instant: seconds and a zone are required."""
    return isinstance(value, str) and _INSTANT.match(value) is not None


def _attachment(content_type: str, text: str, title: str) -> JsonDict:
    return {
        "attachment": {
            "contentType": content_type,
            "data": base64.b64encode(text.encode("utf-8")).decode("ascii"),
            "title": title,
        }
    }


def note_entry(
    qr: Mapping[str, Any],
    response: ResponseVersion,
    note: Note,
    *,
    amended: bool,
    previous_note: Mapping[str, Any] | None = None,
) -> JsonDict:
    """The note's conditional create, keyed on the response version."""
    authored = qr.get("authored")
    subject = qr.get("subject")
    key = response.key("note", per_version=True)
    document: JsonDict = {
        "resourceType": "DocumentReference",
        "identifier": identifier(key),
        "status": "current",
        "docStatus": "amended" if amended else "final",
        "type": {"coding": [NOTE_TYPE]},
        "category": [{"coding": [NOTE_CATEGORY]}],
    }
    document["text"] = {"status": "generated", "div": note.xhtml}
    if isinstance(subject, Mapping):
        document["subject"] = dict(subject)
    if _is_instant(authored):
        document["date"] = authored
    if isinstance(qr.get("author"), Mapping):
        document["author"] = [dict(qr["author"])]
    document["description"] = note.title
    if previous_note is not None and previous_note.get("id"):
        document["relatesTo"] = [
            {
                "code": "replaces",
                "target": {"reference": f"DocumentReference/{previous_note['id']}"},
            }
        ]
    document["content"] = [
        _attachment("text/markdown; charset=utf-8", note.markdown, note.title),
        _attachment("application/xhtml+xml; charset=utf-8", note.xhtml, note.title),
    ]
    context: JsonDict = {
        "related": [{"reference": response.reference, "display": "Source questionnaire response"}]
    }
    if isinstance(authored, str):
        context["period"] = {"start": authored}
    document["context"] = context
    return create_once(key, document)


def note_url(response: ResponseVersion) -> str:
    """The ``fullUrl`` of the response version's note in a plan."""
    return urn(response.key("note", per_version=True))


def supersede_entry(note: Mapping[str, Any]) -> JsonDict | None:
    """The update that marks an earlier note superseded, or None if it already is.

    It carries ``If-Match`` on the version read, so a clinician's edit made meanwhile is
    never overwritten: the server refuses the update (409/412) instead.
    """
    if not note.get("id") or note.get("status") == "superseded":
        return None
    superseded = dict(note)
    superseded["status"] = "superseded"
    meta = note.get("meta")
    version_id = meta.get("versionId") if isinstance(meta, Mapping) else None
    return bundle.update("DocumentReference", note["id"], superseded, version_id=version_id)
