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
  references replaced by what the earlier chunks answered.  A response counts as written
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
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qsl

from rejection_fhir.ehr.writeback import WritePlan
from rejection_fhir.errors import (
    FhirServerError,
    RejectionFhirError,
    ServerUnavailableError,
)
from rejection_fhir.fhir.capabilities import parse_capability_statement
from rejection_fhir.fhir.client import (
    RETRYABLE_STATUSES,
    EntryResult,
    FhirClient,
    _entry_from_response,
)
from rejection_fhir.sync.strategy import (
    Strategy,
    VersionCheck,
    WriteMode,
    choose_strategy,
    conditional_entry_limit,
)

log = logging.getLogger("rejection_fhir.sync")
JsonDict = dict[str, Any]


class ExecMode(StrEnum):
    """``write_mode`` values (besides ``auto``), strongest guarantee first."""

    TRANSACTION = "transaction"
    BATCH = "batch"
    CONDITIONAL = "conditional"
    SEARCH_THEN_CREATE = "search-then-create"
    PUT = "put"
    LEDGER_ONLY = "ledger-only"


_FROM_STRATEGY = {
    WriteMode.TRANSACTION: ExecMode.TRANSACTION,
    WriteMode.BATCH: ExecMode.BATCH,
    WriteMode.CONDITIONAL: ExecMode.CONDITIONAL,
    WriteMode.SEARCH_THEN_CREATE: ExecMode.SEARCH_THEN_CREATE,
    WriteMode.CREATE_WITH_LEDGER: ExecMode.LEDGER_ONLY,
}

#: Times a batch entry refused with a transient status is sent again.
BATCH_ENTRY_RETRIES = 3


@dataclass(frozen=True)
class WriteSetup:
    """How this run writes to one server: the mode, its limits, and what to say once."""

    mode: ExecMode
    version_check: VersionCheck = VersionCheck.IF_MATCH
    #: Entries per transaction/batch holding conditional entries (None: no limit known).
    max_entries: int | None = None
    #: Lines for the run's output, said once per run.
    notes: tuple[str, ...] = ()
    strategy: Strategy | None = None


def write_setup(client: FhirClient, write_mode: str = "auto") -> WriteSetup:
    """The executor setup for ``client``'s server, from its CapabilityStatement (which the
    client fetches once and keeps: one statement per server for the run)."""
    return _setup(client.capabilities(), write_mode)


def _setup(statement: Mapping[str, Any], write_mode: str) -> WriteSetup:
    caps = parse_capability_statement(statement)
    limit = conditional_entry_limit(caps)
    if not caps.resources:
        # A statement that lists no resource says nothing about writes: keep the default,
        # a transaction, as before strategies existed (the server's answers will tell).
        strategy = None
        version_check = VersionCheck.IF_MATCH
        auto = ExecMode.TRANSACTION
    else:
        strategy = choose_strategy(caps)
        version_check = strategy.version_check
        auto = _FROM_STRATEGY.get(strategy.write, ExecMode.TRANSACTION)
        if strategy.write is WriteMode.NONE and write_mode == "auto":
            raise FhirServerError(
                f"{caps.software or 'this server'} does not take DocumentReference creates: "
                "the sync cannot write its notes there",
                hint="run check-server for what the server allows, or set write_mode",
            )
    mode = auto if write_mode == "auto" else ExecMode(write_mode)
    notes: list[str] = []
    if mode is not auto and write_mode != "auto":
        notes.append(f"write mode {mode.value} (set; the server's statement suggests {auto.value})")
    if version_check is VersionCheck.NONE:
        notes.append(
            "no version check: this server offers neither If-Match nor If-Unmodified-Since, "
            "so an earlier note is marked superseded without checking that nobody changed it"
        )
    if limit is not None and mode in (ExecMode.TRANSACTION, ExecMode.BATCH):
        notes.append(f"at most {limit} entries per {mode.value}: the writes go in chunks")
    if mode is ExecMode.LEDGER_ONLY:
        notes.append(
            "ledger-only: plain creates, each sent once; a create whose answer is lost is "
            "recorded as uncertain (settle with sync --reconcile)"
        )
    return WriteSetup(mode, version_check, limit, tuple(notes), strategy)


# ------------------------------------------------------------------------ pure helpers


def client_id(key: str) -> str:
    """A client-assigned id for update-as-create, stable for the entry's conditional key."""
    return "rf-" + hashlib.sha256(key.encode()).hexdigest()[:40]


def entry_key(entry: Mapping[str, Any]) -> str | None:
    """The conditional key of an entry: its If-None-Exist, or its conditional update URL."""
    request = entry["request"]
    if request.get("ifNoneExist"):
        return f"{request['url']}?{request['ifNoneExist']}"
    if request["method"] == "PUT" and "?" in request["url"]:
        return str(request["url"])
    return None


def _mentions(resource: Any, urls: set[str]) -> set[str]:
    text = json.dumps(resource)
    return {url for url in urls if url in text}


def stages(entries: Sequence[JsonDict]) -> list[list[JsonDict]]:
    """Entries in dependency order: each stage references only fullUrls of earlier ones."""
    urls = {e["fullUrl"] for e in entries if e["fullUrl"].startswith("urn:")}
    needs = {id(e): _mentions(e["resource"], urls - {e["fullUrl"]}) for e in entries}
    done: set[str] = set()
    left = list(entries)
    out: list[list[JsonDict]] = []
    while left:
        ready = [e for e in left if needs[id(e)] <= done]
        if not ready:  # a cycle: send the rest together, as a transaction would
            ready = left
        out.append(ready)
        done |= {e["fullUrl"] for e in ready}
        left = [e for e in left if all(e is not r for r in ready)]
    return out


