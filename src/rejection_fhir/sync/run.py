"""The sync: QuestionnaireResponses on the source server → notes, Observations, Provenance.

Per page of responses (sorted by ``_lastUpdated``): skip what the ledger already holds,
validate the rest against their Questionnaire, summarise, plan the writes, commit one
transaction on the target, then record the ledger and move the cursor together.  Nothing
is dropped silently: a response that fails validation is recorded as rejected with its
findings; one the server refuses stops the cursor before it.

Up to ``SyncOptions.concurrency`` transactions may be in flight at once (the next page is
prepared while earlier ones commit), but pages are recorded strictly in the order they
were read: the ledger and cursor of a page are written only after it and every page
before it committed, so the cursor never passes an uncommitted batch.  A crash anywhere
replays at most the last ``concurrency`` batches, and the conditional writes make that
replay a no-op on the server.

``SyncOptions.bulk`` reads the responses from a Bulk Data ``$export`` instead of a search
(see :mod:`rejection_fhir.sync.bulk`; ``auto`` does too, of ``patients_group``, on a server
that exports only per Group: docs/read-modes.md); an export is not sorted, so the cursor
moves once, to the export's ``transactionTime``, after every page committed.

``SyncOptions.until`` makes the run a *time window* [since, until): the search (or export)
gets the upper bound, the window has its own cursor (shard), never moved past ``until``,
and the run ends when the window is done (its cursor at ``until``).  Windows and the
incremental sync of a source share its ledger, so an amendment synced by one supersedes
the note written by another.  The state store (SQLite file or PostgreSQL) is opened by
:func:`rejection_fhir.sync.stores.open_state`; nothing here depends on which.

How a batch is written follows the target's CapabilityStatement or ``write_mode``
(:mod:`rejection_fhir.sync.executors`: transactions, chunked under an entry limit, batches,
single requests, ledger-only with *uncertain* writes); what the target does not take is
left out of each plan (:mod:`rejection_fhir.ehr.restrict`); responses are found by
``_lastUpdated``, ``authored`` or per patient (:mod:`rejection_fhir.sync.reading`).  See
docs/ehr-modes.md.

Split by responsibility: :mod:`rejection_fhir.sync.prepare` turns one response into a plan
(one analysis of it), :mod:`rejection_fhir.sync.commit` writes a batch, and this module
reads the pages, keeps them in order and records the ledger and cursor.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rejection_fhir import settings as settings_module
from rejection_fhir.errors import (
    ConfigError,
)
from rejection_fhir.fhir.client import FhirClient
from rejection_fhir.response.questionnaire import (
    QuestionnaireIndex,
)
from rejection_fhir.response.summary import Summary
from rejection_fhir.sync.commit import Committed, Committer, transaction_bundle
from rejection_fhir.sync.executors import WriteExecutor
from rejection_fhir.sync.modes import ExecMode, WriteSetup, write_setup
from rejection_fhir.sync.outcome import Problem, Tally
from rejection_fhir.sync.prepare import IN_FLIGHT, Prepared, Preparer, meta
from rejection_fhir.sync.readahead import read_ahead
from rejection_fhir.sync.state import (
    INCREMENTAL,
    LedgerEntry,
    StateStore,
    window_shard,
)
from rejection_fhir.sync.stores import open_state
from rejection_fhir.worksheet.catalog import Catalog

log = logging.getLogger("rejection_fhir.sync")
JsonDict = dict[str, Any]

#: Upper bound for ``SyncOptions.concurrency``: requests keeps ten connections per host.
MAX_CONCURRENCY = 8


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
    uncertain: list[Problem] = field(default_factory=list)
    #: How this run writes (the write mode and what it cannot do), said once.
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.rejected and not self.failed and not self.uncertain


@dataclass(frozen=True)
class SyncOptions:
    source: str
    target: str | None = None
    #: A state file or ``postgresql://`` URL; None: the settings' (``--state``, RFHIR_STATE,
    #: the config file's ``state``, else :data:`~rejection_fhir.settings.DEFAULT_STATE_PATH`).
    state_path: Path | str | None = None
    since: str | None = None
    #: End of a time window (exclusive): the run syncs [since or its cursor, until).
    until: str | None = None
    #: Seconds a PostgreSQL state's lease lasts between two recorded batches.
    lease_ttl: float | None = None
    dry_run: bool = False
    batch_size: int = 50
    wait: float = 0.0
    #: Canonical url prefixes of the Questionnaires to sync (default: the built worksheets').
    prefixes: tuple[str, ...] = ()
    keep_summaries: bool = False
    #: Also create a Task for the clinician with each safety Flag.
    safety_task: bool = False
    #: Transactions in flight at once (1 to MAX_CONCURRENCY); pages still commit in order.
    concurrency: int = 1
    #: Read the responses from a Bulk Data $export of the source instead of a search.
    bulk: bool = False
    #: Give up on an export the server has not finished after this many seconds.
    bulk_timeout: float = 3600.0
    #: ``auto`` or an :class:`~rejection_fhir.sync.modes.ExecMode` value; None: the
    #: settings' ``write_mode`` (flag, RFHIR_WRITE_MODE, config), else ``auto``.
    write_mode: str | None = None
    #: How responses are found: ``auto`` (from the server's statement; ``bulk`` wins),
    #: ``_lastUpdated``, ``authored``, ``per-patient`` (see :mod:`rejection_fhir.sync.reading`).
    read_mode: str = "auto"
    #: Per-patient polling: a file of Patient ids, or a Group whose members to poll (with
    #: ``bulk``, or ``auto`` on a server exporting only per Group: the Group to export).
    patients_file: Path | None = None
    patients_group: str | None = None
    #: Per-patient polling: also the patients the ledger knows (``"ledger"``).
    patients_from: str | None = None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class _Page:
    rejected: list[LedgerEntry]
    newest: str | None
    move_cursor: bool
    ids: frozenset[str]
    commit: Future[Committed] | None = None
    #: ledger-only: the responses recorded "in flight" before their plain creates were sent.
    intents: list[LedgerEntry] = field(default_factory=list)


class _Run:
    """Pages in order: each page prepared (:class:`~rejection_fhir.sync.prepare.Preparer`),
    its commit started (:class:`~rejection_fhir.sync.commit.Committer`, on a commit thread
    when concurrent), and committed pages recorded in the order they were read."""

    def __init__(
        self,
        options: SyncOptions,
        catalog: Catalog,
        index: QuestionnaireIndex,
        source: FhirClient,
        target: FhirClient,
        state: StateStore,
        report: SyncReport,
        progress: Callable[[int], None] | None,
        recorded: str,
        on_transaction: Callable[[JsonDict], None] | None = None,
        setup: WriteSetup | None = None,
    ) -> None:
        self.options = options
        setup = setup or WriteSetup(ExecMode.TRANSACTION)
        self.preparer = Preparer(
            options,
            catalog,
            index,
            source,
            target,
            state,
            report.tally,
            report.rejected,
            report.uncertain,
            recorded,
            None if setup.strategy is None else setup.strategy.writable,
            setup.note_types,
        )
        self.committer = Committer(
            WriteExecutor(target, setup, on_bundle=on_transaction), target, options.source
        )
        self.state = state
        self.report = report
        self.progress = progress
        self.on_transaction = on_transaction
        self.blocked_at: str | None = None
        self.pending: deque[_Page] = deque()
        self.in_flight: set[str] = set()
        self.committed_any = False
        concurrency = max(1, min(options.concurrency, MAX_CONCURRENCY))
        self.concurrency = 1 if options.dry_run else concurrency
        # The client is shared by the commit threads: requests pools its connections and
        # our auth classes lock their token caches.
        self.pool = (
            ThreadPoolExecutor(self.concurrency, thread_name_prefix="rfhir-commit")
            if self.concurrency > 1
            else None
        )

    # -- pages, in order ----------------------------------------------------------------

    def page(self, resources: Iterable[JsonDict], *, move_cursor: bool = True) -> None:
        """Prepare a page and start its commit; record earlier pages that have committed.

        ``move_cursor=False`` (bulk export pages, which are not sorted) records the ledger
        only; :meth:`finish` then moves the cursor once.

        The page is prepared (the CPU work) while the earlier pages still commit; only
        then does it wait for one of them to finish, so that ``concurrency`` commits stay
        in flight while the sync works.
        """
        resources = list(resources)
        ids = frozenset(rid for qr in resources if isinstance(rid := qr.get("id"), str) and rid)
        if ids & self.in_flight:
            # An amendment of a response whose earlier version is still committing: its
            # note must supersede the earlier note, which the ledger names only once recorded.
            self.settle(0)
        prepared: list[Prepared] = []
        rejected: list[LedgerEntry] = []
        newest: str | None = None
        for qr in resources:
            self.report.tally.fetched += 1
            last_updated = meta(qr).get("lastUpdated")
            if isinstance(last_updated, str) and (newest is None or last_updated > newest):
                newest = last_updated
            outcome = self.preparer.prepare(qr)
            if isinstance(outcome, Prepared):
                prepared.append(outcome)
                if self.options.keep_summaries:
                    self.report.summaries.append((outcome.ref.versioned_reference, outcome.summary))
            elif isinstance(outcome, LedgerEntry):
                rejected.append(outcome)
            if self.progress is not None:
                self.progress(1)
        if self.options.dry_run:
            self.report.tally.written += sum(1 for p in prepared if p.rejection is None)
            self.report.tally.resources += sum(len(p.plan.written) for p in prepared)
            if prepared and self.on_transaction is not None:
                self.on_transaction(transaction_bundle(p.plan for p in prepared)[0])
            return
        if (
            not self.committed_any
            and len(prepared) > 1
            and self.concurrency > 1
            and self._device_first(prepared[0])
        ):
            # The first write creates the tool's Device, which every later write names
            # (a conditional create); two at once could both create it.  So the first
            # response goes alone, and the rest of the page follows once it committed.
            # That first part moves no cursor: the page's rejections are recorded with
            # the rest, and the cursor must not pass them before.  (One page at a time,
            # the page waits for its answer anyway: no split.)
            self._submit(_Page([], None, False, frozenset({prepared[0].ref.id})), prepared[:1])
            self.settle(0)
            prepared = prepared[1:]
        self._submit(_Page(rejected, newest, move_cursor, ids), prepared)
        # Only the first write of the Device waits for its answer (it may have been
        # refused); later pages are recorded as they finish.
        first = not self.committed_any and prepared and self._device_first(prepared[0])
        self.settle(0 if first else self.concurrency)

    def _device_first(self, prepared: Prepared) -> bool:
        return self.committer.executor.writes_device_first(prepared.plan)

    def _submit(self, page: _Page, prepared: list[Prepared]) -> None:
        """Start the page's commit once fewer than ``concurrency`` pages are in flight."""
        self.settle(self.concurrency - 1)
        if prepared and self.committer.executor.mode is ExecMode.LEDGER_ONLY:
            # Plain creates cannot be repeated safely: recorded as in flight before they are
            # sent, so that a run killed before it records their answers leaves them
            # uncertain instead of writing them again.
            page.intents = [
                LedgerEntry(
                    self.options.source,
                    p.ref.id,
                    p.ref.version,
                    "uncertain",
                    p.questionnaire,
                    [],
                    [
                        {
                            "severity": "warning",
                            "code": IN_FLIGHT,
                            "message": "a run stopped while this response's writes were in "
                            "flight; they may have landed",
                        }
                    ],
                )
                for p in prepared
            ]
            self.state.record(page.intents)
        if prepared:
            page.commit = self._start(prepared)
        self.pending.append(page)
        self.in_flight |= page.ids

    def _start(self, batch: list[Prepared]) -> Future[Committed]:
        if self.pool is not None:
            return self.pool.submit(self.committer.commit, batch)
        done: Future[Committed] = Future()
        try:
            done.set_result(self.committer.commit(batch))
        except BaseException as exc:
            done.set_exception(exc)
        return done

    def settle(self, keep: int) -> None:
        """Record committed pages in order, waiting until at most ``keep`` are pending.

        A failed commit is raised here, after the commits still running have finished;
        nothing after the failed page is recorded.
        """
        while self.pending and (
            len(self.pending) > keep
            or self.pending[0].commit is None
            or self.pending[0].commit.done()
        ):
            page = self.pending[0]
            try:
                committed = page.commit.result() if page.commit is not None else Committed()
            except BaseException:
                self.abandon()
                raise
            self.pending.popleft()
            self.in_flight -= page.ids
            if committed.error is not None:
                # Single requests stopped part-way: keep what was written (plain creates
                # must not be repeated), leave the cursor before the page, stop.
                page.move_cursor = False
                self._record(page, committed)
                self.abandon()
                raise committed.error
            self._record(page, committed)

    def _record(self, page: _Page, committed: Committed) -> None:
        tally = self.report.tally
        tally.written += sum(1 for entry in committed.ledger if entry.outcome == "written")
        tally.resources += committed.resources
        for prepared, message in committed.uncertain:
            self.preparer.uncertain_write(prepared.ref, message)
        for prepared, message in committed.refused:
            tally.failed += 1
            self.report.failed.append(Problem(prepared.ref.versioned_reference, message))
            if prepared.last_updated and (
                self.blocked_at is None or prepared.last_updated < self.blocked_at
            ):
                self.blocked_at = prepared.last_updated
        if committed.ledger:
            self.committed_any = True
        cursor = (self.blocked_at or page.newest) if page.move_cursor else None
        if cursor is not None:
            self.report.cursor_after = cursor
        # In flight but not sent, or refused: known not written, so the next run writes them.
        settled = {(e.response_id, e.response_version) for e in committed.ledger}
        absent = [
            replace(i, outcome="absent", findings=[])
            for i in page.intents
            if (i.response_id, i.response_version) not in settled
        ]
        self.state.record(
            [*page.rejected, *absent, *committed.ledger],
            cursor=(self.options.source, cursor) if cursor else None,
        )

    def finish(self, cursor: str | None = None) -> None:
        """Record every pending page; then, if given, move the cursor to ``cursor``
        (or to the first refused response, if one was refused)."""
        self.settle(0)
        if cursor is not None and not self.options.dry_run:
            cursor = self.blocked_at or cursor
            self.report.cursor_after = cursor
            self.state.record([], cursor=(self.options.source, cursor))

    def abandon(self) -> None:
        """Let running commits end (they may still land; a rerun replays them as no-ops)."""
        for page in self.pending:
            if page.commit is not None:
                page.commit.cancel()
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
        self.pending.clear()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
        self.committer.executor.close()


