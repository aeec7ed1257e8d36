"""The HTTP side of the FHIR client: what goes on the wire and how an answer is read.

Pure helpers around ``requests``: the JSON codec (orjson when installed), timeouts, paths
and search parameters built safely, and the reading of an answer (a 2xx body, an error
body's OperationOutcome, a transport failure named without quoting the URL).  Nothing here
retries or decides what to do next: that is :mod:`~rejection_fhir.fhir.retry` and
:class:`~rejection_fhir.fhir.client.FhirClient`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

import requests
from requests.auth import AuthBase
from requests.structures import CaseInsensitiveDict
from requests.utils import get_environ_proxies, get_netrc_auth

from rejection_fhir import __version__
from rejection_fhir.errors import AuthError, FhirServerError, ServerUnavailableError
from rejection_fhir.fhir.auth import auth_scheme, redact
from rejection_fhir.fhir.outcome import format_outcome, is_operation_outcome, redact_outcome
from rejection_fhir.fhir.urls import strip_query_values

if TYPE_CHECKING:
    from requests.sessions import _Settings

FHIR_JSON = "application/fhir+json"
USER_AGENT = f"rejection-fhir/{__version__}"

#: A search parameter set: a mapping (a list value repeats the name) or ordered pairs.
SearchParams = Mapping[str, str | int | Sequence[str]] | Sequence[tuple[str, str]]

_RESOURCE_TYPE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


class Session(requests.Session):
    """A ``requests.Session`` that reads the environment once per origin.

    For every request it sends, ``requests`` walks the whole process environment (twice:
    the proxies, then ``no_proxy``) and, when no credentials are set, looks for
    ``~/.netrc``.  On an EHR that takes one request per write that is CPU the sync spends
    on cores it shares with the server, for answers that do not change during a run: here
    they are looked up once per origin, and merged as ``requests`` does.
    """

    def __init__(self) -> None:
        super().__init__()
        self._environ_proxies: dict[tuple[str, str, str | None], dict[str, str]] = {}
        self._netrc: dict[tuple[str, str], AuthBase | tuple[str, str]] = {}

    def prepare_request(self, request: requests.Request) -> requests.PreparedRequest:
        if self.trust_env and not request.auth and not self.auth and request.url:
            parts = urlsplit(str(request.url))
            key = (parts.scheme, parts.netloc)
            found = self._netrc.get(key)
            if found is None:
                found = self._netrc[key] = get_netrc_auth(str(request.url)) or _NO_CREDENTIALS
            request.auth = found
        return super().prepare_request(request)

    def merge_environment_settings(
        self,
        url: str | bytes | None,
        proxies: MutableMapping[str, str] | None,
        stream: bool | None,
        verify: bool | str | None,
        cert: str | tuple[str, str] | None,
    ) -> _Settings:
        if not self.trust_env or not isinstance(url, str):
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        no_proxy = proxies.get("no_proxy") if proxies is not None else None
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc, no_proxy)
        found = self._environ_proxies.get(key)
        if found is None:
            found = self._environ_proxies[key] = get_environ_proxies(url, no_proxy=no_proxy)
        # As requests merges them: the request's own proxies win over the environment's,
        # which win over the session's; a None removes one.
        merged = {**self.proxies, **found, **(proxies or {})}
        if verify is True or verify is None:
            # As requests (and curl) do: a CA bundle named in the environment.
            verify = (
                os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or verify
            )
        return {
            "proxies": {name: value for name, value in merged.items() if value is not None},
            "stream": self.stream if stream is None else stream,
            "verify": self.verify if verify is None else verify,
            "cert": self.cert if cert is None else cert,
        }


class _NoCredentials(AuthBase):
    """No ``~/.netrc`` entry for the origin: the request goes as it is."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        return request


_NO_CREDENTIALS = _NoCredentials()


