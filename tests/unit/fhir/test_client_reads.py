"""Headers, auth, reads, paging and the capability check."""

from __future__ import annotations

import base64

import pytest
import requests
from responses import matchers

from rejection_fhir import __version__
from rejection_fhir.errors import AuthError, ConfigError, FhirServerError
from rejection_fhir.fhir.auth import BasicAuth, BearerAuth, Secret
from rejection_fhir.fhir.client import FhirClient, _status_line
from tests.unit.fhir.conftest import BASE, TOKEN


def searchset(ids: list[str], next_url: str | None = None, extra: list | None = None) -> dict:
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "link": [{"relation": "self", "url": "ignored"}],
        "entry": [
            {"resource": {"resourceType": "Questionnaire", "id": i}, "search": {"mode": "match"}}
            for i in ids
        ]
        + (extra or []),
    }
    if next_url:
        bundle["link"].append({"relation": "next", "url": next_url})
    return bundle


def test_every_request_carries_fhir_media_type_and_user_agent(client: FhirClient, rsps) -> None:
    rsps.get(f"{BASE}/Questionnaire/a", json={"resourceType": "Questionnaire", "id": "a"})
    rsps.post(
        f"{BASE}/Questionnaire", status=201, json={"resourceType": "Questionnaire", "id": "b"}
    )
    client.read("Questionnaire", "a")
    client.create({"resourceType": "Questionnaire", "status": "draft"})
    get, post = (call.request for call in rsps.calls)
    for request in (get, post):
        assert request.headers["Accept"] == "application/fhir+json"
        assert request.headers["User-Agent"] == f"rejection-fhir/{__version__}"
    assert "Content-Type" not in get.headers
    assert post.headers["Content-Type"] == "application/fhir+json; charset=utf-8"
    assert post.body == b'{"resourceType":"Questionnaire","status":"draft"}'


def test_bearer_token_header(make, rsps) -> None:
    client = make(auth=BearerAuth(Secret(TOKEN)))
    rsps.get(
        f"{BASE}/Questionnaire/a",
        json={"resourceType": "Questionnaire"},
        match=[matchers.header_matcher({"Authorization": f"Bearer {TOKEN}"})],
    )
    client.read("Questionnaire", "a")


def test_basic_auth_header(make, rsps) -> None:
    client = make(auth=BasicAuth("svc-publisher", Secret("pä:ss")))
    expected = "Basic " + base64.b64encode("svc-publisher:pä:ss".encode()).decode()
    rsps.get(
        f"{BASE}/Questionnaire/a",
        json={"resourceType": "Questionnaire"},
        match=[matchers.header_matcher({"Authorization": expected})],
    )
    client.read("Questionnaire", "a")
    assert "pä:ss" not in repr(client)


def test_vread_path(client: FhirClient, rsps) -> None:
    rsps.get(
        f"{BASE}/Questionnaire/a/_history/3", json={"resourceType": "Questionnaire", "id": "a"}
    )
    assert client.vread("Questionnaire", "a", "3")["id"] == "a"


@pytest.mark.parametrize("bad", ["../Patient/1", "a?b=c", "", "x" * 65, "a/b"])
def test_ids_that_would_change_the_path_are_refused(client: FhirClient, bad: str) -> None:
    with pytest.raises(ValueError):
        client.read("Questionnaire", bad)
    with pytest.raises(ValueError):
        client.read("questionnaire", "a")