def _read_mode(options: SyncOptions, source: FhirClient) -> str:
    """The read mode asked for, or the one the source's statement allows (the statement
    is fetched once per client).  Where that is an export offered only per Group, a given
    ``--patients-group`` is exported (``bulk-export``); see docs/read-modes.md."""
    if options.bulk or options.read_mode == "bulk-export":
        if options.patients_file or options.patients_from:
            # An export is of the whole server, or of a Group: a patient list would be
            # ignored, and the user would believe only those patients were read.
            raise ConfigError(
                "a Bulk Data export reads every patient's responses (or a Group's): "
                "--patients and --patients-from do not narrow it",
                hint="drop --bulk to read those patients one by one, or give "
                "--patients-group GROUP_ID to export only that Group's patients",
            )
        return "bulk-export"
    if options.read_mode != "auto":
        return options.read_mode
    if options.patients_file or options.patients_from:
        return "per-patient"
    from rejection_fhir.fhir.capabilities import parse_capability_statement
    from rejection_fhir.sync.bulk import choose_export_level
    from rejection_fhir.sync.strategy import ReadMode, choose_strategy

    caps = parse_capability_statement(source.capabilities())
    if not caps.resources:  # a statement that lists nothing: keep today's search
        return "per-patient" if options.patients_group else "_lastUpdated"
    read = choose_strategy(caps).read
    if read is ReadMode.BULK_EXPORT:
        if options.patients_group is not None and "Group" in caps.has_export():
            return "bulk-export"  # of the Group's patients
        if options.patients_group is None:
            # A server that exports only per Group needs one (or a patient list): raises.
            choose_export_level(caps, None)
            raise ConfigError(
                "this server finds responses only through a Bulk Data $export",
                hint="run sync --bulk",
            )
    if options.patients_group:
        return "per-patient"
    if read is ReadMode.NONE:
        raise ConfigError(
            "this server offers no way to find QuestionnaireResponses (no _lastUpdated, "
            "authored or patient search, no $export)",
            hint="run check-server for what it allows",
        )
    return read.value


