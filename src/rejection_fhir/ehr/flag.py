"""The safety Flag (and optional Task) the sync writes for a safety alert.

Created once per response: the key leaves out the version, so an amendment does not raise
it twice.  Where a server takes no Flag, it is left out
(:mod:`rejection_fhir.ehr.restrict`) and the note is marked so a clinician sees the alert
(:func:`rejection_fhir.ehr.note.mark_safety_alert`); the alert is the note's first line
whatever the server takes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rejection_fhir.ehr.entries import ResponseVersion, create_once, identifier, subject_of
from rejection_fhir.fhir.json import JsonDict
from rejection_fhir.scoring.model import SafetyAlert

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
_CLINICAL = {
    "system": "http://terminology.hl7.org/CodeSystem/flag-category",
    "code": "clinical",
    "display": "Clinical",
}


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


def flag_entry(qr: Mapping[str, Any], response: ResponseVersion, alert: SafetyAlert) -> JsonDict:
    """A positive item 9 is coded as the risk (SNOMED CT 6471006); an item 9 that could not
    be read gets a Flag too (the project's ``phq9-item9-unreadable``), so the report's
    safety section shows it as loudly.  The Flag points at the response (``flag-detail``)
    and carries the answer as read (``safety-answer``), never the client's free text."""
    key = response.key(f"flag/{alert.rule}", per_version=False)
    flag: JsonDict = {
        "resourceType": "Flag",
        "identifier": identifier(key),
        "status": "active",
        "category": [{"coding": [dict(_CLINICAL)]}],
        "code": {"coding": [dict(_flag_code(alert))], "text": alert.message},
    }
    extensions: list[JsonDict] = [
        {"url": FLAG_DETAIL_EXTENSION, "valueReference": {"reference": response.reference}}
    ]
    answer = _answer_extension(alert.answer)
    if answer is not None:
        extensions.append(answer)
    flag["extension"] = extensions
    subject = subject_of(qr)
    if subject is not None:
        flag["subject"] = subject
    if isinstance(qr.get("authored"), str):
        flag["period"] = {"start": qr["authored"]}
    return create_once(key, flag)


def task_entry(qr: Mapping[str, Any], response: ResponseVersion, alert: SafetyAlert) -> JsonDict:
    """An urgent Task asking a clinician to review the safety answer (``--safety-task``)."""
    key = response.key(f"task/{alert.rule}", per_version=False)
    task: JsonDict = {
        "resourceType": "Task",
        "identifier": identifier(key),
        "status": "requested",
        "intent": "order",
        "priority": "urgent",
        "code": {"text": "Review a safety answer"},
        "description": alert.message,
        "focus": {"reference": response.reference},
    }
    subject = subject_of(qr)
    if subject is not None:
        task["for"] = subject
    return create_once(key, task)


def safety_entries(
    qr: Mapping[str, Any],
    response: ResponseVersion,
    alerts: Sequence[SafetyAlert],
    *,
    task: bool = False,
) -> list[JsonDict]:
    """A Flag per safety alert, each followed by its Task when ``task``."""
    entries = []
    for alert in alerts:
        entries.append(flag_entry(qr, response, alert))
        if task:
            entries.append(task_entry(qr, response, alert))
    return entries
