"""Observations the sync writes: extracted answers and instrument scores.

Both are category ``survey`` and keyed on the response id (not its version), written as
conditional updates: an amended response updates them in place, so a trend has one point
per answer and per score.  When a server refuses them (no Observation, or not of category
survey) they are left out (:mod:`rejection_fhir.ehr.restrict`) and the note carries the
scores with their bands (:func:`rejection_fhir.scoring.clinical.clinical_summary`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rejection_fhir.ehr.entries import ResponseVersion, identifier, keep_updated, subject_of
from rejection_fhir.ehr.extract import ExtractedValue
from rejection_fhir.fhir.json import JsonDict
from rejection_fhir.scoring.model import Score

SURVEY = {
    "system": "http://terminology.hl7.org/CodeSystem/observation-category",
    "code": "survey",
    "display": "Survey",
}


def observation_status(amended: bool) -> str:
    return "amended" if amended else "final"


def value_entries(
    qr: Mapping[str, Any],
    response: ResponseVersion,
    values: Sequence[ExtractedValue],
    *,
    amended: bool,
) -> list[JsonDict]:
    """One Observation per extracted answer, keyed on response id + item path."""
    subject = subject_of(qr)
    authored = qr.get("authored")
    entries = []
    for value in values:
        key = response.key(f"obs/{value.path}", per_version=False)
        observation: JsonDict = {
            "resourceType": "Observation",
            "identifier": identifier(key),
            "status": observation_status(amended),
            "category": [{"coding": [SURVEY]}],
            "code": {"coding": [dict(value.code)], "text": value.label},
        }
        if subject is not None:
            observation["subject"] = subject
        if isinstance(authored, str):
            observation["effectiveDateTime"] = authored
        observation[value.value_key] = value.value
        observation["derivedFrom"] = [{"reference": response.reference}]
        entries.append(keep_updated(key, observation))
    return entries


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
        key = response.key(f"score/{score.instrument}", per_version=False)
        code: JsonDict = {"text": f"{score.instrument} total score"}
        if score.code:
            code["coding"] = [dict(score.code)]
        observation: JsonDict = {
            "resourceType": "Observation",
            "identifier": identifier(key),
            "status": observation_status(qr.get("status") == "amended"),
            "category": [{"coding": [SURVEY]}],
            "code": code,
        }
        subject = subject_of(qr)
        if subject is not None:
            observation["subject"] = subject
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
        entries.append(keep_updated(key, observation))
    return entries
