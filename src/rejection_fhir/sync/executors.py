"""How the sync's planned writes reach a server: one planner, several executors.

:func:`rejection_fhir.ehr.writeback.plan_writes` plans, per response, transaction entries:
conditional creates (``ifNoneExist``), conditional updates (``PUT Type?identifier=``), the
version-checked update of a superseded note (``PUT DocumentReference/id`` with ``ifMatch``)
and ``urn:uuid:`` fullUrls that later entries (Provenance) reference.  A :class:`WriteExecutor`
sends those entries the way the server allows (:class:`ExecMode`):

- ``transaction``: today's path, one transaction per batch of responses; when the server caps
  the entries of a transaction holding conditional entries (Medplum: 8), the entries go in
  chunks of at most that many, each atomic on its own.  Entries that reference others
  (Provenance) go in a later chunk than what they reference, with the ``urn:uuid:``
  references replaced by what the earlier chunks answered; the chunks of one stage go one
  after another, or ``WriteSetup.chunks_in_flight`` at once.  A response counts as written
  (the ledger) only when every chunk holding its entries committed: :meth:`execute` returns
  only then, and a failure part-way leaves the ledger as it was; the rerun replays the
  committed chunks as no-ops (every entry is conditional).
- ``batch``: the same stages as batches; each entry's status is read; entries refused with
  a transient status (429, 5xx, 409 race) are sent again, others raise (the caller retries
  one response at a time to find the culprit, as for a refused transaction).
- single requests, one per entry, in stage order:
  ``conditional`` (If-None-Exist / ``PUT Type?criteria``), ``search-then-create`` (search by
  our identifier or tag before each create; our run lock keeps our own runs from racing;
  a create whose answer is lost is settled by searching again, never by a blind retry),
  ``put`` (update-as-create with client-assigned ids derived from the same keys; the tool's
  Device is named by display only, as it cannot be found again), and
  ``ledger-only``: a plain POST, once.  If its answer is lost the write is *uncertain*: it
  is not retried, the response is recorded ``uncertain`` in the ledger with what is known,
  and ``sync --reconcile`` settles it later (:mod:`rejection_fhir.sync.reconcile`).

Version checks on the superseded note: ``If-Match`` (the planned ``ifMatch``),
``If-Unmodified-Since`` (the note's ``meta.lastUpdated``) or none.

Single requests keep several responses in flight (:mod:`rejection_fhir.sync.concurrency`):
each response's writes go one after another, up to ``WriteSetup.in_flight`` requests at
once, a window that halves on 429 and grows back on success.  The tool's Device is
written once, by the first response, before the others start (two conditional creates at
once could both create it), and reused for the rest of the run.  Results come back in plan
order and cover a prefix of the plans: the run records a response only when all its writes
committed, and never one after a response that failed.  A response written after the one
that failed is kept for the caller's next :meth:`WriteExecutor.execute` of the rest (sent
again it would be a no-op in the conditional modes, a duplicate in ledger-only).  When the
run must stop there (the server unavailable, credentials refused) in ledger-only mode, the
failed response is recorded *uncertain* ("not written"), so that the responses after it,
already created, are recorded too and never sent twice; ``sync --reconcile`` finds it
absent and the next run writes it.
"""

from __future__ import annotations

import copy
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from email.utils import format_datetime
from functools import partial
from typing import TypeVar
from urllib.parse import parse_qsl

from rejection_fhir.ehr.entries import WritePlan
from rejection_fhir.errors import (
    AuthError,
    FhirServerError,
    RejectionFhirError,
    ServerUnavailableError,
)
from rejection_fhir.fhir.client import (
    RETRYABLE_STATUSES,
    EntryResult,
    FhirClient,
    _entry_from_response,
)
from rejection_fhir.fhir.json import JsonDict
from rejection_fhir.sync.concurrency import AimdWindow
from rejection_fhir.sync.modes import ExecMode, WriteSetup
from rejection_fhir.sync.staging import client_id, combined, entry_key, in_chunks, resolve, stages
from rejection_fhir.sync.strategy import (
    VersionCheck,
)

log = logging.getLogger("rejection_fhir.sync")
T = TypeVar("T")


#: Times a batch entry refused with a transient status is sent again.
BATCH_ENTRY_RETRIES = 3


def _answer_lost(exc: ServerUnavailableError) -> bool:
    """A plain POST failed after it was sent: the server may have applied it.  No status:
    a dropped connection, a timeout, a cut-off answer; 500/502/504: an error or a gateway
    that may stand in front of a commit.  429/503/408 say the server did not take it."""
    return exc.status is None or exc.status in (500, 502, 504)


