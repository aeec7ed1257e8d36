"""What a FHIR server answered, as values: :class:`FhirResponse` (a 2xx answer),
:class:`EntryResult` (one write, or one Bundle entry) and :class:`TransactionResult`, and
the parsing of ``Location``, ``ETag`` and Bundle entry statuses they are built from.
Pure: plain dicts and headers in, frozen dataclasses out.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from requests.auth import AuthBase

from rejection_fhir.errors import FhirServerError
from rejection_fhir.fhir.auth import redact
from rejection_fhir.fhir.outcome import format_outcome, is_operation_outcome, redact_outcome
from rejection_fhir.fhir.transport import listed, shown_kind
from rejection_fhir.fhir.urls import strip_query_values

_LOCATION = re.compile(
    r"(?:^|/)(?P<type>[A-Z][A-Za-z]{1,63})/(?P<id>[A-Za-z0-9\-.]{1,64})"
    r"(?:/_history/(?P<version>[A-Za-z0-9\-.]{1,64}))?/?$"
)
_ETAG = re.compile(r'^(?:W/)?"?(?P<version>[^"]*)"?$')


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
        what = f"{self.request_method} {strip_query_values(self.request_url)}"
        if not self.request_method:
            what = self.full_url or "entry"
        text = f"{what} -> {self.status}"
        if self.location:
            text += f" ({strip_query_values(self.location)})"
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


def next_link(bundle: Mapping[str, Any]) -> str | None:
    for link in listed(bundle.get("link")):
        if isinstance(link, Mapping) and link.get("relation") == "next":
            url = link.get("url")
            if isinstance(url, str) and url:
                return url
    return None


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


def entry_from_response(response: FhirResponse) -> EntryResult:
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


def entry_from_bundle(sent: Mapping[str, Any], got: Mapping[str, Any]) -> EntryResult:
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


def transaction_result(
    answer: dict[str, Any],
    sent: Sequence[Mapping[str, Any]],
    kind: Literal["transaction", "batch"],
    *,
    label: str,
    status: int,
    auth: AuthBase | None,
) -> TransactionResult:
    """A transaction-response or batch-response read against the entries sent, in order;
    raises :class:`FhirServerError` when the answer cannot be matched to them."""
    expected = f"{kind}-response"
    if answer.get("resourceType") != "Bundle" or answer.get("type") != expected:
        raise FhirServerError(
            f"POST {label}: the server answered a "
            f"{shown_kind(answer.get('resourceType'))}/{shown_kind(answer.get('type'))}, "
            f"not a {expected} Bundle",
            status=status,
        )
    answered = [e for e in listed(answer.get("entry")) if isinstance(e, Mapping)]
    if len(answered) != len(sent):
        raise FhirServerError(
            f"POST {label}: the server answered {len(answered)} entries for "
            f"{len(sent)} sent; cannot tell which result belongs to which entry",
            status=status,
        )
    entries = tuple(
        entry_from_bundle(request, redact(got, auth))
        for request, got in zip(sent, answered, strict=True)
    )
    return TransactionResult(bundle=answer, entries=entries)
