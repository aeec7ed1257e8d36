"""Writes, transactions and batches: every entry's response mapped, in order."""

from __future__ import annotations

import pytest
from responses import matchers

from rejection_fhir.errors import FhirServerError
from rejection_fhir.fhir.client import (
    FhirClient,
    parse_location,
    parse_status,
    version_from_etag,
)
from tests.unit.fhir.conftest import BASE, outcome

Q = {"resourceType": "Questionnaire", "url": "http://rejection.example/q/log", "version": "1.0.0"}


def test_create_maps_location_etag_and_body(client: FhirClient, rsps) -> None:
    rsps.post(
        f"{BASE}/Questionnaire",
        status=201,
        headers={
            "Location": f"{BASE}/Questionnaire/123/_history/1",
            "ETag": 'W/"1"',
            "Last-Modified": "Thu, 26 Nov 2026 01:00:00 GMT",
        },
        json={**Q, "id": "123", "meta": {"versionId": "1"}},
    )
    result = client.create(Q)
    assert result.created and result.ok
    assert (result.resource_type, result.id, result.version_id) == ("Questionnaire", "123", "1")
    assert result.etag == 'W/"1"'
    assert result.last_modified == "Thu, 26 Nov 2026 01:00:00 GMT"
    assert result.resource is not None and result.resource["id"] == "123"
    assert result.outcome is None


def test_conditional_create_sends_if_none_exist_and_reports_an_existing_match(
    client: FhirClient, rsps
) -> None:
    rsps.post(
        f"{BASE}/Questionnaire",
        status=200,
        body="",
        headers={"Location": f"{BASE}/Questionnaire/77/_history/4"},
        match=[
            matchers.header_matcher(
                {"If-None-Exist": "url=http%3A%2F%2Frejection.example%2Fq%2Flog&version=1.0.0"}
            )
        ],
    )
    result = client.conditional_create(Q, {"url": Q["url"], "version": "1.0.0"})
    assert not result.created and result.ok
    assert (result.id, result.version_id) == ("77", "4")
    assert result.resource is None


def test_conditional_create_accepts_a_ready_query_string(client: FhirClient, rsps) -> None:
    rsps.post(
        f"{BASE}/Questionnaire",
        status=201,
        json={**Q, "id": "1", "meta": {"versionId": "1"}},
        match=[matchers.header_matcher({"If-None-Exist": "url=http://x|1.0.0"})],
    )
    result = client.conditional_create(Q, "?url=http://x|1.0.0")
    # no Location header: identity from the returned resource
    assert (result.resource_type, result.id, result.version_id) == ("Questionnaire", "1", "1")


def test_update_with_if_match(client: FhirClient, rsps) -> None:
    rsps.put(
        f"{BASE}/Questionnaire/abc",
        json={**Q, "id": "abc", "meta": {"versionId": "4"}},
        headers={"ETag": 'W/"4"'},
        match=[matchers.header_matcher({"If-Match": 'W/"3"'})],
    )
    result = client.update({**Q, "id": "abc"}, if_match="3")
    assert result.version_id == "4"
    assert result.status == 200


def test_update_needs_an_id(client: FhirClient) -> None:
    with pytest.raises(ValueError, match="has no id"):
        client.update(Q)


def test_conditional_update_path(client: FhirClient, rsps) -> None:
    rsps.put(
        f"{BASE}/DocumentReference",
        status=201,
        headers={"Location": "DocumentReference/9/_history/1"},
        match=[matchers.query_param_matcher({"identifier": "urn:x|1"})],
    )
    result = client.conditional_update(
        {"resourceType": "DocumentReference"}, {"identifier": "urn:x|1"}
    )
    assert result.id == "9"


def test_operation_outcome_body_is_the_outcome_not_the_resource(client: FhirClient, rsps) -> None:
    info = outcome({"severity": "information", "code": "informational", "diagnostics": "created"})
    rsps.post(
        f"{BASE}/Questionnaire", status=201, json=info, headers={"Location": "Questionnaire/5"}
    )
    result = client.create(Q)
    assert result.resource is None
    assert result.outcome == info
    assert result.id == "5" and result.version_id is None


def transaction(entries: list[dict], kind: str = "transaction") -> dict:
    return {"resourceType": "Bundle", "type": kind, "entry": entries}


def conditional_entry(n: int) -> dict:
    return {
        "fullUrl": f"urn:uuid:0000-{n}",
        "resource": {"resourceType": "Questionnaire", "url": f"http://x/{n}"},
        "request": {"method": "POST", "url": "Questionnaire", "ifNoneExist": f"url=http://x/{n}"},
    }


