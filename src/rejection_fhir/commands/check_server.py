"""``check-server``: what a FHIR server can do for rejection-fhir, read-only.

Reads the CapabilityStatement and ``.well-known/smart-configuration``, then probes what
statements often get wrong, with requests that write nothing:

- searches with ``_summary=count`` (``_count=0`` where that is refused) for the parameters the
  tool relies on: QuestionnaireResponse by ``_lastUpdated``, ``authored`` and ``patient``,
  Questionnaire by ``url``, DocumentReference by ``identifier``.  Each gets a value nothing can
  match; fewer results than without it shows the parameter is honoured, as many shows it is
  ignored, a 4xx that it is refused.  ``Prefer: handling=strict`` asks the server to refuse
  parameters it does not know rather than ignore them.
- a canary parameter no server knows, to tell whether this server ignores unknown parameters;
- a read of one known resource (a Questionnaire, else a QuestionnaireResponse, else one of a
  patient's responses where responses can only be searched per patient) to see whether it
  sends ETag and Last-Modified.  Its body is not kept, printed or logged.

A type whose search without any filter is refused (Oracle: QuestionnaireResponse needs a
patient) has no count to compare with: its probes show only "accepted".

Bulk Data ``$export`` is judged from the CapabilityStatement only: some servers start an export
on any request to the kick-off URL, and this command starts nothing.

:func:`check_server` returns a :class:`ServerReport`: the parsed capabilities, every probe with
its answer, and the :class:`~rejection_fhir.sync.strategy.Strategy` chosen.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rejection_fhir import settings as settings_module
from rejection_fhir.errors import AuthError, ExitCode, FhirServerError, ServerUnavailableError
from rejection_fhir.fhir.capabilities import (
    ServerCapabilities,
    SmartConfiguration,
    note_requirements,
    parse_capability_statement,
    parse_smart_configuration,
)
from rejection_fhir.fhir.client import FhirClient
from rejection_fhir.settings import Settings
from rejection_fhir.sync.strategy import (
    SYNC_RESOURCES,
    Evidence,
    SearchResult,
    Strategy,
    choose_strategy,
    if_match_supported,
    if_unmodified_since_supported,
    search_usable,
)

#: Values no real resource holds: a probe with one must find nothing when the parameter is honoured.
NOTHING_AFTER = "gt2999-12-31"
NO_SUCH_PATIENT = "Patient/rfhir-check-server-no-such-patient"
NO_SUCH_URL = "urn:uuid:4f9b8f0e-0c1d-4c8e-9a57-rfhir-check-server"
NO_SUCH_IDENTIFIER = "urn:rejection-fhir:check-server|no-such-identifier"
CANARY = "rfhir-no-such-parameter"

#: (resource type, parameter, impossible value): the searches the tool relies on.
SEARCH_PROBES: tuple[tuple[str, str, str], ...] = (
    ("QuestionnaireResponse", "_lastUpdated", NOTHING_AFTER),
    ("QuestionnaireResponse", "authored", NOTHING_AFTER),
    ("QuestionnaireResponse", "patient", NO_SUCH_PATIENT),
    ("Questionnaire", "url", NO_SUCH_URL),
    ("DocumentReference", "identifier", NO_SUCH_IDENTIFIER),
)

_STRICT = {"Prefer": "handling=strict"}


@dataclass(frozen=True)
class Probe:
    """One request made, and what the server answered."""

    method: str
    #: Relative to the base, with our own (never a client's) parameter values.
    path: str
    #: HTTP status, or None when no answer came.
    status: int | None
    #: One line: what the answer shows.
    answer: str
    #: Bundle.total of a search, when the server gave one.
    total: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "total": self.total,
            "answer": self.answer,
        }


@dataclass(frozen=True)
class ServerReport:
    server: str
    capabilities: ServerCapabilities
    smart: SmartConfiguration | None
    probes: tuple[Probe, ...]
    evidence: Evidence
    strategy: Strategy
    #: What the server does with a search parameter it does not know: ``refused``,
    #: ``ignored`` or ``match-nothing``; None when the probe could not tell (no data).
    unknown_params: str | None

    @property
    def ok(self) -> bool:
        return self.strategy.can_sync


def _query(params: Mapping[str, str]) -> str:
    return "&".join(f"{k}={v}" for k, v in params.items())


class _Prober:
    def __init__(self, client: FhirClient) -> None:
        self.client = client
        self.probes: list[Probe] = []
        #: How to ask for a count only: ``_summary=count`` unless the server refused it.
        self.count_params: dict[str, str] = {"_summary": "count"}

    def get(
        self,
        path: str,
        params: Mapping[str, str] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int | None, dict[str, Any] | None, Mapping[str, str], str]:
        """GET; (status, body, headers, error text).  Never raises for an answer."""
        try:
            response = self.client.request(
                "GET", path, params=dict(params or {}), headers=headers, outcome_ok=True
            )
        except AuthError as error:
            return error.status, None, {}, "refused: not authorised (401/403)"
        except ServerUnavailableError as error:
            return error.status, None, {}, f"no usable answer ({error.message})"
        except FhirServerError as error:
            return error.status, None, {}, f"refused ({error.status or 'no status'})"
        if response.status >= 400:
            return response.status, None, response.headers, f"refused ({response.status})"
        return response.status, response.body, response.headers, ""

    def count(self, resource_type: str, params: Mapping[str, str]) -> tuple[Probe, int | None]:
        """A count-only search; falls back from ``_summary=count`` to ``_count=0`` once."""
        query = {**params, **self.count_params}
        status, body, _, error = self.get(resource_type, query, headers=_STRICT)
        if error and status == 400 and "_summary" in self.count_params and not params:
            self.probes.append(
                Probe(
                    "GET", f"{resource_type}?{_query(query)}", status, f"{error}: trying _count=0"
                )
            )
            fallback = {"_count": "0"}
            retry = self.get(resource_type, fallback, headers=_STRICT)
            if not retry[3]:
                self.count_params, query = fallback, fallback
                status, body, _, error = retry
            else:
                # Refused either way: the search itself is refused (e.g. it needs a patient),
                # not _summary=count, which stays.
                query, status = fallback, retry[0]
                error = f"{retry[3]}: a search with no filter is refused here"
        path = f"{resource_type}?{_query(query)}"
        if error:
            return Probe("GET", path, status, error), None
        total = body.get("total") if isinstance(body, Mapping) else None
        if not isinstance(total, int) or isinstance(total, bool):
            return Probe("GET", path, status, "answered, without a total"), None
        return Probe("GET", path, status, f"answered: {total} found", total), total


def _judge(filtered: int | None, baseline: int | None, status: int | None) -> SearchResult:
    if status is None:
        return SearchResult.NOT_PROBED
    if 400 <= status < 500 and status not in (401, 403):
        return SearchResult.REFUSED
    if filtered is None or not 200 <= status < 300:
        return SearchResult.NOT_PROBED
    if baseline is None:  # no count without the parameter to compare with
        return SearchResult.ACCEPTED
    if baseline == 0:
        return SearchResult.ACCEPTED
    return SearchResult.WORKS if filtered < baseline else SearchResult.IGNORED


_UNKNOWN = {
    "refused": "unknown parameters are refused",
    "ignored": "unknown parameters are IGNORED (as many results as without)",
    "match-nothing": "unknown parameters match nothing, so fewer results prove nothing here",
}

_MEANING = {
    SearchResult.WORKS: "honoured (fewer results than without it)",
    SearchResult.IGNORED: "IGNORED (as many results as without it)",
    SearchResult.REFUSED: "refused",
    SearchResult.ACCEPTED: "accepted; nothing here shows it is honoured",
    SearchResult.NOT_PROBED: "no conclusion",
}


def probe_server(client: FhirClient) -> ServerReport:
    """Everything ``check-server`` reports, from requests that write nothing."""
    statement = client.capabilities()
    client.check_fhir_version()
    caps = parse_capability_statement(statement)
    prober = _Prober(client)
    prober.probes.append(
        Probe(
            "GET",
            "metadata",
            200,
            f"CapabilityStatement: {caps.software or 'software not named'}, FHIR {caps.fhir_version}, "
            f"{len(caps.resources)} resource types",
        )
    )

    smart: SmartConfiguration | None = None
    status, body, _, error = prober.get(".well-known/smart-configuration")
    if not error and isinstance(body, Mapping):
        smart = parse_smart_configuration(body)
        prober.probes.append(
            Probe(
                "GET",
                ".well-known/smart-configuration",
                status,
                "SMART configuration: grants "
                + (", ".join(smart.grant_types) or "not listed")
                + "; client auth "
                + (", ".join(smart.auth_methods) or "not listed"),
            )
        )
    else:
        prober.probes.append(
            Probe("GET", ".well-known/smart-configuration", status, error or "not JSON")
        )

    baselines: dict[str, int | None] = {}
    for resource_type, _, _ in SEARCH_PROBES:
        if resource_type not in baselines:
            probe, baselines[resource_type] = prober.count(resource_type, {})
            prober.probes.append(probe)

    # First the canary, where there is data to compare with (an empty type tells nothing):
    # how this server treats a parameter it does not know decides what the probes can show.
    canary_type = next((t for t, n in baselines.items() if n), "QuestionnaireResponse")
    probe, total = prober.count(canary_type, {CANARY: "1"})
    canary = _judge(total, baselines.get(canary_type), probe.status)
    unknown = {
        SearchResult.REFUSED: "refused",
        SearchResult.IGNORED: "ignored",
        SearchResult.WORKS: "match-nothing",
    }.get(canary)
    prober.probes.append(
        Probe(
            probe.method,
            probe.path,
            probe.status,
            probe.answer + (f": {_UNKNOWN[unknown]}" if unknown else ""),
            total,
        )
    )

    searches: dict[str, SearchResult] = {}
    for resource_type, param, value in SEARCH_PROBES:
        probe, total = prober.count(resource_type, {param: value})
        result = _judge(total, baselines[resource_type], probe.status)
        if result is SearchResult.WORKS and unknown == "match-nothing":
            # Fewer results prove nothing here: an unknown parameter gives none too.
            result = SearchResult.ACCEPTED
        searches[f"{resource_type}:{param}"] = result
        prober.probes.append(
            Probe(
                probe.method, probe.path, probe.status, f"{probe.answer}: {_MEANING[result]}", total
            )
        )

    etag: bool | None = None
    last_modified: bool | None = None
    listings: list[tuple[str, dict[str, str]]] = [
        ("Questionnaire", {}),
        ("QuestionnaireResponse", {}),
        ("Patient", {}),
    ]
    while listings:
        resource_type, filters = listings.pop(0)
        listing = {**filters, "_count": "1", "_elements": "id"}
        status, body, _, error = prober.get(resource_type, listing)
        entries = body.get("entry") if isinstance(body, Mapping) else None
        found = [
            e["resource"]["id"]
            for e in entries or []
            if isinstance(e, Mapping)
            and isinstance(e.get("resource"), Mapping)
            and isinstance(e["resource"].get("id"), str)
        ]
        prober.probes.append(
            Probe(
                "GET",
                f"{resource_type}?{_query(listing)}",
                status,
                error or (f"one to read: {found[0]}" if found else "none to read"),
            )
        )
        if not found:
            continue
        if resource_type == "Patient":
            # Servers that search responses only per patient (Oracle): one patient's response.
            listings.append(("QuestionnaireResponse", {"patient": f"Patient/{found[0]}"}))
            continue
        path = f"{resource_type}/{found[0]}"
        status, _, headers, error = prober.get(path)
        if error:
            prober.probes.append(Probe("GET", path, status, error))
            continue
        lowered = {k.lower() for k in headers}
        etag, last_modified = "etag" in lowered, "last-modified" in lowered
        prober.probes.append(
            Probe(
                "GET",
                path,
                status,
                "read: "
                + ("ETag sent" if etag else "no ETag")
                + ", "
                + ("Last-Modified sent" if last_modified else "no Last-Modified"),
            )
        )
        break
    if etag is None:
        prober.probes.append(
            Probe("-", "[type]/[id]", None, "no read: no Questionnaire or response found to read")
        )

    exports = caps.has_export()
    prober.probes.append(
        Probe(
            "-",
            "$export",
            None,
            "not requested (a request could start an export); the statement "
            + (f"offers it at {', '.join(exports)} level" if exports else "does not offer it"),
        )
    )

    evidence = Evidence(searches=searches, etag_on_read=etag, last_modified_on_read=last_modified)
    return ServerReport(
        server=client.base_url,
        capabilities=caps,
        smart=smart,
        probes=tuple(prober.probes),
        evidence=evidence,
        strategy=choose_strategy(caps, evidence),
        unknown_params=unknown,
    )


def check_server(settings: Settings, *, server: str | None = None) -> ServerReport:
    """Probe the configured server (or ``server``) read-only and choose the strategy."""
    with settings_module.make_client(settings, server=server) as client:
        return probe_server(client)


# ---------------------------------------------------------------------------------- output

WRITE_TYPES = ("Questionnaire", "CodeSystem", "ValueSet", "QuestionnaireResponse", *SYNC_RESOURCES)


def capabilities_json(report: ServerReport) -> dict[str, Any]:
    caps, evidence = report.capabilities, report.evidence
    note = caps.resource("DocumentReference")
    needs = note_requirements(caps)

    def search(resource_type: str, param: str) -> dict[str, Any]:
        seen = evidence.searches.get(f"{resource_type}:{param}", SearchResult.NOT_PROBED)
        return {
            "declared": caps.searchable(resource_type, param),
            "probe": seen.value,
            "usable": search_usable(caps, evidence, resource_type, param),
        }

    smart = report.smart
    return {
        "publishQuestionnaires": caps.can("Questionnaire", "create"),
        "findResponses": {
            "_lastUpdated": search("QuestionnaireResponse", "_lastUpdated"),
            "authored": search("QuestionnaireResponse", "authored"),
            "patient": search("QuestionnaireResponse", "patient"),
            "export": list(caps.has_export()),
        },
        "otherSearches": {
            "Questionnaire?url": search("Questionnaire", "url"),
            "DocumentReference?identifier": search("DocumentReference", "identifier"),
        },
        "writeModes": {
            "transaction": "transaction" in caps.system_interactions,
            "batch": "batch" in caps.system_interactions,
            "conditionalCreate": bool(note and note.conditional_create),
            "conditionalUpdate": bool(note and note.conditional_update),
            "ifMatch": if_match_supported(caps, evidence),
            "ifUnmodifiedSince": if_unmodified_since_supported(caps),
            "updateCreate": bool(note and note.update_create),
        },
        "writable": {t: sorted(caps.writable(t)) for t in WRITE_TYPES if caps.writable(t)},
        "note": {
            "requiresEncounter": needs.encounter,
            "contentTypes": None if needs.content_types is None else list(needs.content_types),
        },
        "observationCategories": (
            None
            if caps.observation_categories() is None
            else list(caps.observation_categories() or ())
        ),
        "auth": {
            "services": list(caps.security_services),
            "tokenUrl": (smart.token_endpoint if smart else None) or caps.token_url,
            "smartConfiguration": smart is not None,
            "backendServices": smart.backend_services if smart else None,
            "grantTypes": list(smart.grant_types) if smart else [],
            "clientAuthMethods": list(smart.auth_methods) if smart else [],
        },
        "unknownSearchParameters": report.unknown_params,
        "readSendsETag": evidence.etag_on_read,
        "readSendsLastModified": evidence.last_modified_on_read,
    }


def report_json(report: ServerReport) -> dict[str, Any]:
    """The stable JSON form (``schemas/check-server.schema.json``)."""
    caps = report.capabilities
    return {
        "server": report.server,
        "software": caps.software or None,
        "publisher": caps.publisher or None,
        "fhirVersion": caps.fhir_version,
        "capabilities": capabilities_json(report),
        "strategy": report.strategy.to_json(),
        "probes": [p.to_json() for p in report.probes],
        "ok": report.ok,
        "exitCode": int(ExitCode.OK if report.ok else ExitCode.SERVER_CANNOT),
    }


def _yes(value: bool | None, yes: str = "yes", no: str = "no") -> str:
    return "unknown" if value is None else yes if value else no


def report_text(report: ServerReport) -> str:
    """What an integration engineer pastes into a ticket."""
    data = capabilities_json(report)
    caps, strategy = report.capabilities, report.strategy
    lines = [
        f"rejection-fhir check-server {report.server}",
        f"server: {caps.software or 'software not named'}"
        + (f" ({caps.publisher})" if caps.publisher else "")
        + f", FHIR {caps.fhir_version}",
        "",
        "What the server offers this tool",
    ]

    def row(label: str, value: str) -> None:
        lines.append(f"  {label:<26}{value}")

    row("publish Questionnaires", _yes(data["publishQuestionnaires"]))
    find = data["findResponses"]
    for param, label in (
        ("_lastUpdated", "responses by _lastUpdated"),
        ("authored", "responses by authored"),
        ("patient", "responses per patient"),
    ):
        seen = find[param]
        row(
            label,
            f"{_yes(seen['usable'])} (statement: {_yes(seen['declared'], 'listed', 'not listed')}; "
            f"probe: {seen['probe']})",
        )
    row("Bulk Data $export", ", ".join(find["export"]) or "no")
    modes = data["writeModes"]
    row(
        "write modes",
        ", ".join(
            f"{name} {_yes(modes[key])}"
            for key, name in (
                ("transaction", "transaction"),
                ("batch", "batch"),
                ("conditionalCreate", "conditional create"),
                ("conditionalUpdate", "conditional update"),
                ("ifMatch", "If-Match"),
                ("ifUnmodifiedSince", "If-Unmodified-Since"),
                ("updateCreate", "update-as-create"),
            )
        ),
    )
    writable = data["writable"]
    row(
        "writable",
        "; ".join(f"{t} ({', '.join(i)})" for t, i in writable.items()) or "nothing",
    )
    note_needs = data["note"]
    row(
        "note needs an Encounter",
        _yes(note_needs["requiresEncounter"], "yes (context.encounter)", "no"),
    )
    row(
        "note content types",
        ", ".join(note_needs["contentTypes"])
        if note_needs["contentTypes"] is not None
        else "not stated",
    )
    cats = data["observationCategories"]
    row(
        "Observation categories",
        "not restricted by the statement" if cats is None else ", ".join(cats) or "none",
    )
    auth = data["auth"]
    auth_text = ", ".join(auth["services"]) or "none stated"
    if report.smart is not None:
        auth_text += "; SMART Backend Services " + _yes(auth["backendServices"])
        if auth["tokenUrl"]:
            auth_text += f" (token: {auth['tokenUrl']})"
    elif auth["tokenUrl"]:
        auth_text += f" (token: {auth['tokenUrl']})"
    row("auth", auth_text)
    row(
        "unknown search params",
        _UNKNOWN.get(report.unknown_params or "", "not shown (no data to compare)"),
    )

    lines += ["", "Strategy"]
    row("publish", strategy.publish.value)
    row("read responses", strategy.read.value)
    write = strategy.write.value
    if strategy.max_conditional_entries is not None:
        write += f", at most {strategy.max_conditional_entries} entries per transaction"
    row("write", write)
    row("version check", strategy.version_check.value)
    row("writes", ", ".join(strategy.writable) or "nothing")
    if strategy.degradations:
        lines += ["", "Cannot do, and what happens instead"]
        lines += [f"  - {d.message}" for d in strategy.degradations]

    lines += ["", "Probes (nothing was written)"]
    for probe in report.probes:
        status = "-" if probe.status is None else str(probe.status)
        lines.append(f"  {probe.method:<4} {probe.path}")
        lines.append(f"       -> {status} {probe.answer}")
    lines += [
        "",
        (
            "verdict: OK, sync can do its job here (exit 0)"
            if report.ok
            else f"verdict: NOT OK, sync cannot do its job here (exit {int(ExitCode.SERVER_CANNOT)})"
        ),
    ]
    return "\n".join(lines) + "\n"
