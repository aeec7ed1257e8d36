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

The parts live beside it: the wire (JSON codec, paths, reading an answer, error messages)
in :mod:`~rejection_fhir.fhir.transport`, the retry policy in
:mod:`~rejection_fhir.fhir.retry`, the answers as values in
:mod:`~rejection_fhir.fhir.results`, URL rules in :mod:`~rejection_fhir.fhir.urls`.  Every
name callers imported from here before that split is still importable from here.

Why over 600 lines: :class:`FhirClient` is the public API (reads, searches, writes,
transactions, operations), one documented method per REST interaction, used by every
command and from threads; splitting the class itself would scatter that API.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import requests
from requests.auth import AuthBase

from rejection_fhir.errors import (
    ConfigError,
    FhirServerError,
    InputError,
    ServerUnavailableError,
)
from rejection_fhir.fhir.auth import auth_scheme, redact
from rejection_fhir.fhir.outcome import is_operation_outcome
from rejection_fhir.fhir.results import EntryResult as EntryResult
from rejection_fhir.fhir.results import FhirResponse as FhirResponse
from rejection_fhir.fhir.results import TransactionResult as TransactionResult
from rejection_fhir.fhir.results import entry_from_response, next_link, transaction_result
from rejection_fhir.fhir.results import parse_location as parse_location
from rejection_fhir.fhir.results import parse_status as parse_status
from rejection_fhir.fhir.results import version_from_etag as version_from_etag
from rejection_fhir.fhir.retry import RETRYABLE_STATUSES as RETRYABLE_STATUSES
from rejection_fhir.fhir.retry import Attempts, version_checked
from rejection_fhir.fhir.retry import RetryPolicy as RetryPolicy
from rejection_fhir.fhir.retry import is_retry_safe as is_retry_safe
from rejection_fhir.fhir.retry import parse_retry_after as parse_retry_after
from rejection_fhir.fhir.transport import (
    FHIR_JSON,
    USER_AGENT,
    CutOffBody,
    SearchParams,
    Session,
    check_id,
    check_type,
    condition,
    describe_transport_error,
    dumps,
    error_for,
    listed,
    params_list,
    parse_body,
    read_error_body,
    resource_path,
    safe_headers,
    shown_kind,
    status_line,
)
from rejection_fhir.fhir.transport import Timeouts as Timeouts
from rejection_fhir.fhir.urls import check_base_url, strip_query_values
from rejection_fhir.fhir.urls import origin as _origin

log = logging.getLogger("rejection_fhir.fhir")

# Private names that sync/executors, tests and benchmarks import from here.
_entry_from_response = entry_from_response
_dumps = dumps
_status_line = status_line

_DEFAULT_TIMEOUTS = Timeouts()
_DEFAULT_RETRY = RetryPolicy()


@dataclass
class _Send:
    """One request as it goes on the wire, the same for every attempt."""

    method: str
    url: str
    #: The path as messages show it: parameter names, never their values.
    where: str
    pairs: list[tuple[str, str]]
    headers: dict[str, str]
    data: bytes | None
    idempotent: bool
    sensitive: bool


