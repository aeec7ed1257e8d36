"""A small FHIR R4 REST client on ``requests``: plain dicts in, plain dicts out.

What it guarantees, so callers (publish, sync, validate) need not:

* Every request has connect and read timeouts, ``Accept: application/fhir+json`` and a
  ``User-Agent: rejection-fhir/<version>``.
* Retries with exponential backoff, jitter and ``Retry-After`` on 408/429/500/502/503/504,
  dropped connections, timeouts and success answers whose JSON is cut off (the answer is
  lost either way), *only* when repeating the request cannot apply it
  twice: GET, PUT, DELETE, conditional create (If-None-Exist) and Bundles whose entries are
  all of those.  Anything else fails fast with :class:`ServerUnavailableError` saying why a
  retry is unsafe.  A connect timeout is retried for every method, because nothing reached
  the server.  A 409 is retried for conditional writes without If-Match (an identical
  write, often our own timed-out attempt, raced them; see ``request(retry_conflict=)``).
* Each failure becomes one exception from :mod:`rejection_fhir.errors` whose text names the
  method, the path (query parameter *names* only: values can identify a patient), the
  status and the OperationOutcome's issues.  Tokens, bodies and query values are never
  logged and never put into exception text.
* Responses are parsed straight to dicts (orjson when installed); no fhir.resources models.

Paths are relative to the base URL: ``client.read("Questionnaire", "abc")`` fetches
``<base>/Questionnaire/abc``.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import Any, Literal
from urllib.parse import urlencode, urlsplit

import requests
from requests.auth import AuthBase
from requests.structures import CaseInsensitiveDict

from rejection_fhir import __version__
from rejection_fhir.errors import (
    AuthError,
    ConfigError,
    FhirServerError,
    InputError,
    ServerUnavailableError,
)
from rejection_fhir.fhir.auth import auth_scheme, redact
from rejection_fhir.fhir.outcome import format_outcome, is_operation_outcome, redact_outcome
from rejection_fhir.fhir.urls import check_base_url
from rejection_fhir.fhir.urls import origin as _origin
from rejection_fhir.fhir.urls import strip_query_values as _strip_query_values

log = logging.getLogger("rejection_fhir.fhir")

FHIR_JSON = "application/fhir+json"
USER_AGENT = f"rejection-fhir/{__version__}"

#: Statuses that mean "try again later"; see :class:`RetryPolicy`.
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

#: A search parameter set: a mapping (a list value repeats the name) or ordered pairs.
SearchParams = Mapping[str, str | int | Sequence[str]] | Sequence[tuple[str, str]]

_RESOURCE_TYPE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_LOCATION = re.compile(
    r"(?:^|/)(?P<type>[A-Z][A-Za-z]{1,63})/(?P<id>[A-Za-z0-9\-.]{1,64})"
    r"(?:/_history/(?P<version>[A-Za-z0-9\-.]{1,64}))?/?$"
)
_ETAG = re.compile(r'^(?:W/)?"?(?P<version>[^"]*)"?$')


def _json_backend() -> tuple[Callable[[bytes], Any], Callable[[Any], bytes]]:
    try:
        import orjson
    except ModuleNotFoundError:  # pragma: no cover - orjson is optional

        def dumps(value: Any) -> bytes:
            return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()

        return json.loads, dumps
    return orjson.loads, orjson.dumps


_loads, _dumps = _json_backend()


# --------------------------------------------------------------------------- value types


@dataclass(frozen=True)
class Timeouts:
    """Seconds to wait for the TCP/TLS connection and then for each read of the answer."""

    connect: float = 10.0
    read: float = 60.0


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try.  ``retries`` counts the attempts after the first one.

    The wait before retry *n* (1-based) is ``base * 2**(n-1)`` capped at ``max_delay``,
    with "equal jitter" (half fixed, half random) so that parallel runs spread out.  A
    ``Retry-After`` from the server replaces that wait.  ``budget`` caps the whole affair:
    a retry whose wait would end more than ``budget`` seconds after the first attempt
    started is not made.
    """

    retries: int = 4
    base: float = 0.5
    max_delay: float = 30.0
    budget: float = 120.0
    statuses: frozenset[int] = RETRYABLE_STATUSES

    def backoff(self, retry: int, rng: random.Random) -> float:
        delay = min(self.max_delay, self.base * (2 ** (retry - 1)))
        return float(delay / 2 + rng.uniform(0, delay / 2))


@dataclass(frozen=True)
class FhirResponse:
    """A successful (2xx) answer: status, headers and the parsed JSON body, if any."""

    status: int
    headers: Mapping[str, str]
    body: dict[str, Any] | None


@dataclass(frozen=True)
class EntryResult:
    """What the server did with one write: a create/update, or one Bundle entry.

    ``resource_type``/``id``/``version_id`` come from the ``Location`` (falling back to the
    ETag and the returned resource), so they are set even under ``Prefer: return=minimal``.
    ``full_url``/``request_method``/``request_url`` echo the *request* entry (Bundles
    only), so a publish step can map its ``urn:uuid:`` fullUrls to server ids.
    """

    status: int
    location: str | None = None
    resource_type: str | None = None
    id: str | None = None
    version_id: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    outcome: dict[str, Any] | None = None
    resource: dict[str, Any] | None = None
    full_url: str | None = None
    request_method: str | None = None
    request_url: str | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def created(self) -> bool:
        """True for 201: a conditional create that found a match answers 200 instead."""
        return self.status == 201

    def describe(self, *, withhold_diagnostics: bool = False) -> str:
        """One line (plus outcome issues) for reports and error messages."""
        what = f"{self.request_method} {_strip_query_values(self.request_url)}"
        if not self.request_method:
            what = self.full_url or "entry"
        text = f"{what} -> {self.status}"
        if self.location:
            text += f" ({_strip_query_values(self.location)})"
        if self.outcome:
            issues = format_outcome(self.outcome, withhold_diagnostics=withhold_diagnostics)
            if issues:
                text += "\n" + issues
        return text


