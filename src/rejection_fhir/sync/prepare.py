"""One response of a sync → a plan to write, a rejection to record, or nothing.

The preparing half of :mod:`rejection_fhir.sync.run`: whether a response is ours and new
(the ledger), its Questionnaire (the built index, else the source server), one analysis
(:func:`rejection_fhir.scoring.analysis.analyse`) and the writes planned from it (note,
Observations, scores, safety Flag), cut to what the target takes.  Runs on the reading
thread; it counts what it skips and rejects in the run's tally.  A response whose writes
the ledger holds as *uncertain* is never planned again: it is reported, and at the end of
every run :meth:`Preparer.report_ledger_uncertain` reports every uncertain write of the
source still in the ledger, read again or not, until ``sync --reconcile`` settles it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rejection_fhir.ehr.entries import ResponseVersion, WritePlan
from rejection_fhir.ehr.extract import observation_values
from rejection_fhir.ehr.flag import safety_entries
from rejection_fhir.ehr.note import render_note
from rejection_fhir.ehr.observations import score_entries
from rejection_fhir.ehr.restrict import restrict_plan
from rejection_fhir.ehr.writeback import plan_safety_only, plan_writes
from rejection_fhir.errors import FhirServerError
from rejection_fhir.fhir.client import FhirClient
from rejection_fhir.fhir.json import JsonDict
from rejection_fhir.response.questionnaire import (
    CompiledQuestionnaire,
    QuestionnaireIndex,
    split_canonical,
)
from rejection_fhir.response.summary import Summary
from rejection_fhir.scoring.analysis import Analysis, analyse
from rejection_fhir.sync.outcome import Problem, Tally
from rejection_fhir.sync.state import LedgerEntry, StateStore
from rejection_fhir.worksheet.catalog import Catalog

if TYPE_CHECKING:
    from rejection_fhir.sync.run import SyncOptions


def json_object(value: object) -> Mapping[str, Any]:
    """A JSON object from the server, or an empty one when it sent something else."""
    return value if isinstance(value, Mapping) else {}


def meta(qr: Mapping[str, Any]) -> Mapping[str, Any]:
    return json_object(qr.get("meta"))


def response_version(qr: Mapping[str, Any]) -> str:
    """The server's versionId, or a content hash when the server keeps no versions."""
    version = meta(qr).get("versionId")
    if isinstance(version, str) and version:
        return version
    digest = hashlib.sha256(
        json.dumps(qr, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    return f"sha256-{digest[:16]}"


#: The finding code of a ledger-only write recorded before it was sent: a run killed before
#: it recorded the answer leaves the response uncertain (settled by ``sync --reconcile``),
#: never written twice by the next run.
IN_FLIGHT = "in-flight"


#: What every uncertain write's message ends with: the one way to settle it.
RECONCILE_HINT = "sync --reconcile"


def _settle(message: str) -> str:
    return message if RECONCILE_HINT in message else f"{message}; settle with {RECONCILE_HINT}"


def _last_message(entry: LedgerEntry) -> str:
    messages = [f["message"] for f in entry.findings if isinstance(f.get("message"), str)]
    return messages[-1] if messages else "its writes' answer was lost; they may have landed"


@dataclass
class Prepared:
    qr: JsonDict
    ref: ResponseVersion
    questionnaire: str
    plan: WritePlan
    summary: Summary
    last_updated: str | None
    #: Set for a rejected response that still gets its safety Flag: recorded as rejected
    #: (with these findings) once the Flag is committed.
    rejection: LedgerEntry | None = None


class Preparer:
    """Turns each response of a page into a :class:`Prepared` plan (or a rejection)."""

    def __init__(
        self,
        options: SyncOptions,
        catalog: Catalog,
        index: QuestionnaireIndex,
        source: FhirClient,
        target: FhirClient,
        state: StateStore,
        tally: Tally,
        rejected: list[Problem],
        uncertain: list[Problem],
        recorded: str,
        writable: tuple[str, ...] | None,
        note_types: tuple[str, ...] | None = None,
    ) -> None:
        self.options = options
        self.catalog = catalog
        self.index = index
        self.source = source
        self.target = target
        self.state = state
        self.tally = tally
        self.rejected = rejected
        #: Where responses are said to be uncertain (the run's report).
        self.uncertain = uncertain
        self.recorded = recorded
        #: What the server takes (None: not restricted by what it says).
        self.writable = writable
        #: Content types the target takes for the note (None: not stated), see ehr.note.
        self.note_types = note_types
        self.same_server = options.target is None or options.target.rstrip(
            "/"
        ) == options.source.rstrip("/")
        #: (response id, version) of the uncertain writes this run has reported.
        self._reported_uncertain: set[tuple[str, str]] = set()

    def ours(self, canonical: str) -> bool:
        url, _ = split_canonical(canonical)
        return any(url.startswith(prefix) for prefix in self.options.prefixes)

    def questionnaire_for(self, qr: Mapping[str, Any]) -> CompiledQuestionnaire | None:
        compiled = self.index.for_response(qr)
        if compiled is not None:
            return compiled
        canonical = qr.get("questionnaire")
        if not isinstance(canonical, str):
            return None
        # An older version still on the source server (published before this build).
        url, version = split_canonical(canonical)
        params = {"url": url, **({"version": version} if version else {})}
        try:
            found = list(self.source.search("Questionnaire", params))
        except FhirServerError:
            return None
        for questionnaire in found:
            self.index.add(questionnaire)
        return self.index.for_response(qr)

    # -- one response -----------------------------------------------------------------

    def prepare(self, qr: JsonDict) -> Prepared | LedgerEntry | None:
        """A plan to write, a rejection to record, or None (already handled / not ours)."""
        rid = qr.get("id")
        canonical = qr.get("questionnaire")
        if not isinstance(rid, str) or not isinstance(canonical, str) or not self.ours(canonical):
            self.tally.skipped += 1
            return None
        version = response_version(qr)
        seen = self.state.seen(self.options.source, rid, version)
        where = f"QuestionnaireResponse/{rid}/_history/{version}"
        if seen is not None and seen.outcome == "uncertain":
            # An earlier run lost a plain create's answer, or stopped while its creates were
            # in flight: they may have landed, so nothing is sent again.  Said on every run
            # until sync --reconcile settles it (see report_ledger_uncertain).
            self.report_uncertain(seen)
            return None
        # "absent": sync --reconcile found an uncertain write never landed; write it now.
        if seen is not None and seen.outcome != "absent":
            self.tally.unchanged += 1
            return None
        compiled = self.questionnaire_for(qr)
        # One analysis of the response (findings, resolved answers, summary, scores,
        # alerts): everything below is planned from it, nothing walks the response again.
        analysis = analyse(
            qr,
            compiled,
            # Another version of the same url lends its items to the item 9 rule.
            fallback=self.index.compiled(split_canonical(canonical)[0])
            if compiled is None
            else None,
            summarizers=self.catalog.summarizers,
            value_sets=self.catalog.value_sets,
        )
        findings = [
            {"severity": f.severity, "path": f.path, "code": f.code, "message": f.message}
            for f in analysis.errors
        ]
        if findings:
            self.tally.rejected += 1
            first = findings[0]
            at = f" at {first['path']}" if first["path"] else ""
            self.rejected.append(Problem(where, f"{first['message']}{at}", tuple(findings)))
            rejection = LedgerEntry(
                self.options.source, rid, version, "rejected", canonical, [], findings
            )
            return self.safety_only(qr, rid, version, canonical, analysis, rejection) or rejection
        assert compiled is not None  # validate_response reports an unresolvable Questionnaire
        summary = analysis.summary
        ref = ResponseVersion(self.options.source, rid, version, same_server=self.same_server)
        previous = self.previous_note(rid, version)
        note = render_note(summary, self.note_types)
        extra = [
            *score_entries(qr, ref, analysis.scores),
            *safety_entries(qr, ref, analysis.alerts, task=self.options.safety_task),
        ]
        plan = plan_writes(
            qr,
            ref,
            note,
            observation_values(analysis.resolved),
            recorded=self.recorded,
            previous_note=previous,
            extra=extra,
        )
        if self.writable is not None:
            plan, left_out = restrict_plan(plan, self.writable)
            self.tally.left_out.update(left_out)
        last_updated = meta(qr).get("lastUpdated")
        return Prepared(qr, ref, compiled.canonical or canonical, plan, summary, last_updated)

    # -- uncertain writes, said by every run until settled --------------------------------

    def report_uncertain(self, entry: LedgerEntry) -> None:
        """Count and list one uncertain ledger entry, once per run."""
        ref = ResponseVersion(
            self.options.source,
            entry.response_id,
            entry.response_version,
            same_server=self.same_server,
        )
        self.uncertain_write(ref, _last_message(entry))

    def uncertain_write(self, ref: ResponseVersion, message: str) -> None:
        """Count and list a response whose writes may have landed (read again, or lost by
        this run), once per run; the message ends with what to do."""
        key = (ref.id, ref.version)
        if key in self._reported_uncertain:
            return
        self._reported_uncertain.add(key)
        self.tally.uncertain += 1
        self.uncertain.append(Problem(ref.versioned_reference, _settle(message)))

    def report_ledger_uncertain(self) -> None:
        """At the end of a run: every write the ledger still holds as uncertain for this
        source, whether or not this run read its response again.

        An incremental run reads only what changed after its cursor, so a write whose
        answer an earlier run lost would otherwise go quiet after that run; the issue asks
        for each one to be reported until ``sync --reconcile`` settles it (exit 13).  The
        ones this run already named are not counted twice.
        """
        for entry in self.state.entries(self.options.source, outcome="uncertain"):
            self.report_uncertain(entry)

    def safety_only(
        self,
        qr: JsonDict,
        rid: str,
        version: str,
        canonical: str,
        analysis: Analysis,
        rejection: LedgerEntry,
    ) -> Prepared | None:
        """A rejected response is not summarised into the record, but the item 9 rule still
        runs on it (on its own signals when its Questionnaire cannot be resolved, lent
        another version of the same url when one is known): a positive or unreadable item
        9 gets its Flag even so (docs/instruments.md, "Safety")."""
        if not analysis.alerts:
            return None
        ref = ResponseVersion(self.options.source, rid, version, same_server=self.same_server)
        plan, left_out = plan_safety_only(
            qr,
            ref,
            analysis.clinical,
            recorded=self.recorded,
            writable=self.writable,
            note_types=self.note_types,
            task=self.options.safety_task,
        )
        self.tally.left_out.update(left_out)
        last_updated = meta(qr).get("lastUpdated")
        return Prepared(
            qr, ref, canonical, plan, analysis.summary, last_updated, rejection=rejection
        )

    def previous_note(self, rid: str, version: str) -> JsonDict | None:
        earlier = self.state.latest_written(self.options.source, rid, other_than=version)
        if earlier is None:
            return None
        for reference in earlier.resources:
            if reference.startswith("DocumentReference/"):
                try:
                    return self.target.read("DocumentReference", reference.split("/", 1)[1])
                except FhirServerError:
                    return None
        return None