def test_search_follows_next_links_over_three_pages_lazily(client: FhirClient, rsps) -> None:
    page2 = f"{BASE}?_getpages=abc&_getpagesoffset=2&_count=2"
    page3 = f"{BASE}?_getpages=abc&_getpagesoffset=4&_count=2"
    rsps.get(
        f"{BASE}/Questionnaire",
        json=searchset(["a", "b"], page2),
        match=[matchers.query_param_matcher({"status": "active", "_count": "2"})],
    )
    rsps.get(
        BASE,
        json=searchset(
            ["c", "d"],
            page3,
            extra=[
                {
                    "resource": {"resourceType": "ValueSet", "id": "inc"},
                    "search": {"mode": "include"},
                },
                {"resource": {"resourceType": "OperationOutcome"}, "search": {"mode": "outcome"}},
            ],
        ),
        match=[
            matchers.query_param_matcher(
                {"_getpages": "abc", "_getpagesoffset": "2", "_count": "2"}
            )
        ],
    )
    rsps.get(
        BASE,
        json=searchset(["e"]),
        match=[
            matchers.query_param_matcher(
                {"_getpages": "abc", "_getpagesoffset": "4", "_count": "2"}
            )
        ],
    )
    found = client.search("Questionnaire", {"status": "active", "_count": 2})
    assert len(rsps.calls) == 0, "nothing is fetched before the first resource is asked for"
    assert next(found)["id"] == "a"
    assert len(rsps.calls) == 1
    assert [r["id"] for r in found] == ["b", "c", "d", "e"]
    assert len(rsps.calls) == 3


def test_search_bundles_yields_each_page(client: FhirClient, rsps) -> None:
    rsps.get(f"{BASE}/Questionnaire", json=searchset(["a"], f"{BASE}/Questionnaire?page=2"))
    rsps.get(
        f"{BASE}/Questionnaire",
        json=searchset([]),
        match=[matchers.query_param_matcher({"page": "2"})],
    )
    pages = list(
        client.search_bundles("Questionnaire", [("url", "http://x/a"), ("url", "http://x/b")])
    )
    assert len(pages) == 2
    assert (
        rsps.calls[0].request.url
        == f"{BASE}/Questionnaire?url=http%3A%2F%2Fx%2Fa&url=http%3A%2F%2Fx%2Fb"
    )


def test_next_link_to_another_origin_is_refused(make, rsps) -> None:
    client = make(auth=BearerAuth(Secret(TOKEN)))
    rsps.get(
        f"{BASE}/Questionnaire", json=searchset(["a"], "http://localhost:8080/fhir?_getpages=x")
    )
    found = client.search("Questionnaire")
    assert next(found)["id"] == "a"
    with pytest.raises(FhirServerError) as caught:
        next(found)
    assert "refusing to send credentials" in str(caught.value)
    assert "server_address" in (caught.value.hint or "")
    assert len(rsps.calls) == 1


def test_a_next_link_that_loops_is_stopped(client: FhirClient, rsps) -> None:
    again = f"{BASE}/Questionnaire?page=2"
    rsps.get(f"{BASE}/Questionnaire", json=searchset(["a"], again))
    with pytest.raises(FhirServerError, match="repeats a page"):
        list(client.search("Questionnaire"))


def test_search_answer_that_is_not_a_bundle(client: FhirClient, rsps) -> None:
    rsps.get(f"{BASE}/Questionnaire", json={"resourceType": "Questionnaire"})
    with pytest.raises(FhirServerError, match="not a searchset Bundle"):
        list(client.search("Questionnaire"))


def test_get_url_takes_relative_and_same_origin_urls(client: FhirClient, rsps) -> None:
    rsps.get(f"{BASE}/bulkstatus/7", status=202, headers={"X-Progress": "50%", "Retry-After": "5"})
    rsps.get(f"{BASE}/bulkstatus/8", json={"transactionTime": "2026-01-01T00:00:00Z", "output": []})
    pending = client.get_url("bulkstatus/7")
    done = client.get_url(f"{BASE}/bulkstatus/8")
    assert pending.status == 202
    assert pending.body is None
    assert pending.headers["x-progress"] == "50%"
    assert done.status == 200 and done.body is not None and done.body["output"] == []


@pytest.mark.parametrize("version", ["4.0.1", "4.0.0"])
def test_r4_servers_pass_the_version_check(client: FhirClient, rsps, version: str) -> None:
    rsps.get(
        f"{BASE}/metadata", json={"resourceType": "CapabilityStatement", "fhirVersion": version}
    )
    assert client.check_fhir_version() == version
    assert client.capabilities()["fhirVersion"] == version
    assert len(rsps.calls) == 1, "the CapabilityStatement is read once"


