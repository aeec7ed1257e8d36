"""What the sync writes into the EHR for one QuestionnaireResponse: the planner.

Pure: the response, its rendered note and extracted values in; Bundle entries out, in the
order a transaction needs them (the tool's Device, the note, the superseded note's update,
Observations, the ``extra`` entries, then the Provenance naming everything written).
Each resource has its own module:

- :mod:`rejection_fhir.ehr.note`: the DocumentReference (one per response version; an
  amended version's note ``replaces`` the earlier one, which becomes ``superseded``);
- :mod:`rejection_fhir.ehr.observations`: extracted answers and scores (category survey,
  one per answer, updated in place when the response is amended);
- :mod:`rejection_fhir.ehr.flag`: the safety Flag (and Task);
- :mod:`rejection_fhir.ehr.provenance`: the Provenance and the tool's Device;
- :mod:`rejection_fhir.ehr.entries`: the derived keys they share and :class:`WritePlan`;
- :mod:`rejection_fhir.ehr.restrict`: the plan cut down to what the server takes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from rejection_fhir.ehr.entries import (
    ResponseVersion,
    WritePlan,
)
from rejection_fhir.ehr.extract import ExtractedValue
from rejection_fhir.ehr.flag import (
    safety_entries,
)
from rejection_fhir.ehr.note import (
    Note,
    alert_only,
    note_entry,
    render_note,
    supersede_entry,
)
from rejection_fhir.ehr.observations import value_entries
from rejection_fhir.ehr.provenance import provenance_entry, tool_device_entry
from rejection_fhir.ehr.restrict import restrict_plan
from rejection_fhir.fhir.json import JsonDict
from rejection_fhir.scoring.clinical import ClinicalSummary

__all__ = ["plan_safety_only", "plan_writes", "rebased", "version_checked"]


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
    device = tool_device_entry()
    plan.entries.append(device)
    if note is not None:
        amended = previous_note is not None or qr.get("status") == "amended"
        document = note_entry(qr, response, note, amended=amended, previous_note=previous_note)
        plan.entries.append(document)
        plan.written.append(document["fullUrl"])
        if previous_note is not None:
            supersede = supersede_entry(previous_note)
            if supersede is not None:
                plan.entries.append(supersede)
        for observation in value_entries(qr, response, values, amended=amended):
            plan.entries.append(observation)
            plan.written.append(observation["fullUrl"])
    for entry in extra:
        plan.entries.append(entry)
        plan.written.append(entry["fullUrl"])
    # Last, so that it can target every other entry of the plan.
    plan.entries.append(provenance_entry(response, plan.written, recorded, device))
    plan.written.append(plan.entries[-1]["fullUrl"])
    return plan


def plan_safety_only(
    qr: Mapping[str, Any],
    response: ResponseVersion,
    clinical: ClinicalSummary,
    *,
    recorded: str,
    writable: Collection[str] | None,
    note_types: Collection[str] | None = None,
    task: bool = False,
) -> tuple[WritePlan, Counter[str]]:
    """The writes for a rejected response that raised a safety alert: its Flag (and Task),
    never a summary of answers that did not pass validation.

    On a server that takes no Flag (``writable`` without it) the alert goes in a note of
    its own instead (:func:`rejection_fhir.ehr.note.alert_only`, keyed as the version's
    note), so that it still reaches a clinician.  The plan is cut to ``writable`` (None:
    not restricted); what was left out is returned with it.
    """
    note = None
    if writable is not None and "Flag" not in writable:
        note = render_note(alert_only(clinical.summary), note_types)
    plan = plan_writes(
        qr,
        response,
        note,
        (),
        recorded=recorded,
        extra=safety_entries(qr, response, clinical.alerts, task=task),
    )
    if writable is None:
        return plan, Counter()
    return restrict_plan(plan, writable)


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
