"""Bulk backfill: QuestionnaireResponses from a FHIR Bulk Data ``$export``, streamed.

A clinic that syncs years of responses would page through a search for hours; an export
lets the server write them out in the background.  The steps (Bulk Data Access IG 2.0):

1. kick-off: ``GET [base]/$export?_type=QuestionnaireResponse&_since=...`` (or
   ``Patient/$export``, ``Group/[id]/$export``: see below) with ``Prefer: respond-async``;
   the server answers 202 and a ``Content-Location``;
2. poll that status URL until it answers 200 with the manifest (202 meanwhile, with
   ``X-Progress`` and ``Retry-After``);
3. download each output file and read it one NDJSON line at a time, so memory stays flat
   however large the export is;
4. ``DELETE`` the status URL, so the server can drop the files.

The sync feeds the responses to the same per-batch pipeline as a search
(:mod:`rejection_fhir.sync.run`).  An export is not sorted by ``_lastUpdated``, so the
cursor moves once, to the manifest's ``transactionTime``, after every batch committed.

**The level** (:func:`choose_export_level`) follows the source's CapabilityStatement
(:meth:`~rejection_fhir.fhir.capabilities.ServerCapabilities.has_export`): with a Group
(``--patients-group ID``) the export is ``Group/[id]/$export``, the Group's patients only;
without one, ``[base]/$export`` where the server offers it, else ``Patient/$export`` (every
patient's compartment).  A server that offers the export only per Group (Oracle Health,
Epic) needs the Group: without one the sync stops before reading anything, with a
:class:`~rejection_fhir.errors.ConfigError` (exit 4) saying to give ``--patients-group`` or to
read per patient instead.  A statement that says nothing of ``$export`` leaves it to the
server (the system level, or the Group when one is given).  Every level gets the same
``_type``, ``_since`` and ``_typeFilter``.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from rejection_fhir.errors import ConfigError, FhirServerError, ServerUnavailableError
from rejection_fhir.fhir.capabilities import ServerCapabilities, parse_capability_statement
from rejection_fhir.fhir.client import FhirClient, parse_retry_after
from rejection_fhir.fhir.json import JsonDict
from rejection_fhir.sync.strategy import per_patient_readable

log = logging.getLogger("rejection_fhir.sync.bulk")

NDJSON = "application/fhir+ndjson"


def _json_loads() -> Callable[[bytes], Any]:
    try:
        import orjson
    except ModuleNotFoundError:  # pragma: no cover - orjson is optional
        import json

        return json.loads
    return orjson.loads


_loads = _json_loads()

#: Longest wait between two polls of a running export.
MAX_POLL_INTERVAL = 30.0

#: The Bulk Data ``_since`` is exclusive and the sync's cursor inclusive (``ge``): start
#: this much earlier, and the ledger turns the overlap into no-ops.
SINCE_OVERLAP = timedelta(seconds=1)


@dataclass(frozen=True)
class Manifest:
    """The finished export: when it was taken, and where its files are."""

    transaction_time: str
    #: URLs of the NDJSON files holding QuestionnaireResponses.
    outputs: tuple[str, ...]
    #: URLs of NDJSON files of OperationOutcomes: what the server could not export.
    errors: tuple[str, ...]
    requires_access_token: bool


@dataclass(frozen=True)
class ExportLevel:
    """Where an export is asked for: ``system``, ``Patient`` or ``Group`` (with its id)."""

    level: str = "system"
    group: str | None = None

    @property
    def path(self) -> str:
        if self.level == "Group":
            return f"Group/{quote(self.group or '', safe='')}/$export"
        if self.level == "Patient":
            return "Patient/$export"
        return "$export"

    @property
    def shown(self) -> str:
        return f"Group/{self.group}" if self.level == "Group" else self.level


def missing_group_error(caps: ServerCapabilities) -> ConfigError:
    """A server that exports only a Group, and no Group given: what to do instead."""
    instead = (
        ", or read per patient without --bulk: --patients FILE (one Patient id per line) "
        "or --patients-from ledger (the patients synced before)"
        if per_patient_readable(caps)
        else ""
    )
    return ConfigError(
        "this server offers a Bulk Data $export only for a Group of patients "
        "(Group/[id]/$export), and no Group was given",
        hint="give --patients-group GROUP_ID (the Group of the clinic's patients)" + instead,
    )


def choose_export_level(caps: ServerCapabilities, group: str | None) -> ExportLevel:
    """The export to ask for, from the levels the statement offers (see the module
    docstring); raises :class:`ConfigError` when none of them fits."""
    offered = caps.has_export()
    if group is not None:
        if not offered or "Group" in offered:
            return ExportLevel("Group", group)
        raise ConfigError(
            f"this server offers a Bulk Data $export at the {', '.join(offered)} level, not "
            f"for a Group, so --patients-group {group} cannot be exported",
            hint="drop --patients-group to export every patient's responses"
            + (
                ", or drop --bulk to read the Group's patients one by one"
                if per_patient_readable(caps)
                else ""
            ),
        )
    if not offered or "system" in offered:
        return ExportLevel("system")
    if "Patient" in offered:
        return ExportLevel("Patient")
    raise missing_group_error(caps)


def export_level(client: FhirClient, group: str | None) -> ExportLevel:
    """:func:`choose_export_level` for the client's server (its statement, cached)."""
    return choose_export_level(parse_capability_statement(client.capabilities()), group)


