"""How this run writes to one server: the write mode and its limits, chosen from the
server's CapabilityStatement (:func:`write_setup`) or set by ``write_mode``.

Pure apart from :func:`write_setup`, which asks the client for the statement (fetched once
per client, so once per server for the run).  :mod:`rejection_fhir.sync.executors` sends
the writes the way a :class:`WriteSetup` says.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from rejection_fhir.ehr.note import PLAIN, note_formats
from rejection_fhir.errors import ServerCannotError
from rejection_fhir.fhir.capabilities import note_requirements, parse_capability_statement
from rejection_fhir.fhir.client import FhirClient
from rejection_fhir.sync.concurrency import DEFAULT_IN_FLIGHT
from rejection_fhir.sync.strategy import (
    Strategy,
    VersionCheck,
    WriteMode,
    choose_strategy,
    conditional_entry_limit,
)


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
    #: Content types the server takes for the note (None: not stated), see ehr.note.
    note_types: tuple[str, ...] | None = None
    #: Single-request modes: requests in flight at most (the AIMD window's cap).
    in_flight: int = DEFAULT_IN_FLIGHT
    #: Chunks of one stage (transactions under an entry limit, batches) sent at once.  One
    #: by default: Medplum's router, the server that caps entries, dropped connections and
    #: let transactions time out (60 s) with 4 of its strict transactions at once.
    chunks_in_flight: int = 1


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
            raise ServerCannotError(
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
    note_types = note_requirements(caps).content_types if caps.resources else None
    if note_formats(note_types) == (PLAIN,):
        notes.append("notes as text/plain: the server takes no Markdown or XHTML")
    return WriteSetup(mode, version_check, limit, tuple(notes), strategy, note_types)