def resolve(
    value: Any, resolved: Mapping[str, str], dropped: AbstractSet[str] = frozenset()
) -> Any:
    """``value`` with each reference to a written ``urn:uuid:`` replaced by ``Type/id``;
    a reference to a dropped one loses its ``reference`` (its display stays)."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key == "reference" and isinstance(item, str):
                if item in resolved:
                    out[key] = resolved[item]
                    continue
                if item in dropped:
                    continue
            out[key] = resolve(item, resolved, dropped)
        return out
    if isinstance(value, list):
        return [resolve(item, resolved, dropped) for item in value]
    return value


def combined(plans: Sequence[WritePlan]) -> list[JsonDict]:
    """The plans' entries with each fullUrl once (the tool's Device is in every plan)."""
    seen: set[str] = set()
    out: list[JsonDict] = []
    for plan in plans:
        for entry in plan.entries:
            if entry["fullUrl"] not in seen:
                seen.add(entry["fullUrl"])
                out.append(entry)
    return out


def _chunks(items: Sequence[JsonDict], size: int | None) -> list[list[JsonDict]]:
    if size is None or size <= 0 or len(items) <= size:
        return [list(items)]
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


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

    @property
    def mode(self) -> ExecMode:
        return self.setup.mode

    def execute(self, plans: Sequence[WritePlan]) -> Executed:
        """Write the plans.  Bundle modes raise on failure (a replay is a no-op); single
        request modes return what was done before a failure and the failure itself."""
        if self.mode in (ExecMode.TRANSACTION, ExecMode.BATCH):
            written = self._bundles(plans)
            return Executed([PlanResult(_refs(plan, written)) for plan in plans])
        done = Executed()
        for plan in plans:
            resolved: dict[str, str] = {}
            try:
                self._singles(plan, resolved)
            except UncertainWrite as exc:
                done.results.append(PlanResult(_refs(plan, resolved), uncertain=exc.message))
                continue
            except RejectionFhirError as exc:
                if self.mode is ExecMode.LEDGER_ONLY and _refs(plan, resolved):
                    # Part of this response's writes exist and plain creates cannot be
                    # repeated: say so rather than write them twice on the next run.
                    done.results.append(
                        PlanResult(
                            _refs(plan, resolved),
                            uncertain=f"written in part before the server refused: {exc}",
                        )
                    )
                    continue
                done.error = exc
                return done
            done.results.append(PlanResult(_refs(plan, resolved)))
        return done

    # -- transaction and batch ------------------------------------------------------

    def _bundles(self, plans: Sequence[WritePlan]) -> dict[str, str]:
        entries = combined(plans)
        limit = self.setup.max_entries
        resolved: dict[str, str] = {}
        if self.mode is ExecMode.TRANSACTION and (limit is None or len(entries) <= limit):
            self._send(entries, resolved)  # one transaction: the server resolves the urns
            return resolved
        for stage in stages(entries):
            for chunk in _chunks(stage, limit):
                self._send([_resolved_entry(e, resolved, self.setup) for e in chunk], resolved)
        return resolved

    def _send(self, entries: list[JsonDict], resolved: dict[str, str]) -> None:
        kind = "transaction" if self.mode is ExecMode.TRANSACTION else "batch"
        pending = list(entries)
        for attempt in range(BATCH_ENTRY_RETRIES + 1):
            bundle = {"resourceType": "Bundle", "type": kind, "entry": pending}
            if self.on_bundle is not None:
                self.on_bundle(bundle)
            if kind == "transaction":
                result = self.client.transaction(bundle, sensitive=True)
            else:
                result = self.client.batch(bundle, sensitive=True)
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
                sent = _resolved_entry(entry, resolved, self.setup, dropped)
                got = self._one(sent)
                if got is not None and got.resource_type and got.id:
                    resolved[entry["fullUrl"]] = f"{got.resource_type}/{got.id}"

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
                return self.client.conditional_create(resource, criteria, sensitive=True)
            return self.client.conditional_update(resource, criteria, sensitive=True)
        if self.mode is ExecMode.PUT:
            return self.client.update({**resource, "id": client_id(key)}, sensitive=True)
        if self.mode is ExecMode.SEARCH_THEN_CREATE:
            return self._search_then_create(
                rtype, resource, criteria, update=request["method"] == "PUT"
            )
        for attempt in range(1, BATCH_ENTRY_RETRIES + 2):
            try:
                return self.client.create(resource, sensitive=True)
            except ServerUnavailableError as exc:
                if _answer_lost(exc):
                    raise UncertainWrite(
                        f"POST {rtype}: the answer was lost after sending "
                        f"({exc.message.splitlines()[0]}); not retried"
                    ) from None
                if attempt > BATCH_ENTRY_RETRIES:
                    raise
                # 429/503/408: the server says it did not take it, so sending it again
                # cannot write it twice; back off first.
                self._sleep(self.client.retry.backoff(attempt, _RNG))
        raise AssertionError("unreachable")  # pragma: no cover

    def _search_then_create(
        self, rtype: str, resource: JsonDict, criteria: str, *, update: bool
    ) -> EntryResult:
        for attempt in range(1, BATCH_ENTRY_RETRIES + 2):
            found = list(self.client.search(rtype, parse_qsl(criteria)))
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
                    return self.client.update({**resource, "id": match["id"]}, sensitive=True)
                return EntryResult(200, resource_type=rtype, id=str(match.get("id")))
            try:
                return self.client.create(resource, sensitive=True)
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
        response = self.client.request(
            "PUT", request["url"], body=resource, headers=headers, idempotent=True, sensitive=True
        )
        return _entry_from_response(response)


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
