"""How ``publish`` and ``sync`` can work with one server: a typed, pure decision.

:func:`choose_strategy` takes what a server says it can do
(:class:`~rejection_fhir.fhir.capabilities.ServerCapabilities`) and what probes showed
(:class:`Evidence`) and returns a :class:`Strategy`: how Questionnaires get published, how
QuestionnaireResponses are found, how the sync's writes are sent, how updates are
version-checked, and what cannot be written at all (each with what happens instead).  No I/O:
``commands.check_server`` gathers the inputs; ``publish`` and ``sync`` are to execute the
value.  :meth:`Strategy.to_json` is a stable form (``schemas/check-server.schema.json``).

The sync writes, per response: a DocumentReference note (required: without it the tool cannot
do its job), Observations of category ``survey`` (scores and trends), a Flag per safety answer,
a Provenance, the tool's Device, and with ``--safety-task`` a Task.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from rejection_fhir.fhir.capabilities import ServerCapabilities, note_requirements, stated_header


class PublishMode(StrEnum):
    #: One transaction of conditional creates keyed on url+version (what ``publish`` does).
    TRANSACTION = "transaction"
    #: One conditional create (If-None-Exist) per resource.
    CONDITIONAL_CREATE = "conditional-create"
    #: Search by url+version, then create what is missing (not atomic).
    SEARCH_THEN_CREATE = "search-then-create"
    #: Plain creates; nothing checks for an earlier copy.
    CREATE = "create"
    #: The server does not take Questionnaires.
    NONE = "none"


class ReadMode(StrEnum):
    #: ``QuestionnaireResponse?_lastUpdated=ge{cursor}&_sort=_lastUpdated`` (what ``sync`` does).
    LAST_UPDATED = "_lastUpdated"
    #: ``QuestionnaireResponse?authored=ge{cursor}``: edits that keep the authored date are missed.
    AUTHORED = "authored"
    #: A Bulk Data ``$export`` with ``_since`` (``sync --bulk``; where only a Group can be
    #: exported, ``sync --patients-group ID`` exports that Group).
    BULK_EXPORT = "bulk-export"
    #: ``QuestionnaireResponse?patient={id}`` for each patient of a list the user supplies.
    PER_PATIENT = "per-patient"
    NONE = "none"


class WriteMode(StrEnum):
    #: One transaction of conditional entries per batch of responses (what ``sync`` does).
    TRANSACTION = "transaction"
    #: A batch of conditional entries: each entry commits on its own.
    BATCH = "batch"
    #: One conditional create (If-None-Exist) per resource.
    CONDITIONAL = "conditional"
    #: Search by identifier, then a plain create: not atomic.
    SEARCH_THEN_CREATE = "search-then-create"
    #: Plain creates; only the local ledger keeps them from being repeated.
    CREATE_WITH_LEDGER = "create-with-ledger"
    #: The note cannot be written.
    NONE = "none"


class VersionCheck(StrEnum):
    IF_MATCH = "If-Match"
    IF_UNMODIFIED_SINCE = "If-Unmodified-Since"
    NONE = "none"


class SearchResult(StrEnum):
    """What a probe of one search parameter showed."""

    #: Honoured: an impossible value gave fewer results than no filter.
    WORKS = "works"
    #: Refused (4xx): the server does not support it.
    REFUSED = "refused"
    #: Answered as if the parameter were absent: it is ignored.
    IGNORED = "ignored"
    #: Answered 200, but with no data there was no telling honoured from ignored.
    ACCEPTED = "accepted"
    NOT_PROBED = "not-probed"


@dataclass(frozen=True)
class Evidence:
    """What read-only probes showed, beyond the CapabilityStatement."""

    #: ``"QuestionnaireResponse:_lastUpdated"`` -> what its probe showed.
    searches: Mapping[str, SearchResult] = field(default_factory=dict)
    #: A read answered with an ETag / a Last-Modified header (None: no read was possible).
    etag_on_read: bool | None = None
    last_modified_on_read: bool | None = None


#: Limits a CapabilityStatement cannot state, by product (lower-case substring of
#: ``software.name``): at most this many entries in a transaction holding any conditional
#: entry.  Medplum: @medplum/fhir-router 5.x refuses more with "Transaction requires strict
#: isolation but has too many entries" (its constant is 8; measured against the router).
KNOWN_CONDITIONAL_TRANSACTION_LIMITS: Mapping[str, int] = {"medplum": 8}

#: Resources the sync writes, in the order their absence is reported.
SYNC_RESOURCES = ("DocumentReference", "Observation", "Flag", "Provenance", "Device", "Task")

_INSTEAD = {
    "Observation": "no Observation of category survey: scores and trends appear in the note only",
    "Flag": "no Flag: the safety alert goes at the top of the note",
    "Provenance": "no Provenance: the note names the response it summarises",
    "Device": "no Device: Provenance and the note name rejection-fhir by display only",
    "Task": "no Task: --safety-task cannot be used; the alert is in the note",
}


@dataclass(frozen=True)
class Degradation:
    """Something the tool cannot do on this server, and what it does instead."""

    topic: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"topic": self.topic, "message": self.message}


@dataclass(frozen=True)
class Strategy:
    publish: PublishMode
    read: ReadMode
    write: WriteMode
    version_check: VersionCheck
    #: Entries per transaction/batch holding conditional entries (None: no known limit).
    max_conditional_entries: int | None
    #: Of :data:`SYNC_RESOURCES`, the ones the server takes (create).
    writable: tuple[str, ...]
    #: Observation categories the server takes (None: not restricted by what it says).
    observation_categories: tuple[str, ...] | None
    degradations: tuple[Degradation, ...]

    @property
    def can_publish(self) -> bool:
        return self.publish is not PublishMode.NONE

    @property
    def can_sync(self) -> bool:
        """Responses can be found and the note can be written: the tool can do its job."""
        return self.read is not ReadMode.NONE and self.write is not WriteMode.NONE

    def to_json(self) -> dict[str, Any]:
        return {
            "publish": self.publish.value,
            "read": self.read.value,
            "write": self.write.value,
            "versionCheck": self.version_check.value,
            "maxConditionalEntries": self.max_conditional_entries,
            "writable": list(self.writable),
            "observationCategories": (
                None if self.observation_categories is None else list(self.observation_categories)
            ),
            "canPublish": self.can_publish,
            "canSync": self.can_sync,
            "degradations": [d.to_json() for d in self.degradations],
        }


def search_usable(
    caps: ServerCapabilities, evidence: Evidence, resource_type: str, param: str
) -> bool:
    """Declared (or shown to work) and not refused or ignored when probed."""
    seen = evidence.searches.get(f"{resource_type}:{param}", SearchResult.NOT_PROBED)
    if seen in (SearchResult.REFUSED, SearchResult.IGNORED):
        return False
    if seen is SearchResult.WORKS:
        return True
    return caps.searchable(resource_type, param)


def per_patient_readable(caps: ServerCapabilities, evidence: Evidence | None = None) -> bool:
    """Responses can be searched per patient (``patient`` or ``subject``)."""
    evidence = evidence or Evidence()
    return search_usable(caps, evidence, "QuestionnaireResponse", "patient") or search_usable(
        caps, evidence, "QuestionnaireResponse", "subject"
    )


def conditional_entry_limit(caps: ServerCapabilities) -> int | None:
    name = caps.software.lower()
    limits = [n for key, n in KNOWN_CONDITIONAL_TRANSACTION_LIMITS.items() if key in name]
    return min(limits) if limits else None


def _publish_mode(caps: ServerCapabilities, evidence: Evidence) -> PublishMode:
    questionnaire = caps.resource("Questionnaire")
    if questionnaire is None or not questionnaire.can("create"):
        return PublishMode.NONE
    if questionnaire.conditional_create:
        if "transaction" in caps.system_interactions:
            return PublishMode.TRANSACTION
        return PublishMode.CONDITIONAL_CREATE
    if search_usable(caps, evidence, "Questionnaire", "url"):
        return PublishMode.SEARCH_THEN_CREATE
    return PublishMode.CREATE


def _read_mode(caps: ServerCapabilities, evidence: Evidence) -> ReadMode:
    if not caps.can("QuestionnaireResponse", "search-type"):
        return ReadMode.BULK_EXPORT if caps.has_export() else ReadMode.NONE
    if search_usable(caps, evidence, "QuestionnaireResponse", "_lastUpdated"):
        return ReadMode.LAST_UPDATED
    if search_usable(caps, evidence, "QuestionnaireResponse", "authored"):
        return ReadMode.AUTHORED
    if caps.has_export():
        return ReadMode.BULK_EXPORT
    if per_patient_readable(caps, evidence):
        return ReadMode.PER_PATIENT
    return ReadMode.NONE


def _write_mode(caps: ServerCapabilities, evidence: Evidence) -> WriteMode:
    note = caps.resource("DocumentReference")
    if note is None or not note.can("create"):
        return WriteMode.NONE
    if note.conditional_create:
        if "transaction" in caps.system_interactions:
            return WriteMode.TRANSACTION
        if "batch" in caps.system_interactions:
            return WriteMode.BATCH
        return WriteMode.CONDITIONAL
    if search_usable(caps, evidence, "DocumentReference", "identifier"):
        return WriteMode.SEARCH_THEN_CREATE
    return WriteMode.CREATE_WITH_LEDGER


def if_match_supported(caps: ServerCapabilities, evidence: Evidence) -> bool | None:
    """Whether an update of a note can carry If-Match; None when nothing shows it either way.

    ``versioning: versioned-update`` says yes; the statement's text, where it says; another
    stated ``versioning`` says no; with none stated, an ETag on a read is the evidence.
    """
    note = caps.resource("DocumentReference")
    versioning = note.versioning if note else ""
    if versioning == "versioned-update":
        return True
    stated = stated_header(caps, "If-Match", "DocumentReference")
    if stated is not None:
        return stated
    if versioning:
        return False
    return evidence.etag_on_read


def if_unmodified_since_supported(caps: ServerCapabilities) -> bool | None:
    """From the statement's text only: a Last-Modified on a read does not show the server
    honours If-Unmodified-Since on an update (HAPI sends one and ignores the header)."""
    return stated_header(caps, "If-Unmodified-Since", "DocumentReference")


def _version_check(caps: ServerCapabilities, evidence: Evidence) -> VersionCheck:
    note = caps.resource("DocumentReference")
    if note is None or not note.can("update"):
        return VersionCheck.NONE
    if if_match_supported(caps, evidence):
        return VersionCheck.IF_MATCH
    if if_unmodified_since_supported(caps):
        return VersionCheck.IF_UNMODIFIED_SINCE
    return VersionCheck.NONE


def _export_message(caps: ServerCapabilities, evidence: Evidence) -> str:
    """How ``sync`` reads where the export is the way: ``--bulk``, or, where only a Group
    can be exported, ``--patients-group`` (auto exports that Group; see
    docs/read-modes.md) or a patient list."""
    if {"system", "Patient"} & set(caps.has_export()):
        return "responses come from a Bulk Data $export (sync --bulk), not a search"
    return (
        "responses come from a Bulk Data $export of a Group of patients "
        "(sync --patients-group GROUP_ID), not a search"
        + (
            "; or per patient (sync --patients FILE or --patients-from ledger)"
            if per_patient_readable(caps, evidence)
            else ""
        )
    )


def choose_strategy(caps: ServerCapabilities, evidence: Evidence | None = None) -> Strategy:
    """The publish/read/write strategy for this server, with what it cannot do."""
    evidence = evidence or Evidence()
    publish = _publish_mode(caps, evidence)
    read = _read_mode(caps, evidence)
    write = _write_mode(caps, evidence)
    version_check = _version_check(caps, evidence)
    limit = conditional_entry_limit(caps)
    categories = caps.observation_categories()
    writable = tuple(t for t in SYNC_RESOURCES if caps.can(t, "create"))
    if "Observation" in writable and categories is not None and "survey" not in categories:
        writable = tuple(t for t in writable if t != "Observation")

    out: list[Degradation] = []
    if publish is PublishMode.NONE:
        out.append(
            Degradation(
                "publish",
                "Questionnaires cannot be created here: publish them to a forms server and "
                "give sync that server as --source-server, or have the EHR load them",
            )
        )
    elif publish is PublishMode.SEARCH_THEN_CREATE:
        out.append(
            Degradation(
                "publish",
                "no conditional create: publish searches by url and version first, then "
                "creates what is missing, one resource at a time",
            )
        )
    elif publish is PublishMode.CREATE:
        out.append(
            Degradation(
                "publish",
                "Questionnaires cannot be searched by url: publish cannot see an earlier copy "
                "and a second publish would create duplicates",
            )
        )
    for kind in ("CodeSystem", "ValueSet"):
        if publish is not PublishMode.NONE and not caps.can(kind, "create"):
            out.append(
                Degradation(
                    "publish",
                    f"no {kind}: the answer options stay inline in each Questionnaire",
                )
            )

    if read is ReadMode.NONE:
        out.append(
            Degradation(
                "read",
                "QuestionnaireResponses cannot be found: no _lastUpdated, authored or "
                "patient search and no $export",
            )
        )
    elif read is ReadMode.AUTHORED:
        out.append(
            Degradation(
                "read",
                "responses are found by authored date, not _lastUpdated: an edit that keeps "
                "the authored date is not seen again",
            )
        )
    elif read is ReadMode.BULK_EXPORT:
        out.append(Degradation("read", _export_message(caps, evidence)))
    elif read is ReadMode.PER_PATIENT:
        out.append(
            Degradation(
                "read",
                "responses can be searched only per patient: sync needs the list of patients",
            )
        )

    if write is WriteMode.NONE:
        out.append(
            Degradation("write", "DocumentReference cannot be created: no note can be written")
        )
    elif write is WriteMode.BATCH:
        out.append(
            Degradation(
                "write",
                "no transaction: a batch commits entry by entry, so a failure leaves the "
                "others written (the next run completes them)",
            )
        )
    elif write is WriteMode.CONDITIONAL:
        out.append(
            Degradation(
                "write",
                "no transaction or batch: one conditional create per resource, not atomic",
            )
        )
    elif write is WriteMode.SEARCH_THEN_CREATE:
        out.append(
            Degradation(
                "write",
                "no conditional create: each write is a search by identifier then a create; "
                "two syncs at once could both create",
            )
        )
    elif write is WriteMode.CREATE_WITH_LEDGER:
        out.append(
            Degradation(
                "write",
                "no conditional create and no identifier search: only the local ledger keeps "
                "writes from being repeated; a write whose answer is lost, or a crash while it "
                "is in flight, leaves it uncertain until sync --reconcile settles it",
            )
        )
    if limit is not None and (
        write in (WriteMode.TRANSACTION, WriteMode.BATCH) or publish is PublishMode.TRANSACTION
    ):
        out.append(
            Degradation(
                "write",
                f"a transaction holding conditional entries is refused above {limit} entries: "
                f"writes go in transactions of at most {limit} entries, each atomic on its own",
            )
        )
    if write is not WriteMode.NONE:
        note = caps.resource("DocumentReference")
        if note is not None and not note.can("update"):
            out.append(
                Degradation(
                    "write",
                    "DocumentReference cannot be updated: an amended response gets a new note, "
                    "and the old one is not marked superseded",
                )
            )
        elif version_check is VersionCheck.NONE:
            out.append(
                Degradation(
                    "write",
                    "no If-Match or If-Unmodified-Since: the old note is marked superseded "
                    "without a version check",
                )
            )
        needs = note_requirements(caps)
        if needs.encounter:
            out.append(
                Degradation(
                    "DocumentReference",
                    "the note must reference an existing Encounter (context.encounter): a "
                    "response whose patient has no encounter cannot get a note",
                )
            )
        if needs.content_types is not None and not {
            "text/markdown",
            "application/xhtml+xml",
        } & {t.split(";")[0].strip().lower() for t in needs.content_types}:
            out.append(
                Degradation(
                    "DocumentReference",
                    "the note is accepted only as "
                    + ", ".join(needs.content_types)
                    + ": no Markdown or XHTML rendering",
                )
            )
        for kind in SYNC_RESOURCES[1:]:
            if kind not in writable:
                message = _INSTEAD[kind]
                if kind == "Observation" and caps.can("Observation", "create") and categories:
                    message = (
                        f"Observation only of category {', '.join(categories)}, not survey: "
                        "scores and trends appear in the note only"
                    )
                out.append(Degradation(kind, message))

    return Strategy(
        publish=publish,
        read=read,
        write=write,
        version_check=version_check,
        max_conditional_entries=limit,
        writable=writable,
        observation_categories=categories,
        degradations=tuple(out),
    )
