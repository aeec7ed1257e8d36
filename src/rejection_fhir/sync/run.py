"""The sync: QuestionnaireResponses on the source server → notes, Observations, Provenance.

Per page of responses (sorted by ``_lastUpdated``): skip what the ledger already holds,
validate the rest against their Questionnaire, summarise, plan the writes, commit one
transaction on the target, then record the ledger and move the cursor together.  A crash
anywhere replays at most the last batch, and the conditional writes make that replay a
no-op on the server.  Nothing is dropped silently: a response that fails validation is
recorded as rejected with its findings; one the server refuses stops the cursor before it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rejection_fhir import settings as settings_module
from rejection_fhir.ehr.extract import observation_values
from rejection_fhir.ehr.writeback import (
    Note,
    ResponseVersion,
    WritePlan,
    plan_writes,
    rebased,
    safety_entries,
    score_entries,
    version_checked,
)
from rejection_fhir.errors import (
    AuthError,
    FhirServerError,
    RejectionFhirError,
    ServerUnavailableError,
)
from rejection_fhir.fhir.client import FhirClient
from rejection_fhir.response.answers import resolve_response
from rejection_fhir.response.conformance import validate_response
from rejection_fhir.response.questionnaire import (
    CompiledQuestionnaire,
    QuestionnaireIndex,
    split_canonical,
)
from rejection_fhir.response.render import render_markdown, render_xhtml
from rejection_fhir.response.summary import Summary
from rejection_fhir.scoring.clinical import clinical_summary
from rejection_fhir.sync.state import LedgerEntry, SyncState, exclusive

log = logging.getLogger("rejection_fhir.sync")
JsonDict = dict[str, Any]


@dataclass
class Tally:
    fetched: int = 0
    written: int = 0
    unchanged: int = 0
    rejected: int = 0
    failed: int = 0
    skipped: int = 0
    resources: int = 0


@dataclass(frozen=True)
class Problem:
    response: str
    message: str
    findings: tuple[dict[str, Any], ...] = ()


@dataclass
class SyncReport:
    source: str
    target: str
    dry_run: bool
    cursor_before: str | None
    cursor_after: str | None = None
    tally: Tally = field(default_factory=Tally)
    rejected: list[Problem] = field(default_factory=list)
    failed: list[Problem] = field(default_factory=list)
    summaries: list[tuple[str, Summary]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.rejected and not self.failed


@dataclass(frozen=True)
class SyncOptions:
    source: str
    target: str | None = None
    state_path: Path = Path(".state/sync.sqlite3")
    since: str | None = None
    dry_run: bool = False
    batch_size: int = 50
    wait: float = 0.0
    #: Canonical url prefixes of the Questionnaires to sync (default: the built worksheets').
    prefixes: tuple[str, ...] = ()
    keep_summaries: bool = False
    #: Also create a Task for the clinician with each safety Flag.
    safety_task: bool = False


def response_version(qr: Mapping[str, Any]) -> str:
    """The server's versionId, or a content hash when the server keeps no versions."""
    version = (qr.get("meta") or {}).get("versionId")
    if isinstance(version, str) and version:
        return version
    digest = hashlib.sha256(
        json.dumps(qr, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    return f"sha256-{digest[:16]}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class _Prepared:
    qr: JsonDict
    ref: ResponseVersion
    questionnaire: str
    plan: WritePlan
    summary: Summary
    last_updated: str | None


class _Run:
    def __init__(
        self,
        options: SyncOptions,
        index: QuestionnaireIndex,
        source: FhirClient,
        target: FhirClient,
        state: SyncState,
        report: SyncReport,
        progress: Callable[[int], None] | None,
        recorded: str,
    ) -> None:
        self.options = options
        self.index = index
        self.source = source
        self.target = target
        self.state = state
        self.report = report
        self.progress = progress
        self.recorded = recorded
        self.same_server = options.target is None or options.target.rstrip(
            "/"
        ) == options.source.rstrip("/")
        self.blocked_at: str | None = None

    # -- classification ---------------------------------------------------------------

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

    def prepare(self, qr: JsonDict) -> _Prepared | LedgerEntry | None:
        """A plan to write, a rejection to record, or None (already handled / not ours)."""
        rid = qr.get("id")
        canonical = qr.get("questionnaire")
        if not isinstance(rid, str) or not isinstance(canonical, str) or not self.ours(canonical):
            self.report.tally.skipped += 1
            return None
        version = response_version(qr)
        if self.state.seen(self.options.source, rid, version) is not None:
            self.report.tally.unchanged += 1
            return None
        where = f"QuestionnaireResponse/{rid}/_history/{version}"
        compiled = self.questionnaire_for(qr)
        findings = [
            {"severity": f.severity, "path": f.path, "code": f.code, "message": f.message}
            for f in validate_response(qr, compiled)
            if f.severity == "error"
        ]
        if findings:
            self.report.tally.rejected += 1
            first = findings[0]
            at = f" at {first['path']}" if first["path"] else ""
            self.report.rejected.append(Problem(where, f"{first['message']}{at}", tuple(findings)))
            return LedgerEntry(
                self.options.source, rid, version, "rejected", canonical, [], findings
            )
        assert compiled is not None  # validate_response reports an unresolvable Questionnaire
        clinical = clinical_summary(qr, compiled)
        summary = clinical.summary
        resolved = resolve_response(qr, compiled)
        ref = ResponseVersion(self.options.source, rid, version, same_server=self.same_server)
        previous = self.previous_note(rid, version)
        title = summary.title + (f" ({summary.authored[:10]})" if summary.authored else "")
        note = Note(title, render_markdown(summary), render_xhtml(summary))
        extra = [
            *score_entries(qr, ref, clinical.scores),
            *safety_entries(qr, ref, clinical.alerts, task=self.options.safety_task),
        ]
        plan = plan_writes(
            qr,
            ref,
            note,
            observation_values(resolved),
            recorded=self.recorded,
            previous_note=previous,
            extra=extra,
        )
        last_updated = (qr.get("meta") or {}).get("lastUpdated")
        return _Prepared(qr, ref, compiled.canonical or canonical, plan, summary, last_updated)

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

    # -- a batch ------------------------------------------------------------------------

    def commit(self, batch: Sequence[_Prepared]) -> list[LedgerEntry]:
        """One transaction for the batch; on refusal, one per response to find the culprit."""
        try:
            return self._commit_rebasing(batch)
        except RejectionFhirError as exc:
            if len(batch) == 1 or not _refused(exc):
                raise
        written: list[LedgerEntry] = []
        for prepared in batch:
            try:
                written.extend(self._commit_rebasing([prepared]))
            except FhirServerError as exc:
                if not _refused(exc):
                    raise
                self.report.tally.failed += 1
                self.report.failed.append(Problem(prepared.ref.versioned_reference, str(exc)))
                if prepared.last_updated and (
                    self.blocked_at is None or prepared.last_updated < self.blocked_at
                ):
                    self.blocked_at = prepared.last_updated
        return written

    def _commit_rebasing(self, batch: Sequence[_Prepared]) -> list[LedgerEntry]:
        try:
            return self._commit(batch)
        except FhirServerError as exc:
            if exc.status not in (409, 412) or not any(version_checked(p.plan) for p in batch):
                raise
        # The If-Match on a note this batch supersedes no longer holds.  Mostly because an
        # earlier attempt of this very transaction committed and only its answer was lost
        # (a timeout, a dropped connection): the client's retry then meets the note already
        # superseded.  Or someone changed the note meanwhile.  Either way, plan those
        # updates again on the notes as they are now, once; the conditional creates and
        # updates make the rest of the replay a no-op.
        return self._commit([self._rebased(p) for p in batch])

    def _rebased(self, prepared: _Prepared) -> _Prepared:
        current: dict[str, JsonDict] = {}
        for reference in version_checked(prepared.plan):
            rtype, rid = reference.split("/", 1)
            current[reference] = self.target.read(rtype, rid)
        return replace(prepared, plan=rebased(prepared.plan, current))

    def _commit(self, batch: Sequence[_Prepared]) -> list[LedgerEntry]:
        entries: list[JsonDict] = []
        position: dict[str, int] = {}
        for prepared in batch:
            for entry in prepared.plan.entries:
                if entry["fullUrl"] in position:  # the tool's Device, shared by every response
                    continue
                position[entry["fullUrl"]] = len(entries)
                entries.append(entry)
        result = self.target.transaction(
            {"resourceType": "Bundle", "type": "transaction", "entry": entries}, sensitive=True
        )
        ledger = []
        for prepared in batch:
            refs = []
            for full_url in prepared.plan.written:
                got = result.entries[position[full_url]]
                if got.resource_type and got.id:
                    refs.append(f"{got.resource_type}/{got.id}")
            ledger.append(
                LedgerEntry(
                    self.options.source,
                    prepared.ref.id,
                    prepared.ref.version,
                    "written",
                    prepared.questionnaire,
                    refs,
                    [],
                )
            )
            self.report.tally.written += 1
            self.report.tally.resources += len(refs)
        return ledger

    def page(self, resources: Iterable[JsonDict]) -> None:
        prepared: list[_Prepared] = []
        ledger: list[LedgerEntry] = []
        newest: str | None = None
        for qr in resources:
            self.report.tally.fetched += 1
            last_updated = (qr.get("meta") or {}).get("lastUpdated")
            if isinstance(last_updated, str) and (newest is None or last_updated > newest):
                newest = last_updated
            outcome = self.prepare(qr)
            if isinstance(outcome, _Prepared):
                prepared.append(outcome)
                if self.options.keep_summaries:
                    self.report.summaries.append((outcome.ref.versioned_reference, outcome.summary))
            elif isinstance(outcome, LedgerEntry):
                ledger.append(outcome)
            if self.progress is not None:
                self.progress(1)
        if self.options.dry_run:
            self.report.tally.written += len(prepared)
            self.report.tally.resources += sum(len(p.plan.written) for p in prepared)
            return
        if prepared:
            ledger.extend(self.commit(prepared))
        cursor = self.blocked_at or newest
        if cursor is not None:
            self.report.cursor_after = cursor
        self.state.record(ledger, cursor=(self.options.source, cursor) if cursor else None)


def _refused(exc: BaseException) -> bool:
    """The server refused this content (a 4xx): other responses may still go through, so
    the batch is retried one response at a time.  Not when the server is unavailable,
    overloaded or refuses our credentials: every response would fail alike, so the run
    stops and says why (exit 6 or 9) with the cursor before the batch."""
    return (
        isinstance(exc, FhirServerError)
        and not isinstance(exc, ServerUnavailableError | AuthError)
        and (exc.status or 0) < 500
    )


def sync(
    settings: settings_module.Settings,
    options: SyncOptions,
    questionnaires: Sequence[Mapping[str, Any]],
    *,
    progress: Callable[[int], None] | None = None,
    on_total: Callable[[int | None], None] | None = None,
    recorded: str | None = None,
) -> SyncReport:
    """Run one sync.  Raises StateBusyError if another sync holds the state file."""
    index = QuestionnaireIndex(questionnaires)
    if not options.prefixes:
        bases = {
            q["url"].rsplit("/Questionnaire/", 1)[0] + "/Questionnaire/"
            for q in questionnaires
            if "url" in q
        }
        options = SyncOptions(**{**options.__dict__, "prefixes": tuple(sorted(bases))})
    with exclusive(options.state_path, wait=options.wait), SyncState(options.state_path) as state:
        source = settings_module.make_client(settings, server=options.source)
        target = (
            source
            if options.target is None
            else settings_module.make_client(settings, server=options.target)
        )
        try:
            source.check_fhir_version()
            if target is not source:
                target.check_fhir_version()
            cursor = options.since or state.cursor(options.source)
            report = SyncReport(source.base_url, target.base_url, options.dry_run, cursor, cursor)
            run = _Run(options, index, source, target, state, report, progress, recorded or _now())
            params: dict[str, str] = {"_sort": "_lastUpdated", "_count": str(options.batch_size)}
            if cursor:
                params["_lastUpdated"] = f"ge{cursor}"
            if on_total is not None:
                params["_total"] = "accurate"
            first = True
            for bundle in source.search_bundles("QuestionnaireResponse", params):
                if first and on_total is not None:
                    total = bundle.get("total")
                    on_total(total if isinstance(total, int) else None)
                first = False
                page = [
                    e["resource"]
                    for e in bundle.get("entry", []) or []
                    if isinstance(e, Mapping)
                    and isinstance(e.get("resource"), dict)
                    and e["resource"].get("resourceType") == "QuestionnaireResponse"
                    and (e.get("search") or {}).get("mode", "match") == "match"
                ]
                run.page(page)
            return report
        finally:
            source.close()
            if target is not source:
                target.close()
