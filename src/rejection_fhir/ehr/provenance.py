"""Provenance of what the sync wrote, and the tool's Device it names as the agent.

The Provenance targets what was written for one response version, names the response
version as its source entity and this tool (a Device, created once per server) as the
assembler.  Provenance has no identifier, so its key is a ``meta.tag`` and its conditional
create searches ``_tag``.
"""

from __future__ import annotations

from collections.abc import Sequence

from rejection_fhir import __version__
from rejection_fhir.ehr.entries import DERIVED_SYSTEM, ResponseVersion, urn
from rejection_fhir.fhir import bundle
from rejection_fhir.fhir.json import JsonDict

DEVICE_SYSTEM = "https://rejection-fhir.org/fhir/sid/device"


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
    return bundle.conditional_create(
        urn("device/rejection-fhir"),
        device,
        {"identifier": f"{DEVICE_SYSTEM}|rejection-fhir"},
    )


def provenance_entry(
    response: ResponseVersion, written: Sequence[str], recorded: str, device: JsonDict
) -> JsonDict:
    """The Provenance of ``written`` (fullUrls of this plan's entries)."""
    provenance_key = response.key("provenance", per_version=True)
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
    return bundle.conditional_create(
        urn(provenance_key), provenance, {"_tag": f"{DERIVED_SYSTEM}|{provenance_key}"}
    )