@dataclass(frozen=True)
class TransactionResult:
    """A transaction-response or batch-response, entry by entry in request order."""

    bundle: dict[str, Any]
    entries: tuple[EntryResult, ...] = field(default_factory=tuple)

    def __iter__(self) -> Iterator[EntryResult]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> EntryResult:
        return self.entries[index]

    @property
    def failed(self) -> tuple[EntryResult, ...]:
        """Entries that did not succeed (only a batch can have these)."""
        return tuple(entry for entry in self.entries if not entry.ok)

    @property
    def ok(self) -> bool:
        return not self.failed

    def raise_for_failures(self, *, withhold_diagnostics: bool = False) -> None:
        """Raise one :class:`FhirServerError` listing every failed entry, if any."""
        failed = [(index, entry) for index, entry in enumerate(self.entries) if not entry.ok]
        if not failed:
            return
        lines = [f"{len(failed)} of {len(self.entries)} batch entries failed:"]
        for index, entry in failed:
            lines.append(
                f"  entry {index}: {entry.describe(withhold_diagnostics=withhold_diagnostics)}"
            )
        first = failed[0][1]
        outcome = first.outcome
        if outcome is not None and withhold_diagnostics:
            outcome = redact_outcome(outcome)
        raise FhirServerError("\n".join(lines), status=first.status, outcome=outcome)


# --------------------------------------------------------------------------- pure helpers


def is_retry_safe(bundle: Mapping[str, Any]) -> bool:
    """True if posting *bundle* twice cannot apply anything twice.

    Safe entries: GET/HEAD (reads), PUT (update or conditional update), DELETE and POST
    with ``ifNoneExist`` (conditional create).  A plain POST, PATCH or a POSTed operation
    is not.  An empty Bundle is trivially safe.
    """
    entries = bundle.get("entry") or []
    for entry in entries:
        request = entry.get("request") if isinstance(entry, Mapping) else None
        if not isinstance(request, Mapping):
            return False
        method = str(request.get("method", "")).upper()
        if method in ("GET", "HEAD", "PUT", "DELETE"):
            continue
        if method == "POST" and request.get("ifNoneExist"):
            continue
        return False
    return True


def _version_checked(bundle: Mapping[str, Any]) -> bool:
    """True if any entry is conditional on a version (If-Match)."""
    return any(
        isinstance(entry, Mapping)
        and isinstance(entry.get("request"), Mapping)
        and entry["request"].get("ifMatch")
        for entry in bundle.get("entry") or []
    )


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date)."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():  # str.isdigit() also passes "²" and "٣"
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP-date is GMT by definition
        return None
    return max(0.0, when.timestamp() - now)


def parse_status(value: object) -> int:
    """``"201 Created"`` -> 201; anything unreadable -> 0."""
    match = re.match(r"\s*(\d{3})", str(value or ""))
    return int(match.group(1)) if match else 0


def parse_location(location: str | None) -> tuple[str | None, str | None, str | None]:
    """``.../Questionnaire/12/_history/3`` -> ("Questionnaire", "12", "3")."""
    if not location:
        return None, None, None
    try:
        path = urlsplit(location).path if "://" in location else location.split("?", 1)[0]
    except ValueError:  # a malformed [IPv6] host
        return None, None, None
    match = _LOCATION.search(path)
    if not match:
        return None, None, None
    return match.group("type"), match.group("id"), match.group("version")


def version_from_etag(etag: str | None) -> str | None:
    """``W/"3"`` -> ``"3"``."""
    if not etag:
        return None
    match = _ETAG.match(etag.strip())
    version = match.group("version") if match else None
    return version or None


def _params_list(params: SearchParams | None) -> list[tuple[str, str]]:
    if params is None:
        return []
    if isinstance(params, Mapping):
        pairs: list[tuple[str, str]] = []
        for name, value in params.items():
            if isinstance(value, str | int):
                pairs.append((name, str(value)))
            else:
                pairs.extend((name, str(item)) for item in value)
        return pairs
    return [(str(name), str(value)) for name, value in params]


def _check_type(resource_type: str) -> str:
    if not _RESOURCE_TYPE.match(resource_type or ""):
        raise ValueError(f"not a FHIR resource type: {resource_type!r}")
    return resource_type


def _check_id(value: str, what: str = "id") -> str:
    # Also keeps "../" and "?" out of the path we build.
    if not _ID.match(value or ""):
        raise ValueError(f"not a valid FHIR {what}: {value!r}")
    return value


def _resource_path(resource: Mapping[str, Any], *, need_id: bool) -> str:
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str):
        raise ValueError("resource has no resourceType")
    _check_type(resource_type)
    if not need_id:
        return resource_type
    resource_id = resource.get("id")
    if not isinstance(resource_id, str):
        raise ValueError(f"{resource_type} has no id; use create() or conditional_create()")
    return f"{resource_type}/{_check_id(resource_id)}"


def _condition(criteria: str | SearchParams) -> str:
    """Search criteria for If-None-Exist / conditional update, URL-encoded by requests."""
    if isinstance(criteria, str):
        return criteria.lstrip("?")
    return urlencode(_params_list(criteria))


# --------------------------------------------------------------------------- the client


