"""``sync --reconcile``: settle the writes a ledger-only run recorded as *uncertain*.

In ``ledger-only`` mode (a server with no conditional create, no identifier search and no
client-assigned ids) a plain create whose answer was lost may or may not have landed; the
sync records the response ``uncertain`` and never retries it (a retry could write the note
twice).  Reconciling looks for the response's note on the target, when the server lets us:

1. ``DocumentReference?identifier={system}|{key}`` (our identifier), else
2. the patient's notes (``DocumentReference?patient={id}``, the one search EHRs such as
   Oracle Health allow), matched on our identifier or, for a server that drops
   identifiers, on the marker text (the key) in the note's description or narrative.

Found: the response is recorded ``written`` (with the note).  Searched and not found: it is
recorded ``absent``, and the next sync writes it.  No search possible (refused, server
down): it stays ``uncertain`` and is reported again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rejection_fhir import settings as settings_module
from rejection_fhir.ehr.entries import DERIVED_SYSTEM, derived_id
from rejection_fhir.errors import FhirServerError
from rejection_fhir.fhir.client import FhirClient
from rejection_fhir.sync.state import INCREMENTAL, LedgerEntry, StateStore
from rejection_fhir.sync.stores import open_state


@dataclass
class ReconcileReport:
    #: Responses whose note was found: now recorded written.
    found: list[str] = field(default_factory=list)
    #: Searched and not there: recorded absent, the next sync writes them.
    absent: list[str] = field(default_factory=list)
    #: Could not be settled (no search possible): (response, why).
    still_uncertain: list[tuple[str, str]] = field(default_factory=list)


def _note_key(source: str, entry: LedgerEntry) -> str:
    return derived_id(source, entry.response_id, entry.response_version, "note")


def _ours(note: Mapping[str, Any], key: str) -> bool:
    for identifier in note.get("identifier") or []:
        if (
            isinstance(identifier, Mapping)
            and identifier.get("system") == DERIVED_SYSTEM
            and identifier.get("value") == key
        ):
            return True
    # A server that keeps no identifiers: the key as marker text in what it does keep.
    kept = json.dumps([note.get("description"), note.get("text")])
    return key in kept


def find_note(
    target: FhirClient, source: FhirClient, source_base: str, entry: LedgerEntry
) -> str | None:
    """``DocumentReference/id`` of the response's note, or None when it is not there.
    Raises FhirServerError when the server allows no search that could tell."""
    key = _note_key(source_base, entry)
    try:
        for note in target.search("DocumentReference", {"identifier": f"{DERIVED_SYSTEM}|{key}"}):
            if _ours(note, key):
                return f"DocumentReference/{note['id']}"
        return None  # the search by our identifier works and finds nothing
    except FhirServerError as exc:
        if exc.status is None or exc.status >= 500:
            raise
        by_identifier = exc  # refused: try the patient's notes
    qr = source.read("QuestionnaireResponse", entry.response_id)
    subject = qr.get("subject")
    reference = subject.get("reference") if isinstance(subject, Mapping) else None
    if not isinstance(reference, str) or not reference.startswith("Patient/"):
        raise by_identifier
    for note in target.search("DocumentReference", {"patient": reference.split("/", 1)[1]}):
        if _ours(note, key):
            return f"DocumentReference/{note['id']}"
    return None


def reconcile_state(
    state: StateStore, source: FhirClient, target: FhirClient, source_base: str
) -> ReconcileReport:
    report = ReconcileReport()
    for entry in state.entries(source_base, outcome="uncertain"):
        where = f"QuestionnaireResponse/{entry.response_id}/_history/{entry.response_version}"
        try:
            note = find_note(target, source, source_base, entry)
        except FhirServerError as exc:
            report.still_uncertain.append((where, exc.message.splitlines()[0]))
            continue
        if note is not None:
            resources = list(dict.fromkeys([note, *entry.resources]))
            state.record(
                [
                    LedgerEntry(
                        entry.source,
                        entry.response_id,
                        entry.response_version,
                        "written",
                        entry.questionnaire,
                        resources,
                        [],
                    )
                ]
            )
            report.found.append(where)
        else:
            state.record(
                [
                    LedgerEntry(
                        entry.source,
                        entry.response_id,
                        entry.response_version,
                        "absent",
                        entry.questionnaire,
                        entry.resources,
                        entry.findings,
                    )
                ]
            )
            report.absent.append(where)
    return report


def reconcile(
    settings: settings_module.Settings,
    source_base: str,
    *,
    target_base: str | None = None,
    state_path: str | None = None,
    wait: float = 0.0,
) -> ReconcileReport:
    """Settle the source's uncertain writes (holding the incremental shard's lock)."""
    location = state_path if state_path is not None else settings.state_path
    with open_state(location, shard=INCREMENTAL, source=source_base, wait=wait) as state:
        source = settings_module.make_client(settings, server=source_base)
        target = (
            source
            if target_base is None
            else settings_module.make_client(settings, server=target_base)
        )
        try:
            return reconcile_state(state, source, target, source_base)
        finally:
            source.close()
            if target is not source:
                target.close()
