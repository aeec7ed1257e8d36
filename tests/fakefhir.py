"""One in-memory FHIR R4 server for the unit tests, answering through ``responses``.

Unit tests open no socket, yet the sync, the report and the write executors need a server
that behaves like one: it keeps what is written (with ids, ``meta.versionId`` and
``meta.lastUpdated``), so a rerun meets its earlier writes, a conditional create finds what
an earlier one made and a stale ``If-Match`` is refused.  It implements only what the unit
tests use:

- ``GET metadata``, ``[type]/[id]`` (read), ``[type]/[id]/_history/[vid]`` (vread),
  ``[type]/[id]/_history``;
- search on ``[type]`` with ``_lastUpdated``/``authored`` (``ge``/``gt``/``le``/``lt``/``eq``),
  tokens (``identifier``, ``_tag``, ``category``, ``type``, ``status``), references
  (``subject``, ``patient``), ``url``/``version``, ``_sort=_lastUpdated`` and ``_count``
  paging through HAPI-style ``[base]?_getpages=`` next links, ``_summary=count`` and
  ``_elements``.  Pages are not a snapshot:
  each next page continues after the last one served (keyset paging), so a resource
  changed during the paging shows again later, as on servers without cached searches.
  An unknown parameter is refused (400), as a strict server does, so a test never passes
  on a filter the fake ignored; a test can make it know fewer, ignore unknown ones or
  answer them with nothing, refuse some, or refuse unfiltered searches, as vendors do;
- ``POST [type]`` with ``If-None-Exist``, ``PUT [type]/[id]`` (create-on-update, ``If-Match``
  answered 409 when stale, as HAPI does), conditional ``PUT [type]?[query]``;
- ``POST [base]`` transaction (atomic: one refused entry rolls all back) and batch bundles
  (entry by entry), with conditional entries and ``urn:uuid`` references resolved to the
  ids given;
- errors as OperationOutcomes;
- anything else a test needs (an operation such as ``$export``, a file) through
  :meth:`FakeFhir.route`.

Faults are hooks, not subclasses: :meth:`FakeFhir.fail` answers matching requests with a
status or raises an exception (optionally only after the write was committed: an answer
lost on the way back), :meth:`FakeFhir.fail_entries` refuses bundle entries one by one,
and :attr:`FakeFhir.on_arrival`/:attr:`FakeFhir.on_commit` let a test hold or release
concurrent requests.  Every request is kept in :attr:`FakeFhir.requests`, every bundle
posted in :attr:`FakeFhir.posted` and every committed one in :attr:`FakeFhir.committed`.
"""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import json
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import requests
import responses
from requests.structures import CaseInsensitiveDict

BASE = "http://127.0.0.1:9999/fhir"
FHIR_JSON = {"Content-Type": "application/fhir+json"}
STATEMENT = {"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1"}
#: Parameters that steer a search rather than filter it.
CONTROL = {"_count", "_sort", "_total", "_format", "_elements", "_summary"}
DATES = {"_lastUpdated": ("meta", "lastUpdated"), "authored": ("authored",)}
TOKENS = {"identifier", "_tag", "category", "type", "status", "code"}
REFERENCES = {"subject", "patient"}
STRINGS = {"url", "version", "_id"}

JsonDict = dict[str, Any]
Answer = tuple[int, dict[str, str], str]


@dataclass(frozen=True)
class Seen:
    """A request as the server received it; ``path`` is relative to the base
    (``""`` for the base itself), ``body`` the parsed JSON (``None`` without one)."""

    method: str
    url: str
    path: str
    params: dict[str, list[str]]
    headers: Mapping[str, str]
    body: Any

    @property
    def resource_type(self) -> str:
        return self.path.split("/")[0]

    def mentions(self, text: str) -> bool:
        return self.body is not None and text in json.dumps(self.body)


@dataclass
class Fault:
    when: Callable[[Seen], bool]
    status: int | None = None
    error: BaseException | None = None
    times: int | None = None  # None: every matching request
    after_commit: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    diagnostics: str = "refused by the test server"