class FhirClient:
    """One FHIR server, one keep-alive ``requests.Session``.

    Build it through :func:`rejection_fhir.settings.make_client`, which applies the user's
    configuration; constructing it directly is for tests and tools.

    ``sleep``, ``clock`` (monotonic seconds), ``wall_clock`` (epoch seconds, for
    ``Retry-After`` dates) and ``rng`` are injectable so tests neither wait nor guess.
    """

    def __init__(
        self,
        base_url: str,
        *,
        auth: AuthBase | None = None,
        timeouts: Timeouts = Timeouts(),
        retry: RetryPolicy = RetryPolicy(),
        verify: bool | str = True,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.base_url = check_base_url(base_url)
        self.timeouts = timeouts
        self.retry = retry
        self._auth = auth
        self._verify = verify
        self._sleep = sleep
        self._clock = clock
        self._wall_clock = wall_clock
        self._rng = rng or random.Random()
        self._capabilities: dict[str, Any] | None = None
        self._session = session or requests.Session()
        self._session.headers.update({"Accept": FHIR_JSON, "User-Agent": USER_AGENT})
        if auth is not None:
            self._session.auth = auth
        # Retrying is ours to decide (idempotency, Retry-After); urllib3 must not also do it.
        adapter = requests.adapters.HTTPAdapter(max_retries=0)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)

    def __repr__(self) -> str:
        return f"FhirClient({self.base_url!r}, auth={auth_scheme(self._auth)})"

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> FhirClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ reads

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        """``GET [type]/[id]``; raises :class:`FhirServerError` (status 404/410) if absent."""
        path = f"{_check_type(resource_type)}/{_check_id(resource_id)}"
        return self._require_body(self.request("GET", path), "GET", path)

    def vread(self, resource_type: str, resource_id: str, version_id: str) -> dict[str, Any]:
        """``GET [type]/[id]/_history/[vid]``."""
        path = (
            f"{_check_type(resource_type)}/{_check_id(resource_id)}"
            f"/_history/{_check_id(version_id, 'version id')}"
        )
        return self._require_body(self.request("GET", path), "GET", path)

    def search_bundles(
        self, resource_type: str | None, params: SearchParams | None = None
    ) -> Iterator[dict[str, Any]]:
        """Each searchset Bundle page, following ``link[relation=next]`` lazily.

        ``resource_type=None`` searches the whole system (``GET [base]?params``).  Next
        links must stay on the server's origin: credentials are never sent elsewhere.
        """
        path = _check_type(resource_type) if resource_type else ""
        response = self.request("GET", path, params=params)
        seen: set[str] = set()
        while True:
            bundle = self._require_body(response, "GET", path)
            if bundle.get("resourceType") != "Bundle":
                raise FhirServerError(
                    f"GET {path or '[base]'} answered a {_kind(bundle.get('resourceType'))}, "
                    "not a searchset Bundle",
                    status=response.status,
                )
            yield bundle
            next_url = _next_link(bundle)
            if next_url is None:
                return
            if next_url in seen:
                raise FhirServerError(
                    f"GET {path or '[base]'}: the server's next link repeats a page already "
                    "read; stopping instead of looping forever",
                    status=response.status,
                )
            seen.add(next_url)
            response = self.get_url(next_url)

    def search(
        self, resource_type: str | None, params: SearchParams | None = None
    ) -> Iterator[dict[str, Any]]:
        """The matching resources across all pages, lazily (one page request at a time).

        Only ``search.mode = match`` entries (or entries without a mode) are yielded;
        ``_include``d resources and informational OperationOutcomes are skipped.
        """
        for bundle in self.search_bundles(resource_type, params):
            for entry in _listed(bundle.get("entry")):
                if not isinstance(entry, Mapping):
                    continue
                search = entry.get("search")
                mode = search.get("mode", "match") if isinstance(search, Mapping) else "match"
                resource = entry.get("resource")
                if mode == "match" and isinstance(resource, dict):
                    yield resource

    def get_url(self, url: str, *, params: SearchParams | None = None) -> FhirResponse:
        """GET an absolute URL (next links, bulk status) or a path relative to the base.

        An absolute URL must be on the base URL's origin; otherwise :class:`FhirServerError`
        explains that the server advertises a different address (credentials stay home).
        """
        if "://" in url:
            try:
                origin = _origin(url)
            except ValueError:  # urlsplit refuses e.g. a malformed [IPv6] host
                raise FhirServerError(
                    "the server pointed to a link that is not a valid URL; cannot follow it",
                    hint="the server's paging (next) links are broken; report it to its "
                    "administrator",
                ) from None
            if origin != _origin(self.base_url):
                raise FhirServerError(
                    f"the server pointed to {_strip_query_values(url)}, which is not on "
                    f"{_strip_query_values(self.base_url)}; refusing to send credentials there",
                    hint="the server's own idea of its base address differs from the URL "
                    "configured here (HAPI: hapi.fhir.server_address); make them match",
                )
            return self.request("GET", url, params=params)
        return self.request("GET", url.lstrip("/"), params=params)

    def capabilities(self, *, refresh: bool = False) -> dict[str, Any]:
        """The CapabilityStatement from ``GET metadata`` (cached per client)."""
        if self._capabilities is None or refresh:
            statement = self._require_body(self.request("GET", "metadata"), "GET", "metadata")
            if statement.get("resourceType") != "CapabilityStatement":
                raise FhirServerError(
                    f"GET metadata answered a {_kind(statement.get('resourceType'))}, not a "
                    "CapabilityStatement",
                    hint="check that the server URL is the FHIR base (it usually ends in /fhir)",
                )
            self._capabilities = statement
        return self._capabilities

    def check_fhir_version(self) -> str:
        """Require FHIR R4 (4.0.x) and return the server's ``fhirVersion``."""
        version = self.capabilities().get("fhirVersion")
        if not isinstance(version, str) or not version:
            raise ConfigError(
                f"the server at {self.base_url} does not say which FHIR version it speaks "
                "(its CapabilityStatement has no fhirVersion); rejection-fhir needs R4 4.0.x",
                hint="point the server URL at an R4 endpoint",
            )
        if not version.startswith("4.0."):
            shown = version if re.fullmatch(r"[0-9A-Za-z.\-]{1,20}", version) else "?"
            raise ConfigError(
                f"server speaks FHIR {shown}; rejection-fhir needs R4 4.0.x",
                hint="point the server URL at the server's R4 endpoint "
                "(multi-version servers often publish one base URL per version)",
            )
        return version

    # ------------------------------------------------------------------ writes

    def create(self, resource: Mapping[str, Any], *, sensitive: bool = False) -> EntryResult:
        """``POST [type]``.  Not retried on failure: a retry could create a duplicate.

        ``sensitive=True`` when the resource carries clients' answers: the server's
        diagnostics are then withheld from the error message.
        """
        path = _resource_path(resource, need_id=False)
        response = self.request("POST", path, body=resource, idempotent=False, sensitive=sensitive)
        return _entry_from_response(response)

    def conditional_create(
        self,
        resource: Mapping[str, Any],
        if_none_exist: str | SearchParams,
        *,
        sensitive: bool = False,
    ) -> EntryResult:
        """``POST [type]`` with ``If-None-Exist``: 201 if created, 200 if one already matched.

        ``if_none_exist`` is a query string (``"url=...&version=1.0.0"``) or search params.
        Several matches give 412, raised with a hint to remove the duplicates.
        """
        path = _resource_path(resource, need_id=False)
        response = self.request(
            "POST",
            path,
            body=resource,
            headers={"If-None-Exist": _condition(if_none_exist)},
            idempotent=True,
            sensitive=sensitive,
            retry_conflict=True,
        )
        return _entry_from_response(response)

    def update(
        self,
        resource: Mapping[str, Any],
        *,
        if_match: str | None = None,
        sensitive: bool = False,
    ) -> EntryResult:
        """``PUT [type]/[id]``; ``if_match`` is a version id or ETag for optimistic locking."""
        path = _resource_path(resource, need_id=True)
        headers = {}
        if if_match is not None:
            headers["If-Match"] = if_match if '"' in if_match else f'W/"{if_match}"'
        response = self.request(
            "PUT", path, body=resource, headers=headers, idempotent=True, sensitive=sensitive
        )
        return _entry_from_response(response)

    def conditional_update(
        self,
        resource: Mapping[str, Any],
        criteria: str | SearchParams,
        *,
        sensitive: bool = False,
    ) -> EntryResult:
        """``PUT [type]?criteria``: update the one match, or create when none matches."""
        resource_type = _resource_path(resource, need_id=False)
        path = f"{resource_type}?{_condition(criteria)}"
        response = self.request(
            "PUT", path, body=resource, idempotent=True, sensitive=sensitive, retry_conflict=True
        )
        return _entry_from_response(response)

    def delete(self, resource_type: str, resource_id: str) -> EntryResult:
        """``DELETE [type]/[id]`` (idempotent: deleting twice is not an error on R4 servers)."""
        path = f"{_check_type(resource_type)}/{_check_id(resource_id)}"
        return _entry_from_response(self.request("DELETE", path))

    def transaction(
        self, bundle: Mapping[str, Any], *, sensitive: bool = False
    ) -> TransactionResult:
        """POST a ``transaction`` Bundle; all entries succeed together or the call raises.

        Retried on 5xx/timeouts only if :func:`is_retry_safe` (e.g. all conditional creates).
        """
        return self._bundle(bundle, "transaction", sensitive=sensitive)

    def batch(self, bundle: Mapping[str, Any], *, sensitive: bool = False) -> TransactionResult:
        """POST a ``batch`` Bundle; entries succeed or fail one by one (see ``.failed``)."""
        return self._bundle(bundle, "batch", sensitive=sensitive)

    def operation(
        self,
        name: str,
        *,
        resource_type: str | None = None,
        resource_id: str | None = None,
        params: SearchParams | None = None,
        body: Mapping[str, Any] | None = None,
        method: Literal["GET", "POST"] | None = None,
        idempotent: bool | None = None,
        sensitive: bool = False,
        outcome_on_error: bool = False,
    ) -> dict[str, Any] | None:
        """Invoke ``[base][/type[/id]]/$name``; returns the answer (often an OperationOutcome
        or Parameters), or None for an empty body.

        ``method`` defaults to POST with a body and GET without.  A POST is retried only
        with ``idempotent=True``: pass it for operations without side effects, such as
        ``$validate``.  An OperationOutcome returned with 200 is *returned*, not raised:
        ``$validate`` reports findings that way.  Some servers (HAPI) answer ``$validate``
        findings with 400/412 instead; ``outcome_on_error=True`` returns that
        OperationOutcome rather than raising (401/403 and 5xx still raise).
        """
        op = name if name.startswith("$") else f"${name}"
        if not re.match(r"^\$[A-Za-z][A-Za-z0-9\-_]*$", op):
            raise ValueError(f"not an operation name: {name!r}")
        segments = []
        if resource_type:
            segments.append(_check_type(resource_type))
            if resource_id:
                segments.append(_check_id(resource_id))
        segments.append(op)
        verb = method or ("POST" if body is not None else "GET")
        safe = idempotent if idempotent is not None else verb == "GET"
        response = self.request(
            verb,
            "/".join(segments),
            params=params,
            body=body,
            idempotent=safe,
            sensitive=sensitive,
            outcome_ok=outcome_on_error,
        )
        return response.body

    # ------------------------------------------------------------------ the core

    def request(
        self,
        method: str,
        path: str,
        *,
        params: SearchParams | None = None,
        body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        sensitive: bool = False,
        label: str | None = None,
        outcome_ok: bool = False,
        retry_conflict: bool = False,
    ) -> FhirResponse:
        """Send one request with timeouts and safe retries; return a 2xx or raise.

        ``path`` is relative to the base (or an absolute URL already checked by the
        caller).  ``idempotent`` defaults to True for GET/HEAD/PUT/DELETE.  ``label``
        replaces the path in logs and messages (e.g. "transaction Bundle, 12 entries").
        ``outcome_ok`` returns a 4xx answer that carries an OperationOutcome (other than
        401/403) instead of raising; the returned ``status`` tells it apart.
        ``retry_conflict`` retries a 409 like a 503: for conditional writes without
        If-Match, which a server refuses when an identical write races them (HAPI-2745,
        e.g. our own earlier attempt, still running when our timeout gave up on it);
        asking again finds what the winner wrote.
        """
        method = method.upper()
        url = path if "://" in path else f"{self.base_url}/{path}" if path else self.base_url
        if idempotent is None:
            idempotent = method in ("GET", "HEAD", "PUT", "DELETE")
        pairs = _params_list(params)
        where = label or self._display(url, [name for name, _ in pairs])
        send_headers = dict(headers or {})
        data: bytes | None = None
        if body is not None:
            try:
                data = _dumps(body)
            except (TypeError, ValueError):
                # orjson stops at 255 levels and refuses NaN keys and the like; such content
                # came from somewhere (a server's resource) and cannot go anywhere as JSON.
                raise InputError(
                    f"{method} {where}: the content cannot be sent as JSON (nested too deeply "
                    "or holding a value JSON cannot carry)",
                    hint="a resource read from a server holds something no FHIR resource does; "
                    "find and fix it there",
                ) from None
            send_headers["Content-Type"] = f"{FHIR_JSON}; charset=utf-8"

        started = self._clock()
        attempt = 0
        while True:
            attempt += 1
            raw: requests.Response | None = None
            status: int | None = None
            retry_after: float | None = None
            gave_up_hint: str | None = None
            sent_at = self._clock()
            try:
                raw = self._session.request(
                    method,
                    url,
                    params=pairs or None,
                    data=data,
                    headers=send_headers,
                    timeout=(self.timeouts.connect, self.timeouts.read),
                    verify=self._verify,
                    # A redirected POST turns into a GET; better to say so than to follow.
                    allow_redirects=method in ("GET", "HEAD"),
                )
            except requests.exceptions.ConnectTimeout:
                # The connection never opened, so the request never reached the server.
                failure = f"could not connect within {self.timeouts.connect:g} s (connect timeout)"
                may_retry = True
            except requests.exceptions.SSLError:
                raise ServerUnavailableError(
                    f"{method} {where}: TLS handshake with {urlsplit(url).hostname} failed "
                    "(certificate not trusted, expired, or for another host)",
                    hint="for a server with a private CA set ca_bundle / RFHIR_CA_BUNDLE to "
                    "the CA's PEM file; TLS verification is never switched off",
                ) from None
            except (
                requests.exceptions.ConnectionError,
                requests.exceptions.Timeout,
                requests.exceptions.ChunkedEncodingError,
            ) as exc:
                failure = _describe_transport_error(exc, self.timeouts)
                may_retry = idempotent
            except requests.exceptions.RequestException as exc:
                # Redirect loops, unreadable encodings...: not transient.  Never str(exc):
                # requests quotes the full URL, query values included.
                raise FhirServerError(
                    f"{method} {where} failed: {type(exc).__name__}",
                    hint=f"check the server URL {self.base_url}",
                ) from None
            except UnicodeError:
                # requests decodes a redirect's Location even when not following it.
                raise FhirServerError(
                    f"{method} {where} failed: the server answered with a header that is not "
                    "valid text (a redirect to an unreadable Location)",
                    hint=f"check the server URL {self.base_url}",
                ) from None
            else:
                elapsed = self._clock() - sent_at
                log.debug("%s %s -> %d in %.3f s", method, where, raw.status_code, elapsed)
                if raw.status_code in self.retry.statuses or (
                    retry_conflict and raw.status_code == 409
                ):
                    status = raw.status_code
                    failure = _status_line(raw)
                    may_retry = idempotent
                    if status == 409:
                        gave_up_hint = (
                            "another client kept writing the same resources at the same "
                            "time; run again when it is done"
                        )
                    retry_after = parse_retry_after(
                        raw.headers.get("Retry-After"), now=self._wall_clock()
                    )
                else:
                    try:
                        return self._finish(raw, method, where, sensitive, outcome_ok)
                    except _CutOffBody as exc:
                        # A success whose JSON stops short was cut off on its way to us
                        # (FHIR servers do not send half a resource).  The server did act,
                        # so this is a lost answer: safe to ask again only if repeating the
                        # request cannot apply it twice, like a dropped connection.
                        failure = exc.message.removeprefix(f"{method} {where} ")
                        may_retry = idempotent
                        raw = None
                        gave_up_hint = (
                            "answers keep arriving cut off: something between here and the "
                            "server (a proxy, a gateway) may be truncating them"
                        )

            if not may_retry:
                raise self._unsafe_to_retry(method, where, failure, status, raw, sensitive)
            if attempt > self.retry.retries:
                raise self._gave_up(
                    method,
                    where,
                    failure,
                    status,
                    attempt,
                    started,
                    raw,
                    sensitive,
                    hint=gave_up_hint,
                )
            delay = (
                retry_after if retry_after is not None else self.retry.backoff(attempt, self._rng)
            )
            if self._clock() - started + delay > self.retry.budget:
                raise self._gave_up(
                    method,
                    where,
                    failure,
                    status,
                    attempt,
                    started,
                    raw,
                    sensitive,
                    note=f"a retry would wait {delay:.1f} s more, past the "
                    f"{self.retry.budget:g} s retry budget",
                    hint=gave_up_hint,
                )
            log.warning(
                "%s %s: %s; retry %d/%d in %.1f s",
                method,
                where,
                failure,
                attempt,
                self.retry.retries,
                delay,
            )
            self._sleep(delay)

    # ------------------------------------------------------------------ internals

    def _display(self, url: str, param_names: Sequence[str]) -> str:
        """Path relative to the base, with parameter names but never their values."""
        stripped = _strip_query_values(url)
        base = self.base_url
        if stripped.startswith(base + "/"):
            stripped = stripped[len(base) + 1 :]
        elif stripped == base or stripped.startswith(base + "?"):
            stripped = "[base]" + stripped[len(base) :]
        if param_names:
            unique = list(dict.fromkeys(param_names))
            joiner = "&" if "?" in stripped else "?"
            stripped += joiner + "&".join(f"{name}=..." for name in unique)
        return stripped

    def _bundle(
        self, bundle: Mapping[str, Any], kind: Literal["transaction", "batch"], *, sensitive: bool
    ) -> TransactionResult:
        if bundle.get("resourceType") != "Bundle" or bundle.get("type") != kind:
            raise ValueError(f"{kind}() needs a Bundle of type {kind!r}")
        requests_sent = [e for e in bundle.get("entry") or [] if isinstance(e, Mapping)]
        label = f"{kind} Bundle ({len(requests_sent)} entries)"
        safe = is_retry_safe(bundle)
        response = self.request(
            "POST",
            "",
            body=bundle,
            idempotent=safe,
            sensitive=sensitive,
            label=label,
            # A transaction is refused whole when one entry lost a race; with If-Match
            # anywhere, a 409 may instead be a stale version that no retry can fix.
            retry_conflict=safe and kind == "transaction" and not _version_checked(bundle),
        )
        answer = self._require_body(response, "POST", label)
        expected = f"{kind}-response"
        if answer.get("resourceType") != "Bundle" or answer.get("type") != expected:
            raise FhirServerError(
                f"POST {label}: the server answered a "
                f"{_kind(answer.get('resourceType'))}/{_kind(answer.get('type'))}, not a {expected} "
                "Bundle",
                status=response.status,
            )
        answered = [e for e in _listed(answer.get("entry")) if isinstance(e, Mapping)]
        if len(answered) != len(requests_sent):
            raise FhirServerError(
                f"POST {label}: the server answered {len(answered)} entries for "
                f"{len(requests_sent)} sent; cannot tell which result belongs to which entry",
                status=response.status,
            )
        entries = tuple(
            _entry_from_bundle(sent, redact(got, self._auth))
            for sent, got in zip(requests_sent, answered, strict=True)
        )
        return TransactionResult(bundle=answer, entries=entries)

    def _finish(
        self,
        raw: requests.Response,
        method: str,
        where: str,
        sensitive: bool,
        outcome_ok: bool = False,
    ) -> FhirResponse:
        if 200 <= raw.status_code < 300:
            body = _parse_body(raw, method, where)
            if is_operation_outcome(body):  # shown to people: mask credentials it may quote
                body = redact(body, self._auth)
            return FhirResponse(status=raw.status_code, headers=_safe_headers(raw), body=body)
        if outcome_ok and 400 <= raw.status_code < 500 and raw.status_code not in (401, 403):
            outcome, _ = _read_error_body(raw)
            if outcome is not None:
                return FhirResponse(
                    status=raw.status_code,
                    headers=_safe_headers(raw),
                    body=redact(outcome, self._auth),
                )
        raise self._error(raw, method, where, sensitive)

    def _require_body(self, response: FhirResponse, method: str, where: str) -> dict[str, Any]:
        if response.body is None:
            raise FhirServerError(
                f"{method} {where or '[base]'} answered {response.status} with an empty body "
                "where a FHIR resource was expected",
                status=response.status,
            )
        return response.body

    def _error(
        self,
        raw: requests.Response,
        method: str,
        where: str,
        sensitive: bool,
        *,
        error_class: type[FhirServerError] | None = None,
        note: str | None = None,
    ) -> FhirServerError:
        status = raw.status_code
        headline = f"{method} {where} failed: {_status_line(raw)}"
        if note:
            headline += f" ({note})"
        outcome, body_note = _read_error_body(raw)
        outcome = redact(outcome, self._auth)  # servers have quoted the Authorization header
        lines = [headline]
        if body_note:
            lines.append(f"  {body_note}")
        if outcome is not None:
            issues = format_outcome(outcome, withhold_diagnostics=sensitive)
            if issues:
                lines.append(issues)
            if sensitive:
                outcome = redact_outcome(outcome)
        if error_class is None:
            if status in (401, 403):
                error_class = AuthError
            elif status in self.retry.statuses:
                error_class = ServerUnavailableError
            else:
                error_class = FhirServerError
        hint = self._hint(status, method, where, raw)
        return error_class("\n".join(lines), status=status, outcome=outcome, hint=hint)

    def _hint(self, status: int, method: str, where: str, raw: requests.Response) -> str | None:
        if status == 401:
            challenge = _auth_challenge_error(raw.headers.get("WWW-Authenticate"))
            said = f" (server says: {challenge})" if challenge else ""
            if self._auth is None:
                return (
                    f"the server requires authentication{said}; set RFHIR_TOKEN_FILE (bearer "
                    "token) or RFHIR_BASIC_USER with RFHIR_BASIC_PASSWORD_FILE"
                )
            return (
                f"the server rejected the {auth_scheme(self._auth)} credentials{said}; check "
                "RFHIR_TOKEN / RFHIR_TOKEN_FILE (a token may have expired) or the basic user "
                "and password"
            )
        if status == 403:
            return (
                f"the credentials were accepted but may not {method} {where.split('?')[0]}; "
                "ask the server's administrator for the needed access (e.g. a write scope)"
            )
        if status == 404:
            return (
                "no such resource or endpoint; check the id, and that the server URL is the "
                "FHIR base (it usually ends in /fhir)"
            )
        if status == 405:
            return f"the server does not allow {method} here; it may be read-only"
        if status == 409:
            return "the resource changed on the server meanwhile (or another run raced); run again"
        if status == 410:
            return "the resource was deleted on the server"
        if status == 412 and "$" in where:
            return "the operation's preconditions failed (HAPI answers $validate findings this way)"
        if status == 412:
            return (
                "a conditional request matched more than one resource (or an If-Match version "
                "is stale); search the server with the same criteria, remove the duplicates, "
                "then run again"
            )
        if status == 422:
            return "the server's validator rejected the content; fix the issues listed above"
        if 300 <= status < 400:
            target = raw.headers.get("Location")
            where_to = f" to {_strip_query_values(target)}" if target else ""
            return f"the server redirected{where_to}; set the server URL to the final FHIR base"
        return None

    def _unsafe_to_retry(
        self,
        method: str,
        where: str,
        failure: str,
        status: int | None,
        raw: requests.Response | None,
        sensitive: bool,
    ) -> ServerUnavailableError:
        note = (
            f"not retried: it is unsafe to retry a {method} of {where} automatically, "
            "because the server may already have applied it"
        )
        hint = (
            "check on the server whether the change happened before running again "
            "(a conditional create, If-None-Exist, is safe to retry)"
        )
        if raw is not None:
            error = self._error(raw, method, where, sensitive, error_class=ServerUnavailableError)
            headline, _, rest = error.message.partition("\n")
            message = f"{headline}\n  {note}" + (f"\n{rest}" if rest else "")
            return ServerUnavailableError(message, status=status, outcome=error.outcome, hint=hint)
        return ServerUnavailableError(f"{method} {where} failed: {failure}; {note}", hint=hint)

    def _gave_up(
        self,
        method: str,
        where: str,
        failure: str,
        status: int | None,
        attempts: int,
        started: float,
        raw: requests.Response | None,
        sensitive: bool,
        *,
        note: str | None = None,
        hint: str | None = None,
    ) -> ServerUnavailableError:
        spent = self._clock() - started
        summary = f"gave up after {attempts} attempt{'s' if attempts != 1 else ''} in {spent:.1f} s"
        if note:
            summary += f"; {note}"
        if raw is not None:
            error = self._error(
                raw, method, where, sensitive, error_class=ServerUnavailableError, note=summary
            )
            return ServerUnavailableError(
                error.message,
                status=status,
                outcome=error.outcome,
                hint=hint or "the server is down or overloaded; try again later",
            )
        return ServerUnavailableError(
            f"{method} {where} failed: {failure} ({summary})",
            hint=hint or f"check the server URL {self.base_url} and that the server is running",
        )