def export_since(cursor: str) -> str:
    """The ``_since`` for a sync cursor: a little earlier (see :data:`SINCE_OVERLAP`)."""
    try:
        instant = datetime.fromisoformat(cursor)
    except ValueError:
        return cursor  # the server will say what it makes of it
    if instant.tzinfo is None:
        return cursor
    return (instant - SINCE_OVERLAP).isoformat(timespec="milliseconds")


def kick_off(
    client: FhirClient,
    since: str | None,
    until: str | None = None,
    level: ExportLevel | None = None,
) -> str:
    """Start an export of QuestionnaireResponses at ``level``; return its status URL.

    ``until`` (a time window's end, exclusive) becomes a ``_typeFilter``; a server that
    ignores it exports more, which the sync then leaves to the next window.
    """
    level = level or ExportLevel()
    params = {"_type": "QuestionnaireResponse", "_outputFormat": NDJSON}
    if since:
        params["_since"] = export_since(since)
    if until:
        params["_typeFilter"] = f"QuestionnaireResponse?_lastUpdated=lt{until}"
    try:
        response = client.request(
            "GET", level.path, params=params, headers={"Prefer": "respond-async"}
        )
    except FhirServerError as exc:
        if exc.status in (400, 404, 405, 501):
            raise FhirServerError(
                f"{client.base_url} did not accept a Bulk Data export of QuestionnaireResponses "
                f"at {level.shown} ({exc.message.splitlines()[0]})",
                status=exc.status,
                outcome=exc.outcome,
                hint=f"the server may not support {level.path} (see check-server); "
                "sync without --bulk",
            ) from None
        raise
    location = response.headers.get("Content-Location")
    if response.status != 202 or not location:
        raise FhirServerError(
            f"GET {level.path} answered {response.status}"
            + ("" if location else " without a Content-Location")
            + "; a Bulk Data server answers 202 and the URL to poll",
            status=response.status,
            hint="check that the server implements the FHIR Bulk Data Access IG",
        )
    return location


def wait_for_export(
    client: FhirClient,
    status_url: str,
    *,
    timeout: float = 3600.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], float] = time.time,
) -> Manifest:
    """Poll ``status_url`` until the export is complete; return its manifest.

    Between polls the wait doubles from 0.5 s up to :data:`MAX_POLL_INTERVAL`.  A
    ``Retry-After`` on a 202 shortens that wait but never lengthens it: the IG lets a
    client poll with its own backoff, and servers send a fixed hint (HAPI says 120 s for
    an export that takes two).  A 429's ``Retry-After`` is obeyed by the client itself.
    """
    deadline = clock() + timeout
    delay = 0.5
    while True:
        response = client.get_url(status_url)
        if response.status == 200:
            return _manifest(response.body, status_url)
        progress = response.headers.get("X-Progress")
        if progress:
            log.info("export in progress: %s", progress[:200])
        wait = delay
        hinted = parse_retry_after(response.headers.get("Retry-After"), now=wall_clock())
        if hinted is not None:
            wait = min(wait, hinted)
        if clock() + wait > deadline:
            raise ServerUnavailableError(
                f"the server's export of QuestionnaireResponses did not finish within "
                f"{timeout:g} s" + (f" (last progress: {progress[:200]})" if progress else ""),
                hint="try again later, or raise the limit (SyncOptions.bulk_timeout)",
            )
        sleep(wait)
        delay = min(delay * 2, MAX_POLL_INTERVAL)


def _manifest(body: JsonDict | None, status_url: str) -> Manifest:
    if not isinstance(body, dict) or not isinstance(body.get("transactionTime"), str):
        raise FhirServerError(
            "the finished export's manifest has no transactionTime",
            hint="check that the server implements the FHIR Bulk Data Access IG",
        )

    def urls(key: str, wanted: str) -> tuple[str, ...]:
        found = []
        for entry in body.get(key) or []:
            if isinstance(entry, dict) and entry.get("type") == wanted:
                url = entry.get("url")
                if isinstance(url, str) and url:
                    found.append(url)
        return tuple(found)

    return Manifest(
        transaction_time=body["transactionTime"],
        outputs=urls("output", "QuestionnaireResponse"),
        errors=urls("error", "OperationOutcome"),
        requires_access_token=body.get("requiresAccessToken") is not False,
    )


def _same_origin(url: str, base: str) -> bool:
    def origin(u: str) -> tuple[str, str, int]:
        parts = urlsplit(u)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return parts.scheme.lower(), (parts.hostname or "").lower(), port

    return origin(url) == origin(base)