def _json_backend() -> tuple[Callable[[bytes], Any], Callable[[Any], bytes]]:
    try:
        import orjson
    except ModuleNotFoundError:  # pragma: no cover - orjson is optional

        def dumps(value: Any) -> bytes:
            return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()

        return json.loads, dumps
    return orjson.loads, orjson.dumps


loads, dumps = _json_backend()


@dataclass(frozen=True)
class Timeouts:
    """Seconds to wait for the TCP/TLS connection and then for each read of the answer."""

    connect: float = 10.0
    read: float = 60.0


# --------------------------------------------------------------------------- the request


def params_list(params: SearchParams | None) -> list[tuple[str, str]]:
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


def check_type(resource_type: str) -> str:
    if not _RESOURCE_TYPE.match(resource_type or ""):
        raise ValueError(f"not a FHIR resource type: {resource_type!r}")
    return resource_type


def check_id(value: str, what: str = "id") -> str:
    # Also keeps "../" and "?" out of the path we build.
    if not _ID.match(value or ""):
        raise ValueError(f"not a valid FHIR {what}: {value!r}")
    return value


def resource_path(resource: Mapping[str, Any], *, need_id: bool) -> str:
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str):
        raise ValueError("resource has no resourceType")
    check_type(resource_type)
    if not need_id:
        return resource_type
    resource_id = resource.get("id")
    if not isinstance(resource_id, str):
        raise ValueError(f"{resource_type} has no id; use create() or conditional_create()")
    return f"{resource_type}/{check_id(resource_id)}"


def condition(criteria: str | SearchParams) -> str:
    """Search criteria for If-None-Exist / conditional update, URL-encoded by requests."""
    if isinstance(criteria, str):
        return criteria.lstrip("?")
    return urlencode(params_list(criteria))


# --------------------------------------------------------------------------- the answer


def describe_transport_error(exc: requests.exceptions.RequestException, timeouts: Timeouts) -> str:
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


def listed(value: object) -> list[Any]:
    """A JSON array from a server's answer as a list; anything else as no entries."""
    return value if isinstance(value, list) else []


def shown_kind(value: object) -> str:
    """A server-supplied resourceType or Bundle type, quoted, for a message: short codes
    only (a hostile or broken server can put anything there, clients' answers included)."""
    if isinstance(value, str) and re.fullmatch(r"[A-Za-z][A-Za-z\-]{0,63}", value):
        return repr(value)
    return "something else" if value is not None else "None"


def status_line(raw: requests.Response) -> str:
    """``404 Not Found``; HTTP/2 and some servers send no reason phrase, so supply one."""
    reason = raw.reason
    if not reason:
        try:
            reason = HTTPStatus(raw.status_code).phrase
        except ValueError:
            reason = ""
    return f"{raw.status_code} {reason}".strip()


def safe_headers(raw: requests.Response) -> Mapping[str, str]:
    # Cookies can be session credentials; nobody downstream needs them.
    return CaseInsensitiveDict(
        {name: value for name, value in raw.headers.items() if name.lower() != "set-cookie"}
    )


def media_type(raw: requests.Response) -> str:
    return (raw.headers.get("Content-Type") or "").split(";")[0].strip().lower()


def looks_like_markup(raw: requests.Response) -> bool:
    return raw.content.lstrip()[:1] == b"<"


class CutOffBody(FhirServerError):
    """A 2xx answer whose body is not valid JSON: most likely cut off in transit."""