# --------------------------------------------------------------------------- response reading


def _next_link(bundle: Mapping[str, Any]) -> str | None:
    for link in _listed(bundle.get("link")):
        if isinstance(link, Mapping) and link.get("relation") == "next":
            url = link.get("url")
            if isinstance(url, str) and url:
                return url
    return None


def _describe_transport_error(exc: requests.exceptions.RequestException, timeouts: Timeouts) -> str:
    """Name the failure without ``str(exc)``: requests puts the full URL, query included,
    into its messages."""
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return f"no answer within {timeouts.read:g} s (read timeout)"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "the answer was cut off mid-stream"
    if isinstance(exc, requests.exceptions.Timeout):
        return "timed out"
    seen: list[BaseException] = []
    pending: list[object] = [exc]
    while pending:
        item = pending.pop()
        if not isinstance(item, BaseException) or item in seen:
            continue
        seen.append(item)
        pending.extend([item.__cause__, item.__context__, getattr(item, "reason", None)])
        pending.extend(item.args)
    names = {type(item).__name__ for item in seen}
    if names & {"NameResolutionError", "gaierror"}:
        return "the host name could not be resolved"
    if "NewConnectionError" in names or "ConnectionRefusedError" in names:
        return "the connection was refused or the host is unreachable"
    if "ProtocolError" in names or "RemoteDisconnected" in names:
        return "the server dropped the connection"
    return f"connection failed ({type(exc).__name__})"


