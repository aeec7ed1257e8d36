"""What the sync writes into the EHR for one QuestionnaireResponse, as transaction entries.

Pure: the response, its rendered summary and extracted values in; Bundle entries out.
Exactly-once rests on identifiers derived from the source server, the response id and
its version: every write is a conditional create (or a conditional update keyed the same
way), so replaying a transaction, or a whole sync, changes nothing on the server.

- DocumentReference: the clinical note (markdown + XHTML narrative), one per response
  version; an amended version's note ``replaces`` the earlier one, which becomes
  ``superseded``.
- Observation: one per extracted answer, keyed on response id + item path, updated in place
  when the response is amended, so a trend has one point per answer.
- Provenance: targets what was written, entity = the response version, agent = this tool
  (a Device).  Provenance has no identifier, so its key is a ``meta.tag``.
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from rejection_fhir import __version__
from rejection_fhir.ehr.extract import ExtractedValue
from rejection_fhir.scoring.model import SafetyAlert, Score

JsonDict = dict[str, Any]

#: Identifier/tag system for everything the sync derives.  Values are opaque but stable.
DERIVED_SYSTEM = "https://rejection-fhir.org/fhir/sid/derived"
DEVICE_SYSTEM = "https://rejection-fhir.org/fhir/sid/device"
LOINC = "http://loinc.org"
#: LOINC 74465-6 "Questionnaire response Document".
NOTE_TYPE = {"system": LOINC, "code": "74465-6", "display": "Questionnaire response Document"}
NOTE_CATEGORY = {
    "system": "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category",
    "code": "clinical-note",
    "display": "Clinical Note",
}
SURVEY = {
    "system": "http://terminology.hl7.org/CodeSystem/observation-category",
    "code": "survey",
    "display": "Survey",
}
#: Flag.code of a positive PHQ-9 item 9: SNOMED CT 6471006 |Suicidal thoughts (finding)|
#: (synonym "suicidal ideation"; mapped to ICD-10-CM R45.851 "Suicidal ideations"), the
#: risk itself rather than the answer that revealed it.  A "Several days" answer is
#: thoughts of being better off dead or of self-harm, which this finding covers; it is not
#: an assessed risk level, so "At risk for suicide" (225444004) would say more than the
#: screen does.  The answer given is kept beside it (SAFETY_ANSWER_EXTENSION).
SUICIDAL_THOUGHTS = {
    "system": "http://snomed.info/sct",
    "code": "6471006",
    "display": "Suicidal thoughts",
}
#: Flag.code when item 9 could not be read: no published concept says "a screening item
#: could not be checked", so the project's own code (same namespace as DERIVED_SYSTEM).
SAFETY_CHECK_SYSTEM = "https://rejection-fhir.org/fhir/CodeSystem/safety-check"
ITEM9_UNREADABLE = {
    "system": SAFETY_CHECK_SYSTEM,
    "code": "phq9-item9-unreadable",
    "display": "PHQ-9 item 9 (self-harm) could not be checked",
}
#: The answer that raised a Flag, as read (a Coding, or the value itself), for the report.
SAFETY_ANSWER_EXTENSION = "https://rejection-fhir.org/fhir/StructureDefinition/safety-answer"
#: Core extension pointing a Flag at the resource that supports it (the response).
FLAG_DETAIL_EXTENSION = "http://hl7.org/fhir/StructureDefinition/flag-detail"
_NS = uuid.UUID("0f6c3f1e-7a8b-4c7e-9b0a-2d1f5e6a7b8c")


def source_key(source_base: str) -> str:
    """Short stable key for a source server, so ids from two servers never collide."""
    return hashlib.sha256(source_base.rstrip("/").encode()).hexdigest()[:12]


def derived_id(source_base: str, response_id: str, version: str | None, kind: str) -> str:
    parts = [source_key(source_base), response_id]
    if version is not None:
        parts.append(version)
    parts.append(kind)
    return "/".join(parts)


def _urn(key: str) -> str:
    return f"urn:uuid:{uuid.uuid5(_NS, key)}"


@dataclass(frozen=True)
class Note:
    title: str
    markdown: str
    xhtml: str


@dataclass(frozen=True)
class ResponseVersion:
    """Where the response lives and which version of it this is."""

    source_base: str
    id: str
    version: str
    #: Write relative references when the EHR is the server the response came from.
    same_server: bool = True

    @property
    def reference(self) -> str:
        if self.same_server:
            return f"QuestionnaireResponse/{self.id}"
        return f"{self.source_base.rstrip('/')}/QuestionnaireResponse/{self.id}"

    @property
    def versioned_reference(self) -> str:
        return f"{self.reference}/_history/{self.version}"


@dataclass
class WritePlan:
    entries: list[JsonDict] = field(default_factory=list)
    #: fullUrl of each entry that counts as "written for this response", in entry order.
    written: list[str] = field(default_factory=list)

    def bundle(self) -> JsonDict:
        return {"resourceType": "Bundle", "type": "transaction", "entry": self.entries}


_INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def _is_instant(value: Any) -> bool:
    """DocumentReference.date is an instant: seconds and a zone are required."""
    return isinstance(value, str) and _INSTANT.match(value) is not None


def tool_device_entry() -> JsonDict:
    identifier = {"system": DEVICE_SYSTEM, "value": "rejection-fhir"}
    device = {
        "resourceType": "Device",
        "identifier": [identifier],
        "status": "active",
        "manufacturer": "rejection-fhir project",
        "deviceName": [{"name": "rejection-fhir", "type": "manufacturer-name"}],
        "type": {"text": "Software that summarises questionnaire responses"},
    }
    return {
        "fullUrl": _urn("device/rejection-fhir"),
        "resource": device,
        "request": {
            "method": "POST",
            "url": "Device",
            "ifNoneExist": urlencode({"identifier": f"{DEVICE_SYSTEM}|rejection-fhir"}),
        },
    }


def plan_writes(
    qr: Mapping[str, Any],
    response: ResponseVersion,
    note: Note | None,
    values: Sequence[ExtractedValue],
    *,
    recorded: str,
    previous_note: Mapping[str, Any] | None = None,
    extra: Sequence[JsonDict] = (),
) -> WritePlan:
    """Transaction entries for one response version.

    ``previous_note`` is the earlier version's DocumentReference as read from the target
    (a plain dict); it is marked superseded and replaced.  ``extra`` entries (scores,
    safety flags) are added before the Provenance so it names them too.  Without a
    ``note`` (a rejected response whose safety Flag is still written) there is no
    DocumentReference.
    """
    plan = WritePlan()
    authored = qr.get("authored")
    subject = qr.get("subject")
    amended = previous_note is not None or qr.get("status") == "amended"

    device = tool_device_entry()
    plan.entries.append(device)

    if note is None:
        return _finish(plan, extra, response, recorded, device)

    note_key = derived_id(response.source_base, response.id, response.version, "note")
    document: JsonDict = {
        "resourceType": "DocumentReference",
        "identifier": [{"system": DERIVED_SYSTEM, "value": note_key}],
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
        {
            "attachment": {
                "contentType": "text/markdown; charset=utf-8",
                "data": base64.b64encode(note.markdown.encode("utf-8")).decode("ascii"),
                "title": note.title,
            }
        },
        {
            "attachment": {
                "contentType": "application/xhtml+xml; charset=utf-8",
                "data": base64.b64encode(note.xhtml.encode("utf-8")).decode("ascii"),
                "title": note.title,
            }
        },
    ]
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
    note_url = _urn(note_key)
    plan.entries.append(
        {
            "fullUrl": note_url,
            "resource": document,
            "request": {
                "method": "POST",
                "url": "DocumentReference",
                "ifNoneExist": urlencode({"identifier": f"{DERIVED_SYSTEM}|{note_key}"}),
            },
        }
    )
    plan.written.append(note_url)

    if previous_note is not None:
        supersede = supersede_entry(previous_note)
        if supersede is not None:
            plan.entries.append(supersede)

    for value in values:
        obs_key = derived_id(response.source_base, response.id, None, f"obs/{value.path}")
        observation: JsonDict = {
            "resourceType": "Observation",
            "identifier": [{"system": DERIVED_SYSTEM, "value": obs_key}],
            "status": "amended" if amended else "final",
            "category": [{"coding": [SURVEY]}],
            "code": {"coding": [dict(value.code)], "text": value.label},
        }
        if isinstance(subject, Mapping):
            observation["subject"] = dict(subject)
        if isinstance(authored, str):
            observation["effectiveDateTime"] = authored
        observation[value.value_key] = value.value
        observation["derivedFrom"] = [{"reference": response.reference}]
        obs_url = _urn(obs_key)
        plan.entries.append(
            {
                "fullUrl": obs_url,
                "resource": observation,
                "request": {
                    "method": "PUT",
                    "url": "Observation?"
                    + urlencode({"identifier": f"{DERIVED_SYSTEM}|{obs_key}"}),
                },
            }
        )
        plan.written.append(obs_url)

    return _finish(plan, extra, response, recorded, device)


def _finish(
    plan: WritePlan,
    extra: Sequence[JsonDict],
    response: ResponseVersion,
    recorded: str,
    device: JsonDict,
) -> WritePlan:
    """Append the ``extra`` entries, then the Provenance naming everything written (it
    comes last so that it can target every other entry of the plan)."""
    for entry in extra:
        plan.entries.append(entry)
        plan.written.append(entry["fullUrl"])
    plan.entries.append(_provenance_entry(response, plan.written, recorded, device))
    plan.written.append(plan.entries[-1]["fullUrl"])
    return plan


def _provenance_entry(
    response: ResponseVersion, written: Sequence[str], recorded: str, device: JsonDict
) -> JsonDict:
    provenance_key = derived_id(response.source_base, response.id, response.version, "provenance")
    provenance: JsonDict = {
        "resourceType": "Provenance",
        "meta": {"tag": [{"system": DERIVED_SYSTEM, "code": provenance_key}]},
        "target": [{"reference": url} for url in written],
        "recorded": recorded,
        "activity": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
                    "code": "CREATE",
                    "display": "create",
                }
            ]
        },
        "agent": [
            {
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                            "code": "assembler",
                            "display": "Assembler",
                        }
                    ]
                },
                "who": {"reference": device["fullUrl"], "display": f"rejection-fhir {__version__}"},
            }
        ],
        "entity": [{"role": "source", "what": {"reference": response.versioned_reference}}],
    }
    return {
        "fullUrl": _urn(provenance_key),
        "resource": provenance,
        "request": {
            "method": "POST",
            "url": "Provenance",
            "ifNoneExist": urlencode({"_tag": f"{DERIVED_SYSTEM}|{provenance_key}"}),
        },
    }


def supersede_entry(note: Mapping[str, Any]) -> JsonDict | None:
    """The update that marks an earlier note superseded, or None if it already is.

    It carries ``If-Match`` on the version read, so a clinician's edit made meanwhile is
    never overwritten: the server refuses the update (409/412) instead.
    """
    if not note.get("id") or note.get("status") == "superseded":
        return None
    superseded = dict(note)
    superseded["status"] = "superseded"
    request: JsonDict = {"method": "PUT", "url": f"DocumentReference/{note['id']}"}
    meta = note.get("meta")
    version_id = meta.get("versionId") if isinstance(meta, Mapping) else None
    if version_id:
        request["ifMatch"] = f'W/"{version_id}"'
    return {
        "fullUrl": f"DocumentReference/{note['id']}",
        "resource": superseded,
        "request": request,
    }


def version_checked(plan: WritePlan) -> list[str]:
    """References the plan updates under ``If-Match`` (the notes it supersedes)."""
    return [e["request"]["url"] for e in plan.entries if e["request"].get("ifMatch")]


def rebased(plan: WritePlan, current: Mapping[str, Mapping[str, Any]]) -> WritePlan:
    """The plan with its If-Match updates planned again on the notes as they are now.

    ``current`` maps each reference from :func:`version_checked` to that note as just read.
    A note already superseded needs no update (typically: an earlier attempt of this very
    transaction committed, and only its answer was lost); any other is superseded on its
    current version.  Every other entry, and what counts as written, stays as it was.
    """
    entries: list[JsonDict] = []
    for entry in plan.entries:
        url = entry["request"].get("url")
        if entry["request"].get("ifMatch") and url in current:
            fresh = supersede_entry(current[url])
            if fresh is not None:
                entries.append(fresh)
        else:
            entries.append(entry)
    return WritePlan(entries, list(plan.written))


def _observation_status(qr: Mapping[str, Any]) -> str:
    return "amended" if qr.get("status") == "amended" else "final"


def score_entries(
    qr: Mapping[str, Any], response: ResponseVersion, scores: Sequence[Score]
) -> list[JsonDict]:
    """One Observation per scorable score, LOINC-coded where the instrument has a code,
    updated in place (keyed on the response id) when the response is amended."""
    entries = []
    for score in scores:
        quantity = score.quantity()
        if quantity is None:
            continue
        key = derived_id(response.source_base, response.id, None, f"score/{score.instrument}")
        code: JsonDict = {"text": f"{score.instrument} total score"}
        if score.code:
            code["coding"] = [dict(score.code)]
        observation: JsonDict = {
            "resourceType": "Observation",
            "identifier": [{"system": DERIVED_SYSTEM, "value": key}],
            "status": _observation_status(qr),
            "category": [{"coding": [SURVEY]}],
            "code": code,
        }
        if isinstance(qr.get("subject"), Mapping):
            observation["subject"] = dict(qr["subject"])
        if isinstance(qr.get("authored"), str):
            observation["effectiveDateTime"] = qr["authored"]
        observation["valueQuantity"] = quantity
        if score.interpretation is not None:
            coding: JsonDict = {
                "code": score.interpretation.code,
                "display": score.interpretation.display,
            }
            if score.interpretation.system:
                coding["system"] = score.interpretation.system
            observation["interpretation"] = [
                {"coding": [coding], "text": score.interpretation.display}
            ]
        observation["note"] = [{"text": score.method}]
        observation["derivedFrom"] = [{"reference": response.reference}]
        entries.append(
            {
                "fullUrl": _urn(key),
                "resource": observation,
                "request": {
                    "method": "PUT",
                    "url": "Observation?" + urlencode({"identifier": f"{DERIVED_SYSTEM}|{key}"}),
                },
            }
        )
    return entries


def _flag_code(alert: SafetyAlert) -> dict[str, str]:
    return ITEM9_UNREADABLE if alert.kind == "phq9-item9-unreadable" else SUICIDAL_THOUGHTS


def _answer_extension(answer: Mapping[str, Any]) -> JsonDict | None:
    if not answer:
        return None
    if "code" in answer:
        return {"url": SAFETY_ANSWER_EXTENSION, "valueCoding": dict(answer)}
    for key, value in answer.items():
        if key.startswith("value"):
            return {"url": SAFETY_ANSWER_EXTENSION, key: value}
    return None


def safety_entries(
    qr: Mapping[str, Any],
    response: ResponseVersion,
    alerts: Sequence[SafetyAlert],
    *,
    task: bool = False,
) -> list[JsonDict]:
    """A Flag per safety alert (and optionally a Task for the clinician), created once per
    response: the key leaves out the version, so an amendment does not raise it twice.

    A positive item 9 is coded as the risk (SNOMED CT 6471006); an item 9 that could not
    be read gets a Flag too (the project's ``phq9-item9-unreadable``), so the report's
    safety section shows it as loudly.  Each Flag points at the response (``flag-detail``)
    and carries the answer as read (``safety-answer``), never the client's free text."""
    entries = []
    for alert in alerts:
        key = derived_id(response.source_base, response.id, None, f"flag/{alert.rule}")
        flag: JsonDict = {
            "resourceType": "Flag",
            "identifier": [{"system": DERIVED_SYSTEM, "value": key}],
            "status": "active",
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/flag-category",
                            "code": "clinical",
                            "display": "Clinical",
                        }
                    ]
                }
            ],
            "code": {"coding": [dict(_flag_code(alert))], "text": alert.message},
        }
        extensions: list[JsonDict] = [
            {"url": FLAG_DETAIL_EXTENSION, "valueReference": {"reference": response.reference}}
        ]
        answer = _answer_extension(alert.answer)
        if answer is not None:
            extensions.append(answer)
        flag["extension"] = extensions
        if isinstance(qr.get("subject"), Mapping):
            flag["subject"] = dict(qr["subject"])
        if isinstance(qr.get("authored"), str):
            flag["period"] = {"start": qr["authored"]}
        entries.append(
            {
                "fullUrl": _urn(key),
                "resource": flag,
                "request": {
                    "method": "POST",
                    "url": "Flag",
                    "ifNoneExist": urlencode({"identifier": f"{DERIVED_SYSTEM}|{key}"}),
                },
            }
        )
        if task:
            task_key = derived_id(response.source_base, response.id, None, f"task/{alert.rule}")
            resource: JsonDict = {
                "resourceType": "Task",
                "identifier": [{"system": DERIVED_SYSTEM, "value": task_key}],
                "status": "requested",
                "intent": "order",
                "priority": "urgent",
                "code": {"text": "Review a safety answer"},
                "description": alert.message,
                "focus": {"reference": response.reference},
            }
            if isinstance(qr.get("subject"), Mapping):
                resource["for"] = dict(qr["subject"])
            entries.append(
                {
                    "fullUrl": _urn(task_key),
                    "resource": resource,
                    "request": {
                        "method": "POST",
                        "url": "Task",
                        "ifNoneExist": urlencode({"identifier": f"{DERIVED_SYSTEM}|{task_key}"}),
                    },
                }
            )
    return entries