@dataclass(frozen=True)
class _Failure:
    """An attempt without a usable answer, for the retry policy to rule on."""

    failure: str
    may_retry: bool
    status: int | None = None
    raw: requests.Response | None = None
    retry_after: float | None = None
    #: What to tell the user if we give up on it.
    hint: str | None = None


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
        timeouts: Timeouts = _DEFAULT_TIMEOUTS,
        retry: RetryPolicy = _DEFAULT_RETRY,
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
        #: Ask for ``Prefer: return=minimal`` on writes: the server answers with the
        #: ``Location`` (all :class:`EntryResult` needs) instead of the whole resource,
        #: which it would serialise and we would parse for nothing.  Set by callers that
        #: need only ids (the sync's writes); servers that ignore it still answer in full.
        self.minimal_answers = False
        self._session = session or Session()
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
        path = f"{check_type(resource_type)}/{check_id(resource_id)}"
        return self._require_body(self.request("GET", path), "GET", path)

    def vread(self, resource_type: str, resource_id: str, version_id: str) -> dict[str, Any]:
        """``GET [type]/[id]/_history/[vid]``."""
        path = (
            f"{check_type(resource_type)}/{check_id(resource_id)}"
            f"/_history/{check_id(version_id, 'version id')}"
        )
        return self._require_body(self.request("GET", path), "GET", path)

    def search_bundles(
        self, resource_type: str | None, params: SearchParams | None = None
    ) -> Iterator[dict[str, Any]]:
        """Each searchset Bundle page, following ``link[relation=next]`` lazily.

        ``resource_type=None`` searches the whole system (``GET [base]?params``).  Next
        links must stay on the server's origin: credentials are never sent elsewhere.
        """
        path = check_type(resource_type) if resource_type else ""
        response = self.request("GET", path, params=params)
        seen: set[str] = set()
        while True:
            bundle = self._require_body(response, "GET", path)
            if bundle.get("resourceType") != "Bundle":
                raise FhirServerError(
                    f"GET {path or '[base]'} answered a {shown_kind(bundle.get('resourceType'))}, "
                    "not a searchset Bundle",
                    status=response.status,
                )
            yield bundle
            next_url = next_link(bundle)
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
            for entry in listed(bundle.get("entry")):
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
                    f"the server pointed to {strip_query_values(url)}, which is not on "
                    f"{strip_query_values(self.base_url)}; refusing to send credentials there",
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
                    f"GET metadata answered a {shown_kind(statement.get('resourceType'))}, not a "
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
        path = resource_path(resource, need_id=False)
        response = self.request(
            "POST",
            path,
            body=resource,
            headers=self._prefer({}),
            idempotent=False,
            sensitive=sensitive,
        )
        return entry_from_response(response)

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
        return self._conditional_write("POST", resource, if_none_exist, sensitive=sensitive)

    def update(
        self,
        resource: Mapping[str, Any],
        *,
        if_match: str | None = None,
        sensitive: bool = False,
    ) -> EntryResult:
        """``PUT [type]/[id]``; ``if_match`` is a version id or ETag for optimistic locking."""
        path = resource_path(resource, need_id=True)
        headers = {}
        if if_match is not None:
            headers["If-Match"] = if_match if '"' in if_match else f'W/"{if_match}"'
        response = self.request(
            "PUT",
            path,
            body=resource,
            headers=self._prefer(headers),
            idempotent=True,
            sensitive=sensitive,
        )
        return entry_from_response(response)

    def conditional_update(
        self,
        resource: Mapping[str, Any],
        criteria: str | SearchParams,
        *,
        sensitive: bool = False,
    ) -> EntryResult:
        """``PUT [type]?criteria``: update the one match, or create when none matches."""
        return self._conditional_write("PUT", resource, criteria, sensitive=sensitive)

    def _conditional_write(
        self,
        method: Literal["POST", "PUT"],
        resource: Mapping[str, Any],
        criteria: str | SearchParams,
        *,
        sensitive: bool,
    ) -> EntryResult:
        """The one home of both conditional writes: the criteria go into If-None-Exist
        (create) or the URL (update); either is safe to repeat, and a 409 from a racing
        identical write is retried (see ``request(retry_conflict=)``)."""
        resource_type = resource_path(resource, need_id=False)
        if method == "POST":
            path, headers = resource_type, {"If-None-Exist": condition(criteria)}
        else:
            path, headers = f"{resource_type}?{condition(criteria)}", {}
        response = self.request(
            method,
            path,
            body=resource,
            headers=self._prefer(headers),
            idempotent=True,
            sensitive=sensitive,
            retry_conflict=True,
        )
        return entry_from_response(response)

    def _prefer(self, headers: dict[str, str]) -> dict[str, str]:
        if self.minimal_answers:
            headers["Prefer"] = "return=minimal"
        return headers

    def delete(self, resource_type: str, resource_id: str) -> EntryResult:
        """``DELETE [type]/[id]`` (idempotent: deleting twice is not an error on R4 servers)."""
        path = f"{check_type(resource_type)}/{check_id(resource_id)}"
        return entry_from_response(self.request("DELETE", path))

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
            segments.append(check_type(resource_type))
            if resource_id:
                segments.append(check_id(resource_id))
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
        pairs = params_list(params)
        where = label or self._display(url, [name for name, _ in pairs])
        send = _Send(method, url, where, pairs, dict(headers or {}), None, idempotent, sensitive)
        if body is not None:
            send.data = self._encode(body, method, where)
            send.headers["Content-Type"] = f"{FHIR_JSON}; charset=utf-8"

        attempts = Attempts(self.retry, clock=self._clock, rng=self._rng)
        while True:
            attempts.begin()
            answer = self._attempt(send, outcome_ok=outcome_ok, retry_conflict=retry_conflict)
            if isinstance(answer, FhirResponse):
                return answer
            verdict, delay = attempts.after_failure(
                may_retry=answer.may_retry, retry_after=answer.retry_after
            )
            if verdict == "unsafe":
                unsafe = self._unsafe_to_retry(
                    method, where, answer.failure, answer.status, answer.raw, sensitive
                )
                unsafe.retry_after = unsafe.retry_after or answer.retry_after
                raise unsafe
            if verdict != "retry":
                note = None
                if verdict == "over-budget":
                    note = (
                        f"a retry would wait {delay:.1f} s more, past the "
                        f"{self.retry.budget:g} s retry budget"
                    )
                gave_up = self._gave_up(
                    method,
                    where,
                    answer.failure,
                    answer.status,
                    attempts.count,
                    attempts.started,
                    answer.raw,
                    sensitive,
                    note=note,
                    hint=answer.hint,
                )
                gave_up.retry_after = gave_up.retry_after or answer.retry_after
                raise gave_up
            log.warning(
                "%s %s: %s; retry %d/%d in %.1f s",
                method,
                where,
                answer.failure,
                attempts.count,
                self.retry.retries,
                delay,
            )
            self._sleep(delay)

    def _encode(self, body: Mapping[str, Any], method: str, where: str) -> bytes:
        try:
            return dumps(body)
        except (TypeError, ValueError):
            # orjson stops at 255 levels and refuses NaN keys and the like; such content
            # came from somewhere (a server's resource) and cannot go anywhere as JSON.
            raise InputError(
                f"{method} {where}: the content cannot be sent as JSON (nested too deeply "
                "or holding a value JSON cannot carry)",
                hint="a resource read from a server holds something no FHIR resource does; "
                "find and fix it there",
            ) from None

    def _attempt(
        self, send: _Send, *, outcome_ok: bool, retry_conflict: bool
    ) -> FhirResponse | _Failure:
        """Send once: a usable answer, a failure the retry policy rules on, or an exception
        for what no retry can fix (TLS, redirect loops, unreadable headers, 4xx errors)."""
        method, where, url = send.method, send.where, send.url
        sent_at = self._clock()
        try:
            raw = self._session.request(
                method,
                url,
                params=send.pairs or None,
                data=send.data,
                headers=send.headers,
                timeout=(self.timeouts.connect, self.timeouts.read),
                verify=self._verify,
                # A redirected POST turns into a GET; better to say so than to follow.
                allow_redirects=method in ("GET", "HEAD"),
            )
        except requests.exceptions.ConnectTimeout:
            # The connection never opened, so the request never reached the server.
            failure = f"could not connect within {self.timeouts.connect:g} s (connect timeout)"
            return _Failure(failure, may_retry=True)
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
            failure = describe_transport_error(exc, self.timeouts)
            return _Failure(failure, may_retry=send.idempotent)
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
        elapsed = self._clock() - sent_at
        log.debug("%s %s -> %d in %.3f s", method, where, raw.status_code, elapsed)
        status = raw.status_code
        if status in self.retry.statuses or (retry_conflict and status == 409):
            return _Failure(
                status_line(raw),
                may_retry=send.idempotent,
                status=status,
                raw=raw,
                retry_after=parse_retry_after(
                    raw.headers.get("Retry-After"), now=self._wall_clock()
                ),
                hint=(
                    "another client kept writing the same resources at the same time; run "
                    "again when it is done"
                )
                if status == 409
                else None,
            )
        try:
            return self._finish(raw, method, where, send.sensitive, outcome_ok)
        except CutOffBody as exc:
            # A success whose JSON stops short was cut off on its way to us (FHIR servers
            # do not send half a resource).  The server did act, so this is a lost answer:
            # safe to ask again only if repeating the request cannot apply it twice, like
            # a dropped connection.
            return _Failure(
                exc.message.removeprefix(f"{method} {where} "),
                may_retry=send.idempotent,
                hint="answers keep arriving cut off: something between here and the server "
                "(a proxy, a gateway) may be truncating them",
            )

    # ------------------------------------------------------------------ internals

    def _display(self, url: str, param_names: Sequence[str]) -> str:
        """Path relative to the base, with parameter names but never their values."""
        stripped = strip_query_values(url)
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
            headers=self._prefer({}),
            idempotent=safe,
            sensitive=sensitive,
            label=label,
            # A transaction is refused whole when one entry lost a race; with If-Match
            # anywhere, a 409 may instead be a stale version that no retry can fix.
            retry_conflict=safe and kind == "transaction" and not version_checked(bundle),
        )
        answer = self._require_body(response, "POST", label)
        return transaction_result(
            answer, requests_sent, kind, label=label, status=response.status, auth=self._auth
        )

    def _finish(
        self,
        raw: requests.Response,
        method: str,
        where: str,
        sensitive: bool,
        outcome_ok: bool = False,
    ) -> FhirResponse:
        if 200 <= raw.status_code < 300:
            body = parse_body(raw, method, where)
            if is_operation_outcome(body):  # shown to people: mask credentials it may quote
                body = redact(body, self._auth)
            return FhirResponse(status=raw.status_code, headers=safe_headers(raw), body=body)
        if outcome_ok and 400 <= raw.status_code < 500 and raw.status_code not in (401, 403):
            outcome, _ = read_error_body(raw)
            if outcome is not None:
                return FhirResponse(
                    status=raw.status_code,
                    headers=safe_headers(raw),
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
        error = error_for(
            raw,
            method,
            where,
            sensitive=sensitive,
            auth=self._auth,
            unavailable=self.retry.statuses,
            error_class=error_class,
            note=note,
        )
        # Whoever paces requests above the client (the sync's window) waits as asked.
        error.retry_after = parse_retry_after(
            raw.headers.get("Retry-After"), now=self._wall_clock()
        )
        return error

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