def _listed(value: object) -> list[Any]:
    """A JSON array from a server's answer as a list; anything else as no entries."""
    return value if isinstance(value, list) else []


def _kind(value: object) -> str:
    """A server-supplied resourceType or Bundle type, quoted, for a message: short codes
    only (a hostile or broken server can put anything there, clients' answers included)."""
    if isinstance(value, str) and re.fullmatch(r"[A-Za-z][A-Za-z\-]{0,63}", value):
        return repr(value)
    return "something else" if value is not None else "None"


def _status_line(raw: requests.Response) -> str:
    """``404 Not Found``; HTTP/2 and some servers send no reason phrase, so supply one."""
    reason = raw.reason
    if not reason:
        try:
            reason = HTTPStatus(raw.status_code).phrase
        except ValueError:
            reason = ""
    return f"{raw.status_code} {reason}".strip()


def _safe_headers(raw: requests.Response) -> Mapping[str, str]:
    # Cookies can be session credentials; nobody downstream needs them.
    return CaseInsensitiveDict(
        {name: value for name, value in raw.headers.items() if name.lower() != "set-cookie"}
    )


def _content_type(raw: requests.Response) -> str:
    return (raw.headers.get("Content-Type") or "").split(";")[0].strip().lower()


def _looks_like_markup(raw: requests.Response) -> bool:
    return raw.content.lstrip()[:1] == b"<"