class Refused(Exception):
    """A write the server refuses: the status and the OperationOutcome's issue."""

    def __init__(self, status: int, code: str, diagnostics: str) -> None:
        super().__init__(diagnostics)
        self.status, self.code, self.diagnostics = status, code, diagnostics


def outcome(code: str, diagnostics: str) -> JsonDict:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": diagnostics}],
    }


def request_to(method: str, resource_type: str | None = None) -> Callable[[Seen], bool]:
    """A fault's ``when``: requests of ``method`` on ``resource_type`` (the base if None)."""

    def when(seen: Seen) -> bool:
        return seen.method == method and seen.resource_type == (resource_type or "")

    return when


def _instant(value: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


class FakeFhir:
    """An in-memory FHIR R4 server registered on ``rsps`` for everything under ``base``."""

    def __init__(
        self,
        rsps: responses.RequestsMock,
        base: str = BASE,
        *,
        page_size: int | None = None,
        start: str = "2026-12-01T00:00:00+00:00",
    ) -> None:
        self.rsps = rsps
        self.base = base.rstrip("/")
        #: What ``GET metadata`` answers; tests replace it to play another server.
        self.statement: JsonDict = copy.deepcopy(STATEMENT)
        #: The largest page served whatever ``_count`` asks (None: ``_count`` or 100).
        self.page_size = page_size
        #: A full page always links to a next one, as servers paging by cursor do (the
        #: next may then be empty, or hold what changed meanwhile); else only when more match.
        self.next_when_full = False
        #: The search parameters it knows ("Type:name"; None: every one the fake implements)
        #: and what it does with others: "refuse" (400, as asked by ``Prefer:
        #: handling=strict``), "ignore" (as if absent) or "match-nothing".
        self.known_params: set[str] | None = None
        self.unknown_params = "refuse"
        #: Parameters it refuses though it implements them ("Type:name").
        self.refused_params: set[str] = set()
        #: Types it searches only with a filter (Oracle's QuestionnaireResponse).
        self.needs_filter: set[str] = set()
        #: Whether it answers ``_summary=count`` (else 400).
        self.summary_count = True
        #: The version headers a read carries.
        self.read_headers: set[str] = {"ETag", "Last-Modified"}
        self.requests: list[Seen] = []
        self.posted: list[JsonDict] = []  # every bundle posted to the base
        self.committed: list[JsonDict] = []  # the bundles that were applied
        self.searches: list[tuple[str, dict[str, list[str]]]] = []  # first pages only
        self.pages: list[tuple[str, int]] = []  # (type, page number) of every page served
        self.on_arrival: Callable[[Seen], None] = lambda seen: None
        self.on_commit: Callable[[Seen], None] = lambda seen: None
        self._faults: list[Fault] = []
        self._routes: dict[tuple[str, str], list[Answer]] = {}
        self._entry_statuses: list[int] = []
        self._versions: dict[tuple[str, str], list[JsonDict]] = {}
        self._order: dict[tuple[str, str], int] = {}  # key -> sequence of its last write
        self._paging: dict[str, tuple[str, dict[str, list[str]], tuple[Any, ...], int]] = {}
        self._seq = itertools.count(1)
        self._ids = itertools.count(1)
        self._tokens = itertools.count(1)
        self._clock = _instant(start)
        self._lock = threading.RLock()
        pattern = re.compile(re.escape(self.base) + r"([/?].*)?$")
        for method in (responses.GET, responses.POST, responses.PUT, responses.DELETE):
            rsps.add_callback(method, pattern, callback=self._answer)

    # ------------------------------------------------------------------ test side

    def add(self, *resources: Mapping[str, Any]) -> None:
        """Put resources on the server as they are (their ids and ``meta`` kept; a new
        version of one already held becomes its current version)."""
        with self._lock:
            for resource in resources:
                held = copy.deepcopy(dict(resource))
                held.setdefault("meta", {})
                key = (held["resourceType"], held["id"])
                versions = self._versions.setdefault(key, [])
                held["meta"].setdefault("versionId", str(len(versions) + 1))
                held["meta"].setdefault("lastUpdated", self._tick())
                versions.append(held)
                self._order[key] = next(self._seq)

    def get(self, resource_type: str, resource_id: str) -> JsonDict | None:
        """The current version of a resource, or None."""
        versions = self._versions.get((resource_type, resource_id))
        return copy.deepcopy(versions[-1]) if versions else None

    def all(self, resource_type: str) -> list[JsonDict]:
        """The current versions of every resource of a type, in the order written."""
        keys = sorted(
            (k for k in self._versions if k[0] == resource_type), key=self._order.__getitem__
        )
        return [copy.deepcopy(self._versions[k][-1]) for k in keys]

    def history(self, resource_type: str, resource_id: str) -> list[JsonDict]:
        return copy.deepcopy(self._versions.get((resource_type, resource_id), []))

    def fail(
        self,
        status: int | None = None,
        *,
        error: BaseException | None = None,
        when: Callable[[Seen], bool] | None = None,
        times: int | None = None,
        after_commit: bool = False,
        headers: Mapping[str, str] | None = None,
        diagnostics: str = "refused by the test server",
    ) -> Fault:
        """Answer the requests ``when`` picks (default: any write) with ``status`` and an
        OperationOutcome, or raise ``error``; ``times`` of them (None: all).  With
        ``after_commit`` the write is applied first and only its answer fails."""
        assert (status is None) != (error is None), "a status or an error"
        fault = Fault(
            when or (lambda seen: seen.method in {"POST", "PUT", "DELETE"}),
            status,
            error,
            times,
            after_commit,
            dict(headers or {}),
            diagnostics,
        )
        self._faults.append(fault)
        return fault

    def lose_answers(
        self, times: int | None = 1, when: Callable[[Seen], bool] | None = None
    ) -> Fault:
        """Commit the next ``times`` writes, then drop the connection instead of answering."""
        error = requests.ConnectionError("connection reset after the commit")
        return self.fail(error=error, when=when, times=times, after_commit=True)

    def fail_entries(self, *statuses: int) -> None:
        """Give the next bundle entries these statuses, in order (2xx: apply as usual)."""
        self._entry_statuses.extend(statuses)

    def route(self, method: str, path: str, *answers: Answer) -> None:
        """Serve what the fake does not implement (an operation such as ``$export``, a file)
        at ``path`` (relative to the base, no query): ``answers`` in turn, the last one
        repeating.  Requests there are kept, and faults apply, as for any other."""
        assert answers, "at least one answer"
        self._routes[(method, path)] = list(answers)

    def clear_faults(self) -> None:
        self._faults.clear()
        self._entry_statuses.clear()

    def writes(self, method: str | None = None) -> list[Seen]:
        """The requests that wrote (or tried to), optionally of one method."""
        kinds = {method} if method else {"POST", "PUT", "DELETE"}
        return [s for s in self.requests if s.method in kinds]

    def searched(self, resource_type: str) -> list[dict[str, list[str]]]:
        """The parameters of each search of a type (first pages), in order."""
        return [params for rtype, params in self.searches if rtype == resource_type]

    # ------------------------------------------------------------------ dispatch

    def _answer(self, request: requests.PreparedRequest) -> Answer:
        url = str(request.url)
        parts = urlsplit(url)
        path = parts.path[len(urlsplit(self.base).path) :].strip("/")
        body = json.loads(request.body) if request.body else None
        seen = Seen(
            str(request.method),
            url,
            path,
            parse_qs(parts.query, keep_blank_values=True),
            CaseInsensitiveDict(request.headers),
            body,
        )
        with self._lock:
            self.requests.append(seen)
            if seen.method == "POST" and not path and isinstance(body, dict):
                self.posted.append(body)
        self.on_arrival(seen)
        fault = self._fault(seen, after_commit=False)
        if fault is not None:
            return self._faulted(fault)
        routed = self._routed(seen)
        if routed is not None:
            return routed
        try:
            with self._lock:
                answer = self._dispatch(seen)
        except Refused as refused:
            return refused.status, FHIR_JSON, json.dumps(outcome(refused.code, str(refused)))
        if seen.method != "GET" and answer[0] < 300:
            self.on_commit(seen)
            fault = self._fault(seen, after_commit=True)
            if fault is not None:
                return self._faulted(fault)
        return answer

    def _routed(self, seen: Seen) -> Answer | None:
        with self._lock:
            answers = self._routes.get((seen.method, seen.path))
            if not answers:
                return None
            return answers.pop(0) if len(answers) > 1 else answers[0]

    def _fault(self, seen: Seen, *, after_commit: bool) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.after_commit == after_commit and fault.times != 0 and fault.when(seen):
                    if fault.times is not None:
                        fault.times -= 1
                    return fault
        return None

    def _faulted(self, fault: Fault) -> Answer:
        if fault.error is not None:
            raise fault.error
        assert fault.status is not None
        body = json.dumps(
            outcome("transient" if fault.status >= 500 else "processing", fault.diagnostics)
        )
        return fault.status, {**FHIR_JSON, **fault.headers}, body

    def _dispatch(self, seen: Seen) -> Answer:
        segments = seen.path.split("/") if seen.path else []
        if seen.method == "GET":
            if segments == ["metadata"]:
                return 200, FHIR_JSON, json.dumps(self.statement)
            if not segments and "_getpages" in seen.params:
                return self._next_page(seen.params)
            if len(segments) == 1:
                return self._search(segments[0], seen.params)
            if len(segments) == 2:
                return self._read(self._current(segments[0], segments[1]))
            if len(segments) == 3 and segments[2] == "_history":
                return self._ok(self._history_bundle(segments[0], segments[1]))
            if len(segments) == 4 and segments[2] == "_history":
                versions = self._versions.get((segments[0], segments[1]), [])
                found = [v for v in versions if v["meta"]["versionId"] == segments[3]]
                if not found:
                    raise Refused(404, "not-found", f"{seen.path} is not known")
                return self._ok(found[0])
        if seen.method == "POST" and not segments:
            return self._ok(self._bundle(seen.body))
        if seen.method in {"POST", "PUT"} and segments:
            status, resource = self._interaction(
                seen.method,
                seen.path + (f"?{urlsplit(seen.url).query}" if urlsplit(seen.url).query else ""),
                seen.body,
                if_none_exist=seen.headers.get("If-None-Exist"),
                if_match=seen.headers.get("If-Match"),
            )
            headers = {
                **FHIR_JSON,
                "Location": f"{self.base}/{self._location(resource)}",
                "ETag": f'W/"{resource["meta"]["versionId"]}"',
            }
            if "return=minimal" in seen.headers.get("Prefer", ""):
                return status, headers, ""  # as HAPI: the Location says it all
            return status, headers, json.dumps(resource)
        raise Refused(400, "not-supported", f"{seen.method} {seen.path} is not supported here")

    def _read(self, resource: JsonDict) -> Answer:
        headers = dict(FHIR_JSON)
        if "ETag" in self.read_headers:
            headers["ETag"] = f'W/"{resource["meta"]["versionId"]}"'
        if "Last-Modified" in self.read_headers:
            modified = _instant(resource["meta"]["lastUpdated"])
            headers["Last-Modified"] = modified.strftime("%a, %d %b %Y %H:%M:%S GMT")
        return 200, headers, json.dumps(resource)

    @staticmethod
    def _ok(resource: JsonDict) -> Answer:
        return 200, FHIR_JSON, json.dumps(resource)

    # ------------------------------------------------------------------ reads

    def _current(self, resource_type: str, resource_id: str) -> JsonDict:
        versions = self._versions.get((resource_type, resource_id))
        if not versions:
            raise Refused(404, "not-found", f"{resource_type}/{resource_id} is not known")
        return versions[-1]

    def _history_bundle(self, resource_type: str, resource_id: str) -> JsonDict:
        versions = self._versions.get((resource_type, resource_id))
        if not versions:
            raise Refused(404, "not-found", f"{resource_type}/{resource_id} is not known")
        return {
            "resourceType": "Bundle",
            "type": "history",
            "total": len(versions),
            "entry": [{"resource": v} for v in reversed(versions)],
        }

    def _search(self, resource_type: str, params: dict[str, list[str]]) -> Answer:
        self.searches.append((resource_type, copy.deepcopy(params)))
        return self._page(resource_type, params, (), 1)

    def _next_page(self, params: dict[str, list[str]]) -> Answer:
        token = params["_getpages"][0]
        if token not in self._paging:
            raise Refused(410, "not-found", "this search has expired")
        return self._page(*self._paging[token])

    def _page(
        self, resource_type: str, params: dict[str, list[str]], after: tuple[Any, ...], number: int
    ) -> Answer:
        sort = params.get("_sort", [""])[0]
        if sort not in {"", "_lastUpdated"}:
            raise Refused(400, "not-supported", f"_sort={sort} is not supported here")
        filters, match_nothing = self._filters(resource_type, params)
        if "_summary" in params and not self.summary_count:
            raise Refused(400, "not-supported", "_summary is not supported here")
        found = []
        for key, versions in self._versions.items():
            if match_nothing:
                break
            if key[0] == resource_type and self._matches(versions[-1], filters):
                found.append((self._sort_key(key, versions[-1], sort), versions[-1]))
        found.sort(key=lambda pair: pair[0])
        after_this = [(k, r) for k, r in found if not after or k > after]
        size = int(params.get("_count", ["100"])[0])
        if self.page_size is not None:
            size = min(size, self.page_size)
        chunk = after_this[:size]
        self.pages.append((resource_type, number))
        if params.get("_summary") == ["count"]:
            return self._ok({"resourceType": "Bundle", "type": "searchset", "total": len(found)})
        elements = set(",".join(params.get("_elements", [])).split(",")) - {""}
        if elements:
            keep = elements | {"resourceType", "id", "meta"}
            chunk = [(k, {n: v for n, v in r.items() if n in keep}) for k, r in chunk]
        bundle: JsonDict = {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(found),
            "link": [{"relation": "self", "url": f"{self.base}/{resource_type}"}],
            "entry": [
                {
                    "fullUrl": f"{self.base}/{r['resourceType']}/{r['id']}",
                    "resource": r,
                    "search": {"mode": "match"},
                }
                for _, r in chunk
            ],
        }
        more = len(after_this) > size or (self.next_when_full and len(chunk) == size)
        if size and chunk and more:
            token = f"t{next(self._tokens)}"
            self._paging[token] = (resource_type, params, chunk[-1][0], number + 1)
            query = urlencode(
                {"_getpages": token, "_getpagesoffset": number * size, "_count": size}
            )
            bundle["link"].append({"relation": "next", "url": f"{self.base}?{query}"})
        return self._ok(bundle)

    def _filters(
        self, resource_type: str, params: Mapping[str, list[str]]
    ) -> tuple[dict[str, list[str]], bool]:
        """The filters a search applies, and whether it matches nothing (an unknown
        parameter on a server that answers those with nothing)."""
        filters = {k: v for k, v in params.items() if k not in CONTROL}
        if resource_type in self.needs_filter and not filters:
            raise Refused(400, "not-supported", f"a {resource_type} search needs a filter")
        applied: dict[str, list[str]] = {}
        match_nothing = False
        for name, values in filters.items():
            key = f"{resource_type}:{name}"
            if key in self.refused_params:
                raise Refused(400, "not-supported", f"unknown search parameter {name}")
            implemented = name in DATES or name in TOKENS or name in REFERENCES or name in STRINGS
            if implemented and (self.known_params is None or key in self.known_params):
                applied[name] = values
            elif self.unknown_params == "refuse":
                raise Refused(400, "not-supported", f"unknown search parameter {name}")
            elif self.unknown_params == "match-nothing":
                match_nothing = True
        return applied, match_nothing

    def _sort_key(self, key: tuple[str, str], resource: JsonDict, sort: str) -> tuple[Any, ...]:
        if sort == "_lastUpdated":
            return (_instant(resource["meta"]["lastUpdated"]), key[1])
        return (self._order[key],)

    def _matches(self, resource: JsonDict, filters: Mapping[str, list[str]]) -> bool:
        return all(
            any(self._match(resource, name, v) for v in value.split(","))
            for name, values in filters.items()
            for value in values
        )

    def _match(self, resource: JsonDict, name: str, value: str) -> bool:
        if name in DATES:
            held: Any = resource
            for step in DATES[name]:
                held = held.get(step) if isinstance(held, dict) else None
            if not isinstance(held, str):
                return False
            prefix, bound = (value[:2], value[2:]) if value[:2].isalpha() else ("eq", value)
            left, right = _instant(held), _instant(bound)
            return {
                "ge": left >= right,
                "gt": left > right,
                "le": left <= right,
                "lt": left < right,
                "eq": left == right,
            }[prefix]
        if name in TOKENS:
            system, _, code = value.rpartition("|") if "|" in value else (None, "", value)
            return any(
                (system is None or c.get("system") == system)
                and (c.get("code") == code or c.get("value") == code)
                for c in self._codings(resource, name)
            )
        if name in REFERENCES:
            reference = (resource.get("subject") or resource.get("patient") or {}).get("reference")
            wanted = value if "/" in value else f"Patient/{value}"
            return reference == wanted
        if name in STRINGS:
            return resource.get("id" if name == "_id" else name) == value
        raise Refused(400, "not-supported", f"unknown search parameter {name}")

    @staticmethod
    def _codings(resource: JsonDict, name: str) -> Iterable[Mapping[str, Any]]:
        if name == "identifier":
            return list(resource.get("identifier", []))
        if name == "_tag":
            return list(resource.get("meta", {}).get("tag", []))
        if name == "status":
            return [{"code": resource.get("status")}]
        held = resource.get(name)
        concepts = held if isinstance(held, list) else [held] if held else []
        return [c for concept in concepts for c in concept.get("coding", [])]

    # ------------------------------------------------------------------ writes

    def _tick(self) -> str:
        self._clock += dt.timedelta(seconds=1)
        return self._clock.isoformat(timespec="milliseconds")

    @staticmethod
    def _location(resource: JsonDict) -> str:
        return (
            f"{resource['resourceType']}/{resource['id']}/_history/{resource['meta']['versionId']}"
        )

    def _conditional(self, resource_type: str, query: str) -> str | None:
        """The id one resource matching ``query`` has, None for none; 412 for several."""
        filters = parse_qs(query, keep_blank_values=True)
        found = [
            rid
            for (rtype, rid), versions in self._versions.items()
            if rtype == resource_type and self._matches(versions[-1], filters)
        ]
        if len(found) > 1:
            raise Refused(412, "multiple-matches", f"{resource_type}?{query} matches several")
        return found[0] if found else None

    def _target(self, method: str, url: str, if_none_exist: str | None) -> tuple[str, str, bool]:
        """(type, id, exists) a POST or PUT on ``url`` writes to (or finds)."""
        resource_type, _, query = url.partition("?")
        resource_type, _, rid = resource_type.partition("/")
        if method == "POST":
            found = self._conditional(resource_type, if_none_exist) if if_none_exist else None
            return (
                (resource_type, found, True)
                if found
                else (resource_type, str(next(self._ids)), False)
            )
        if query:
            found = self._conditional(resource_type, query)
            return (
                (resource_type, found, True)
                if found
                else (resource_type, str(next(self._ids)), False)
            )
        return resource_type, rid, (resource_type, rid) in self._versions

    def _interaction(
        self,
        method: str,
        url: str,
        resource: JsonDict | None,
        *,
        if_none_exist: str | None = None,
        if_match: str | None = None,
        target: tuple[str, str, bool] | None = None,
    ) -> tuple[int, JsonDict]:
        """Apply one create or update; (status, the resource as held)."""
        if not isinstance(resource, dict) or "resourceType" not in resource:
            raise Refused(400, "invalid", f"{method} {url} has no resource")
        resource_type, rid, exists = target or self._target(method, url, if_none_exist)
        if resource.get("resourceType") != resource_type:
            raise Refused(400, "invalid", f"{method} {url} carries a {resource['resourceType']}")
        if method == "POST" and exists:
            return 200, self._current(resource_type, rid)
        versions = self._versions.get((resource_type, rid), [])
        if if_match is not None:
            if not versions:
                raise Refused(404, "not-found", f"{resource_type}/{rid} is not known")
            if if_match != f'W/"{versions[-1]["meta"]["versionId"]}"':
                raise Refused(409, "conflict", f"{resource_type}/{rid} has changed ({if_match})")
        held = copy.deepcopy(resource)
        held["id"] = rid
        held["meta"] = {
            **held.get("meta", {}),
            "versionId": str(len(versions) + 1),
            "lastUpdated": self._tick(),
        }
        self._versions.setdefault((resource_type, rid), []).append(held)
        self._order[(resource_type, rid)] = next(self._seq)
        return (200 if versions else 201), held

    def _bundle(self, bundle: Any) -> JsonDict:
        kind = bundle.get("type") if isinstance(bundle, dict) else None
        if kind not in {"transaction", "batch"}:
            raise Refused(400, "invalid", "only transaction and batch bundles are taken")
        entries = bundle.get("entry", [])
        if kind == "batch":
            answers = [self._batch_entry(entry) for entry in entries]
            self.committed.append(bundle)
            return {"resourceType": "Bundle", "type": "batch-response", "entry": answers}
        saved = ({k: list(v) for k, v in self._versions.items()}, dict(self._order))
        try:
            answers = self._transaction(entries)
        except Refused:
            self._versions, self._order = saved
            raise
        self.committed.append(bundle)
        return {"resourceType": "Bundle", "type": "transaction-response", "entry": answers}

    def _entry_status(self) -> int | None:
        status = self._entry_statuses.pop(0) if self._entry_statuses else None
        return status if status is not None and status >= 300 else None

    def _batch_entry(self, entry: JsonDict) -> JsonDict:
        refused = self._entry_status()
        if refused is not None:
            return {
                "response": {
                    "status": str(refused),
                    "outcome": outcome("processing", "entry refused by the test server"),
                }
            }
        try:
            status, held = self._apply(entry, None)
        except Refused as error:
            return {
                "response": {
                    "status": str(error.status),
                    "outcome": outcome(error.code, str(error)),
                }
            }
        return self._entry_answer(status, held)

    def _transaction(self, entries: list[JsonDict]) -> list[JsonDict]:
        # Ids first, so references between entries (urn:uuid fullUrls) can be resolved.
        targets: list[tuple[str, str, bool]] = []
        names: dict[str, str] = {}
        for entry in entries:
            request = entry.get("request", {})
            target = self._target(
                request.get("method", ""), request.get("url", ""), request.get("ifNoneExist")
            )
            targets.append(target)
            if str(entry.get("fullUrl", "")).startswith("urn:"):
                names[entry["fullUrl"]] = f"{target[0]}/{target[1]}"
        answers = []
        for entry, target in zip(entries, targets, strict=True):
            refused = self._entry_status()
            if refused is not None:
                raise Refused(refused, "processing", "entry refused by the test server")
            status, held = self._apply(_resolved(entry, names), target)
            answers.append(self._entry_answer(status, held))
        return answers

    def _apply(self, entry: JsonDict, target: tuple[str, str, bool] | None) -> tuple[int, JsonDict]:
        request = entry.get("request", {})
        method = request.get("method")
        if method not in {"POST", "PUT"}:
            raise Refused(400, "not-supported", f"{method} entries are not supported here")
        return self._interaction(
            method,
            request.get("url", ""),
            entry.get("resource"),
            if_none_exist=request.get("ifNoneExist"),
            if_match=request.get("ifMatch"),
            target=target,
        )

    def _entry_answer(self, status: int, held: JsonDict) -> JsonDict:
        text = {200: "200 OK", 201: "201 Created"}[status]
        return {
            "response": {
                "status": text,
                "location": self._location(held),
                "etag": f'W/"{held["meta"]["versionId"]}"',
                "lastModified": held["meta"]["lastUpdated"],
            }
        }


def _resolved(value: Any, names: Mapping[str, str]) -> Any:
    """``value`` with every ``reference`` to a bundle's ``urn:uuid`` replaced by its id."""
    if isinstance(value, dict):
        out = {k: _resolved(v, names) for k, v in value.items()}
        if isinstance(out.get("reference"), str) and out["reference"] in names:
            out["reference"] = names[out["reference"]]
        return out
    if isinstance(value, list):
        return [_resolved(v, names) for v in value]
    return value