def _shown(url: str) -> str:
    """An output URL for messages: scheme, host and path; signed queries stay out."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def iter_ndjson(
    client: FhirClient,
    url: str,
    *,
    requires_access_token: bool = True,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[JsonDict]:
    """The resources of one NDJSON output file, read from the socket a line at a time.

    Credentials go only to the server's own origin; a file elsewhere is fetched without
    them, and only when the manifest says it needs none.
    """
    own = _same_origin(url, client.base_url)
    if not own and requires_access_token:
        raise FhirServerError(
            f"the export's file {_shown(url)} is not on {client.base_url} but needs the "
            "access token; refusing to send credentials there",
            hint="the server's idea of its own address differs from the URL configured here",
        )
    # FhirClient has no streaming call; a download on the server's origin reuses its
    # session (authentication, TLS trust), one elsewhere gets a bare session.
    session = client._session if own else requests.Session()
    rng = random.Random()
    attempt = 0
    while True:
        attempt += 1
        failure = ""
        try:
            raw = session.get(
                url,
                headers={"Accept": NDJSON},
                stream=True,
                timeout=(client.timeouts.connect, client.timeouts.read),
                verify=client._verify,
            )
        except requests.exceptions.RequestException as exc:
            failure = type(exc).__name__
            raw = None
        if raw is not None and raw.status_code == 200:
            break
        status = raw.status_code if raw is not None else None
        retry_after = (
            parse_retry_after(raw.headers.get("Retry-After"), now=time.time())
            if raw is not None
            else None
        )
        if raw is not None:
            raw.close()
            failure = f"{status}"
        if (status is not None and status not in client.retry.statuses) or (
            attempt > client.retry.retries
        ):
            error = ServerUnavailableError if status is None or status >= 500 else FhirServerError
            raise error(
                f"GET {_shown(url)} (an export file) failed: {failure}",
                status=status,
                hint="run the sync again; what was written is in the ledger",
            )
        sleep(retry_after if retry_after is not None else client.retry.backoff(attempt, rng))

    with contextlib.closing(raw):
        number = 0
        try:
            for line in raw.iter_lines(chunk_size=1 << 16):
                number += 1
                if not line.strip():
                    continue
                try:
                    resource = _loads(line)
                except ValueError:
                    raise FhirServerError(
                        f"{_shown(url)}: line {number} of the export is not valid JSON",
                        hint="the export file may be cut off; run the sync again",
                    ) from None
                if isinstance(resource, dict):
                    yield resource
        except requests.exceptions.RequestException as exc:
            raise ServerUnavailableError(
                f"GET {_shown(url)} (an export file) broke off after line {number} "
                f"({type(exc).__name__})",
                hint="run the sync again; what was written is in the ledger",
            ) from None


class BulkExport:
    """A finished export whose responses can be read once, file by file."""

    def __init__(self, client: FhirClient, manifest: Manifest) -> None:
        self.client = client
        self.manifest = manifest

    @property
    def transaction_time(self) -> str:
        return self.manifest.transaction_time

    def responses(self) -> Iterator[JsonDict]:
        for url in self.manifest.outputs:
            for resource in iter_ndjson(
                self.client, url, requires_access_token=self.manifest.requires_access_token
            ):
                if resource.get("resourceType") == "QuestionnaireResponse":
                    yield resource

    def problems(self) -> list[str]:
        """What the server could not export: issue codes and locations, no diagnostics."""
        found: list[str] = []
        for url in self.manifest.errors:
            for outcome in iter_ndjson(
                self.client, url, requires_access_token=self.manifest.requires_access_token
            ):
                for issue in outcome.get("issue") or []:
                    if isinstance(issue, dict):
                        where = issue.get("expression") or issue.get("location") or []
                        found.append(
                            f"{issue.get('severity', '?')} {issue.get('code', '?')}"
                            + (f" at {', '.join(map(str, where))}" if where else "")
                        )
        return found


@contextlib.contextmanager
def export_responses(
    client: FhirClient,
    since: str | None,
    *,
    until: str | None = None,
    group: str | None = None,
    timeout: float = 3600.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[BulkExport]:
    """Run an export of the QuestionnaireResponses changed since ``since`` (all if None),
    of ``group``'s patients when given, at the level the server offers
    (:func:`export_level`: raises ConfigError before anything is requested when none fits).

    On leaving, the export is deleted on the server (its files too), also after an error.
    """
    level = export_level(client, group)
    log.info("export of QuestionnaireResponses at %s level", level.shown)
    status_url = kick_off(client, since, until, level)
    try:
        manifest = wait_for_export(client, status_url, timeout=timeout, sleep=sleep, clock=clock)
        log.info(
            "export ready: %d file(s) of QuestionnaireResponses as of %s",
            len(manifest.outputs),
            manifest.transaction_time,
        )
        yield BulkExport(client, manifest)
    finally:
        try:
            if _same_origin(status_url, client.base_url):  # credentials stay home
                client.request("DELETE", status_url)
        except FhirServerError as exc:
            log.info("could not delete the export on the server: %s", exc.message.splitlines()[0])
