"""A write plan cut down to what the server takes.

Pure.  The note (DocumentReference) already carries everything a clinician needs: the
safety alerts first, then the scores with their bands (see
:func:`rejection_fhir.scoring.clinical.clinical_summary`).  So when a server does not take
Flags, Observations (or not of category ``survey``), Provenance, the tool's Device or Task,
those entries are simply left out and nothing is lost to the clinician; references to them
(Provenance.target, Provenance.agent.who) are dropped, keeping their display.  A safety
Flag left out also puts the alert in the note's title
(:func:`rejection_fhir.ehr.note.mark_safety_alert`), so the note stands out in the list a
clinician reads.  Which renderings the note carries (``text/plain`` only on Epic) is
decided when it is rendered (:func:`rejection_fhir.ehr.note.render_note`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection

from rejection_fhir.ehr.entries import WritePlan
from rejection_fhir.ehr.note import is_note_create, mark_safety_alert

#: Always kept: without the note the sync has nothing to write.
NOTE = "DocumentReference"


def restrict_plan(plan: WritePlan, writable: Collection[str]) -> tuple[WritePlan, Counter[str]]:
    """The plan without entries of types outside ``writable``, and what was left out."""
    left_out: Counter[str] = Counter()
    dropped: set[str] = set()
    kept = []
    for entry in plan.entries:
        kind = entry["resource"]["resourceType"]
        if kind != NOTE and kind not in writable:
            left_out[kind] += 1
            dropped.add(entry["fullUrl"])
        else:
            kept.append(entry)
    if not dropped:
        return plan, left_out
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
        elif left_out["Flag"] and is_note_create(entry):
            entry = mark_safety_alert(entry)
        entries.append(entry)
    written = [url for url in plan.written if url not in dropped]
    return WritePlan(entries, written), left_out
