"""Writing one batch of prepared responses, as the target's write mode does.

The committing half of :mod:`rejection_fhir.sync.run`: one transaction (or what the
write mode makes of it) for the batch; on a refusal, one response at a time to find the
culprit; a note superseded meanwhile (409/412 on its If-Match) re-planned on the note as
it is now, once.  May run on a commit thread: it touches neither the run's report nor
the state, it returns what it did (:class:`Committed`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from rejection_fhir.ehr.entries import WritePlan
from rejection_fhir.ehr.writeback import rebased, version_checked
from rejection_fhir.errors import (
    AuthError,
    FhirServerError,
    RejectionFhirError,
    ServerUnavailableError,
)
from rejection_fhir.fhir.client import FhirClient
from rejection_fhir.sync.executors import WriteExecutor
from rejection_fhir.sync.prepare import Prepared
from rejection_fhir.sync.state import LedgerEntry

JsonDict = dict[str, Any]


@dataclass
class Committed:
    """What one batch's commit did; applied to the report and state in page order."""

    ledger: list[LedgerEntry] = field(default_factory=list)
    resources: int = 0
    #: Responses the server refused: (the response, the server's message).
    refused: list[tuple[Prepared, str]] = field(default_factory=list)
    #: Responses recorded as uncertain (ledger-only: an answer lost), with what is unknown.
    uncertain: list[tuple[Prepared, str]] = field(default_factory=list)
    #: Raised once what is above is recorded (single-request modes stop part-way).
    error: RejectionFhirError | None = None


def transaction_bundle(plans: Iterable[WritePlan]) -> tuple[JsonDict, dict[str, int]]:
    """One transaction for several responses' plans, and each fullUrl's entry position.

    The tool's Device, which every plan names, is sent once.
    """
    entries: list[JsonDict] = []
    position: dict[str, int] = {}
    for plan in plans:
        for entry in plan.entries:
            if entry["fullUrl"] in position:
                continue
            position[entry["fullUrl"]] = len(entries)
            entries.append(entry)
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}, position


class Committer:
    """Commits batches with the run's executor on the target."""

    def __init__(self, executor: WriteExecutor, target: FhirClient, source: str) -> None:
        self.executor = executor
        self.target = target
        #: The source server's base, as the ledger names it.
        self.source = source

    def commit(self, batch: Sequence[Prepared]) -> Committed:
        """One transaction for the batch; on refusal, one per response to find the culprit."""
        try:
            return self._commit_rebasing(batch)
        except RejectionFhirError as exc:
            if len(batch) == 1 or not refused(exc):
                raise
        done = Committed()
        for prepared in batch:
            try:
                one = self._commit_rebasing([prepared])
            except FhirServerError as exc:
                if not refused(exc):
                    raise
                done.refused.append((prepared, str(exc)))
                continue
            done.ledger.extend(one.ledger)
            done.resources += one.resources
        return done

    def _commit_rebasing(self, batch: Sequence[Prepared]) -> Committed:
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

    def _rebased(self, prepared: Prepared) -> Prepared:
        current: dict[str, JsonDict] = {}
        for reference in version_checked(prepared.plan):
            rtype, rid = reference.split("/", 1)
            current[reference] = self.target.read(rtype, rid)
        return replace(prepared, plan=rebased(prepared.plan, current))

    def _commit(self, batch: Sequence[Prepared]) -> Committed:
        """Write the batch with the run's executor.  Bundle modes raise on failure (a
        replay is a no-op); single-request modes report what they did before a failure,
        which is recorded before the failure stops the run."""
        done = Committed()
        remaining = list(batch)
        rebased_ids: set[str] = set()
        while remaining:
            executed = self.executor.execute([p.plan for p in remaining])
            for prepared, result in zip(remaining, executed.results, strict=False):
                # A rejected response still gets its safety Flag written (scoring.safety):
                # recorded as rejected, with its findings, once that write committed.
                rejection = prepared.rejection
                findings: list[dict[str, Any]] = [] if rejection is None else rejection.findings
                outcome = "written" if rejection is None else "rejected"
                if result.uncertain:
                    findings = [
                        *findings,
                        {"severity": "warning", "code": "uncertain", "message": result.uncertain},
                    ]
                    outcome = "uncertain"
                    done.uncertain.append((prepared, result.uncertain))
                done.ledger.append(
                    LedgerEntry(
                        self.source,
                        prepared.ref.id,
                        prepared.ref.version,
                        outcome,
                        prepared.questionnaire,
                        result.refs,
                        findings,
                    )
                )
                done.resources += len(result.refs)
            error = executed.error
            if error is None:
                break
            culprit = remaining[len(executed.results)]
            rest = remaining[len(executed.results) + 1 :]
            if (
                isinstance(error, FhirServerError)
                and error.status in (409, 412)
                and version_checked(culprit.plan)
                and culprit.ref.id not in rebased_ids
            ):
                rebased_ids.add(culprit.ref.id)
                remaining = [self._rebased(culprit), *rest]
            elif refused(error):
                done.refused.append((culprit, str(error)))
                remaining = rest
            else:
                done.error = error
                break
        return done


def refused(exc: BaseException) -> bool:
    """The server refused this content (a 4xx): other responses may still go through, so
    the batch is retried one response at a time.  Not when the server is unavailable,
    overloaded or refuses our credentials: every response would fail alike, so the run
    stops and says why (exit 6 or 9) with the cursor before the batch."""
    return (
        isinstance(exc, FhirServerError)
        and not isinstance(exc, ServerUnavailableError | AuthError)
        and (exc.status or 0) < 500
    )