# ------------------------------------------------------------------------- results


@dataclass
class PlanResult:
    """What was written for one plan (``Type/id`` per written fullUrl, in order)."""

    refs: list[str]
    #: Set when a write's answer was lost in ledger-only mode: what is not known.
    uncertain: str | None = None


@dataclass
class Executed:
    #: One per plan, for ``plans[:len(results)]``.
    results: list[PlanResult] = field(default_factory=list)
    #: Raised after the results are recorded: the run stops at ``plans[len(results)]``.
    error: RejectionFhirError | None = None


class UncertainWrite(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class WriteExecutor:
    """Sends the entries of a batch of plans the way :class:`WriteSetup` says."""

    def __init__(
        self,
        client: FhirClient,
        setup: WriteSetup,
        *,
        on_bundle: Callable[[JsonDict], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.setup = setup
        self.on_bundle = on_bundle
        self._sleep = sleep
        #: Requests in flight in the single-request modes (see concurrency).
        self.window = AimdWindow(setup.in_flight)
        # Single requests are sent by a shallow copy of the client (same session, same
        # credentials) that leaves 429 to the window: it must see every 429 to halve.
        self._writer = copy.copy(client)
        self._writer.retry = replace(client.retry, statuses=client.retry.statuses - {429})
        # Only ids are needed back (the Location): the server need not send the resource.
        self._writer.minimal_answers = True
        self._bundler = copy.copy(client)
        self._bundler.minimal_answers = True
        self._lock = threading.Lock()
        #: The tool's Device as written by this run (fullUrl -> Type/id), reused.
        self._device: dict[str, str] = {}
        #: Plans written after one that failed, for the next execute of the rest.
        self._later: dict[int, tuple[WritePlan, PlanResult]] = {}
        #: The threads that send single requests, shared by the pages in flight (one pool
        #: for the run: as many threads as the window can ever hold).
        self._pool: ThreadPoolExecutor | None = None

    def close(self) -> None:
        """Let the single-request threads finish and end."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def _writers(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.window.cap, thread_name_prefix="rfhir-write")
            return self._pool

    @property
    def mode(self) -> ExecMode:
        return self.setup.mode

    def execute(self, plans: Sequence[WritePlan]) -> Executed:
        """Write the plans.  Bundle modes raise on failure (a replay is a no-op); single
        request modes return what was done before a failure and the failure itself."""
        if self.mode in (ExecMode.TRANSACTION, ExecMode.BATCH):
            written = self._bundles(plans)
            return Executed([PlanResult(_refs(plan, written)) for plan in plans])
        return self._execute_singles(list(plans))

    # -- single requests, several responses in flight ---------------------------------

    def _execute_singles(self, plans: list[WritePlan]) -> Executed:
        stop = threading.Event()

        def attempt(plan: WritePlan) -> _Outcome | None:
            if stop.is_set():
                return None  # not started: an earlier response failed
            outcome = self._attempt(plan)
            if outcome[1] is not None:
                stop.set()
            return outcome

        outcomes: list[_Outcome | None] = []
        rest = plans
        if plans and self.writes_device_first(plans[0]):
            # The first response writes the tool's Device alone; the others reuse it.
            outcomes.append(attempt(plans[0]))
            rest = plans[1:]
        if self.window.cap <= 1 or len(rest) <= 1:
            outcomes.extend(attempt(plan) for plan in rest)
        else:
            # Started in plan order (the pool's queue is FIFO, and a later page's responses
            # queue behind this one's), so the responses not started after a failure are
            # the last ones.
            outcomes.extend(self._writers().map(attempt, rest))
        return self._in_order(plans, outcomes)

    def _in_order(
        self, plans: Sequence[WritePlan], outcomes: Sequence[_Outcome | None]
    ) -> Executed:
        """The results for the prefix of plans that is done; see the module docstring."""
        done = Executed()
        first_error: RejectionFhirError | None = None
        for i, outcome in enumerate(outcomes):
            if outcome is None:
                done.error = done.error or first_error
                break
            result, error = outcome
            if done.error is not None:
                if error is None:
                    self._later[id(plans[i])] = (plans[i], result)
                continue
            if error is None:
                done.results.append(result)
                continue
            first_error = first_error or error
            if (
                self.mode is ExecMode.LEDGER_ONLY
                and _stops_run(error)
                and any(o is not None and o[1] is None for o in outcomes[i + 1 :])
            ):
                done.results.append(
                    PlanResult(
                        result.refs,
                        uncertain=(
                            f"not written ({error.message.splitlines()[0]}); recorded so that "
                            "the responses written after it at the same time are not sent "
                            "twice: sync --reconcile finds it absent and the next run writes it"
                        ),
                    )
                )
                continue
            done.error = error
        return done

    def _attempt(self, plan: WritePlan) -> _Outcome:
        """One response's writes: its result, and the error that stopped them if any."""
        with self._lock:
            kept = self._later.pop(id(plan), None)
            device = dict(self._device)
        if kept is not None and kept[0] is plan:
            return kept[1], None
        resolved: dict[str, str] = device
        try:
            self._singles(plan, resolved)
        except UncertainWrite as exc:
            return PlanResult(_refs(plan, resolved), uncertain=exc.message), None
        except RejectionFhirError as exc:
            if self.mode is ExecMode.LEDGER_ONLY and _refs(plan, resolved):
                # Part of this response's writes exist and plain creates cannot be
                # repeated: say so rather than write them twice on the next run.
                return (
                    PlanResult(
                        _refs(plan, resolved),
                        uncertain=f"written in part before the server refused: {exc}",
                    ),
                    None,
                )
            return PlanResult(_refs(plan, resolved)), exc
        return PlanResult(_refs(plan, resolved)), None

    def writes_device_first(self, plan: WritePlan) -> bool:
        """Whether ``plan`` would create the tool's Device, which later writes then name:
        until that is known, no other write may run beside it (two conditional creates of
        the Device at once could both create it).  Transactions and batches name it in
        every Bundle (the run waits for the first); ledger-only and PUT never write it."""
        return _has_device(plan) and not self._device_known()

    def _device_known(self) -> bool:
        with self._lock:
            return bool(self._device) or self.mode in (ExecMode.LEDGER_ONLY, ExecMode.PUT)

    def _call(self, send: Callable[[], T]) -> T:
        """One request inside the window; a 429 halves the window and is sent again after
        the server's Retry-After (or the client's backoff): the server did not act on it."""
        tries = 0
        while True:
            slot = self.window.acquire()
            try:
                answer = send()
            except FhirServerError as exc:
                if exc.status != 429:
                    self.window.failed(slot)
                    raise
                self.window.throttled(slot)
                tries += 1
                if tries > self.client.retry.retries:
                    raise ServerUnavailableError(
                        f"{exc.message.splitlines()[0]} (gave up after {tries} attempts)",
                        status=429,
                        hint="the server is overloaded; try again later",
                    ) from None
                after = exc.retry_after
                wait = after if after is not None else self.client.retry.backoff(tries, _RNG)
                log.warning(
                    "429 Too Many Requests: %d request(s) in flight allowed now; retry in %.1f s",
                    self.window.limit,
                    wait,
                )
                self._sleep(wait)
                continue
            except BaseException:
                self.window.failed(slot)
                raise
            self.window.succeeded(slot)
            return answer

    # -- transaction and batch ------------------------------------------------------

    def _bundles(self, plans: Sequence[WritePlan]) -> dict[str, str]:
        entries = combined(plans)
        limit = self.setup.max_entries
        resolved: dict[str, str] = {}
        if self.mode is ExecMode.TRANSACTION and (limit is None or len(entries) <= limit):
            self._send(entries, resolved)  # one transaction: the server resolves the urns
            return resolved
        for stage in stages(entries):
            chunks = [
                [_resolved_entry(e, resolved, self.setup) for e in chunk]
                for chunk in in_chunks(stage, limit)
            ]
            if len(chunks) == 1 or self.setup.chunks_in_flight <= 1:
                for chunk in chunks:
                    self._send(chunk, resolved)
                continue
            # A stage's chunks reference only earlier stages: several may go at once.  A failure raises once all have ended; the ledger records nothing, and
            # the rerun replays the committed ones as no-ops (every entry is conditional).
            answers: list[dict[str, str]] = [{} for _ in chunks]
            with ThreadPoolExecutor(
                min(self.setup.chunks_in_flight, len(chunks)), thread_name_prefix="rfhir-chunk"
            ) as pool:
                sent = [pool.submit(self._send, c, a) for c, a in zip(chunks, answers, strict=True)]
                for future in sent:
                    future.result()
            for answer in answers:
                resolved.update(answer)
        return resolved

    def _send(self, entries: list[JsonDict], resolved: dict[str, str]) -> None:
        kind = "transaction" if self.mode is ExecMode.TRANSACTION else "batch"
        pending = list(entries)
        for attempt in range(BATCH_ENTRY_RETRIES + 1):
            bundle = {"resourceType": "Bundle", "type": kind, "entry": pending}
            if self.on_bundle is not None:
                self.on_bundle(bundle)
            if kind == "transaction":
                result = self._bundler.transaction(bundle, sensitive=True)
            else:
                result = self._bundler.batch(bundle, sensitive=True)
            again: list[JsonDict] = []
            failed: list[tuple[JsonDict, EntryResult]] = []
            for sent, got in zip(pending, result.entries, strict=True):
                if got.ok:
                    if got.resource_type and got.id:
                        resolved[sent["fullUrl"]] = f"{got.resource_type}/{got.id}"
                elif got.status in RETRYABLE_STATUSES or (
                    got.status == 409 and not sent["request"].get("ifMatch")
                ):
                    again.append(sent)
                    failed.append((sent, got))
                else:
                    failed.append((sent, got))
            permanent = [(s, g) for s, g in failed if all(s is not a for a in again)]
            if permanent:
                _raise_entries(permanent, len(pending))
            if not again:
                return
            if attempt == BATCH_ENTRY_RETRIES:
                _raise_entries(failed, len(pending), gave_up=True)
            log.warning(
                "batch: %d of %d entries refused for now; sending them again",
                len(again),
                len(pending),
            )
            self._sleep(self.client.retry.backoff(attempt + 1, _RNG))
            pending = again

    # -- single requests ------------------------------------------------------------

    def _singles(self, plan: WritePlan, resolved: dict[str, str]) -> None:
        dropped: set[str] = set()
        for stage in stages(plan.entries):
            for entry in stage:
                if (
                    self.mode in (ExecMode.LEDGER_ONLY, ExecMode.PUT)
                    and entry["resource"].get("resourceType") == "Device"
                ):
                    # Without a conditional create or a search, the tool's Device cannot
                    # be found again: a plain create would add one per response, a PUT
                    # would add a second one next to the Device an earlier mode created
                    # (and make its If-None-Exist ambiguous).  The Provenance names the
                    # tool by display only.
                    dropped.add(entry["fullUrl"])
                    continue
                if entry["fullUrl"] in resolved:
                    continue  # the tool's Device, written by an earlier response
                sent = _resolved_entry(entry, resolved, self.setup, dropped)
                got = self._one(sent)
                if got is not None and got.resource_type and got.id:
                    resolved[entry["fullUrl"]] = f"{got.resource_type}/{got.id}"
                    if entry["resource"].get("resourceType") == "Device":
                        with self._lock:
                            self._device[entry["fullUrl"]] = resolved[entry["fullUrl"]]

    def _one(self, entry: JsonDict) -> EntryResult | None:
        request = entry["request"]
        resource = entry["resource"]
        rtype = resource["resourceType"]
        key = entry_key(entry)
        if request["method"] == "PUT" and key is None:
            return self._update(entry)
        assert key is not None, "plans hold only conditional creates and updates"
        criteria = key.split("?", 1)[1]
        if self.mode is ExecMode.CONDITIONAL:
            if request["method"] == "POST":
                return self._call(
                    lambda: self._writer.conditional_create(resource, criteria, sensitive=True)
                )
            return self._call(
                lambda: self._writer.conditional_update(resource, criteria, sensitive=True)
            )
        if self.mode is ExecMode.PUT:
            return self._call(
                lambda: self._writer.update({**resource, "id": client_id(key)}, sensitive=True)
            )
        if self.mode is ExecMode.SEARCH_THEN_CREATE:
            return self._search_then_create(
                rtype, resource, criteria, update=request["method"] == "PUT"
            )
        for attempt in range(1, BATCH_ENTRY_RETRIES + 2):
            try:
                # A 429 is resent inside the window (_call); a 503 or 408 says the server did
                # not take the create either, so sending it again cannot write it twice.
                return self._call(lambda: self._writer.create(resource, sensitive=True))
            except ServerUnavailableError as exc:
                if _answer_lost(exc):
                    raise UncertainWrite(
                        f"POST {rtype}: the answer was lost after sending "
                        f"({exc.message.splitlines()[0]}); not retried"
                    ) from None
                if attempt > BATCH_ENTRY_RETRIES or exc.status == 429:
                    raise
                self._sleep(self.client.retry.backoff(attempt, _RNG))
        raise AssertionError("unreachable")  # pragma: no cover

    def _search_then_create(
        self, rtype: str, resource: JsonDict, criteria: str, *, update: bool
    ) -> EntryResult:
        for attempt in range(1, BATCH_ENTRY_RETRIES + 2):
            found = self._call(lambda: list(self._writer.search(rtype, parse_qsl(criteria))))
            if len(found) > 1:
                raise FhirServerError(
                    f"{rtype}: {len(found)} resources carry one of our keys; cannot tell "
                    "which is ours",
                    status=412,
                    hint="remove the duplicates on the server, then run again",
                )
            if found:
                match = found[0]
                if update:  # a conditional update: the one match is updated in place
                    body = {**resource, "id": match["id"]}
                    return self._call(partial(self._writer.update, body, sensitive=True))
                return EntryResult(200, resource_type=rtype, id=str(match.get("id")))
            try:
                return self._call(lambda: self._writer.create(resource, sensitive=True))
            except ServerUnavailableError as exc:
                # Refused for now (429, 503) or the answer lost: the create may have landed.
                # Our key tells, so look again before creating again, never blindly.
                log.warning(
                    "POST %s: %s; searching for it before creating again",
                    rtype,
                    "answer lost" if _answer_lost(exc) else f"refused for now ({exc.status})",
                )
                self._sleep(self.client.retry.backoff(attempt, _RNG))
        raise ServerUnavailableError(
            f"POST {rtype}: answers kept getting lost; the next run finds what landed"
        )

    def _update(self, entry: JsonDict) -> EntryResult:
        """The superseded note: ``PUT Type/id`` under the server's version check."""
        request = entry["request"]
        resource = entry["resource"]
        check = self.setup.version_check
        headers: dict[str, str] = {}
        if check is VersionCheck.IF_MATCH and request.get("ifMatch"):
            headers["If-Match"] = request["ifMatch"]
        elif check is VersionCheck.IF_UNMODIFIED_SINCE:
            since = _http_date(resource.get("meta", {}).get("lastUpdated"))
            if since:
                headers["If-Unmodified-Since"] = since
        response = self._call(
            lambda: self._writer.request(
                "PUT",
                request["url"],
                body=resource,
                headers=headers,
                idempotent=True,
                sensitive=True,
            )
        )
        return _entry_from_response(response)


_Outcome = tuple[PlanResult, RejectionFhirError | None]


def _has_device(plan: WritePlan) -> bool:
    return any(e["resource"].get("resourceType") == "Device" for e in plan.entries)


def _stops_run(exc: RejectionFhirError) -> bool:
    """The run stops on this error (as :func:`rejection_fhir.sync.run._refused` decides):
    the server unavailable or overloaded, credentials refused, a 5xx.  A 4xx refusal of
    this content does not: the run goes on with the responses after it."""
    return not (
        isinstance(exc, FhirServerError)
        and not isinstance(exc, ServerUnavailableError | AuthError)
        and (exc.status or 0) < 500
    )


def _http_date(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return format_datetime(datetime.fromisoformat(value), usegmt=True)
    except ValueError:
        return None


def _resolved_entry(
    entry: JsonDict,
    resolved: Mapping[str, str],
    setup: WriteSetup,
    dropped: AbstractSet[str] = frozenset(),
) -> JsonDict:
    """The entry with references to what earlier stages wrote, and its version check as
    the server offers it (an ``ifMatch`` only where If-Match is the check)."""
    out = {**entry, "resource": resolve(entry["resource"], resolved, dropped)}
    request = dict(entry["request"])
    if request.get("ifMatch") and setup.version_check is not VersionCheck.IF_MATCH:
        # Bundle.entry.request has no If-Unmodified-Since; single requests send it.
        del request["ifMatch"]
    out["request"] = request
    return out


def _refs(plan: WritePlan, resolved: Mapping[str, str]) -> list[str]:
    return [resolved[url] for url in plan.written if url in resolved]


def _raise_entries(
    failed: Sequence[tuple[JsonDict, EntryResult]], total: int, *, gave_up: bool = False
) -> None:
    lines = [
        f"{len(failed)} of {total} entries failed"
        + (" after being sent again" if gave_up else "")
        + ":"
    ]
    lines += [f"  {got.describe(withhold_diagnostics=True)}" for _, got in failed]
    first = failed[0][1]
    error = ServerUnavailableError if gave_up else FhirServerError
    raise error("\n".join(lines), status=first.status)


_RNG = random.Random()