class _CutOffBody(FhirServerError):
    """A 2xx answer whose body is not valid JSON: most likely cut off in transit."""


def _parse_body(raw: requests.Response, method: str, where: str) -> dict[str, Any] | None:
    """The 2xx body as a dict; None when empty.  Non-JSON answers raise with a clear note."""
    if not raw.content.strip():
        return None
    status = raw.status_code
    content_type = _content_type(raw) or "no content type"
    if "html" in content_type or (content_type == "no content type" and _looks_like_markup(raw)):
        raise FhirServerError(
            f"{method} {where} answered {status} with an HTML page ({content_type}) instead of "
            "FHIR JSON",
            status=status,
            hint="a login page, proxy or web front end answered; check that the server URL is "
            "the FHIR base (it usually ends in /fhir)",
        )
    if "xml" in content_type or _looks_like_markup(raw):
        raise FhirServerError(
            f"{method} {where} answered {status} with XML ({content_type}); rejection-fhir "
            "reads FHIR JSON only",
            status=status,
            hint="the server ignored 'Accept: application/fhir+json'; check its JSON support",
        )
    try:
        parsed = _loads(raw.content)
    except ValueError as exc:
        where_in_body = ""
        if isinstance(exc, json.JSONDecodeError):
            where_in_body = f" at line {exc.lineno}, column {exc.colno}"
        raise _CutOffBody(
            f"{method} {where} answered {status} with a body that is not valid JSON "
            f"({content_type}){where_in_body}",
            status=status,
            hint="the answer may have been cut off, or something other than a FHIR server answered",
        ) from None
    if not isinstance(parsed, dict):
        raise FhirServerError(
            f"{method} {where} answered {status} with JSON that is not a FHIR resource "
            f"(a {type(parsed).__name__})",
            status=status,
        )
    return parsed