def instant(text: str) -> datetime:
    """A FHIR instant or date as an aware datetime (a date, or no zone: UTC)."""
    value = datetime.fromisoformat(text)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _before(resources: Iterable[JsonDict], until: str | None) -> Iterator[JsonDict]:
    """The resources last updated before ``until`` (all without it): a window's share of
    an export from a server that ignored the ``_typeFilter``."""
    end = instant(until) if until else None
    for resource in resources:
        updated = meta(resource).get("lastUpdated")
        if end is not None and isinstance(updated, str):
            try:
                if instant(updated) >= end:
                    continue
            except ValueError:
                pass
        yield resource


def _batches(resources: Iterable[JsonDict], size: int) -> Iterator[list[JsonDict]]:
    batch: list[JsonDict] = []
    for resource in resources:
        batch.append(resource)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def sync(
    settings: settings_module.Settings,
    options: SyncOptions,
    catalog: Catalog,
    *,
    progress: Callable[[int], None] | None = None,
    on_total: Callable[[int | None], None] | None = None,
    recorded: str | None = None,
    on_transaction: Callable[[JsonDict], None] | None = None,
) -> SyncReport:
    """Run one sync.  Raises StateBusyError if another sync holds the state file.

    ``catalog`` gives the Questionnaires to sync (the built worksheets), their
    summarizers and the ValueSets weights may come from.

    ``on_transaction`` sees each transaction Bundle just before it is posted (in a dry
    run, each Bundle that would be posted); it must not change it.
    """
    index = QuestionnaireIndex(catalog.questionnaires)
    if not options.prefixes:
        bases = {
            q["url"].rsplit("/Questionnaire/", 1)[0] + "/Questionnaire/"
            for q in catalog.questionnaires
            if "url" in q
        }
        options = replace(options, prefixes=tuple(sorted(bases)))
    location = options.state_path if options.state_path is not None else settings.state_path
    shard = window_shard(options.since, options.until) if options.until else INCREMENTAL
    with open_state(
        location,
        shard=shard,
        source=options.source,
        wait=options.wait,
        lease_ttl=options.lease_ttl,
    ) as state:
        source = settings_module.make_client(settings, server=options.source)
        target = (
            source
            if options.target is None
            else settings_module.make_client(settings, server=options.target)
        )
        run: _Run | None = None
        try:
            source.check_fhir_version()
            if target is not source:
                target.check_fhir_version()
            setup = write_setup(target, options.write_mode or settings.write_mode)
            saved = state.cursor(options.source)
            # A window resumes from its own cursor; the incremental sync starts at --since
            # when given (a deliberate replay), else at its cursor.
            cursor = (saved or options.since) if options.until else (options.since or saved)
            report = SyncReport(source.base_url, target.base_url, options.dry_run, cursor, cursor)
            report.notes.extend(setup.notes)
            if setup.strategy is not None:
                # What the server does not take, said once per run (the tally counts them).
                report.notes.extend(
                    f"left out: {d.message}"
                    for d in setup.strategy.degradations
                    if d.topic in ("Observation", "Flag", "Provenance", "Device")
                    or (d.topic == "Task" and options.safety_task)
                )
                # How the note itself must be written there (plain text, a visit).
                report.notes.extend(
                    d.message for d in setup.strategy.degradations if d.topic == "DocumentReference"
                )
            run = _Run(
                options,
                catalog,
                index,
                source,
                target,
                state,
                report,
                progress,
                recorded or _now(),
                on_transaction,
                setup,
            )
            if (read := _read_mode(options, source)) == "bulk-export":
                from rejection_fhir.sync.bulk import export_responses

                if on_total is not None:
                    on_total(None)
                with export_responses(
                    source,
                    cursor,
                    until=options.until,
                    group=options.patients_group,
                    timeout=options.bulk_timeout,
                ) as export:
                    with closing(
                        read_ahead(
                            _batches(_before(export.responses(), options.until), options.batch_size)
                        )
                    ) as batches:
                        for batch in batches:
                            run.page(batch, move_cursor=False)
                    if export.manifest.errors:
                        # Something is missing from the export: keep the cursor, so the
                        # next run asks again.
                        problems = export.problems()
                        report.failed.append(
                            Problem(
                                "$export",
                                f"the server could not export everything ({len(problems)} "
                                f"issue(s): {'; '.join(problems[:3])}); the cursor stays",
                            )
                        )
                        run.finish()
                    else:
                        done_at = export.transaction_time
                        if options.until and instant(options.until) < instant(done_at):
                            done_at = options.until  # the window's end caps its cursor
                        run.finish(cursor=done_at)
            elif read == "authored":
                from rejection_fhir.sync.reading import authored_pages, newest_authored

                report.notes.append(
                    "reading by authored date: an amendment that keeps its authored date is "
                    "not seen by later runs (use --since to look again)"
                )
                newest: str | None = None
                with closing(
                    read_ahead(authored_pages(source, cursor, options.until, options.batch_size))
                ) as pages:
                    for page in pages:
                        newest = newest_authored(page, newest)
                        run.page(page, move_cursor=False)
                run.finish(cursor=options.until or newest)
            elif read == "per-patient":
                from rejection_fhir.sync.reading import patient_list, patient_pages

                patients = patient_list(
                    source,
                    state,
                    options.source,
                    patients_file=options.patients_file,
                    patients_group=options.patients_group,
                    patients_from=options.patients_from,
                )
                report.notes.append(
                    f"reading per patient: every response of {len(patients)} patient(s), "
                    "the ledger skips what was handled"
                )
                with closing(
                    read_ahead(patient_pages(source, patients, options.batch_size))
                ) as pages:
                    for page in pages:
                        run.page(page, move_cursor=False)
                run.finish()
            else:
                from rejection_fhir.sync.reading import last_updated_pages

                with closing(
                    read_ahead(
                        last_updated_pages(
                            source, cursor, options.until, options.batch_size, on_total=on_total
                        )
                    )
                ) as pages:
                    for page in pages:
                        run.page(page)
                # A window is done when its search is: its cursor goes to its end, so a
                # rerun of the same window fetches nothing.
                run.finish(cursor=options.until)
            run.preparer.report_ledger_uncertain()  # every unsettled one, on every run
            return report
        finally:
            if run is not None:
                run.close()
            source.close()
            if target is not source:
                target.close()