@pytest.mark.parametrize("version", ["5.0.0", "4.3.0", "3.0.2"])
def test_other_fhir_versions_are_refused(client: FhirClient, rsps, version: str) -> None:
    rsps.get(
        f"{BASE}/metadata", json={"resourceType": "CapabilityStatement", "fhirVersion": version}
    )
    with pytest.raises(ConfigError) as caught:
        client.check_fhir_version()
    assert caught.value.message == f"server speaks FHIR {version}; rejection-fhir needs R4 4.0.x"


def test_capability_statement_without_a_version(client: FhirClient, rsps) -> None:
    rsps.get(f"{BASE}/metadata", json={"resourceType": "CapabilityStatement"})
    with pytest.raises(ConfigError, match="does not say which FHIR version"):
        client.check_fhir_version()


def test_metadata_that_is_not_a_capability_statement(client: FhirClient, rsps) -> None:
    rsps.get(f"{BASE}/metadata", json={"resourceType": "Bundle"})
    with pytest.raises(FhirServerError, match="not a CapabilityStatement"):
        client.capabilities()


def test_operation_returns_an_ok_operation_outcome(client: FhirClient, rsps) -> None:
    verdict = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "warning", "code": "value"}],
    }
    rsps.get(
        f"{BASE}/Questionnaire/a/$validate",
        json=verdict,
        match=[matchers.query_param_matcher({"mode": "update"})],
    )
    assert (
        client.operation(
            "validate", resource_type="Questionnaire", resource_id="a", params={"mode": "update"}
        )
        == verdict
    )


@pytest.mark.parametrize(
    "url", ["ftp://fhir.test/fhir", "fhir.test/fhir", "https://fhir.test/fhir?x=1"]
)
def test_base_url_must_be_a_plain_http_url(url: str) -> None:
    with pytest.raises(ConfigError):
        FhirClient(url)


def test_repr_shows_server_and_scheme_only() -> None:
    client = FhirClient(BASE + "/", auth=BearerAuth(Secret(TOKEN)))
    assert repr(client) == "FhirClient('https://fhir.test/fhir', auth=bearer)"
    assert client.base_url == BASE


def test_validate_findings_sent_as_412_can_be_taken_as_the_answer(client: FhirClient, rsps) -> None:
    findings = {
        "resourceType": "OperationOutcome",
        "issue": [
            {"severity": "error", "code": "processing", "diagnostics": "que-2: duplicate linkId"}
        ],
    }
    rsps.post(f"{BASE}/Questionnaire/$validate", status=412, json=findings)
    rsps.post(f"{BASE}/Questionnaire/$validate", status=412, json=findings)
    rsps.post(f"{BASE}/Questionnaire/$validate", status=412, body="")
    body = {"resourceType": "Questionnaire"}
    assert (
        client.operation(
            "$validate", resource_type="Questionnaire", body=body, outcome_on_error=True
        )
        == findings
    )
    with pytest.raises(FhirServerError) as caught:
        client.operation("$validate", resource_type="Questionnaire", body=body)
    assert "duplicates" not in (caught.value.hint or "")
    assert "$validate" in (caught.value.hint or "")
    with pytest.raises(FhirServerError, match="412 Precondition Failed"):
        client.operation(
            "$validate", resource_type="Questionnaire", body=body, outcome_on_error=True
        )


def test_auth_failures_are_raised_even_when_outcomes_are_welcome(client: FhirClient, rsps) -> None:
    rsps.get(
        f"{BASE}/$everything-else",
        status=403,
        json={
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "forbidden"}],
        },
    )
    with pytest.raises(AuthError):
        client.operation("everything-else", outcome_on_error=True)


def test_a_missing_reason_phrase_is_supplied() -> None:
    raw = requests.Response()
    raw.status_code = 404
    raw.reason = None  # type: ignore[assignment]
    assert _status_line(raw) == "404 Not Found"
    raw.status_code = 599
    assert _status_line(raw) == "599"