def _read_error_body(raw: requests.Response) -> tuple[dict[str, Any] | None, str | None]:
    """(OperationOutcome, None) or (None, a note on what came instead).  Never the body."""
    content_type = _content_type(raw) or "no content type"
    if not raw.content.strip():
        return None, "the server sent an empty body (no OperationOutcome)"
    if "html" in content_type or (content_type == "no content type" and _looks_like_markup(raw)):
        return None, (
            f"the server answered with an HTML page ({content_type}), not FHIR JSON: "
            "a proxy, gateway or login page answered instead of the FHIR server"
        )
    if "xml" in content_type or _looks_like_markup(raw):
        return None, f"the server answered with XML ({content_type}), not FHIR JSON"
    try:
        parsed = _loads(raw.content)
    except ValueError:
        return None, f"the body is not valid JSON ({content_type}); no OperationOutcome to show"
    if is_operation_outcome(parsed):
        return dict(parsed), None
    kind = parsed.get("resourceType") if isinstance(parsed, dict) else None
    return None, f"the body is {_kind(kind) if kind else 'JSON'}, not an OperationOutcome"


def _auth_challenge_error(header: str | None) -> str | None:
    """The RFC 6750 ``error`` code from ``WWW-Authenticate`` (never the token)."""
    if not header:
        return None
    match = re.search(r'error="?([A-Za-z_]+)"?', header)
    return match.group(1) if match else None


