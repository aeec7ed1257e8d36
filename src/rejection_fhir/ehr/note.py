"""The clinical note: one DocumentReference per response version.

The note carries the rendered summary (Markdown and XHTML attachments, the XHTML also as
its narrative), safety alerts first and scores with their bands
(:func:`rejection_fhir.scoring.clinical.clinical_summary`), so it says everything a
clinician needs even where nothing else can be written.  An amended version's note
``replaces`` the earlier one, which is updated to ``superseded`` under ``If-Match``.

Where the server takes only some content types (its statement says so: Epic takes notes
as ``text/plain`` only), :func:`render_note` writes only those of ours it takes, or the
plain-text rendering (same content, alerts first) when it takes neither Markdown nor
XHTML.  Where it takes no Flag, :func:`mark_safety_alert` puts the alert in the note's
title too.
"""

from __future__ import annotations

import base64
import dataclasses
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from rejection_fhir.ehr.entries import ResponseVersion, create_once, identifier, urn
from rejection_fhir.fhir import bundle
from rejection_fhir.fhir.json import JsonDict
from rejection_fhir.response.render import render_markdown, render_text, render_xhtml
from rejection_fhir.response.summary import Line, Summary

LOINC = "http://loinc.org"
#: LOINC 74465-6 "Questionnaire response Document".
NOTE_TYPE = {"system": LOINC, "code": "74465-6", "display": "Questionnaire response Document"}
NOTE_CATEGORY = {
    "system": "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category",
    "code": "clinical-note",
    "display": "Clinical Note",
}


MARKDOWN = "text/markdown; charset=utf-8"
XHTML = "application/xhtml+xml; charset=utf-8"
PLAIN = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class Note:
    title: str
    markdown: str
    xhtml: str
    #: The plain-text rendering (``render_text``), written where the server takes only that.
    text: str = ""
    #: The attachments written, as content types, in this order (see :func:`note_formats`).
    formats: tuple[str, ...] = (MARKDOWN, XHTML)

    def rendering(self, content_type: str) -> str:
        return {MARKDOWN: self.markdown, XHTML: self.xhtml, PLAIN: self.text}[content_type]


def _bare(content_type: str) -> str:
    return content_type.split(";")[0].strip().lower()


def note_formats(accepted: Collection[str] | None) -> tuple[str, ...]:
    """Which renderings to attach, given the content types the server takes (None: not
    stated, so both of ours).  Ours that it takes, else plain text if it takes that; when it
    takes none of the three, ours all the same: the server refuses the note, and the run
    says why (``check-server``'s degradation, the refusal's message)."""
    if accepted is None:
        return (MARKDOWN, XHTML)
    taken = {_bare(t) for t in accepted}
    ours = tuple(t for t in (MARKDOWN, XHTML) if _bare(t) in taken)
    if ours:
        return ours
    if _bare(PLAIN) in taken:
        return (PLAIN,)
    return (MARKDOWN, XHTML)


def render_note(summary: Summary, accepted: Collection[str] | None = None) -> Note:
    """The note for a clinical summary (alerts first, scores with their bands), in the
    renderings the server takes; the plain text is rendered only when it is written."""
    title = summary.title + (f" ({summary.authored[:10]})" if summary.authored else "")
    formats = note_formats(accepted)
    text = render_text(summary) if PLAIN in formats else ""
    return Note(title, render_markdown(summary), render_xhtml(summary), text, formats)


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


#: What the alert-only note says instead of the answers (see :func:`alert_only`).
NOT_SUMMARISED = (
    "This response did not pass validation, so it is not summarised into the record; only "
    "its safety alert is, as this server takes no Flag. Open the response itself in the "
    "system it was completed in."
)


def alert_only(summary: Summary) -> Summary:
    """The summary of a rejected response cut to its safety alerts and its header: the
    note that carries the alert where no Flag can be written.  Its answers and scores are
    left out, as for any rejected response (they did not pass validation)."""
    return dataclasses.replace(
        summary,
        highlights=(Line("Not summarised", (NOT_SUMMARISED,)),),
        sections=(),
        scores=(),
    )


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
    document["content"] = [_attachment(t, note.rendering(t), note.title) for t in note.formats]
    context: JsonDict = {
        "related": [{"reference": response.reference, "display": "Source questionnaire response"}]
    }
    if isinstance(authored, str):
        context["period"] = {"start": authored}
    encounter = qr.get("encounter")
    if response.same_server and isinstance(encounter, Mapping) and encounter.get("reference"):
        # The visit the response belongs to; EHRs that file notes against a visit (Epic)
        # refuse a note without one.
        context["encounter"] = [{"reference": encounter["reference"]}]
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


#: Put before the note's title where no Flag can be written.  Why the title: it is what
#: EHRs list notes by (Oracle Health's DocumentReference create takes ``description`` as
#: "the human-readable description (title)", https://docs.oracle.com/en/industries/health/
#: millennium-platform-apis/mfrap/op-documentreference-post.html), while the other levers
#: are closed: ``docStatus`` stays ``final`` (Oracle's create "only supports final", and
#: ``preliminary`` would tell a reader the note is incomplete, not urgent), ``category``
#: stays ``clinical-note`` (the only code of US Core's
#: us-core-documentreference-category, which servers validate against) and ``type`` stays
#: the LOINC code EHRs map to a note type.  The note's text already begins with the alert.
SAFETY_TITLE_PREFIX = "SAFETY ALERT: "


def is_note_create(entry: Mapping[str, Any]) -> bool:
    """The entry creating the note (not the update of the note it supersedes)."""
    return bool(
        entry["resource"].get("resourceType") == "DocumentReference"
        and entry["request"].get("method") == "POST"
    )


def mark_safety_alert(entry: Mapping[str, Any]) -> JsonDict:
    """The note's create entry with :data:`SAFETY_TITLE_PREFIX` before its title
    (``description`` and each attachment's title); a copy, the entry is left as it was."""
    resource = dict(entry["resource"])
    title = str(resource.get("description", ""))
    if not title.startswith(SAFETY_TITLE_PREFIX):
        resource["description"] = SAFETY_TITLE_PREFIX + title
    resource["content"] = [
        {**content, "attachment": {**content["attachment"], "title": resource["description"]}}
        for content in resource.get("content", [])
    ]
    return {**entry, "resource": resource}