def parse_body(raw: requests.Response, method: str, where: str) -> dict[str, Any] | None:
    """The 2xx body as a dict; None when empty.  Non-JSON answers raise with a clear note."""
    if not raw.content.strip():
        return None
    status = raw.status_code
    content_type = media_type(raw) or "no content type"
    if "html" in content_type or (content_type == "no content type" and looks_like_markup(raw)):
        raise FhirServerError(
            f"{method} {where} answered {status} with an HTML page ({content_type}) instead of "
            "FHIR JSON",
            status=status,
            hint="a login page, proxy or web front end answered; check that the server URL is "
            "the FHIR base (it usually ends in /fhir)",
        )
    if "xml" in content_type or looks_like_markup(raw):
        raise FhirServerError(
            f"{method} {where} answered {status} with XML ({content_type}); rejection-fhir "
            "reads FHIR JSON only",
            status=status,
            hint="the server ignored 'Accept: application/fhir+json'; check its JSON support",
        )
    try:
        parsed = loads(raw.content)
    except ValueError as exc:
        where_in_body = ""
        if isinstance(exc, json.JSONDecodeError):
            where_in_body = f" at line {exc.lineno}, column {exc.colno}"
        raise CutOffBody(
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


def read_error_body(raw: requests.Response) -> tuple[dict[str, Any] | None, str | None]:
    """(OperationOutcome, None) or (None, a note on what came instead).  Never the body."""
    content_type = media_type(raw) or "no content type"
    if not raw.content.strip():
        return None, "the server sent an empty body (no OperationOutcome)"
    if "html" in content_type or (content_type == "no content type" and looks_like_markup(raw)):
        return None, (
            f"the server answered with an HTML page ({content_type}), not FHIR JSON: "
            "a proxy, gateway or login page answered instead of the FHIR server"
        )
    if "xml" in content_type or looks_like_markup(raw):
        return None, f"the server answered with XML ({content_type}), not FHIR JSON"
    try:
        parsed = loads(raw.content)
    except ValueError:
        return None, f"the body is not valid JSON ({content_type}); no OperationOutcome to show"
    if is_operation_outcome(parsed):
        return dict(parsed), None
    kind = parsed.get("resourceType") if isinstance(parsed, dict) else None
    return None, f"the body is {shown_kind(kind) if kind else 'JSON'}, not an OperationOutcome"


def auth_challenge_error(header: str | None) -> str | None:
    """The RFC 6750 ``error`` code from ``WWW-Authenticate`` (never the token)."""
    if not header:
        return None
    match = re.search(r'error="?([A-Za-z_]+)"?', header)
    return match.group(1) if match else None


# --------------------------------------------------------------------------- errors


def error_for(
    raw: requests.Response,
    method: str,
    where: str,
    *,
    sensitive: bool,
    auth: AuthBase | None,
    unavailable: frozenset[int],
    error_class: type[FhirServerError] | None = None,
    note: str | None = None,
) -> FhirServerError:
    """One exception for a failed answer: the status line, what the body held instead of
    an OperationOutcome (never the body itself), the outcome's issues (diagnostics withheld
    when ``sensitive``), credentials masked, and a hint.  401/403 raise :class:`AuthError`,
    ``unavailable`` statuses :class:`ServerUnavailableError`."""
    status = raw.status_code
    headline = f"{method} {where} failed: {status_line(raw)}"
    if note:
        headline += f" ({note})"
    outcome, body_note = read_error_body(raw)
    outcome = redact(outcome, auth)  # servers have quoted the Authorization header
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
        elif status in unavailable:
            error_class = ServerUnavailableError
        else:
            error_class = FhirServerError
    hint = hint_for(status, method, where, raw, auth)
    return error_class("\n".join(lines), status=status, outcome=outcome, hint=hint)


def hint_for(
    status: int, method: str, where: str, raw: requests.Response, auth: AuthBase | None
) -> str | None:
    """What the user can do about a failed answer, or None."""
    if status == 401:
        challenge = auth_challenge_error(raw.headers.get("WWW-Authenticate"))
        said = f" (server says: {challenge})" if challenge else ""
        if auth is None:
            return (
                f"the server requires authentication{said}; set RFHIR_TOKEN_FILE (bearer "
                "token) or RFHIR_BASIC_USER with RFHIR_BASIC_PASSWORD_FILE"
            )
        return (
            f"the server rejected the {auth_scheme(auth)} credentials{said}; check "
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
        where_to = f" to {strip_query_values(target)}" if target else ""
        return f"the server redirected{where_to}; set the server URL to the final FHIR base"
    return None