def _split_body(body: dict[str, Any] | None) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(resource, outcome): an OperationOutcome body is the outcome, anything else the resource."""
    if body is None:
        return None, None
    if is_operation_outcome(body):
        return None, body
    return body, None


def _identity(
    location: str | None, etag: str | None, resource: Mapping[str, Any] | None
) -> tuple[str | None, str | None, str | None]:
    resource_type, resource_id, version_id = parse_location(location)
    version_id = version_id or version_from_etag(etag)
    if resource is not None:
        resource_type = resource_type or _text(resource.get("resourceType"))
        resource_id = resource_id or _text(resource.get("id"))
        meta = resource.get("meta")
        if not version_id and isinstance(meta, Mapping):
            version_id = _text(meta.get("versionId"))
    return resource_type, resource_id, version_id


def _text(value: object) -> str | None:
    """A string field of a server's answer, or None when it holds anything else."""
    return value if isinstance(value, str) else None


def _entry_from_response(response: FhirResponse) -> EntryResult:
    headers = response.headers
    location = headers.get("Location") or headers.get("Content-Location")
    etag = headers.get("ETag")
    resource, outcome = _split_body(response.body)
    resource_type, resource_id, version_id = _identity(location, etag, resource)
    return EntryResult(
        status=response.status,
        location=location,
        resource_type=resource_type,
        id=resource_id,
        version_id=version_id,
        etag=etag,
        last_modified=headers.get("Last-Modified"),
        outcome=outcome,
        resource=resource,
    )


def _entry_from_bundle(sent: Mapping[str, Any], got: Mapping[str, Any]) -> EntryResult:
    answer = got.get("response")
    answer = answer if isinstance(answer, Mapping) else {}
    request = sent.get("request")
    request = request if isinstance(request, Mapping) else {}
    raw_resource = got.get("resource")
    resource, outcome = _split_body(raw_resource if isinstance(raw_resource, dict) else None)
    if is_operation_outcome(answer.get("outcome")):
        outcome = dict(answer["outcome"])
    location = _text(answer.get("location"))
    etag = _text(answer.get("etag"))
    resource_type, resource_id, version_id = _identity(location, etag, resource)
    return EntryResult(
        status=parse_status(answer.get("status")),
        location=location,
        resource_type=resource_type,
        id=resource_id,
        version_id=version_id,
        etag=etag,
        last_modified=_text(answer.get("lastModified")),
        outcome=outcome,
        resource=resource,
        full_url=sent.get("fullUrl"),
        request_method=request.get("method"),
        request_url=request.get("url"),
    )