def test_transaction_maps_each_entry_response_in_order(client: FhirClient, rsps) -> None:
    warning = outcome(
        {"severity": "warning", "code": "informational", "diagnostics": "matched existing"}
    )
    rsps.post(
        BASE,
        json={
            "resourceType": "Bundle",
            "type": "transaction-response",
            "entry": [
                {
                    "response": {
                        "status": "201 Created",
                        "location": "Questionnaire/11/_history/1",
                        "etag": 'W/"1"',
                        "lastModified": "2026-11-26T01:00:00.000+00:00",
                    }
                },
                {
                    "response": {
                        "status": "200 OK",
                        "location": "Questionnaire/12/_history/3",
                        "outcome": warning,
                    }
                },
                {
                    "resource": {
                        "resourceType": "Questionnaire",
                        "id": "13",
                        "meta": {"versionId": "2"},
                    },
                    "response": {"status": "200", "etag": 'W/"2"'},
                },
            ],
        },
    )
    sent = transaction([conditional_entry(1), conditional_entry(2), conditional_entry(3)])
    result = client.transaction(sent)
    assert len(result) == 3 and result.ok
    first, second, third = result
    assert (first.status, first.id, first.version_id, first.created) == (201, "11", "1", True)
    assert first.last_modified == "2026-11-26T01:00:00.000+00:00"
    assert first.full_url == "urn:uuid:0000-1"
    assert (first.request_method, first.request_url) == ("POST", "Questionnaire")
    assert (second.status, second.id, second.version_id, second.created) == (200, "12", "3", False)
    assert second.outcome == warning
    assert (third.id, third.version_id, third.resource_type) == ("13", "2", "Questionnaire")
    assert third.resource is not None
    assert result.bundle["type"] == "transaction-response"
    assert rsps.calls[0].request.headers["Content-Type"].startswith("application/fhir+json")


def test_transaction_refused_as_a_whole_raises_with_the_outcome(client: FhirClient, rsps) -> None:
    rsps.post(
        BASE,
        status=400,
        json=outcome(
            {
                "severity": "error",
                "code": "processing",
                "diagnostics": "Invalid match URL in entry 1",
                "expression": ["Bundle.entry[1].request.ifNoneExist"],
            }
        ),
    )
    with pytest.raises(FhirServerError) as caught:
        client.transaction(transaction([conditional_entry(1), conditional_entry(2)]))
    text = str(caught.value)
    assert text.startswith("POST transaction Bundle (2 entries) failed: 400 Bad Request")
    assert "at Bundle.entry[1].request.ifNoneExist: Invalid match URL in entry 1" in text


def test_transaction_response_with_the_wrong_entry_count(client: FhirClient, rsps) -> None:
    rsps.post(BASE, json={"resourceType": "Bundle", "type": "transaction-response", "entry": []})
    with pytest.raises(FhirServerError, match="answered 0 entries for 1 sent"):
        client.transaction(transaction([conditional_entry(1)]))


def test_transaction_response_of_the_wrong_type(client: FhirClient, rsps) -> None:
    rsps.post(BASE, json={"resourceType": "Bundle", "type": "batch-response", "entry": [{}]})
    with pytest.raises(FhirServerError, match="not a transaction-response"):
        client.transaction(transaction([conditional_entry(1)]))


def test_transaction_needs_a_transaction_bundle(client: FhirClient) -> None:
    with pytest.raises(ValueError):
        client.transaction(transaction([], kind="batch"))


def test_batch_reports_failed_entries_without_raising(client: FhirClient, rsps) -> None:
    rsps.post(
        BASE,
        json={
            "resourceType": "Bundle",
            "type": "batch-response",
            "entry": [
                {"response": {"status": "201 Created", "location": "Questionnaire/1/_history/1"}},
                {
                    "response": {
                        "status": "412 Precondition Failed",
                        "outcome": outcome(
                            {"severity": "error", "code": "duplicate", "diagnostics": "2 matches"}
                        ),
                    }
                },
            ],
        },
    )
    result = client.batch(transaction([conditional_entry(1), conditional_entry(2)], kind="batch"))
    assert not result.ok
    assert [entry.status for entry in result.failed] == [412]
    with pytest.raises(FhirServerError) as caught:
        result.raise_for_failures()
    text = str(caught.value)
    assert text.splitlines()[0] == "1 of 2 batch entries failed:"
    assert "entry 1: POST Questionnaire -> 412" in text
    assert "error [duplicate]: 2 matches" in text
    assert caught.value.status == 412


def test_location_etag_and_status_parsers() -> None:
    assert parse_location("https://h/fhir/Questionnaire/a-1/_history/2") == (
        "Questionnaire",
        "a-1",
        "2",
    )
    assert parse_location("Questionnaire/a") == ("Questionnaire", "a", None)
    assert parse_location("nonsense") == (None, None, None)
    assert parse_location(None) == (None, None, None)
    assert version_from_etag('W/"12"') == "12"
    assert version_from_etag('"12"') == "12"
    assert version_from_etag(None) is None
    assert parse_status("201 Created") == 201
    assert parse_status("200") == 200
    assert parse_status(None) == 0
